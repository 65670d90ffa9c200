"""Queues: overflow policies, on_drop, bad input, batches, shutdown, iteration,
and the ownership of items (nothing leaks, cycles are collected)."""

from __future__ import annotations

import asyncio
import gc
import queue
import sys
import threading
import weakref
from typing import Any

import pytest

import brakes
from brakes import LifoQueue, PriorityQueue, Queue, QueueEmpty, QueueFull, QueueShutDown


class Item:
    """An object whose release can be observed through a weak reference."""

    def __init__(self, n: int) -> None:
        self.n = n


def test_queue_errors_are_also_the_standard_librarys() -> None:
    assert issubclass(QueueFull, brakes.Overloaded)
    assert issubclass(QueueFull, asyncio.QueueFull) and issubclass(QueueFull, queue.Full)
    assert issubclass(QueueEmpty, asyncio.QueueEmpty) and issubclass(QueueEmpty, queue.Empty)
    assert issubclass(QueueShutDown, brakes.BrakesError)
    if sys.version_info >= (3, 13):
        assert issubclass(QueueShutDown, asyncio.QueueShutDown)
        assert issubclass(QueueShutDown, queue.ShutDown)
    assert QueueFull().retry_after is None


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"maxsize": 1.5}, TypeError, "maxsize"),
        ({"maxsize": "10"}, TypeError, "maxsize"),
        ({"maxsize": 2**70}, ValueError, "maxsize"),
        ({"overflow": "drop"}, ValueError, "overflow"),
        ({"overflow": 3}, TypeError, "overflow"),
        ({"on_drop": 3}, TypeError, "on_drop"),
    ],
)
def test_bad_construction_arguments_are_named(
    kwargs: dict[str, Any], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        Queue(**kwargs)


@pytest.mark.parametrize("bad", [float("nan"), -1.0])
def test_bad_timeouts_are_named_even_when_no_wait_is_needed(bad: float) -> None:
    q: Queue[int] = Queue()
    q.put_nowait(1)
    with pytest.raises(ValueError, match="timeout"):
        q.get_blocking(timeout=bad)
    with pytest.raises(ValueError, match="timeout"):
        q.put_blocking(2, timeout=bad)
    with pytest.raises(ValueError, match="timeout"):
        q.join_blocking(timeout=bad)
    with pytest.raises(ValueError, match="timeout"):
        q.get_batch_blocking(1, timeout=bad)
    assert q.qsize() == 1


@pytest.mark.parametrize(
    ("max_items", "linger"), [(0, 0.0), (-1, 0.0), (1, -0.5), (1, float("nan")), (1, float("inf"))]
)
def test_bad_batch_arguments_are_named(max_items: int, linger: float) -> None:
    q: Queue[int] = Queue()
    name = "max_items" if max_items < 1 else "linger"
    with pytest.raises(ValueError, match=name):
        q.get_batch_blocking(max_items, linger=linger)
    with pytest.raises(ValueError, match=name):
        q.get_batch(max_items, linger=linger)


def test_maxsize_zero_or_below_is_unbounded_and_reported_as_given() -> None:
    for maxsize in (0, -1):
        q: Queue[int] = Queue(maxsize)
        for n in range(10_000):
            q.put_nowait(n)
        assert q.maxsize == maxsize and not q.full() and q.qsize() == 10_000


def test_reject_refuses_every_kind_of_put_at_once() -> None:
    q: Queue[int] = Queue(1, overflow="reject")
    q.put_nowait(1)
    with pytest.raises(QueueFull):
        q.put_nowait(2)
    with pytest.raises(QueueFull):
        q.put_blocking(2)  # no timeout, and still no wait

    async def put() -> None:
        await q.put(2)

    with pytest.raises(QueueFull):
        asyncio.run(put())
    assert q.stats().rejected == 3 and q.qsize() == 1


@pytest.mark.parametrize(
    ("cls", "overflow", "dropped", "left"),
    [
        (Queue, "drop_new", [9], [0, 1, 2]),
        (Queue, "drop_old", [0], [1, 2, 9]),
        (LifoQueue, "drop_new", [9], [2, 1, 0]),
        (LifoQueue, "drop_old", [0], [9, 2, 1]),
        (PriorityQueue, "drop_old", [9], [0, 1, 2]),
    ],
)
def test_drops_go_to_on_drop_and_count_as_done(
    cls: type[Queue[int]], overflow: Any, dropped: list[int], left: list[int]
) -> None:
    seen: list[int] = []
    q = cls(3, overflow=overflow, on_drop=seen.append)
    for n in (0, 1, 2, 9):
        q.put_blocking(n)  # never waits: the policy answers
    assert seen == dropped
    assert [q.get_nowait() for _ in range(3)] == left
    stats = q.stats()
    assert (stats.dropped, stats.unfinished) == (1, 3)
    for _ in range(3):
        q.task_done()
    q.join_blocking(timeout=0)


def test_drop_old_in_a_priority_queue_drops_the_lowest_priority() -> None:
    seen: list[tuple[int, str]] = []
    q: PriorityQueue[tuple[int, str]] = PriorityQueue(2, overflow="drop_old", on_drop=seen.append)
    q.put_nowait((5, "low"))
    q.put_nowait((1, "high"))
    q.put_nowait((3, "mid"))
    assert seen == [(5, "low")]
    assert [q.get_nowait(), q.get_nowait()] == [(1, "high"), (3, "mid")]


def test_an_on_drop_error_reaches_the_putter_after_the_queue_is_consistent() -> None:
    def fail(item: int) -> None:
        raise RuntimeError(f"cannot drop {item}")

    q: Queue[int] = Queue(1, overflow="drop_old", on_drop=fail)
    q.put_nowait(1)
    with pytest.raises(RuntimeError, match="cannot drop 1"):
        q.put_nowait(2)
    assert q.get_nowait() == 2 and q.empty()


def test_on_drop_may_use_the_queue_without_deadlock() -> None:
    seen: list[tuple[int, int]] = []

    def on_drop(item: int) -> None:
        # Called with no lock held: the queue can be read and changed here.
        seen.append((item, q.qsize()))
        q.get_nowait()

    q: Queue[int] = Queue(1, overflow="drop_new", on_drop=on_drop)
    q.put_nowait(1)
    q.put_nowait(2)
    assert seen == [(2, 1)] and q.empty()


def test_an_item_that_cannot_be_compared_is_refused_and_takes_no_slot() -> None:
    q: PriorityQueue[Any] = PriorityQueue(2)
    q.put_nowait((1, "a"))
    with pytest.raises(TypeError):
        q.put_nowait((1, object()))  # ties on 1, then compares str with object
    q.put_nowait((2, "b"))
    assert q.full() and [q.get_nowait(), q.get_nowait()] == [(1, "a"), (2, "b")]


class Job:
    """Ordered by priority alone: jobs of equal priority compare equal."""

    def __init__(self, priority: int, name: str) -> None:
        self.priority, self.name = priority, name

    def __lt__(self, other: Job) -> bool:
        return self.priority < other.priority


def test_equal_priorities_leave_in_arrival_order() -> None:
    q: PriorityQueue[Job] = PriorityQueue()
    jobs = [Job(n % 3, f"job{n}") for n in range(30)]
    for job in jobs:
        q.put_nowait(job)
    got = [q.get_nowait().name for _ in jobs]
    assert got == [job.name for job in sorted(jobs, key=lambda job: job.priority)]


def test_priority_order_holds_across_chunks() -> None:
    import random

    rng = random.Random(7)
    values = [rng.randrange(1000) for _ in range(5000)]
    q: PriorityQueue[int] = PriorityQueue()
    for v in values:
        q.put_nowait(v)
    assert q.get_batch_blocking(10_000) == sorted(values)


def test_task_done_too_often_and_join_timeout() -> None:
    q: Queue[int] = Queue()
    with pytest.raises(ValueError, match="task_done"):
        q.task_done()
    q.put_nowait(1)
    with pytest.raises(TimeoutError):
        q.join_blocking(timeout=0.01)
    q.get_nowait()
    q.task_done()
    q.join_blocking(timeout=0)


def test_blocking_timeouts_raise_as_queue_queue_does() -> None:
    q: Queue[int] = Queue(1)
    with pytest.raises(queue.Empty):
        q.get_blocking(timeout=0.01)
    q.put_nowait(1)
    with pytest.raises(queue.Full):
        q.put_blocking(2, timeout=0.01)
    assert q.stats().putters_waiting == 0 and q.get_nowait() == 1


def test_get_batch_takes_what_is_there_in_order() -> None:
    q: Queue[int] = Queue()
    for n in range(5):
        q.put_nowait(n)
    assert q.get_batch_blocking(3) == [0, 1, 2]
    assert q.get_batch_blocking(10) == [3, 4]
    with pytest.raises(QueueEmpty):
        q.get_batch_blocking(10, timeout=0)


def test_a_blocking_batch_lingers_for_more_until_full() -> None:
    q: Queue[int] = Queue()
    q.put_nowait(0)

    def feed() -> None:
        for n in range(1, 4):
            q.put_blocking(n)

    feeder = threading.Thread(target=feed)
    feeder.start()
    # A long linger: the batch returns as soon as it is full, not at the end.
    assert q.get_batch_blocking(4, linger=30) == [0, 1, 2, 3]
    feeder.join()


def test_an_async_batch_waits_for_a_first_item_then_lingers() -> None:
    async def main() -> None:
        q: Queue[int] = Queue()
        batch = asyncio.create_task(q.get_batch(3, linger=30))
        await asyncio.sleep(0)
        assert q.stats().getters_waiting == 1
        for n in range(3):
            q.put_nowait(n)
            await asyncio.sleep(0)
        assert await batch == [0, 1, 2]
        loop = asyncio.get_running_loop()
        start = loop.time()
        q.put_nowait(7)
        assert await q.get_batch(3, linger=0.05) == [7]
        assert loop.time() - start >= 0.04
        with pytest.raises(QueueEmpty):
            await q.get_batch(3, timeout=0.01)

    asyncio.run(main())


def test_a_batch_cancelled_while_lingering_puts_its_items_back_in_order() -> None:
    async def main() -> None:
        q: Queue[int] = Queue(3)
        batch = asyncio.create_task(q.get_batch(10, linger=30))
        await asyncio.sleep(0)
        for n in range(3):
            await q.put(n)
        await asyncio.sleep(0)
        assert q.qsize() == 0 and q.full(), "the batch holds the items, in the queue"
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        assert [q.get_nowait() for _ in range(3)] == [0, 1, 2]

    asyncio.run(main())


def test_shutdown_follows_python_3_13() -> None:
    async def main() -> None:
        q: Queue[int] = Queue(1)
        q.put_nowait(1)
        blocked_put = asyncio.create_task(q.put(2))
        await asyncio.sleep(0)
        q.shutdown()
        with pytest.raises(QueueShutDown):
            await blocked_put
        with pytest.raises(QueueShutDown):
            q.put_nowait(3)
        assert await q.get() == 1, "items left can still be got"
        waiting_get = asyncio.create_task(q.get())
        with pytest.raises(QueueShutDown):
            await waiting_get
        with pytest.raises(QueueShutDown):
            q.get_nowait()
        q.task_done()
        await q.join()

    asyncio.run(main())


def test_shutdown_wakes_blocked_threads() -> None:
    q: Queue[int] = Queue(1)
    empty: Queue[int] = Queue()
    q.put_nowait(0)
    errors: list[BaseException] = []

    def wait(call: Any) -> None:
        try:
            call()
        except BaseException as err:
            errors.append(err)

    threads = [
        threading.Thread(target=wait, args=(lambda: q.put_blocking(1),)),
        threading.Thread(target=wait, args=(empty.get_blocking,)),
    ]
    for t in threads:
        t.start()
    from .conftest import wait_until

    wait_until(lambda: q.stats().putters_waiting == 1 and empty.stats().getters_waiting == 1)
    q.shutdown()
    empty.shutdown()
    for t in threads:
        t.join(timeout=10)
    assert [type(e) for e in errors] == [QueueShutDown, QueueShutDown]


def test_immediate_shutdown_hands_items_to_on_drop_and_ends_join() -> None:
    seen: list[int] = []
    q: Queue[int] = Queue(on_drop=seen.append)
    for n in range(3):
        q.put_nowait(n)
    joined = threading.Event()
    joiner = threading.Thread(target=lambda: (q.join_blocking(), joined.set()))
    joiner.start()
    q.shutdown(immediate=True)
    joiner.join(timeout=10)
    assert joined.is_set() and seen == [0, 1, 2]
    assert q.stats().unfinished == 0 and q.is_shut_down
    assert q.stats().dropped == 3
    with pytest.raises(QueueShutDown):
        q.get_nowait()


def test_iteration_ends_cleanly_at_shutdown() -> None:
    q: Queue[int] = Queue(2)

    def produce() -> None:
        for n in range(50):
            q.put_blocking(n)
        q.shutdown()

    producer = threading.Thread(target=produce)
    producer.start()
    assert list(q) == list(range(50))
    producer.join()

    async def main() -> list[int]:
        aq: Queue[int] = Queue(2)

        async def produce_async() -> None:
            for n in range(50):
                await aq.put(n)
            aq.shutdown()

        task = asyncio.create_task(produce_async())
        got = [item async for item in aq]
        await task
        return got

    assert asyncio.run(main()) == list(range(50))


def test_a_blocked_get_stops_for_ctrl_c_and_takes_nothing() -> None:
    from .conftest import ctrl_c_when

    q: Queue[int] = Queue()
    with ctrl_c_when(lambda: q.stats().getters_waiting == 1):
        with pytest.raises(KeyboardInterrupt):
            q.get_blocking()
    q.put_nowait(1)
    assert q.stats().getters_waiting == 0 and q.get_nowait() == 1


def test_repr_and_stats_show_the_live_state() -> None:
    q: Queue[int] = Queue(2, overflow="drop_new")
    q.put_nowait(1)
    assert repr(q) == (
        "<brakes.Queue maxsize=2 overflow='drop_new' size=1 putters=0 getters=0 unfinished=1>"
    )
    stats = q.stats()
    assert (stats.maxsize, stats.size, stats.put, stats.shut_down) == (2, 1, 1, False)
    assert stats == q.stats() and hash(stats) == hash(q.stats())
    assert q.overflow == "drop_new"
    assert Queue[int].__args__ == (int,)


def test_items_dropped_or_removed_are_released() -> None:
    q: Queue[Item] = Queue(1, overflow="drop_old")
    first = Item(1)
    ref = weakref.ref(first)
    q.put_nowait(first)
    del first
    q.put_nowait(Item(2))
    assert ref() is None, "the evicted item was released"
    second_ref = weakref.ref(q.get_nowait())
    assert second_ref() is None, "a got item is owned by the getter only"
    q.put_nowait(Item(3))
    third_ref = weakref.ref(q.get_batch_blocking(1)[0])
    assert third_ref() is None
    q.put_nowait(Item(4))
    gc.collect()
    fourth = [o for o in gc.get_objects() if type(o) is Item]
    assert [o.n for o in fourth] == [4]
    del fourth
    q.shutdown(immediate=True)
    assert not [o for o in gc.get_objects() if type(o) is Item]


def test_a_reference_cycle_through_a_queue_is_collected() -> None:
    holder: list[Any] = []
    q: Queue[Any] = Queue(on_drop=holder.append)
    holder.append(q)  # q -> on_drop -> holder -> q
    q.put_nowait(q)
    q.put_nowait([q])
    ref = weakref.ref(q)
    del q, holder
    gc.collect()
    assert ref() is None


def test_a_million_put_get_cycles_keep_memory_flat() -> None:
    q: Queue[object] = Queue(100)
    for _ in range(1000):  # warm up caches and free lists
        q.put_nowait(object())
        q.get_nowait()
    gc.collect()
    before = sys.getallocatedblocks()
    for _ in range(1_000_000):
        q.put_nowait(object())
        q.get_nowait()
    gc.collect()
    assert sys.getallocatedblocks() - before < 1000


def test_awaited_gets_return_awkward_items_unchanged() -> None:
    # Tuples and exceptions are how a coroutine's StopIteration could mislead.
    items: list[Any] = [(1, 2), (), [3], None, StopIteration(5), ValueError("x"), StopIteration]

    async def main() -> list[Any]:
        q: Queue[Any] = Queue()
        for item in items:
            q.put_nowait(item)
        return [await q.get() for _ in items]

    assert all(a is b for a, b in zip(asyncio.run(main()), items, strict=True))
