"""Gauge against asyncio, threading and anyio on the same work, side by side.

Each scenario runs brakes and its peers in alternation for several rounds, in
one process, and reports the median of paired ratios (brakes / peer): below 1.0
means brakes is faster. Run with `python benchmarks/bench_gauge.py`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
from side_by_side import Scenario, measure, pinned_to_one_cpu, start, table

import brakes

# -- the work, written once per form and given any limiter -------------------


def async_with_free(make: Callable[[], Any], iterations: int) -> float:
    async def main() -> float:
        limiter = make()
        started = time.perf_counter()
        for _ in range(iterations):
            async with limiter:
                pass
        return time.perf_counter() - started

    return asyncio.run(main())


def with_free(make: Callable[[], Any], iterations: int) -> float:
    limiter = make()
    started = time.perf_counter()
    for _ in range(iterations):
        with limiter:
            pass
    return time.perf_counter() - started


def tasks_contending(make: Callable[[], Any], tasks: int, rounds: int) -> float:
    async def main() -> float:
        limiter = make()

        async def worker() -> None:
            for _ in range(rounds):
                async with limiter:
                    await asyncio.sleep(0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        return time.perf_counter() - started

    return asyncio.run(main())


def threads_contending(make: Callable[[], Any], threads: int, rounds: int) -> float:
    limiter = make()
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        for _ in range(rounds):
            with limiter:
                pass

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    started = time.perf_counter()
    start.wait()
    for t in pool:
        t.join()
    return time.perf_counter() - started


def keyed_async_free(make: Callable[[], Callable[[int], Any]], iterations: int, keys: int) -> float:
    async def main() -> float:
        limiter_for = make()
        started = time.perf_counter()
        for i in range(iterations):
            async with limiter_for(i % keys):
                pass
        return time.perf_counter() - started

    return asyncio.run(main())


def keyed_with_free(make: Callable[[], Callable[[int], Any]], iterations: int, keys: int) -> float:
    limiter_for = make()
    started = time.perf_counter()
    for i in range(iterations):
        with limiter_for(i % keys):
            pass
    return time.perf_counter() - started


def keyed_tasks_contending(
    make: Callable[[], Callable[[int], Any]], tasks: int, rounds: int, keys: int
) -> float:
    async def main() -> float:
        limiter_for = make()

        async def worker(w: int) -> None:
            for _ in range(rounds):
                async with limiter_for(w % keys):
                    await asyncio.sleep(0)

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(tasks)))
        return time.perf_counter() - started

    return asyncio.run(main())


def per_key_gauge(limit: int) -> Callable[[], Callable[[int], Any]]:
    def make() -> Callable[[int], Any]:
        gauge = brakes.Gauge(limit)
        return lambda key: gauge(key=key)

    return make


def per_key_dict(factory: Callable[[int], Any], limit: int) -> Callable[[], Callable[[int], Any]]:
    """What users write by hand: a semaphore per key in a dict, kept forever."""

    def make() -> Callable[[int], Any]:
        semaphores: dict[int, Any] = {}

        def limiter_for(key: int) -> Any:
            semaphore = semaphores.get(key)
            if semaphore is None:
                semaphore = semaphores[key] = factory(limit)
            return semaphore

        return limiter_for

    return make


# -- scenarios ----------------------------------------------------------------


def scenarios(scale: float) -> list[Scenario]:
    n = max(1, int(100_000 * scale))
    return [
        (
            f"`async with` on a free gauge, {n:,} times",
            pinned_to_one_cpu(async_with_free),
            {"iterations": n},
            {
                "brakes": lambda: brakes.Gauge(1),
                "asyncio.Semaphore": lambda: asyncio.Semaphore(1),
                "anyio.CapacityLimiter": lambda: anyio.CapacityLimiter(1),
            },
        ),
        (
            f"`with` on a free gauge, {n:,} times",
            pinned_to_one_cpu(with_free),
            {"iterations": n},
            {
                "brakes": lambda: brakes.Gauge(1),
                "threading.Semaphore": lambda: threading.Semaphore(1),
            },
        ),
        (
            "100 tasks, limit 10, `await asyncio.sleep(0)` inside",
            pinned_to_one_cpu(tasks_contending),
            {"tasks": 100, "rounds": max(1, int(500 * scale))},
            {
                "brakes": lambda: brakes.Gauge(10),
                "asyncio.Semaphore": lambda: asyncio.Semaphore(10),
                "anyio.CapacityLimiter": lambda: anyio.CapacityLimiter(10),
            },
        ),
        (
            "8 threads, limit 2, `with` in a loop",
            threads_contending,
            {"threads": 8, "rounds": max(1, int(5_000 * scale))},
            {
                "brakes": lambda: brakes.Gauge(2),
                "threading.Semaphore": lambda: threading.Semaphore(2),
            },
        ),
        (
            f"`async with gauge(key=...)`, 100 keys in turn, {n:,} times",
            pinned_to_one_cpu(keyed_async_free),
            {"iterations": n, "keys": 100},
            {
                "brakes": per_key_gauge(4),
                "dict of asyncio.Semaphore": per_key_dict(asyncio.Semaphore, 4),
            },
        ),
        (
            f"`with gauge(key=...)`, 100 keys in turn, {n:,} times",
            pinned_to_one_cpu(keyed_with_free),
            {"iterations": n, "keys": 100},
            {
                "brakes": per_key_gauge(4),
                "dict of threading.Semaphore": per_key_dict(threading.Semaphore, 4),
            },
        ),
        (
            "100 tasks on 10 keys, 2 per key, `await asyncio.sleep(0)` inside",
            pinned_to_one_cpu(keyed_tasks_contending),
            {"tasks": 100, "rounds": max(1, int(500 * scale)), "keys": 10},
            {
                "brakes": per_key_gauge(2),
                "dict of asyncio.Semaphore": per_key_dict(asyncio.Semaphore, 2),
            },
        ),
    ]


def main() -> None:
    args = start(__doc__, rounds=15)
    print(table(measure(scenarios(args.scale), args.rounds)))


if __name__ == "__main__":
    main()
