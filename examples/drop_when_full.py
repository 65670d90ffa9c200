"""A queue that drops when full: the producer never waits.

A port of the classic non-blocking send (`select { case ch <- x: default: }`):
when the consumer lags, new items are dropped rather than making the
producer wait. `brakes.Queue(5, overflow="drop_new")` drops the new item;
`overflow="drop_old"` drops the oldest one instead, keeping the freshest
data (a sensor feed, a progress bar). Dropped items are counted in
`stats()` and handed to `on_drop`.

    python examples/drop_when_full.py
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from brakes import Queue


async def run(
    overflow: str = "drop_new",
    items: int = 20,
    size: int = 5,
    log: Callable[[str], None] = print,
) -> tuple[list[int], list[int]]:
    """A burst of `items` arrives before the consumer wakes up. Returns the
    items received and the items dropped."""
    dropped: list[int] = []
    queue: Queue[int] = Queue(size, overflow=overflow, on_drop=dropped.append)  # type: ignore[arg-type]
    for n in range(items):
        queue.put_nowait(n)  # never raises, never waits
    queue.shutdown()
    received = [item async for item in queue]
    log(f"{overflow}: received {received}, dropped {len(dropped)} ({queue.stats().dropped})")
    return received, dropped


if __name__ == "__main__":
    asyncio.run(run("drop_new"))
    asyncio.run(run("drop_old"))
