"""Threads and event loops share one queue: every item arrives exactly once,
in order per producer, under timeouts and cancellations too."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from typing import Any

from brakes import Queue, QueueEmpty, QueueFull, QueueShutDown

from .conftest import LoopThread

ITEMS = 1_000_000


def check_arrivals(
    received: list[list[tuple[int, int]]], producers: int, per_producer: int
) -> None:
    for consumer in received:
        last: dict[int, int] = {}
        for producer, n in consumer:
            assert last.get(producer, -1) < n, "items of one producer arrive in order"
            last[producer] = n
    everything = sorted(item for consumer in received for item in consumer)
    assert everything == [(p, n) for p in range(producers) for n in range(per_producer)]


def run_loops(loops: int, body: Any) -> list[Any]:
    threads = [LoopThread() for _ in range(loops)]
    try:
        futures = [lt.submit(body(i)) for i, lt in enumerate(threads)]
        return [f.result(timeout=120) for f in futures]
    finally:
        for lt in threads:
            lt.close()


def test_four_producer_threads_feed_two_consumer_loops() -> None:
    producers, per_producer = 4, ITEMS // 4
    q: Queue[tuple[int, int]] = Queue(100)

    def produce(p: int) -> None:
        for n in range(per_producer):
            q.put_blocking((p, n))

    async def consume(_: int) -> list[tuple[int, int]]:
        got = []
        async for item in q:
            got.append(item)
            if len(got) % 1000 == 0:
                # Batches mix in with single gets.
                try:
                    got.extend(await q.get_batch(50))
                except QueueShutDown:
                    break
        return got

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    loop_threads = [LoopThread() for _ in range(2)]
    try:
        futures = [lt.submit(consume(i)) for i, lt in enumerate(loop_threads)]
        for t in threads:
            t.join(timeout=120)
        q.shutdown()
        received = [f.result(timeout=120) for f in futures]
    finally:
        for lt in loop_threads:
            lt.close()
    check_arrivals(received, producers, per_producer)
    stats = q.stats()
    assert (stats.put, stats.got, stats.size, stats.getters_waiting) == (ITEMS, ITEMS, 0, 0)


def test_two_producer_loops_feed_four_consumer_threads() -> None:
    producers, per_producer = 2, ITEMS // 2
    q: Queue[tuple[int, int]] = Queue(100)
    received: list[list[tuple[int, int]]] = [[] for _ in range(4)]

    def consume(c: int) -> None:
        for item in q:
            received[c].append(item)

    async def produce(p: int) -> None:
        for n in range(per_producer):
            await q.put((p, n))

    consumers = [threading.Thread(target=consume, args=(c,)) for c in range(4)]
    for t in consumers:
        t.start()
    run_loops(producers, produce)
    q.shutdown()
    for t in consumers:
        t.join(timeout=120)
        assert not t.is_alive()
    check_arrivals(received, producers, per_producer)
    assert q.stats().putters_waiting == 0


def test_timeouts_and_cancellations_lose_and_duplicate_nothing() -> None:
    """Producers and consumers on threads and two loops give up at random
    (timeouts, cancellations, wait_for); what they report as put must be
    exactly what is got or left in the queue."""
    q: Queue[tuple[str, int]] = Queue(4)
    put_ok: list[tuple[str, int]] = []
    got: list[tuple[str, int]] = []
    lock = threading.Lock()
    rounds = 3000

    def thread_body(seed: int) -> None:
        rng = random.Random(seed)
        for n in range(rounds):
            item = (f"t{seed}", n)
            try:
                if rng.random() < 0.5:
                    # Always a timeout: once the other side is done, nobody makes room.
                    q.put_blocking(item, timeout=rng.choice([0, 0.0005, 0.002]))
                    with lock:
                        put_ok.append(item)
                else:
                    value = (
                        q.get_blocking(timeout=rng.choice([0, 0.0005, 0.01]))
                        if rng.random() < 0.7
                        else q.get_batch_blocking(3, linger=0.0005, timeout=0.01)
                    )
                    with lock:
                        got.extend(value if isinstance(value, list) else [value])
            except (QueueFull, QueueEmpty):
                pass

    async def task_body(seed: int) -> None:
        rng = random.Random(seed)

        async def one(n: int) -> None:
            item = (f"a{seed}", n)
            try:
                if rng.random() < 0.5:
                    await asyncio.wait_for(q.put(item), rng.choice([0.0005, 0.01]))
                    with lock:
                        put_ok.append(item)
                elif rng.random() < 0.5:
                    value = await asyncio.wait_for(q.get(), rng.choice([0.0005, 0.01]))
                    with lock:
                        got.append(value)
                else:
                    values = await asyncio.wait_for(q.get_batch(3, linger=0.001), 0.01)
                    with lock:
                        got.extend(values)
            except (TimeoutError, QueueEmpty):
                pass

        async def canceller() -> None:
            for n in range(rounds // 10):
                task = asyncio.ensure_future(q.get() if n % 2 else q.put((f"c{seed}", n)))
                await asyncio.sleep(0)
                task.cancel()
                try:
                    value = await task
                except asyncio.CancelledError:
                    continue
                with lock:
                    if n % 2:
                        got.append(value)
                    else:
                        put_ok.append((f"c{seed}", n))

        await asyncio.gather(*(one(n) for n in range(rounds)), canceller())

    threads = [threading.Thread(target=thread_body, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    run_loops(2, task_body)
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    q.shutdown()
    left = list(q)
    assert Counter(got + left) == Counter(put_ok), "every item put is got or left, once"
    stats = q.stats()
    assert (stats.putters_waiting, stats.getters_waiting, stats.size) == (0, 0, 0)
    assert stats.put == len(put_ok)
