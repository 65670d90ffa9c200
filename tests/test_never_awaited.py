"""A native awaitable dropped without being awaited warns, as a coroutine does."""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import brakes

from .conftest import ctrl_c_raises

CALLS: list[tuple[str, Callable[[], Coroutine[Any, Any, Any]]]] = [
    ("Gauge.acquire", lambda: brakes.Gauge(1).acquire()),
    ("TokenBucket.acquire", lambda: brakes.TokenBucket(1).acquire()),
    ("Queue.put", lambda: brakes.Queue[int](1).put(1)),
    ("Queue.get", lambda: brakes.Queue[int](1).get()),
]


@pytest.mark.parametrize(("name", "make"), CALLS, ids=[name for name, _ in CALLS])
def test_dropping_an_unawaited_call_warns_and_does_nothing(
    name: str, make: Callable[[], Coroutine[Any, Any, Any]]
) -> None:
    with pytest.warns(RuntimeWarning, match=rf"^coroutine '{name}' was never awaited$"):
        make()
        gc.collect()


def test_the_forgotten_put_of_a_coroutine_is_reported_and_stores_nothing() -> None:
    q = brakes.Queue[int](1)

    async def producer() -> None:
        q.put(1)  # type: ignore[unused-coroutine]  # the bug the warning points at

    with pytest.warns(RuntimeWarning, match="coroutine 'Queue.put' was never awaited"):
        asyncio.run(producer())
        gc.collect()
    assert q.qsize() == 0


def test_an_awaited_or_closed_call_does_not_warn() -> None:
    gauge = brakes.Gauge(1)

    async def main() -> None:
        await gauge.acquire()
        gauge.release()
        async with gauge:
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(main())
        gauge.acquire().close()
        gc.collect()
    assert gauge.in_flight == 0


def test_a_warning_turned_into_an_error_is_reported_as_unraisable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        brakes.Gauge(1).acquire()
        gc.collect()
    assert len(seen) == 1
    assert isinstance(seen[0].exc_value, RuntimeWarning)
    assert "was never awaited" in str(seen[0].exc_value)


def test_ctrl_c_that_meets_the_warning_is_delivered_again() -> None:
    import _thread

    raised_in_hook: list[bool] = []

    def show(*args: Any, **kwargs: Any) -> None:
        try:
            _thread.interrupt_main()
            for _ in range(100):  # Python code: Ctrl-C is raised here
                pass
        except KeyboardInterrupt:
            raised_in_hook.append(True)
            raise

    with ctrl_c_raises(), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        with pytest.raises(KeyboardInterrupt):
            brakes.Gauge(1).acquire()  # dropped at once, unawaited: warns
            for _ in range(100):
                pass
    assert raised_in_hook == [True], "it met the warning first, and came again"
