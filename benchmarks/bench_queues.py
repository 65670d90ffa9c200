"""Queues against asyncio.Queue, queue.Queue, janus and culsans, side by side.

Each scenario runs brakes and its peers in alternation for several rounds, in
one process, and reports the median of paired ratios (brakes / peer): below
1.0 means brakes is faster. Run with `python benchmarks/bench_queues.py`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import culsans
import janus
from side_by_side import Scenario, measure, pinned_to_one_cpu, start, table

import brakes

# -- tasks to tasks -----------------------------------------------------------


def task_to_task(make: Callable[[], Any], items: int) -> float:
    async def main() -> float:
        q = make()

        async def produce() -> None:
            for n in range(items):
                await q.put(n)

        async def consume() -> None:
            for _ in range(items):
                await q.get()

        started = time.perf_counter()
        await asyncio.gather(produce(), consume())
        return time.perf_counter() - started

    return asyncio.run(main())


# -- a thread to a task: each contender gives (put from a thread, await get) --


def brakes_bridge(maxsize: int) -> tuple[Callable[[Any], None], Callable[[], Any]]:
    q: brakes.Queue[int] = brakes.Queue(maxsize)
    return q.put_blocking, q.get


def janus_bridge(maxsize: int) -> tuple[Callable[[Any], None], Callable[[], Any]]:
    q: janus.Queue[int] = janus.Queue(maxsize)
    return q.sync_q.put, q.async_q.get


def culsans_bridge(maxsize: int) -> tuple[Callable[[Any], None], Callable[[], Any]]:
    q: culsans.Queue[int] = culsans.Queue(maxsize)
    return q.sync_q.put, q.async_q.get


def start_producer(put: Callable[[Any], None], items: int) -> threading.Thread:
    """A thread that puts `items` numbers, started now."""

    def produce() -> None:
        for n in range(items):
            put(n)

    producer = threading.Thread(target=produce)
    producer.start()
    return producer


def thread_to_task(make: Callable[[int], Any], items: int) -> float:
    async def main() -> float:
        put, get = make(100)  # made on the running loop, as janus requires
        started = time.perf_counter()
        producer = start_producer(put, items)
        for _ in range(items):
            await get()
        elapsed = time.perf_counter() - started
        producer.join()
        return elapsed

    return asyncio.run(main())


# -- a thread to a thread -----------------------------------------------------


def thread_to_thread(make: Callable[[], Any], items: int) -> float:
    put, get = make()
    started = time.perf_counter()
    producer = start_producer(put, items)
    for _ in range(items):
        get()
    elapsed = time.perf_counter() - started
    producer.join()
    return elapsed


def brakes_threads() -> tuple[Callable[[Any], None], Callable[[], Any]]:
    q: brakes.Queue[int] = brakes.Queue(100)
    return q.put_blocking, q.get_blocking


def queue_threads() -> tuple[Callable[[Any], None], Callable[[], Any]]:
    q: queue.Queue[int] = queue.Queue(100)
    return q.put, q.get


# -- a consumer taking batches of 100 -------------------------------------------


async def brakes_batches(q: brakes.Queue[int], batches: int) -> None:
    for _ in range(batches):
        await q.get_batch(100)


async def asyncio_batches(q: asyncio.Queue[int], batches: int) -> None:
    for _ in range(batches):
        batch = [await q.get()]
        while len(batch) < 100 and not q.empty():
            batch.append(q.get_nowait())


def batch_consumer(make: Callable[[], Any], items: int) -> float:
    async def main() -> float:
        q, drain = make()
        for n in range(items):
            q.put_nowait(n)
        started = time.perf_counter()
        await drain(q, items // 100)
        return time.perf_counter() - started

    return asyncio.run(main())


# -- scenarios ------------------------------------------------------------------


def scenarios(scale: float) -> list[Scenario]:
    n = max(100, int(200_000 * scale)) // 100 * 100
    return [
        (
            f"1 producer task → 1 consumer task, maxsize 100, {n:,} items",
            pinned_to_one_cpu(task_to_task),
            {"items": n},
            {
                "brakes": lambda: brakes.Queue(100),
                "asyncio.Queue": lambda: asyncio.Queue(100),
            },
        ),
        (
            f"producer thread → consumer task, maxsize 100, {n:,} items",
            thread_to_task,
            {"items": n},
            {"brakes": brakes_bridge, "janus": janus_bridge, "culsans": culsans_bridge},
        ),
        (
            f"producer thread → consumer thread, maxsize 100, {n:,} items",
            thread_to_thread,
            {"items": n},
            {"brakes": brakes_threads, "queue.Queue": queue_threads},
        ),
        (
            f"consumer taking batches of 100, {n:,} items",
            pinned_to_one_cpu(batch_consumer),
            {"items": n},
            {
                "brakes": lambda: (brakes.Queue(), brakes_batches),
                "asyncio.Queue": lambda: (asyncio.Queue(), asyncio_batches),
            },
        ),
    ]


def main() -> None:
    args = start(__doc__, rounds=9)
    print(table(measure(scenarios(args.scale), args.rounds)))


if __name__ == "__main__":
    main()
