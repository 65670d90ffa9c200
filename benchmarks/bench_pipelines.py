"""Pipelines and worker pools against asyncio, concurrent.futures, pypeln and
aiostream, side by side.

Each scenario runs brakes and its peers in alternation for several rounds, in
one process, and reports the median of paired ratios (brakes / peer): below
1.0 means brakes is faster. The memory scenario reports peaks, not times.
Run with `python benchmarks/bench_pipelines.py`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pypeln as pl
from aiostream import pipe, stream
from side_by_side import Scenario, measure, start, table

import brakes

Contender = Callable[[int], Any]


async def inc(x: int) -> int:
    return x + 1


def inc_sync(x: int) -> int:
    return x + 1


# -- three async stages, buffers of 100 ---------------------------------------


def three_stages(run: Contender, items: int) -> float:
    async def main() -> float:
        started = time.perf_counter()
        count = await run(items)
        elapsed = time.perf_counter() - started
        assert count == items, (count, items)
        return elapsed

    return asyncio.run(main())


async def brakes_stages(items: int) -> int:
    # The defaults: every buffer holds 100 items.
    pipeline = brakes.Pipeline(range(items)).map(inc).map(inc).map(inc)
    count = 0
    async for _ in pipeline:
        count += 1
    return count


async def asyncio_stages(items: int) -> int:
    queues: list[asyncio.Queue[int | None]] = [asyncio.Queue(100) for _ in range(4)]

    async def source() -> None:
        for n in range(items):
            await queues[0].put(n)
        await queues[0].put(None)

    async def stage(inbox: asyncio.Queue[int | None], outbox: asyncio.Queue[int | None]) -> None:
        while (item := await inbox.get()) is not None:
            await outbox.put(await inc(item))
        await outbox.put(None)

    tasks = [asyncio.create_task(source())]
    tasks += [asyncio.create_task(stage(queues[i], queues[i + 1])) for i in range(3)]
    count = 0
    while await queues[3].get() is not None:
        count += 1
    await asyncio.gather(*tasks)
    return count


async def pypeln_stages(items: int) -> int:
    stage: Any = range(items)
    for _ in range(3):
        stage = pl.task.map(inc, stage, workers=1, maxsize=100)
    count = 0
    async for _ in stage:
        count += 1
    return count


async def aiostream_stages(items: int) -> int:
    xs = stream.iterate(range(items))
    for _ in range(3):
        xs = xs | pipe.map(inc, task_limit=1)
    count = 0
    async with xs.stream() as streamer:
        async for _ in streamer:
            count += 1
    return count


# -- pool.map over 4 threads ---------------------------------------------------


def thread_map(run: Contender, items: int) -> float:
    started = time.perf_counter()
    total = run(items)
    elapsed = time.perf_counter() - started
    assert total == sum(range(1, items + 1))
    return elapsed


def brakes_pool_map(items: int) -> int:
    with brakes.WorkerPool(4) as pool:
        return sum(pool.map(inc_sync, range(items)))


def executor_map(items: int) -> int:
    with concurrent.futures.ThreadPoolExecutor(4) as executor:
        return sum(executor.map(inc_sync, range(items)))


def pypeln_thread_map(items: int) -> int:
    return sum(pl.thread.map(inc_sync, range(items), workers=4))


# -- one batching stage --------------------------------------------------------


async def brakes_batches(items: int) -> int:
    count = 0
    async for batch in brakes.Pipeline(range(items)).batch(100):
        count += len(batch)
    return count


async def asyncio_batches(items: int) -> int:
    inbox: asyncio.Queue[int | None] = asyncio.Queue(1000)
    outbox: asyncio.Queue[list[int] | None] = asyncio.Queue(1)

    async def source() -> None:
        for n in range(items):
            await inbox.put(n)
        await inbox.put(None)

    async def batcher() -> None:
        batch: list[int] = []
        while (item := await inbox.get()) is not None:
            batch.append(item)
            if len(batch) == 100:
                await outbox.put(batch)
                batch = []
        if batch:
            await outbox.put(batch)
        await outbox.put(None)

    tasks = [asyncio.create_task(source()), asyncio.create_task(batcher())]
    count = 0
    while (batch := await outbox.get()) is not None:
        count += len(batch)
    await asyncio.gather(*tasks)
    return count


# -- batches into a thread stage: the defaults against a tuned buffer ---------


def batch_then_map(run: Contender, items: int) -> float:
    started = time.perf_counter()
    total = run(items)
    elapsed = time.perf_counter() - started
    assert total == sum(range(items)), total
    return elapsed


def batches_default(items: int) -> int:
    return sum(brakes.Pipeline(range(items)).batch(1000).map(sum, workers=4))


def batches_tuned(items: int) -> int:
    return sum(brakes.Pipeline(range(items), buffer=1000).batch(1000).map(sum, workers=4))


# -- memory: a long source feeding a slow stage --------------------------------


def slow(x: int) -> int:
    time.sleep(0.0001)
    return x


def peak_memory(run: Callable[[Iterator[int]], None], items: int) -> int:
    """Bytes allocated at the peak while `run` takes 100 results."""
    tracemalloc.start()
    try:
        run(iter(range(items)))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def brakes_first_results(source: Iterator[int]) -> None:
    for n, _ in enumerate(brakes.Pipeline(source).map(slow, workers=4)):
        if n == 100:
            break


def executor_first_results(source: Iterator[int]) -> None:
    executor = concurrent.futures.ThreadPoolExecutor(4)
    for n, _ in enumerate(executor.map(slow, source)):
        if n == 100:
            break
    executor.shutdown(cancel_futures=True)


def scenarios(scale: float) -> list[Scenario]:
    n = int(200_000 * scale)
    return [
        (
            f"3 async stages of a trivial function, defaults (buffers 100), {n:,} items",
            three_stages,
            {"items": n},
            {
                "brakes": lambda: brakes_stages,
                "asyncio.Queue (hand-written)": lambda: asyncio_stages,
                "pypeln.task": lambda: pypeln_stages,
                "aiostream": lambda: aiostream_stages,
            },
        ),
        (
            f"pool.map of a trivial function, 4 threads, {n:,} items",
            thread_map,
            {"items": n},
            {
                "brakes": lambda: brakes_pool_map,
                "ThreadPoolExecutor.map": lambda: executor_map,
                "pypeln.thread": lambda: pypeln_thread_map,
            },
        ),
        (
            f"Pipeline(source).batch(1000).map(sum, workers=4), defaults, {n:,} items",
            batch_then_map,
            {"items": n},
            {
                "brakes": lambda: batches_default,
                "the same with Pipeline(source, buffer=1000)": lambda: batches_tuned,
            },
        ),
        (
            f".batch(100) stage, defaults, {n:,} items",
            three_stages,
            {"items": n},
            {
                "brakes": lambda: brakes_batches,
                "asyncio.Queue (hand-written)": lambda: asyncio_batches,
            },
        ),
    ]


def fix_contenders(scenario: Scenario) -> Scenario:
    """The work functions take the contender itself, not a factory."""
    title, work, kwargs, contenders = scenario
    return title, lambda make, **kw: work(make(), **kw), kwargs, contenders


def memory_table(scale: float) -> str:
    items = int(1_000_000 * scale)
    ours = peak_memory(brakes_first_results, items)
    theirs = peak_memory(executor_first_results, items)
    return "\n".join(
        [
            f"| peak memory, {items:,}-item source into a slow stage (first 100 results) "
            "| brakes | ThreadPoolExecutor.map | ratio |",
            "|---|---|---|---|",
            f"| tracemalloc peak | {ours / 1e6:.2f} MB | {theirs / 1e6:.1f} MB "
            f"| {ours / theirs:.4f} |",
        ]
    )


def main() -> None:
    args = start(__doc__, rounds=5)
    rows = measure([fix_contenders(s) for s in scenarios(args.scale)], args.rounds)
    print(table(rows))
    print()
    print(memory_table(args.scale))


if __name__ == "__main__":
    main()
