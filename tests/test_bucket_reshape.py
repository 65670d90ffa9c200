"""Settable TokenBucket.rate/.burst and LeakyBucket.rate (Go's SetLimit and
SetBurst): tokens carried over, queued callers re-booked, none lost or
granted twice."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

from brakes import LeakyBucket, RateLimited, TokenBucket
from brakes.testing import ManualClock

from .conftest import wait_until


def test_a_new_rate_keeps_the_tokens_and_refills_at_the_new_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(10, burst=10, clock=clock)
    assert bucket.try_acquire(10)
    clock.advance(0.5)  # 5 tokens back at 10/s
    assert bucket.tokens() == pytest.approx(5.0)
    bucket.rate = 2
    assert bucket.rate == 2 and bucket.tokens() == pytest.approx(5.0)
    assert bucket.try_acquire(5) and not bucket.try_acquire()
    assert bucket.retry_after() == pytest.approx(0.5)  # one token at 2/s
    bucket.rate = 100.0
    assert bucket.retry_after() == pytest.approx(0.01)
    assert "rate=100" in repr(bucket)


def test_a_new_burst_keeps_what_each_key_owes() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1, burst=10, clock=clock)
    bucket.burst = 4  # a full bucket stays full
    assert bucket.burst == 4 and bucket.tokens() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="burst of 4"):
        bucket.try_acquire(5)
    bucket.burst = 10
    assert bucket.tokens() == pytest.approx(10.0)
    assert bucket.try_acquire(7)  # 7 short of full
    bucket.burst = 8
    assert bucket.tokens() == pytest.approx(1.0)  # still 7 short
    bucket.burst = 4  # no more owed than the burst: empty, not in debt
    assert bucket.tokens() == pytest.approx(0.0)
    clock.advance(4)
    assert bucket.tokens() == pytest.approx(4.0) and bucket.try_acquire(4)


def test_keys_each_keep_their_own_tokens() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1, burst=4, clock=clock)
    assert bucket.try_acquire(4, key="a") and bucket.try_acquire(1, key="b")
    bucket.rate = 4
    assert bucket.tokens("a") == pytest.approx(0.0)
    assert bucket.tokens("b") == pytest.approx(3.0)
    assert bucket.tokens("c") == pytest.approx(4.0)
    clock.advance(0.25)
    assert bucket.tokens("a") == pytest.approx(1.0)


@pytest.mark.parametrize("faster", [True, False])
def test_queued_callers_are_re_booked_at_the_new_rate(faster: bool) -> None:
    clock = ManualClock()
    bucket = LeakyBucket(1, clock=clock)
    assert bucket.try_acquire()
    granted: list[tuple[int, float]] = []

    async def main() -> None:
        async def one(i: int) -> None:
            await bucket.acquire()
            granted.append((i, clock.now()))

        tasks = [asyncio.ensure_future(one(i)) for i in range(4)]
        await asyncio.sleep(0)
        assert bucket.stats().waiting == 4
        bucket.rate = 10 if faster else 0.5
        for _ in range(400):
            clock.advance(0.05)
            await asyncio.sleep(0)
            if len(granted) == 4:
                break
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert [i for i, _ in granted] == [0, 1, 2, 3]  # FIFO kept
    times = [t for _, t in granted]
    if faster:  # 0.1 s apart from now on
        assert times == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=0.051)
    else:  # 2 s apart
        assert times[0] == pytest.approx(2.0, abs=0.051)
        assert times[3] - times[0] == pytest.approx(6.0, abs=0.11)
    assert bucket.stats().waited == 4 and bucket.stats().waiting == 0


@pytest.mark.parametrize("kind", ["token", "leaky"])
def test_a_slower_rate_refuses_a_waiter_its_timeout_no_longer_covers(kind: str) -> None:
    """A timeout holds through a rate change: the waiter whose re-booked turn
    lies past its deadline is refused at once, with the wait it would need;
    its turn goes to those behind it, and none is granted late."""
    clock = ManualClock()
    bucket: TokenBucket | LeakyBucket = (
        TokenBucket(10, burst=1, clock=clock) if kind == "token" else LeakyBucket(10, clock=clock)
    )
    assert bucket.try_acquire()
    outcomes: dict[str, object] = {}

    def wait(name: str, timeout: float | None) -> None:
        try:
            bucket.acquire_blocking(timeout=timeout)
            outcomes[name] = ("granted", clock.now())
        except RateLimited as refused:
            outcomes[name] = ("refused", clock.now(), refused.retry_after)

    short = threading.Thread(target=wait, args=("short", 0.5))
    short.start()
    wait_until(lambda: bucket.stats().waiting == 1)
    patient = threading.Thread(target=wait, args=("patient", None))
    patient.start()
    wait_until(lambda: bucket.stats().waiting == 2)
    bucket.rate = 1  # the short one's turn moves from 0.1 s to 1 s: past 0.5 s
    short.join(timeout=60)  # on the manual clock, nothing else would end it
    assert not short.is_alive(), "the waiter was not refused"
    assert outcomes["short"] == ("refused", 0.0, pytest.approx(1.0))
    assert bucket.stats().waiting == 1 and bucket.stats().rejected == 1
    clock.advance(0.999)
    assert "patient" not in outcomes
    clock.advance(0.001)  # the refused turn went to the one behind
    patient.join()
    assert outcomes["patient"] == ("granted", pytest.approx(1.0))


def _refusal_round() -> None:
    clock = ManualClock()
    bucket = LeakyBucket(10, clock=clock)
    assert bucket.try_acquire()
    outcomes: dict[str, object] = {}

    def wait(name: str, timeout: float) -> None:
        try:
            bucket.acquire_blocking(timeout=timeout)
            outcomes[name] = ("granted", clock.now())
        except RateLimited as refused:
            outcomes[name] = ("refused", refused.retry_after)

    first = threading.Thread(target=wait, args=("first", 0.15))  # due at 0.1 s
    first.start()
    wait_until(lambda: bucket.stats().waiting == 1)
    second = threading.Thread(target=wait, args=("second", 0.25))  # due at 0.2 s
    second.start()
    wait_until(lambda: bucket.stats().waiting == 2)
    bucket.rate = 5  # first: 0.2 s, past 0.15; second, once first has gone: 0.2 s
    first.join(timeout=60)
    assert outcomes["first"] == ("refused", pytest.approx(0.2))
    clock.advance(0.2)
    second.join(timeout=60)
    assert outcomes["second"] == ("granted", pytest.approx(0.2))
    assert bucket.stats().rejected == 1


def test_a_refused_waiter_makes_room_for_those_behind_whoever_looks_first() -> None:
    """Refusals are settled in queue order at the change: the one behind a
    refused waiter is judged with that waiter gone, not by its stale place."""
    for _ in range(20):
        _refusal_round()


def test_a_waiter_late_to_look_after_a_faster_rate_takes_its_turn() -> None:
    """A new rate judges turns when it is set: a waiter whose turn came in
    time is granted even if its task runs only after its deadline."""
    clock = ManualClock()
    bucket = TokenBucket(10, burst=1, clock=clock)
    assert bucket.try_acquire()

    async def main() -> float:
        waiter = asyncio.ensure_future(bucket.acquire(timeout=0.2))  # due at 0.1 s
        await asyncio.sleep(0)
        bucket.rate = 20  # due at 0.05 s
        clock.advance(0.3)  # past the deadline before the task runs again
        await waiter
        return clock.now()

    assert asyncio.run(main()) == pytest.approx(0.3)
    assert bucket.stats().rejected == 0 and bucket.stats().waited == 1


def test_a_waiter_whose_new_turn_still_fits_its_timeout_keeps_it() -> None:
    clock = ManualClock()
    bucket = TokenBucket(10, burst=1, clock=clock)
    assert bucket.try_acquire()

    async def main() -> float:
        waiter = asyncio.ensure_future(bucket.acquire(timeout=0.5))
        await asyncio.sleep(0)
        bucket.rate = 4  # due at 0.25 s now: within 0.5 s
        await asyncio.sleep(0)
        assert not waiter.done()
        clock.advance(0.25)
        await waiter
        return clock.now()

    assert asyncio.run(main()) == pytest.approx(0.25)
    assert bucket.stats().rejected == 0


def test_an_async_waiter_is_refused_too_when_a_slower_rate_passes_its_timeout() -> None:
    clock = ManualClock()
    bucket = LeakyBucket(10, clock=clock)
    assert bucket.try_acquire()

    async def main() -> float:
        waiter = asyncio.ensure_future(bucket.acquire(timeout=0.2))
        await asyncio.sleep(0)
        bucket.rate = 2
        with pytest.raises(RateLimited) as refused:
            await waiter
        return refused.value.retry_after

    assert asyncio.run(main()) == pytest.approx(0.5)
    assert bucket.try_acquire() is False and bucket.retry_after() == pytest.approx(0.5)


def test_a_refused_waiter_cancelled_before_it_looks_counts_once() -> None:
    """A caller refused by a new rate and cancelled before its task runs
    again gets CancelledError; the stats count it once, as rejected, and
    the bucket is left as the refusal left it."""
    clock = ManualClock()
    bucket = LeakyBucket(10, clock=clock)
    assert bucket.try_acquire()

    async def main() -> None:
        waiter = asyncio.ensure_future(bucket.acquire(timeout=0.2))
        await asyncio.sleep(0)
        assert bucket.stats().waiting == 1
        bucket.rate = 2  # its turn moves to 0.5 s: refused at once
        waiter.cancel()  # before the task has seen the refusal
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())
    stats = bucket.stats()
    assert (stats.rejected, stats.cancelled, stats.waiting) == (1, 0, 0)
    assert bucket.retry_after() == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.try_acquire() and not bucket.try_acquire()


def test_a_faster_rate_wakes_a_thread_sleeping_on_the_real_clock() -> None:
    bucket = LeakyBucket(0.01)  # one every 100 s
    assert bucket.try_acquire()
    got = threading.Event()

    def waiter() -> None:
        bucket.acquire_blocking()
        got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: bucket.stats().waiting == 1)
    bucket.rate = 1000  # due within a millisecond of now
    thread.join(timeout=30)
    assert got.is_set()


def test_rate_changes_under_load_never_grant_more_than_the_rates_allow() -> None:
    clock = ManualClock()
    bucket = TokenBucket(50, burst=5, clock=clock)
    stop = threading.Event()
    taken = [0]
    lock = threading.Lock()

    def taker() -> None:
        while not stop.is_set():
            try:
                bucket.acquire_blocking(timeout=0.5)
            except RateLimited:
                continue
            with lock:
                taken[0] += 1

    threads = [threading.Thread(target=taker) for _ in range(4)]
    for thread in threads:
        thread.start()
    allowed = 5.0  # the first burst
    for step in range(400):
        rate = (50, 5, 200, 20)[step % 4]
        bucket.rate = rate
        clock.advance(0.01)
        allowed += rate * 0.01
        with lock:
            assert taken[0] <= allowed + 1e-9
    stop.set()
    clock.advance(10)  # lets every last waiter through
    for thread in threads:
        thread.join()
    assert taken[0] <= allowed + 10 * 20 + 5
    assert bucket.stats().waiting == 0


def test_every_caller_is_counted_once_through_rate_changes_timeouts_and_cancels() -> None:
    """Two event loops and two threads wait with and without timeouts while
    the rate keeps changing and tasks are cancelled at random: each call
    ends in exactly one of acquired, rejected and cancelled, the stats agree
    with what the callers saw, and nothing is left queued."""
    clock = ManualClock()
    bucket = LeakyBucket(40, clock=clock)
    stop = threading.Event()
    lock = threading.Lock()
    seen = {"calls": 0, "granted": 0, "refused": 0, "cancelled": 0}

    def saw(outcome: str) -> None:
        with lock:
            seen["calls"] += 1
            seen[outcome] += 1

    timeouts = (None, 0.02, 0.1, 0.5)

    def next_timeout(rng: random.Random, refused: bool) -> float | None:
        # After a refusal a caller queues without a bound, so that nobody
        # spins on refusals while the clock stands still.
        return None if refused else rng.choice(timeouts)

    async def caller(rng: random.Random) -> None:
        refused = False
        while not stop.is_set():
            try:
                await bucket.acquire(timeout=next_timeout(rng, refused))
            except RateLimited:
                saw("refused")
                refused = True
            except asyncio.CancelledError:
                saw("cancelled")
                return
            else:
                saw("granted")
                refused = False

    loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None], set[asyncio.Task[None]]]]
    loops = []
    ready = threading.Barrier(3)

    async def loop_main(seed: int) -> None:
        rng = random.Random(seed)
        tasks = {asyncio.ensure_future(caller(rng)) for _ in range(20)}
        stopped = asyncio.get_running_loop().create_future()
        with lock:
            loops.append((asyncio.get_running_loop(), stopped, tasks))
        ready.wait()
        await stopped
        await asyncio.gather(*tasks, return_exceptions=True)

    def cancel_one(tasks: set[asyncio.Task[None]], rng: random.Random) -> None:
        victim = rng.choice(sorted(tasks, key=id))
        victim.cancel()
        tasks.discard(victim)
        tasks.add(asyncio.ensure_future(caller(rng)))

    def thread_main(seed: int) -> None:
        rng = random.Random(seed)
        refused = False
        while not stop.is_set():
            try:
                bucket.acquire_blocking(timeout=next_timeout(rng, refused))
            except RateLimited:
                saw("refused")
                refused = True
            else:
                saw("granted")
                refused = False

    workers = [threading.Thread(target=asyncio.run, args=(loop_main(seed),)) for seed in (1, 2)]
    workers += [threading.Thread(target=thread_main, args=(seed,)) for seed in (3, 4)]
    for worker in workers:
        worker.start()
    ready.wait()
    rng = random.Random(5)
    rates = (40, 5, 200, 10)
    for step in range(300):
        bucket.rate = rates[step % 4]
        for loop, _, tasks in loops:
            if rng.random() < 0.5:
                loop.call_soon_threadsafe(cancel_one, tasks, random.Random(step))
        clock.advance(0.005)
    stop.set()
    for loop, stopped, _ in loops:
        loop.call_soon_threadsafe(stopped.set_result, None)
    while any(worker.is_alive() for worker in workers):
        clock.advance(1)  # lets the last waiters through
        for worker in workers:
            worker.join(timeout=0.01)
    stats = bucket.stats()
    assert stats.waiting == 0
    assert stats.acquired == seen["granted"]
    assert stats.acquired + stats.rejected + stats.cancelled == seen["calls"]
    # A refused caller cancelled before it saw the refusal counts as rejected.
    assert stats.rejected >= seen["refused"] and stats.cancelled <= seen["cancelled"]
    assert seen["refused"] > 0 and seen["cancelled"] > 0 and seen["granted"] > 0


def test_bad_values_are_refused_and_change_nothing() -> None:
    bucket = TokenBucket(5, burst=3)
    bad_rates = ((0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), ("x", TypeError))
    for bad, error in bad_rates:
        with pytest.raises(error, match="rate"):
            bucket.rate = bad  # type: ignore[assignment]
    for bad_burst, error in ((0, ValueError), (2.5, TypeError), (None, TypeError)):
        with pytest.raises(error, match="burst"):
            bucket.burst = bad_burst  # type: ignore[assignment]
    assert (bucket.rate, bucket.burst) == (5, 3)
    with pytest.raises(AttributeError):
        del bucket.rate
    with pytest.raises(AttributeError):
        LeakyBucket(1).burst = 3  # type: ignore[attr-defined]


def test_a_shared_bucket_refuses_a_new_rate() -> None:
    import brakes.redis

    backend = brakes.redis.Backend("redis://127.0.0.1:1")  # never reached
    bucket = TokenBucket(1, backend=backend, name="api")
    for attribute in ("rate", "burst"):
        with pytest.raises(ValueError, match="settings in Redis"):
            setattr(bucket, attribute, 2)
    assert (bucket.rate, bucket.burst) == (1, 1)


class _LoopWithAHook(asyncio.SelectorEventLoop):
    """Runs `hook` once, in place of a GIL switch, when a thread named
    `in_thread` wakes one of this loop's callers."""

    hook: Callable[[], None] | None = None
    in_thread = ""

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> asyncio.Handle:
        hook, self.hook = self.hook, None
        if hook is not None and threading.current_thread().name == self.in_thread:
            hook()
        elif hook is not None:
            self.hook = hook
        return super().call_soon_threadsafe(*args, **kwargs)


def test_a_burst_set_while_a_new_rate_wakes_callers_keeps_that_rate() -> None:
    """Setting the rate wakes event loops' callers, which runs Python: a
    thread that sets the burst right then changes the burst only."""
    bucket = TokenBucket(1, burst=4)
    loop = _LoopWithAHook()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        assert bucket.try_acquire(4)

        async def queue_five() -> list[asyncio.Future[None]]:
            return [asyncio.ensure_future(bucket.acquire()) for _ in range(5)]

        waiters = asyncio.run_coroutine_threadsafe(queue_five(), loop).result(30)
        wait_until(lambda: bucket.stats().waiting == 5)

        def set_burst() -> None:
            other = threading.Thread(target=setattr, args=(bucket, "burst", 2))
            other.start()
            other.join()

        loop.hook, loop.in_thread = set_burst, "rate-setter"
        setter = threading.Thread(target=setattr, args=(bucket, "rate", 1e6), name="rate-setter")
        setter.start()
        setter.join()
        assert loop.hook is None, "the rate change woke no caller"
        for waiter in waiters:
            asyncio.run_coroutine_threadsafe(asyncio.wait_for(waiter, 30), loop).result(60)
        assert (bucket.rate, bucket.burst, bucket.stats().waiting) == (1e6, 2, 0)
        wait_until(lambda: bucket.try_acquire(2))
        assert bucket.retry_after() < 0.01  # 1e6 tokens a second, not 1
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
