"""A producer that slows when its consumer's queue fills, and speeds up when
the consumer recovers.

A port of the classic flow-control example with two channels (one for the
data, one on which the consumer tells the producer a new delay): here the
queue between them is the feedback. `brakes.Pacer` reads how full the queue
is every half second and halves the producer's rate above 80 %, and raises
it step by step below 20 %. The consumer is fast, then slow for a while,
then fast again; the producer follows it, and the queue never overflows.

    python examples/feedback_pacer.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from brakes import LeakyBucket, Pacer, Queue, QueueShutDown
from brakes.testing import ManualClock


@dataclasses.dataclass(frozen=True)
class Sample:
    """What the producer saw at one of the pacer's checks."""

    at: float
    producer_rate: float
    consumer_rate: float
    fill: float


async def run(
    *,
    phases: tuple[tuple[float, float], ...] = ((3.0, 200.0), (3.0, 20.0), (3.0, 200.0)),
    min_rate: float = 5.0,
    max_rate: float = 300.0,
    size: int = 50,
    clock: ManualClock | None = None,
    log: Callable[[str], None] = print,
) -> list[Sample]:
    """Runs the consumer through `phases` ((seconds, items a second) each)
    and returns the producer's rate at each check of the pacer.

    With a ManualClock the run moves the clock itself, in steps of 5 ms, and
    takes no real time."""
    queue: Queue[int] = Queue(size)
    pacer = Pacer(queue, min_rate=min_rate, max_rate=max_rate, clock=clock)
    consumer_pace = LeakyBucket(phases[0][1], clock=clock)
    start = clock.now() if clock else time.monotonic()
    ends = []
    total = 0.0
    for seconds, rate in phases:
        total += seconds
        ends.append((total, rate))
    samples: list[Sample] = []

    def elapsed() -> float:
        return (clock.now() if clock else time.monotonic()) - start

    async def produce() -> None:
        checks, item = 0, 0
        while elapsed() < total:
            await pacer.acquire()
            await queue.put(item)
            item += 1
            stats = pacer.stats()
            if stats.checks != checks and stats.fill is not None:
                checks = stats.checks
                sample = Sample(elapsed(), stats.rate, consumer_pace.rate, stats.fill)
                samples.append(sample)
                log(
                    f"{sample.at:5.1f} s  consumer {sample.consumer_rate:5.0f}/s  "
                    f"producer {sample.producer_rate:6.1f}/s  queue {sample.fill:4.0%} full"
                )
        queue.shutdown()

    async def consume() -> None:
        while True:
            now = elapsed()
            rate = next((rate for end, rate in ends if now < end), ends[-1][1])
            if rate != consumer_pace.rate:
                consumer_pace.rate = rate  # the consumer slows down or recovers
            await consumer_pace.acquire()
            try:
                await queue.get()
            except QueueShutDown:  # shut down and empty: done
                return

    async def move_clock(done: asyncio.Event) -> None:
        assert clock is not None
        while not done.is_set():
            clock.advance(0.005)
            for _ in range(4):
                await asyncio.sleep(0)

    done = asyncio.Event()
    mover = asyncio.ensure_future(move_clock(done)) if clock else None
    await asyncio.gather(produce(), consume())
    done.set()
    if mover:
        await mover
    return samples


if __name__ == "__main__":
    asyncio.run(run())
