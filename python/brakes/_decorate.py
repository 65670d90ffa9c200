"""The one place that turns a limiter into a decorator (`@gauge`), and the
keyed forms (`gauge(key=...)`, `bucket(key=...)`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def _check_decorates(limiter: Any, func: Any) -> None:
    if not callable(func):
        raise TypeError(
            f"{type(limiter).__name__} decorates a function, got {type(func).__name__!r}"
        )
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(
            f"cannot decorate the generator function {func.__qualname__!r}: a limit "
            "held around creating a generator would not cover its iteration; "
            "use `with`/`async with` inside it instead"
        )


def limit_calls(limiter: Any, func: F) -> F:
    """Wraps `func` so that each call runs inside `with limiter` (or `async with`).

    The wrapper keeps the name, docstring and signature of `func`.
    """
    _check_decorates(limiter, func)
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            async with limiter:
                return await func(*args, **kwargs)

        return call_async  # type: ignore[return-value]

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        with limiter:
            return func(*args, **kwargs)

    return call  # type: ignore[return-value]


def called(limiter: Any, func: Any = None, /, **kwargs: Any) -> Any:
    """`limiter(func)`, `limiter(key=...)` and `limiter(func, key=...)`."""
    cls = type(limiter).__name__
    for name in kwargs:
        if name != "key":
            raise TypeError(f"{cls}() got an unexpected keyword argument {name!r}")
    if "key" not in kwargs:
        if func is None:
            raise TypeError(
                f"{cls}() takes the function to decorate, or key= (a key, or a "
                "function of each call's arguments that returns one)"
            )
        return limit_calls(limiter, func)
    key = kwargs["key"]
    if not callable(key):
        # A key value is served natively; here only a wrong type arrives.
        raise TypeError(
            "key must be str, bytes, int, None, or a function of the call's "
            f"arguments that returns one, got {type(key).__name__}"
        )
    keyed = Keyed(limiter, key)
    return keyed if func is None else keyed(func)


def _checked(key: Any) -> Any:
    """What a key function returned, refused if it is a function itself."""
    if callable(key):
        raise TypeError(
            f"the key function returned {key!r}: it must return the key "
            "(str, bytes, int or None), not a function"
        )
    return key


class Keyed:
    """`limiter(key=func)`: a decorator whose calls each hold the permit (or
    take the token) of the key `func` returns, given the call's arguments.

    A key given as a value (`gauge(key="alice")`) is a native `GaugeKey` or
    `BucketKey` instead, which also serves `with` and `async with`.
    """

    __slots__ = ("key", "limiter")

    def __init__(self, limiter: Any, key: Callable[..., Any]) -> None:
        self.limiter = limiter
        self.key = key

    def _no_block(self) -> TypeError:
        cls = type(self.limiter).__name__
        return TypeError(
            f"{cls}(key=<function>) decorates a function, whose calls give the "
            f"key function its arguments; `with` needs a key, as in {cls}(key='alice')"
        )

    def __enter__(self) -> None:
        raise self._no_block()

    def __exit__(self, *exc_info: object) -> None:
        return None

    async def __aenter__(self) -> None:
        raise self._no_block()

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __call__(self, func: F) -> F:
        limiter, key_of = self.limiter, self.key
        _check_decorates(limiter, func)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def call_async(*args: Any, **kwargs: Any) -> Any:
                async with limiter(key=_checked(key_of(*args, **kwargs))):
                    return await func(*args, **kwargs)

            return call_async  # type: ignore[return-value]

        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            with limiter(key=_checked(key_of(*args, **kwargs))):
                return func(*args, **kwargs)

        return call  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<{type(self.limiter).__name__}(key={self.key!r}) of {self.limiter!r}>"
