"""The one place that turns a limiter into a decorator (`@gauge`), and the
keyed forms (`gauge(key=...)`, `bucket(key=...)`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
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
    keyed = Keyed(limiter, kwargs["key"])
    return keyed if func is None else keyed(func)


def _holds(limiter: Any) -> bool:
    from brakes import Gauge

    return isinstance(limiter, Gauge)


class Keyed:
    """`limiter(key=...)`: the limiter's `with`, `async with` and decorator
    forms for one key's permits or tokens.

    `key` is a key (str, bytes, int or None), or a function given each
    decorated call's arguments that returns one. A key function is only for
    decorating: `with` and `async with` need the key itself.
    """

    __slots__ = ("_holds", "key", "limiter")

    def __init__(self, limiter: Any, key: Any) -> None:
        if not (key is None or callable(key) or isinstance(key, str | bytes | int)):
            raise TypeError(
                "key must be str, bytes, int, None, or a function of the call's "
                f"arguments that returns one, got {type(key).__name__}"
            )
        self.limiter = limiter
        self.key = key
        self._holds = _holds(limiter)

    def _fixed_key(self) -> Any:
        if callable(self.key):
            cls = type(self.limiter).__name__
            raise TypeError(
                f"{cls}(key=<function>) decorates a function, whose calls give the "
                f"key function its arguments; `with` needs a key, as in {cls}(key='alice')"
            )
        return self.key

    def __enter__(self) -> None:
        limiter = self.limiter
        limiter.acquire_blocking(timeout=limiter.max_wait, key=self._fixed_key())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._holds:
            self.limiter.release(key=self.key)

    async def __aenter__(self) -> None:
        limiter = self.limiter
        await limiter.acquire(timeout=limiter.max_wait, key=self._fixed_key())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._holds:
            self.limiter.release(key=self.key)

    def __call__(self, func: F) -> F:
        limiter, key, holds = self.limiter, self.key, self._holds
        _check_decorates(limiter, func)
        key_of: Callable[..., Any] = key if callable(key) else (lambda *a, **kw: key)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def call_async(*args: Any, **kwargs: Any) -> Any:
                k = key_of(*args, **kwargs)
                await limiter.acquire(timeout=limiter.max_wait, key=k)
                if not holds:
                    return await func(*args, **kwargs)
                try:
                    return await func(*args, **kwargs)
                finally:
                    limiter.release(key=k)

            return call_async  # type: ignore[return-value]

        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            k = key_of(*args, **kwargs)
            limiter.acquire_blocking(timeout=limiter.max_wait, key=k)
            if not holds:
                return func(*args, **kwargs)
            try:
                return func(*args, **kwargs)
            finally:
                limiter.release(key=k)

        return call  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<{type(self.limiter).__name__}(key={self.key!r}) of {self.limiter!r}>"
