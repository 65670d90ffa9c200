"""CircuitBreaker: resilience4j's state machine, on a manual clock."""

from __future__ import annotations

import asyncio
import threading

import pytest

from brakes import CircuitBreaker, CircuitOpen, Overloaded
from brakes.testing import ManualClock

from .conftest import wait_until


class Down(Exception):
    pass


def fails() -> None:
    raise Down


def outcomes(breaker: CircuitBreaker, *results: bool) -> None:
    """Calls through the breaker: True succeeds, False raises Down."""
    for ok in results:
        try:
            breaker.call(lambda ok=ok: None if ok else fails())  # type: ignore[misc]
        except Down:
            pass


def make(**kwargs: object) -> tuple[ManualClock, CircuitBreaker, list[tuple[str, str]]]:
    clock = ManualClock()
    options: dict[str, object] = {"window_size": 4, "minimum_calls": 4, "open_for": 30}
    breaker = CircuitBreaker(**{**options, **kwargs}, clock=clock)  # type: ignore[arg-type]
    changes: list[tuple[str, str]] = []
    breaker.on_state_change(lambda old, new: changes.append((old, new)))
    return clock, breaker, changes


def test_every_transition_of_the_state_machine() -> None:
    clock, breaker, changes = make(half_open_calls=2)
    outcomes(breaker, False, True, True)
    assert breaker.state == "closed"  # 3 calls: below the minimum
    outcomes(breaker, False)  # 2 failures of 4: at the rate, it opens
    assert changes == [("closed", "open")]
    with pytest.raises(CircuitOpen) as refused:
        breaker.call(lambda: None)
    assert isinstance(refused.value, Overloaded) and refused.value.retry_after == 30.0
    clock.advance(29)
    with pytest.raises(CircuitOpen) as refused:
        breaker.call(lambda: None)
    assert refused.value.retry_after == pytest.approx(1.0)
    clock.advance(1)
    # Half-open: two trials in all; one fails, so it opens again.
    outcomes(breaker, True, False)
    assert changes[1:] == [("open", "half_open"), ("half_open", "open")]
    clock.advance(30)
    outcomes(breaker, True, True)
    assert changes[3:] == [("open", "half_open"), ("half_open", "closed")]
    stats = breaker.stats()
    assert (stats.state, stats.calls, stats.failure_rate) == ("closed", 0, None)
    counts = (stats.successful, stats.failed, stats.rejected, stats.half_open_admitted)
    assert counts == (5, 3, 2, 4)
    breaker.force_open()
    with pytest.raises(CircuitOpen) as refused:
        breaker.call(lambda: None)
    assert refused.value.retry_after is None
    breaker.disable()
    outcomes(breaker, False, False, False, False, False)
    assert breaker.state == "disabled"
    breaker.reset()
    assert changes[5:] == [
        ("closed", "forced_open"),
        ("forced_open", "disabled"),
        ("disabled", "closed"),
    ]


def test_half_open_refuses_past_its_trials_with_no_retry_after() -> None:
    clock, breaker, _ = make(half_open_calls=1)
    outcomes(breaker, False, False, False, False)
    clock.advance(30)
    with breaker:  # the one trial, still running
        with pytest.raises(CircuitOpen) as refused:
            breaker.call(lambda: None)
        assert refused.value.retry_after is None
        assert breaker.state == "half_open"
    assert breaker.state == "closed"


def test_slow_calls_open_it() -> None:
    clock, breaker, changes = make(slow_call_duration=2, slow_call_rate=0.5)

    def takes(seconds: float) -> None:
        clock.advance(seconds)

    for seconds in (3, 2, 1):  # exactly 2 s is not slow
        breaker.call(takes, seconds)
    assert breaker.stats().slow_call_rate == pytest.approx(1 / 3)
    breaker.call(takes, 2.5)
    assert changes == [("closed", "open")]


def test_what_counts_as_a_failure() -> None:
    _, breaker, _ = make(record=(Down, KeyError), ignore=(KeyError,), minimum_calls=100)
    for error in (Down(), KeyError(), ValueError(), asyncio.CancelledError()):
        with pytest.raises(type(error)):
            with breaker:
                raise error
    stats = breaker.stats()
    # Down is recorded; KeyError ignored (ignore wins); ValueError is not
    # recorded, so a success; a cancellation counts as neither.
    assert (stats.failed, stats.successful, stats.ignored, stats.calls) == (1, 1, 2, 2)


def test_a_time_window_counts_the_last_seconds() -> None:
    clock, breaker, _ = make(window="time", window_size=10, minimum_calls=3)
    outcomes(breaker, False, False)
    clock.advance(10)  # both failures leave the window
    outcomes(breaker, True, True)
    assert breaker.state == "closed"
    outcomes(breaker, False)
    assert breaker.stats().calls == 3 and breaker.state == "closed"  # 1 of 3
    outcomes(breaker, False)
    assert breaker.state == "open"  # 2 of 4


def test_a_call_that_ends_while_open_is_still_recorded() -> None:
    _, breaker, _ = make()
    with breaker:
        outcomes(breaker, False, False, False, False)
        assert breaker.state == "open"
    assert breaker.stats().calls == 4  # the window keeps the last 4


def test_callbacks_run_outside_the_lock_in_the_thread_that_changed_it() -> None:
    _, breaker, _ = make()
    seen: list[tuple[str, str, str, int | None]] = []
    breaker.on_state_change(
        lambda old, new: seen.append((old, new, breaker.state, threading.get_ident()))
    )
    worker = threading.Thread(target=outcomes, args=(breaker, False, False, False, False))
    worker.start()
    worker.join(30)
    assert seen == [("closed", "open", "open", worker.ident)]


def test_decorators_and_async_calls() -> None:
    clock, breaker, _ = make(minimum_calls=2, window_size=2, failure_rate=1.0)

    @breaker
    def sync_call(x: int) -> int:
        return x * 2

    @breaker
    async def async_call(x: int) -> int:
        await asyncio.sleep(0)
        if x < 0:
            raise Down
        return x + 1

    async def plain(x: int) -> int:
        return x + 2

    async def main() -> None:
        assert await async_call(1) == 2
        assert await breaker.call_async(plain, 2) == 4
        async with breaker:
            pass
        for _ in range(2):
            with pytest.raises(Down):
                await async_call(-1)
        with pytest.raises(CircuitOpen):
            await async_call(1)

    assert sync_call(4) == 8
    asyncio.run(main())
    assert sync_call.__name__ == "sync_call"
    with pytest.raises(CircuitOpen):
        sync_call(1)
    clock.advance(30)
    assert sync_call(5) == 10


def test_threads_and_two_loops_get_exactly_the_half_open_trials() -> None:
    clock, breaker, _ = make(half_open_calls=5)
    outcomes(breaker, False, False, False, False)
    clock.advance(30)
    hold = threading.Event()
    admitted: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8 + 2)

    def in_thread() -> None:
        start.wait()
        try:
            with breaker:
                with lock:
                    admitted.append("thread")
                hold.wait(30)
        except CircuitOpen:
            with lock:
                refused.append("thread")

    def in_loop() -> None:
        async def task() -> None:
            try:
                async with breaker:
                    with lock:
                        admitted.append("task")
                    await asyncio.to_thread(hold.wait, 30)
            except CircuitOpen:
                with lock:
                    refused.append("task")

        async def main() -> None:
            start.wait()
            await asyncio.gather(*(task() for _ in range(4)))

        asyncio.run(main())

    workers = [threading.Thread(target=in_thread) for _ in range(8)]
    workers += [threading.Thread(target=in_loop) for _ in range(2)]
    for worker in workers:
        worker.start()
    wait_until(lambda: len(admitted) + len(refused) == 16, timeout=30)
    assert len(admitted) == 5 and len(refused) == 11
    hold.set()
    for worker in workers:
        worker.join(30)
    assert breaker.state == "closed"
    assert breaker.stats().half_open_admitted == 5


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"failure_rate": 0}, ValueError, "failure_rate"),
        ({"failure_rate": 1.5}, ValueError, "failure_rate"),
        ({"slow_call_rate": float("nan")}, ValueError, "slow_call_rate"),
        ({"slow_call_duration": -1}, ValueError, "slow_call_duration"),
        ({"window": "sliding"}, ValueError, "window"),
        ({"window": 3}, TypeError, "window"),
        ({"window_size": 0}, ValueError, "window_size"),
        ({"minimum_calls": 0}, ValueError, "minimum_calls"),
        ({"minimum_calls": "10"}, TypeError, "minimum_calls"),
        ({"open_for": float("inf")}, ValueError, "open_for"),
        ({"half_open_calls": 0}, ValueError, "half_open_calls"),
        ({"record": "Exception"}, TypeError, "record"),
        ({"ignore": (KeyError, 3)}, TypeError, "ignore"),
        ({"clock": "now"}, TypeError, "clock"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], error: type, named: str) -> None:
    with pytest.raises(error, match=named):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]
