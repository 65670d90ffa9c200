"""The one place that turns a limiter into a decorator (`@gauge`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def limit_calls(limiter: Any, func: F) -> F:
    """Wraps `func` so that each call runs inside `with limiter` (or `async with`).

    The wrapper keeps the name, docstring and signature of `func`.
    """
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
