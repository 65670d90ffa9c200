"""A bounded queue of 5 between asyncio tasks: it never holds more than 5.

A port of the classic bounded-queue example: a fast producer and a slower
consumer share a queue bounded at 5. The producer fills it, then every put
waits until the consumer has made room, so the queue (and the memory behind
it) stays at 5 whatever the producer's pace: `brakes.Queue(5)`.

    python examples/bounded_queue.py
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from brakes import Queue


@dataclass
class Report:
    received: list[int] = field(default_factory=list)
    largest_size: int = 0
    puts_that_waited: int = 0


async def run(
    items: int = 20,
    bound: int = 5,
    consumer_delay: float = 0.05,
    log: Callable[[str], None] = print,
) -> Report:
    queue: Queue[int] = Queue(bound)
    report = Report()

    async def produce() -> None:
        for n in range(items):
            if queue.full():
                report.puts_that_waited += 1
            await queue.put(n)
            report.largest_size = max(report.largest_size, queue.qsize())
            log(f"produced {n} (queue holds {queue.qsize()})")
        queue.shutdown()

    async def consume() -> None:
        async for item in queue:
            report.received.append(item)
            log(f"consumed {item}")
            await asyncio.sleep(consumer_delay)

    await asyncio.gather(produce(), consume())
    return report


if __name__ == "__main__":
    result = asyncio.run(run())
    print(f"largest size {result.largest_size}, puts that waited {result.puts_that_waited}")
