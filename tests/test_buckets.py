"""TokenBucket and LeakyBucket: exact answers on a manual clock, per-key state,
waiting from threads and tasks, and the real clock's rate."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brakes
from brakes import LeakyBucket, RateLimited, TokenBucket
from brakes.testing import ManualClock

from .conftest import LoopThread, ctrl_c_when, wait_until, wait_until_async


def saturate(bucket: TokenBucket) -> int:
    taken = 0
    while bucket.try_acquire():
        taken += 1
    return taken


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([1.0, 3.0, 0.7, 10.0, 2.5, 1e9, 123.456]),
    per=st.sampled_from([1.0, 0.3, 2.0, 0.001]),
    burst=st.integers(min_value=1, max_value=20),
    steps=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=40),
)
def test_grants_at_saturation_are_burst_plus_rate_times_time_never_one_more(
    rate: float, per: float, burst: int, steps: list[float]
) -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate, per=per, burst=burst, clock=clock)
    granted = saturate(bucket)
    elapsed_ns = 0
    interval_ns = per / rate * 1e9
    for fraction in steps:
        # At saturation the bucket is drained before it is full again: no step
        # is longer than the time it takes to refill (less 1 ns for rounding).
        refill_ns = (burst - bucket.tokens()) * interval_ns
        step_ns = max(0, math.floor(fraction * refill_ns) - 1)
        clock.advance(step_ns / 1e9)
        elapsed_ns += step_ns
        granted += saturate(bucket)
        # rate·t/per, exactly, with rate and per as written in decimal.
        exact = Fraction(str(rate)) * elapsed_ns / (round(per * 1e9))
        assert granted == burst + math.floor(exact)


def test_retry_after_is_exactly_enough_and_not_a_nanosecond_more() -> None:
    clock = ManualClock()
    bucket = TokenBucket(3, burst=1, clock=clock)
    assert bucket.try_acquire()
    wait = bucket.retry_after()
    assert wait == 0.333333334
    clock.advance(wait - 1e-9)
    assert not bucket.try_acquire()
    clock.advance(1e-9)
    assert bucket.try_acquire()
    assert bucket.retry_after(1) > 0 and TokenBucket(1, clock=clock).retry_after() == 0.0


# Go's x/time/rate TestLimiterBurst3: (time in d = 100 ms, n, allowed), rate 10, burst 3.
GO_BURST_3 = [
    (0, 2, True), (0, 2, False), (0, 1, True), (0, 1, False), (1, 4, False),
    (2, 1, True), (3, 1, True), (4, 1, True), (4, 1, True), (4, 1, False),
    (4, 1, False), (9, 3, True),
]  # fmt: skip


@pytest.mark.parametrize("step", range(len(GO_BURST_3)))
def test_go_allow_table_step(step: int) -> None:
    # Replays the table up to this step, so each step is checked in context.
    clock = ManualClock()
    bucket = TokenBucket(10, burst=3, clock=clock)
    for t, n, expected in GO_BURST_3[: step + 1]:
        clock.advance(round(t * 0.1 - clock.now(), 9))
        if n > bucket.burst:
            with pytest.raises(ValueError, match="burst"):
                bucket.try_acquire(n)
            got = False
        else:
            got = bucket.try_acquire(n)
        assert got is expected


def test_the_default_burst_is_the_rate_rounded_up() -> None:
    assert TokenBucket(2.5).burst == 3
    assert TokenBucket(0.2).burst == 1
    assert TokenBucket(10, per=60).burst == 10


def test_tokens_show_the_refill_and_the_bookings() -> None:
    clock = ManualClock()
    bucket = TokenBucket(10, burst=2, clock=clock)
    assert bucket.tokens() == 2.0
    bucket.try_acquire(2)
    clock.advance(0.05)
    assert bucket.tokens() == 0.5


def test_waiting_tasks_are_served_in_order_as_the_clock_moves() -> None:
    async def main() -> list[int]:
        clock = ManualClock()
        bucket = TokenBucket(10, burst=1, clock=clock)
        assert bucket.try_acquire()
        order: list[int] = []

        async def waiter(i: int) -> None:
            await bucket.acquire()
            order.append(i)

        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(waiter(i)))
            await wait_until_async(lambda: bucket.stats().waiting == len(tasks))
        assert not bucket.try_acquire(), "later callers go behind the bookings"
        for step in range(5):
            clock.advance(0.1)
            await wait_until_async(lambda step=step: len(order) == step + 1)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_threads_and_tasks_wait_in_one_order_and_wake_on_advance() -> None:
    clock = ManualClock()
    bucket = TokenBucket(10, burst=1, clock=clock)
    assert bucket.try_acquire()
    order: list[str] = []
    lt = LoopThread()
    try:
        thread = threading.Thread(target=lambda: (bucket.acquire_blocking(), order.append("t")))
        thread.start()
        wait_until(lambda: bucket.stats().waiting == 1)

        async def task() -> None:
            await bucket.acquire()
            order.append("a")

        future = lt.submit(task())
        wait_until(lambda: bucket.stats().waiting == 2)
        clock.advance(0.1)
        wait_until(lambda: order == ["t"])
        clock.advance(0.1)
        future.result(timeout=5)
        thread.join(timeout=5)
        assert order == ["t", "a"]
    finally:
        lt.close()


def test_a_wait_longer_than_the_timeout_fails_at_once_with_retry_after() -> None:
    async def main() -> None:
        clock = ManualClock()
        bucket = TokenBucket(10, burst=1, clock=clock)
        assert bucket.try_acquire()
        with pytest.raises(RateLimited) as refused:
            await bucket.acquire(timeout=0.05)
        assert refused.value.retry_after == 0.1
        assert isinstance(refused.value, brakes.Overloaded)
        assert bucket.stats().waiting == 0 and bucket.stats().rejected == 1
        with pytest.raises(RateLimited):
            bucket.acquire_blocking(timeout=0.0999)

    asyncio.run(main())


def test_max_wait_governs_with_async_with_and_the_decorator() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1, burst=1, max_wait=0, clock=clock)

    @bucket
    def handler() -> str:
        return "ok"

    assert handler() == "ok"
    with pytest.raises(RateLimited) as refused:
        handler()
    assert refused.value.retry_after == 1.0
    with pytest.raises(RateLimited):
        with bucket:
            pass

    async def main() -> None:
        with pytest.raises(RateLimited):
            async with bucket:
                pass
        clock.advance(1)
        async with bucket:
            pass

    asyncio.run(main())


def test_a_cancelled_waiter_gives_its_booking_back_to_those_behind() -> None:
    async def main() -> None:
        clock = ManualClock()
        bucket = TokenBucket(10, burst=1, clock=clock)
        assert bucket.try_acquire()
        first = asyncio.create_task(bucket.acquire())
        await wait_until_async(lambda: bucket.stats().waiting == 1)
        second = asyncio.create_task(bucket.acquire())
        await wait_until_async(lambda: bucket.stats().waiting == 2)
        assert bucket.retry_after() == pytest.approx(0.3)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert bucket.retry_after() == pytest.approx(0.2)
        clock.advance(0.1)  # the second moved up into the first's turn
        assert await second is True
        assert bucket.stats().cancelled == 1

    asyncio.run(main())


def test_a_cancelled_waiter_on_the_real_clock_lets_the_next_go_early() -> None:
    async def main() -> float:
        bucket = TokenBucket(1, burst=1)
        assert bucket.try_acquire()
        first = asyncio.create_task(bucket.acquire())
        await wait_until_async(lambda: bucket.stats().waiting == 1)
        started = time.monotonic()
        second = asyncio.create_task(bucket.acquire())
        await wait_until_async(lambda: bucket.stats().waiting == 2)
        first.cancel()
        await second
        return time.monotonic() - started

    # Booked for 2 s from the start; after the cancel its turn is at 1 s. The
    # margin is wide on purpose: a busy machine may wake it late, not 0.8 s late.
    assert asyncio.run(main()) < 1.8


def test_keys_are_isolated_and_typed() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1, burst=1, clock=clock)
    assert bucket.try_acquire(key="a") and not bucket.try_acquire(key="a")
    assert bucket.try_acquire(key=b"a") and bucket.try_acquire(key=1)
    assert bucket.try_acquire(key=2**80) and bucket.try_acquire()
    with pytest.raises(TypeError, match="key"):
        bucket.try_acquire(key=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="key"):
        bucket.tokens(key=("a",))  # type: ignore[arg-type]


def test_idle_keys_are_forgotten_and_memory_falls_back() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1, burst=1, clock=clock)
    for i in range(1_000_000):
        bucket.try_acquire(key=i)
    assert bucket.stats().keys > 500_000
    clock.advance(2)  # every bucket has refilled: indistinguishable from new
    # The table is swept part by part, as calls touch each part.
    for n in range(10_000):
        assert bucket.try_acquire(key=f"fresh-{n}")
    assert bucket.stats().keys == 10_000
    # Forgetting changed no answer: key 7 is full again, as a new key would be.
    assert bucket.tokens(key=7) == 1.0


def test_max_keys_caps_the_table_least_recently_used_first() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1, burst=1, clock=clock, max_keys=2)
    assert bucket.try_acquire(key="a") and bucket.try_acquire(key="b")
    assert bucket.try_acquire(key="c")  # forgets "a", the least recently used
    assert bucket.stats().keys == 2
    assert bucket.try_acquire(key="a")


def test_leaky_bucket_paces_exactly_and_refuses_beyond_its_capacity() -> None:
    async def main() -> list[float]:
        clock = ManualClock()
        bucket = LeakyBucket(2, capacity=2, clock=clock)
        times: list[float] = []

        async def call() -> None:
            await bucket.acquire()
            times.append(clock.now())

        first = asyncio.create_task(call())
        await first
        waiting = [asyncio.create_task(call()) for _ in range(2)]
        await wait_until_async(lambda: bucket.stats().waiting == 2)
        with pytest.raises(RateLimited):
            await bucket.acquire()
        for served in (2, 3):
            clock.advance(0.5)
            await wait_until_async(lambda served=served: len(times) == served)
        await asyncio.gather(*waiting)
        return times

    assert asyncio.run(main()) == [0.0, 0.5, 1.0]


def test_leaky_n_books_n_consecutive_slots() -> None:
    clock = ManualClock()
    bucket = LeakyBucket(10, clock=clock)
    assert bucket.try_acquire(3)
    assert bucket.retry_after() == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("make", "error", "names"),
    [
        (lambda: TokenBucket(0), ValueError, "rate"),
        (lambda: TokenBucket(-1), ValueError, "rate"),
        (lambda: TokenBucket(math.inf), ValueError, "rate"),
        (lambda: TokenBucket(math.nan), ValueError, "rate"),
        (lambda: TokenBucket(1, per=0), ValueError, "per"),
        (lambda: TokenBucket(1, per=math.nan), ValueError, "per"),
        (lambda: TokenBucket(1, burst=-1), ValueError, "burst"),
        (lambda: TokenBucket(1, burst=0), ValueError, "burst"),
        (lambda: TokenBucket(1, max_wait=math.nan), ValueError, "max_wait"),
        (lambda: TokenBucket(1, max_keys=0), ValueError, "max_keys"),
        (lambda: TokenBucket(1, clock=object()), TypeError, "clock"),  # type: ignore[arg-type]
        (lambda: TokenBucket("1"), TypeError, "rate"),  # type: ignore[arg-type]
        (lambda: LeakyBucket(1, capacity=-1), ValueError, "capacity"),
        (lambda: TokenBucket(1).try_acquire(0), ValueError, "n"),
        (lambda: TokenBucket(1, burst=2).try_acquire(3), ValueError, "burst"),
        (lambda: TokenBucket(1).acquire(timeout=math.nan), ValueError, "timeout"),
        (lambda: TokenBucket(1).acquire_blocking(timeout=-1), ValueError, "timeout"),
        (lambda: TokenBucket(1).retry_after(-2), ValueError, "n"),
        (lambda: ManualClock(-1), ValueError, "start"),
        (lambda: ManualClock().advance(math.nan), ValueError, "seconds"),
        (lambda: ManualClock().advance(-1), ValueError, "seconds"),
    ],
)
def test_bad_arguments_raise_an_error_naming_the_argument(make, error, names) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=rf"\b{names}\b"):
        make()


def test_a_thread_that_saturates_a_bucket_gets_exactly_its_rate() -> None:
    clock = ManualClock()
    rate, burst, steps = 200, 2, 50
    bucket = TokenBucket(rate, burst=burst, clock=clock)
    granted = 0

    def take() -> None:
        nonlocal granted
        for _ in range(burst + steps):
            bucket.acquire_blocking()
            granted += 1

    taker = threading.Thread(target=take)
    taker.start()
    for step in range(steps):
        wait_until(lambda: bucket.stats().waiting == 1)
        assert granted == burst + step, "one token per 1/rate seconds, none early"
        clock.advance(1 / rate)
    taker.join(timeout=10)
    assert granted == burst + steps


def test_repr_and_stats_show_the_live_state() -> None:
    clock = ManualClock()
    bucket = TokenBucket(10, burst=2, clock=clock, max_wait=0.5)
    bucket.try_acquire(key="x")
    assert repr(bucket) == (
        "<brakes.TokenBucket rate=10.0 per=1.0 burst=2 keys=1 waiting=0 max_wait=0.5>"
    )
    assert "keys=1" in repr(bucket.stats()) and bucket.stats().acquired == 1
    assert repr(clock) == "ManualClock(now=0.0)"


def test_keyboard_interrupt_stops_a_blocking_wait_and_returns_the_booking() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1, burst=1, clock=clock)
    assert bucket.try_acquire()
    with ctrl_c_when(lambda: bucket.stats().waiting == 1):
        with pytest.raises(KeyboardInterrupt):
            bucket.acquire_blocking()
    assert bucket.stats().waiting == 0 and bucket.stats().cancelled == 1
    assert bucket.retry_after() == 1.0, "the booking went back"
