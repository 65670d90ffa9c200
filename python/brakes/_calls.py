"""How user functions and sources are told apart and called: plain or async."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any


def is_async_callable(fn: object) -> bool:
    """True for `async def` functions, partials of them and objects whose
    `__call__` is one."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    # An object whose class defines `async def __call__`.
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)


async def async_items(iterable: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    """The items of an iterable or an async iterable, for `async for`."""
    if isinstance(iterable, AsyncIterable):
        async for item in iterable:
            yield item
    else:
        for item in iterable:
            yield item


class NeverRaised(BaseException):
    """Stands where asyncio code catches `CancelledError`, in the thread code
    made from it: nothing cancels a thread."""
