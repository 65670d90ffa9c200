"""Threads and two event loops hammer one gauge with timeouts and cancellations."""

from __future__ import annotations

import asyncio
import random
import threading
import time

from brakes import Gauge, Overloaded

from .conftest import run_mixed

LIMIT = 3
SECONDS = 2.5


class Occupancy:
    """What the test itself sees inside the gauge: current and peak weight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.peak = 0
        self.successes = 0

    def enter(self, n: int) -> None:
        with self.lock:
            self.inside += n
            self.peak = max(self.peak, self.inside)
            self.successes += 1

    def leave(self, n: int) -> None:
        with self.lock:
            self.inside -= n


def thread_worker(gauge: Gauge, seen: Occupancy, seed: int, stop_at: float) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        n = rng.choice((1, 1, 2))
        choice = rng.random()
        try:
            if choice < 0.2:
                if not gauge.try_acquire(n):
                    continue
            elif choice < 0.4:
                with gauge:
                    seen.enter(1)
                    seen.leave(1)
                continue
            else:
                gauge.acquire_blocking(n, timeout=rng.choice((None, 0, 0.0005, 0.002)))
        except Overloaded:
            continue
        seen.enter(n)
        if rng.random() < 0.3:
            time.sleep(0)
        seen.leave(n)
        gauge.release(n)


async def task_worker(gauge: Gauge, seen: Occupancy, seed: int, stop_at: float) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        n = rng.choice((1, 1, 2))
        choice = rng.random()
        try:
            if choice < 0.25:
                await gauge.acquire(n, timeout=rng.choice((None, 0, 0.0005, 0.002)))
            elif choice < 0.45:
                await asyncio.wait_for(gauge.acquire(n), timeout=rng.choice((0.0001, 0.001)))
            elif choice < 0.7:
                task = asyncio.create_task(gauge.acquire(n))
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    continue
            else:
                async with gauge:
                    seen.enter(1)
                    await asyncio.sleep(0)
                    seen.leave(1)
                continue
        except (Overloaded, TimeoutError):
            continue
        seen.enter(n)
        await asyncio.sleep(0)
        seen.leave(n)
        gauge.release(n)


async def run_tasks(gauge: Gauge, seen: Occupancy, seed: int, stop_at: float) -> None:
    await asyncio.gather(*(task_worker(gauge, seen, seed * 100 + i, stop_at) for i in range(8)))


def test_threads_and_two_loops_never_exceed_the_limit_nor_leak_a_permit() -> None:
    gauge = Gauge(LIMIT)
    seen = Occupancy()
    stop_at = time.monotonic() + SECONDS
    run_mixed(
        lambda seed: thread_worker(gauge, seen, seed, stop_at),
        lambda seed: run_tasks(gauge, seen, seed, stop_at),
    )

    stats = gauge.stats()
    assert (gauge.in_flight, gauge.waiting) == (0, 0)
    assert seen.inside == 0
    assert seen.peak <= LIMIT
    assert seen.peak >= 2, "the run never had two callers inside at once"
    # Every success the callers saw is counted once by the gauge, and no more.
    assert stats.acquired == seen.successes
    assert stats.waited > 0 and stats.timed_out > 0 and stats.cancelled > 0
