"""WorkerPool: a fixed set of thread or task workers behind a bounded channel."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import gc
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from brakes import PoolStats, QueueFull, WorkerPool

from .conftest import on_loop, wait_until


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("brakes-pool")]


def test_submit_returns_a_future_and_runs_at_most_workers_at_once() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def job(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.002)
        with lock:
            running -= 1
        return n * n

    with WorkerPool(3) as pool:
        futures = [pool.submit(job, n) for n in range(20)]
        assert all(isinstance(f, concurrent.futures.Future) for f in futures)
        assert [f.result() for f in futures] == [n * n for n in range(20)]
    assert most == 3
    assert pool.stats().completed == 20
    wait_until(lambda: not pool_threads())


def test_a_hand_over_pool_rejects_when_every_worker_is_busy() -> None:
    release = threading.Event()
    pool = WorkerPool(2, overflow="reject")
    busy = [pool.submit(release.wait, 5) for _ in range(2)]
    wait_until(lambda: pool.stats().busy == 2)
    with pytest.raises(QueueFull):
        pool.submit(print, "never")
    assert pool.stats().rejected == 1
    release.set()
    assert all(f.result() for f in busy)
    pool.shutdown()


def test_queued_jobs_wait_up_to_queue_size_then_submit_blocks() -> None:
    release = threading.Event()
    pool = WorkerPool(1, queue_size=2)
    first = pool.submit(release.wait, 5)
    wait_until(lambda: pool.stats().busy == 1)
    queued = [pool.submit(lambda n=n: n) for n in range(2)]
    assert pool.stats().queued == 2
    submitted = threading.Event()

    def fourth() -> None:
        pool.submit(lambda: 3)
        submitted.set()

    threading.Thread(target=fourth).start()
    assert not submitted.wait(0.05), "a full queue makes submit wait"
    release.set()
    assert submitted.wait(5)
    assert first.result() and [f.result() for f in queued] == [0, 1]
    pool.shutdown()


def test_shutdown_cancel_pending_cancels_queued_jobs() -> None:
    release = threading.Event()
    pool = WorkerPool(1, queue_size=5)
    running = pool.submit(release.wait, 5)
    wait_until(lambda: pool.stats().busy == 1)
    queued = [pool.submit(lambda: "ran") for _ in range(3)]
    threading.Timer(0.02, release.set).start()
    pool.shutdown(cancel_pending=True)
    assert running.result() is True
    assert all(f.cancelled() for f in queued)
    assert pool.stats().cancelled == 3
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(print)


def test_a_map_goes_on_when_shutdown_cancels_one_of_its_queued_drains() -> None:
    release = threading.Event()
    pool = WorkerPool(2, queue_size=2)
    pool.submit(release.wait, 5)
    wait_until(lambda: pool.stats().busy == 1)
    # More items than the map reads ahead: its first drain keeps the free
    # worker, and the second waits in the pool's queue.
    results = pool.map(lambda x: x * 2, range(1000))
    assert next(results) == 0
    wait_until(lambda: pool.stats().queued == 1)
    pool.shutdown(wait=False, cancel_pending=True)
    assert pool.stats().cancelled == 1
    assert list(results) == [2 * x for x in range(1, 1000)]
    release.set()
    pool.shutdown()


def test_map_is_lazy_and_bounded_on_an_endless_source() -> None:
    read = 0

    def endless() -> Iterator[int]:
        nonlocal read
        n = 0
        while True:
            read += 1
            yield n
            n += 1

    with WorkerPool(4) as pool:
        results = pool.map(lambda x: x + 1, endless(), window=10)
        first = [next(results) for _ in range(50)]
        assert first == list(range(1, 51))
        assert read <= 50 + 10
        results.close()


def test_results_waiting_for_a_slow_first_one_count_against_the_window() -> None:
    """An ordered map holds finished results until the slow first one comes:
    those count as read and not yet yielded, so reading stops at the window."""
    read = 0
    first_started = threading.Event()
    release = threading.Event()

    def endless() -> Iterator[int]:
        nonlocal read
        n = 0
        while True:
            read += 1
            yield n
            n += 1

    def work(x: int) -> int:
        if x == 0:
            first_started.set()
            release.wait()
        return x

    with WorkerPool(4) as pool:
        results = pool.map(work, endless(), window=20)
        reader = threading.Thread(target=lambda: next(results))
        reader.start()
        assert first_started.wait(10)
        # The other workers finish what the window lets them read, then wait.
        wait_until(lambda: pool.stats().busy == 1 and read >= 20)
        assert read == 20
        release.set()
        reader.join()
        results.close()


def test_map_keeps_order_with_random_delays_and_raises_at_the_failed_item() -> None:
    rng = random.Random(3)
    delays = [rng.random() * 0.003 for _ in range(200)]

    def slow(n: int) -> int:
        time.sleep(delays[n])
        if n == 150:
            raise ValueError(n)
        return n

    with WorkerPool(8) as pool:
        got: list[int] = []
        with pytest.raises(ValueError, match="150"):
            for x in pool.map(slow, range(200)):
                got.append(x)
        assert got == list(range(150))
        assert sorted(pool.map(slow, range(100), ordered=False)) == list(range(100))


def test_async_functions_run_on_a_loop_of_the_thread_pool() -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    with WorkerPool(2) as pool:
        assert pool.submit(add, 2, b=3).result() == 5
        assert list(pool.map(functools.partial(add, 10), range(3))) == [10, 11, 12]


@on_loop
async def test_async_pool_awaits_submit_and_maps_lazily() -> None:
    async def square(n: int) -> int:
        await asyncio.sleep(0)
        return n * n

    async with WorkerPool(3, mode="async") as pool:
        assert await pool.submit(square, 4) == 16
        assert await pool.submit(lambda: threading.current_thread().name) != "MainThread"
        assert [x async for x in pool.map(square, range(10))] == [n * n for n in range(10)]
        assert isinstance(pool.stats(), PoolStats)


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_pools_under_cancellation_lose_and_duplicate_nothing(mode: str) -> None:
    """Jobs are cancelled at random while queued or running: each job runs
    at most once, and every job whose result was delivered ran exactly once."""
    runs: Counter[int] = Counter()
    lock = threading.Lock()
    jobs = 400

    def record(n: int) -> int:
        with lock:
            runs[n] += 1
        time.sleep(random.random() * 0.0005)
        return n

    delivered: list[int] = []
    if mode == "thread":
        with WorkerPool(4, queue_size=8) as pool:
            futures = [pool.submit(record, n) for n in range(jobs)]
            for f in futures[::3]:
                f.cancel()
            for f in futures:
                if not f.cancelled():
                    delivered.append(f.result())
    else:

        async def main() -> None:
            async with WorkerPool(4, queue_size=8, mode="async") as pool:

                async def one(n: int) -> None:
                    delivered.append(await pool.submit(record, n))

                tasks = [asyncio.create_task(one(n)) for n in range(jobs)]
                for _ in range(50):
                    await asyncio.sleep(random.random() * 0.002)
                    random.choice(tasks).cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(main())
    assert all(count == 1 for count in runs.values()), "no job ran twice"
    assert set(delivered) <= set(runs), "every delivered result ran"
    assert len(delivered) == len(set(delivered))
    assert len(delivered) >= jobs // 2


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: WorkerPool(0), ValueError, "workers"),
        (lambda: WorkerPool(2, queue_size=-1), ValueError, "queue_size"),
        (lambda: WorkerPool(2, overflow="drop"), ValueError, "overflow"),
        (lambda: WorkerPool(2, mode="process"), ValueError, "mode"),
        (lambda: WorkerPool("2"), TypeError, "workers"),
    ],
)
def test_bad_arguments_are_named(build: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build()


def test_bad_calls_are_named() -> None:
    with WorkerPool(1) as pool:
        with pytest.raises(TypeError, match="fn"):
            pool.submit(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="iterable"):
            pool.map(str, 42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="window"):
            pool.map(str, [], window=0)
        assert "mode='thread' workers=1" in repr(pool)


def test_a_pool_dropped_without_shutdown_lets_its_threads_go() -> None:
    before = set(pool_threads())
    pool = WorkerPool(3)
    assert pool.submit(lambda: 41 + 1).result() == 42
    assert list(pool.map(str, range(3))) == ["0", "1", "2"]
    ours = set(pool_threads()) - before
    assert len(ours) == 3
    del pool
    gc.collect()
    wait_until(lambda: not any(t.is_alive() for t in ours), timeout=30)


@on_loop
async def test_an_async_pool_dropped_without_shutdown_ends_its_tasks() -> None:
    pool = WorkerPool(2, mode="async")
    assert await pool.submit(asyncio.sleep, 0, "done") == "done"
    tasks = list(pool._tasks)
    del pool
    gc.collect()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    assert all(t.done() and t.exception() is None for t in tasks)


def test_with_on_an_async_pool_is_refused_before_its_block_runs() -> None:
    async def main() -> list[int]:
        pool = WorkerPool(2, mode="async")
        ran = []
        with pytest.raises(RuntimeError, match="use 'async with'"):
            with pool:
                ran.append("body")  # pragma: no cover - must not run
        assert ran == []
        async with pool:  # the pool is whole, and still shuts down
            return [await pool.submit(abs, -n) for n in range(3)]

    assert asyncio.run(main()) == [0, 1, 2]
