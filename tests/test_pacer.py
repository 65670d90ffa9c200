"""Pacer: a producer's rate that follows the fill level of its queue."""

from __future__ import annotations

import asyncio
import queue
import threading

import pytest

from brakes import Pacer, PacerStats, Queue, RateLimited
from brakes.testing import ManualClock

from .test_examples import load


def make(**kwargs: object) -> tuple[ManualClock, Queue[int], Pacer]:
    clock = ManualClock()
    q: Queue[int] = Queue(10)
    options: dict[str, object] = {"min_rate": 1.0, "max_rate": 11.0, **kwargs}
    return clock, q, Pacer(q, clock=clock, **options)  # type: ignore[arg-type]


def fill(q: Queue[int], n: int) -> None:
    while q.qsize() > n:
        q.get_nowait()
    while q.qsize() < n:
        q.put_nowait(0)


def test_the_rate_halves_above_high_grows_below_low_and_stays_in_bounds() -> None:
    clock, q, pacer = make()
    assert pacer.rate == 11.0 and pacer.increase == 1.0  # a tenth of max - min
    fill(q, 9)
    rates = []
    for _ in range(6):
        pacer.try_acquire()
        rates.append(pacer.rate)
        clock.advance(0.5)
    assert rates == [5.5, 2.75, 1.375, 1.0, 1.0, 1.0]
    fill(q, 5)  # between low and high: left alone
    pacer.try_acquire()
    assert pacer.rate == 1.0
    clock.advance(0.5)
    fill(q, 1)
    rates = []
    for _ in range(12):
        pacer.try_acquire()
        rates.append(pacer.rate)
        clock.advance(0.5)
    assert rates == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 11.0, 11.0]
    stats = pacer.stats()
    assert isinstance(stats, PacerStats)
    assert (stats.decreases, stats.increases, stats.fill) == (4, 10, 0.1)


def test_checks_come_at_most_every_every_seconds() -> None:
    clock, q, pacer = make(every=1.0)
    fill(q, 10)
    for _ in range(5):
        pacer.try_acquire()
    assert pacer.rate == 5.5 and pacer.stats().checks == 1
    clock.advance(0.999)
    pacer.try_acquire()
    assert pacer.stats().checks == 1
    clock.advance(5.0)  # five periods missed count as one check
    pacer.try_acquire()
    assert pacer.rate == 2.75 and pacer.stats().checks == 2


def test_the_producer_is_paced_at_the_rate() -> None:
    clock, _q, pacer = make(max_rate=4.0, min_rate=4.0)
    assert pacer.try_acquire() and not pacer.try_acquire()
    clock.advance(0.25)
    assert pacer.try_acquire() and not pacer.try_acquire()


def test_a_waiting_producer_speeds_up_when_the_queue_drains() -> None:
    clock, q, pacer = make(min_rate=0.1, max_rate=10.1, every=0.5)
    fill(q, 10)
    for _ in range(8):  # down to the floor: one slot every 10 s
        pacer.try_acquire()
        clock.advance(0.5)
    assert pacer.rate == 0.1
    pacer.try_acquire()  # the slot of now, if it is free
    assert pacer.retry_after() > 5.0  # at the floor, the next slot is far
    fill(q, 0)  # the consumer caught up
    got = threading.Event()

    def producer() -> None:
        pacer.acquire_blocking()
        got.set()

    thread = threading.Thread(target=producer)
    thread.start()
    steps = 0
    while not got.is_set() and steps < 400:
        clock.advance(0.05)
        steps += 1
        got.wait(0.001)
    thread.join(timeout=10)
    assert got.is_set()
    # The pacer looked again while it waited, and its slot came well before
    # the 10 s that the floor rate would have taken.
    assert steps * 0.05 < 5.0 and pacer.rate > 0.1


def test_the_protocol_from_tasks_threads_and_decorators() -> None:
    clock, _q, pacer = make(max_rate=1000.0, min_rate=1.0)
    calls = []

    @pacer
    def sync_call(i: int) -> int:
        calls.append(i)
        return i

    @pacer
    async def async_call(i: int) -> int:
        calls.append(i)
        return i

    async def main() -> None:
        async with pacer:
            calls.append(0)
        clock.advance(0.001)  # the next slot, at 1000 a second
        assert await pacer.acquire() is True
        task = asyncio.ensure_future(async_call(1))
        while not task.done():
            clock.advance(0.001)
            await asyncio.sleep(0)
        assert task.result() == 1

    asyncio.run(main())
    thread = threading.Thread(target=sync_call, args=(2,))
    thread.start()
    while thread.is_alive():  # its slot comes as the clock moves
        clock.advance(0.001)
        thread.join(0.001)
    clock.advance(0.001)
    with pacer:
        calls.append(3)
    assert calls == [0, 1, 2, 3]


def test_a_timeout_raises_rate_limited() -> None:
    _clock, _q, pacer = make(min_rate=0.5, max_rate=0.5)
    assert pacer.acquire_blocking() is True
    with pytest.raises(RateLimited):
        pacer.acquire_blocking(timeout=0.5)

    async def main() -> None:
        with pytest.raises(RateLimited):
            await pacer.acquire(timeout=0)

    asyncio.run(main())


def test_a_bad_timeout_names_the_argument() -> None:
    _, _, pacer = make()
    for bad, error in ((-1, ValueError), (float("nan"), ValueError), ("1", TypeError)):
        with pytest.raises(error, match="timeout"):
            pacer.acquire_blocking(timeout=bad)  # type: ignore[arg-type]
    assert pacer.acquire_blocking(timeout=float("inf")) is True


def test_works_with_the_standard_library_queues() -> None:
    for q in (queue.Queue(4), asyncio.Queue(4)):
        pacer = Pacer(q, min_rate=1, max_rate=2, clock=ManualClock())
        assert pacer.queue is q and pacer.try_acquire()


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"min_rate": 0}, ValueError, "min_rate"),
        ({"max_rate": 0.5}, ValueError, "max_rate"),
        ({"min_rate": "1"}, TypeError, "min_rate"),
        ({"low": 0.9}, ValueError, "low"),
        ({"high": 1.5}, ValueError, "high"),
        ({"every": 0}, ValueError, "every"),
        ({"decrease": 1.0}, ValueError, "decrease"),
        ({"increase": -1}, ValueError, "increase"),
        ({"clock": 3}, TypeError, "clock"),
    ],
)
def test_bad_arguments_name_the_argument(
    kwargs: dict[str, object], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        make(**kwargs)


def test_the_queue_must_be_bounded() -> None:
    with pytest.raises(ValueError, match="queue must be bounded"):
        Pacer(Queue(), min_rate=1, max_rate=2)
    with pytest.raises(TypeError, match="queue"):
        Pacer([], min_rate=1, max_rate=2)  # type: ignore[arg-type]


def test_the_feedback_example_slows_with_its_consumer_and_recovers() -> None:
    example = load("feedback_pacer")
    samples = asyncio.run(example.run(clock=ManualClock(), log=lambda line: None))
    slow = [s for s in samples if 4.5 <= s.at < 6.0]  # the consumer at 20/s since 3 s
    assert slow and all(s.consumer_rate == 20 for s in slow)
    # Slowed to within twice the consumer's pace.
    assert min(s.producer_rate for s in slow) <= 40
    recovered = [s for s in samples if s.at >= 7.0]
    assert recovered and all(s.consumer_rate == 200 for s in recovered)
    rates = [s.producer_rate for s in recovered]
    assert rates == sorted(rates) and rates[-1] > 4 * min(s.producer_rate for s in slow)
    # A fast consumer keeps the queue nearly empty once the producer has adapted.
    assert recovered[-1].fill < 0.2
