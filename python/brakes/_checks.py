"""Checks of the arguments the Python layer takes; each error names the
argument and the value."""

from __future__ import annotations


def check_callable(name: str, fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {fn!r}")


# The native layer counts in 64 bits; a count beyond is refused here, by name.
_MOST = 2**63 - 1


def check_count(name: str, value: object, minimum: int) -> int:
    """An integer of at least `minimum`. Bools are not integers here, nor in
    the native layer: `True` is refused, not taken as 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {minimum} or more, got {value!r}")
    if value > _MOST:
        raise ValueError(f"{name} must fit in 64 bits, got {value!r}")
    return value


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_seconds(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def check_name(value: object) -> str | None:
    """A `name=`: None, or a non-empty printable string (it goes into reprs,
    logs and metric labels)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"name must be a string or None, got {type(value).__name__}")
    if not value or not value.isprintable():
        raise ValueError(f"name must be a non-empty string of printable characters, got {value!r}")
    return value
