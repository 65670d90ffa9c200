"""Threads and two event loops hammer one bucket on the real clock, with
timeouts and cancellations: never more grants than the rate allows, no grant
lost or counted twice, nobody left queued."""

from __future__ import annotations

import asyncio
import random
import threading
import time

from brakes import RateLimited, TokenBucket

from .conftest import run_mixed

RATE, BURST = 4000, 5
SECONDS = 2.0


class Granted:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens = 0
        self.calls = 0

    def add(self, n: int) -> None:
        with self.lock:
            self.tokens += n
            self.calls += 1


def thread_worker(bucket: TokenBucket, granted: Granted, seed: int, stop_at: float) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        n = rng.choice((1, 1, 2))
        key = rng.choice((None, "a"))
        try:
            if rng.random() < 0.3:
                if bucket.try_acquire(n, key=key):
                    granted.add(n)
            else:
                bucket.acquire_blocking(n, key=key, timeout=rng.choice((None, 0, 0.0005, 0.01)))
                granted.add(n)
        except RateLimited:
            pass


async def task_worker(bucket: TokenBucket, granted: Granted, seed: int, stop_at: float) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        n = rng.choice((1, 1, 2))
        key = rng.choice((None, "a"))
        try:
            if rng.random() < 0.5:
                await bucket.acquire(n, key=key, timeout=rng.choice((None, 0.001, 0.01)))
                granted.add(n)
            else:
                task = asyncio.create_task(bucket.acquire(n, key=key))
                for _ in range(rng.randrange(4)):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    continue
                granted.add(n)
        except RateLimited:
            pass


async def run_tasks(bucket: TokenBucket, granted: Granted, seed: int, stop_at: float) -> None:
    await asyncio.gather(*(task_worker(bucket, granted, seed * 100 + i, stop_at) for i in range(8)))


def test_threads_and_loops_never_get_more_than_the_rate_allows_nor_lose_a_grant() -> None:
    bucket = TokenBucket(RATE, burst=BURST)
    granted = Granted()
    started = time.monotonic()
    stop_at = started + SECONDS
    run_mixed(
        lambda seed: thread_worker(bucket, granted, seed, stop_at),
        lambda seed: run_tasks(bucket, granted, seed, stop_at),
    )
    elapsed = time.monotonic() - started
    stats = bucket.stats()
    assert stats.waiting == 0
    # No grant lost or counted twice: the callers saw exactly what the bucket gave.
    assert stats.acquired == granted.calls
    # Two keys, each at most burst + rate·t: never more, however the calls mixed.
    assert granted.tokens <= 2 * (BURST + RATE * elapsed)
    assert stats.waited > 0 and stats.cancelled > 0 and stats.rejected > 0
