"""`q.sync`: one brakes queue, `queue.Queue`'s API for threads and asyncio's for
tasks, at the same time. Items are counted everywhere: none lost, none doubled."""

from __future__ import annotations

import asyncio
import collections
import math
import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest

import brakes
from brakes import LifoQueue, PriorityQueue, Queue, SyncQueue

from .conftest import LoopThread, ctrl_c_when, wait_until, wait_until_async

ShutDown: type[Exception] = getattr(queue, "ShutDown", brakes.QueueShutDown)
NEGATIVE_TIMEOUT = r"^'timeout' must be a non-negative number$"  # queue.Queue's words


def test_the_view_shows_its_queue_and_every_view_of_it_is_equal() -> None:
    q: Queue[int] = Queue(3, name="jobs")
    view = q.sync
    assert isinstance(view, SyncQueue) and SyncQueue.__module__ == "brakes"
    assert view.brakes_queue is q
    assert view == q.sync and hash(view) == hash(q.sync)
    assert view != Queue(3).sync and view != q
    assert repr(view).startswith("<brakes.SyncQueue of <brakes.Queue") and 'name="jobs"' in repr(
        view
    )
    assert view.maxsize == 3 and view.qsize() == 0 and view.empty() and not view.full()
    with pytest.raises(AttributeError):
        view.maxsize = 2  # type: ignore[misc]
    assert not hasattr(view, "queue"), "queue.Queue's .queue is its deque; the view has none"
    assert SyncQueue[int].__origin__ is SyncQueue  # type: ignore[attr-defined]


def test_the_view_is_one_queue_with_the_asyncio_side() -> None:
    async def main() -> None:
        q: Queue[str] = Queue(2)
        q.sync.put("from a thread's API")
        assert await q.get() == "from a thread's API"
        await q.put("from a task")
        assert q.sync.qsize() == 1 and q.sync.get() == "from a task"
        q.sync.put_nowait("x")
        q.put_nowait("y")
        assert q.sync.full() and q.full()
        with pytest.raises(queue.Full):
            q.sync.put_nowait("z")
        assert [q.get_nowait(), q.sync.get_nowait()] == ["x", "y"]
        assert q.sync.unfinished_tasks == q.stats().unfinished == 4

    asyncio.run(main())


@pytest.mark.parametrize(
    ("kind", "order"),
    [(Queue, [3, 1, 2]), (LifoQueue, [2, 1, 3]), (PriorityQueue, [1, 2, 3])],
)
def test_each_kind_keeps_its_order_across_both_sides(
    kind: Callable[[int], Queue[int]], order: list[int]
) -> None:
    async def main() -> None:
        q = kind(0)
        q.sync.put(3)
        await q.put(1)
        q.sync.put(2, timeout=1.0)
        assert [q.sync.get(), await q.get(), q.sync.get(timeout=1.0)] == order

    asyncio.run(main())


def test_a_channel_and_any_overflow_policy_have_a_view_too(loop_thread: LoopThread) -> None:
    latest: Queue[int] = Queue(2, overflow="drop_old")
    for n in range(5):
        latest.sync.put(n)  # never waits: the oldest go
    assert [latest.sync.get(), latest.sync.get()] == [3, 4]
    assert latest.stats().dropped == 3
    refusing: Queue[int] = Queue(1, overflow="reject")
    refusing.sync.put(1)
    with pytest.raises(queue.Full):
        refusing.sync.put(2)  # "reject" refuses even a blocking put

    handover: brakes._brakes.Channel[str] = brakes._brakes.Channel(0)
    got: list[object] = []

    async def consume() -> None:
        got.append(await handover.get())

    consumer = loop_thread.submit(consume())
    wait_until(lambda: handover.stats().getters_waiting == 1)
    handover.sync.put("handed over")  # buffer=0: only to a waiting consumer
    consumer.result(timeout=30)
    assert got == ["handed over"]


def test_a_thread_producer_feeds_an_asyncio_consumer_that_answers_back() -> None:
    # Requests go thread -> task through `requests.sync`, replies task ->
    # another thread through `replies.sync`, both small enough that each side
    # waits often.
    requests: Queue[int] = Queue(4)
    replies: Queue[int] = Queue(2)
    count = 2_000
    answers: list[int] = []

    def ask() -> None:
        for n in range(count):
            requests.sync.put(n)
        requests.sync.shutdown()

    def read_answers() -> None:
        for _ in range(count):
            answers.append(replies.sync.get())
            replies.sync.task_done()

    async def server() -> None:
        while True:
            try:
                n = await requests.get()
            except brakes.QueueShutDown:
                break
            await replies.put(n * n)
            requests.task_done()
        await requests.join()
        await replies.join()

    threads = [threading.Thread(target=ask), threading.Thread(target=read_answers)]
    for thread in threads:
        thread.start()
    asyncio.run(server())
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert answers == [n * n for n in range(count)]
    assert requests.stats().got == replies.stats().got == count


def test_a_waiting_thread_lets_an_event_loop_in_the_same_process_run() -> None:
    # The thread waits in `get` with the GIL released: the loop, in this
    # thread, goes on stepping its tasks and is the one that unblocks it.
    q: Queue[str] = Queue()
    got: list[str] = []
    getter = threading.Thread(target=lambda: got.append(q.sync.get()))
    getter.start()

    async def main() -> None:
        while q.stats().getters_waiting == 0:
            await asyncio.sleep(0)
        for _ in range(100):  # the loop keeps running while the thread waits
            await asyncio.sleep(0)
        await q.put("unblocked by the loop")

    asyncio.run(main())
    getter.join(timeout=30)
    assert got == ["unblocked by the loop"]


def test_threads_and_tasks_on_several_loops_lose_and_double_nothing() -> None:
    # Two event loops in their own threads each run a producer task and a
    # consumer task; two plain threads produce and two consume. Thread
    # producers put with short timeouts and retry; task producers await put;
    # consumers take with get(), get(timeout=...), get(block=False) and a
    # wait_for(q.get()) that is cut short over and over. The last producer to
    # finish shuts the queue down; consumers stop at ShutDown once it is empty.
    q: Queue[int] = Queue(3)
    per_producer = 300
    producer_ids = [1, 2, 3, 4]
    producers_left = [len(producer_ids)]
    lock = threading.Lock()
    got: list[int] = []

    def numbers(producer: int) -> range:
        return range(producer * 100_000, producer * 100_000 + per_producer)

    def producer_done() -> None:
        with lock:
            producers_left[0] -= 1
            last = producers_left[0] == 0
        if last:
            q.sync.shutdown()

    def produce_in_a_thread(producer: int) -> None:
        for n in numbers(producer):
            while True:
                try:
                    q.sync.put(n, timeout=0.0005 if n % 3 else None)
                    break
                except queue.Full:
                    pass  # nothing went in: put the same item again
        producer_done()

    def consume_in_a_thread(polling: bool) -> None:
        mine: list[int] = []
        while True:
            try:
                if polling:
                    try:
                        mine.append(q.sync.get(block=False))
                    except queue.Empty:
                        mine.append(q.sync.get(timeout=0.0005))
                else:
                    mine.append(q.sync.get(timeout=0.0005))
                q.sync.task_done()
            except queue.Empty:
                pass
            except ShutDown:
                break
        with lock:
            got.extend(mine)

    async def produce_in_a_task(producer: int) -> None:
        for n in numbers(producer):
            await q.put(n)
        producer_done()

    async def consume_in_a_task() -> None:
        mine: list[int] = []
        while True:
            try:
                mine.append(await asyncio.wait_for(q.get(), 0.0005))
                q.task_done()
            except TimeoutError:
                pass  # cut short: the get took nothing
            except brakes.QueueShutDown:
                break
        with lock:
            got.extend(mine)

    loops = [LoopThread(), LoopThread()]
    try:
        tasks = [loops[0].submit(produce_in_a_task(1)), loops[1].submit(produce_in_a_task(2))]
        tasks += [loop.submit(consume_in_a_task()) for loop in loops]
        threads = [threading.Thread(target=produce_in_a_thread, args=(p,)) for p in (3, 4)]
        threads += [threading.Thread(target=consume_in_a_thread, args=(p,)) for p in (False, True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive()
        for task in tasks:
            task.result(timeout=120)
    finally:
        for loop in loops:
            loop.close()
    q.join_blocking(timeout=0)
    expected = collections.Counter(n for p in producer_ids for n in numbers(p))
    assert collections.Counter(got) == expected
    stats = q.stats()
    assert stats.put == stats.got == len(expected) and stats.unfinished == 0


def test_task_done_on_both_sides_ends_join_and_join_blocking() -> None:
    q: Queue[int] = Queue()
    for n in range(10):
        q.sync.put(n)
    finished: list[str] = []

    def join_in_a_thread() -> None:
        q.sync.join()
        finished.append("thread")

    joiner = threading.Thread(target=join_in_a_thread)
    joiner.start()

    async def main() -> None:
        waiting_join = asyncio.create_task(q.join())
        taken = [await q.get() for _ in range(4)]
        taken += [q.sync.get() for _ in range(6)]
        assert sorted(taken) == list(range(10))
        q.task_done(4)
        with pytest.raises(TimeoutError):
            q.join_blocking(timeout=0)
        with pytest.raises(ValueError, match="too many"):
            q.sync.task_done(7)  # more than are unfinished: marks nothing
        assert q.sync.unfinished_tasks == 6
        q.sync.task_done(5)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiting_join.done() and q.sync.unfinished_tasks == 1
        q.sync.task_done()
        await waiting_join
        finished.append("task")
        q.join_blocking(timeout=0)
        q.sync.join()

    asyncio.run(main())
    joiner.join(timeout=30)
    assert not joiner.is_alive()
    assert sorted(finished) == ["task", "thread"]
    with pytest.raises(ValueError):
        q.sync.task_done()


def test_timeouts_raise_the_standard_errors_and_leave_the_queue_as_it_was() -> None:
    q: Queue[str] = Queue(1)
    with pytest.raises(queue.Empty) as empty:
        q.sync.get(timeout=0.01)
    assert isinstance(empty.value, brakes.QueueEmpty)
    with pytest.raises(queue.Empty):
        q.sync.get(timeout=0)
    q.sync.put("first")
    with pytest.raises(queue.Full) as full:
        q.sync.put("late", timeout=0.01)
    assert isinstance(full.value, brakes.QueueFull)
    with pytest.raises(queue.Full):
        q.sync.put("late", True, 0)
    assert q.qsize() == 1 and q.stats().unfinished == 1
    assert q.sync.get() == "first"
    with pytest.raises(queue.Empty):
        q.sync.get_nowait()


def test_block_false_ignores_the_timeout_as_queue_queue_does() -> None:
    q: Queue[int] = Queue(1)
    with pytest.raises(queue.Empty):
        q.sync.get(False, -1)
    q.sync.put(1, False, "not a number")  # type: ignore[arg-type]
    with pytest.raises(queue.Full):
        q.sync.put(2, block=False, timeout=-5)
    assert q.sync.get(block=0, timeout=float("nan")) == 1  # type: ignore[arg-type]


@pytest.mark.parametrize("maxsize", [0, 1])
def test_a_negative_timeout_is_refused_with_queue_queues_message(maxsize: int) -> None:
    # Refused before anything else is looked at, even when the call could
    # answer at once (and, unlike queue.Queue, on an unbounded queue too).
    q: Queue[int] = Queue(maxsize)
    q.sync.put(1)
    for bad in (-1, -0.5, -math.inf):
        with pytest.raises(ValueError, match=NEGATIVE_TIMEOUT):
            q.sync.get(timeout=bad)
        with pytest.raises(ValueError, match=NEGATIVE_TIMEOUT):
            q.sync.put(2, timeout=bad)
    assert q.sync.qsize() == 1


@pytest.mark.parametrize(
    ("bad", "error"),
    [(math.nan, ValueError), ("1", TypeError), (True, TypeError), ([1.0], TypeError)],
)
def test_a_timeout_that_is_not_a_number_of_seconds_is_named(
    bad: Any, error: type[Exception]
) -> None:
    q: Queue[int] = Queue()
    q.sync.put(1)
    with pytest.raises(error, match="timeout"):
        q.sync.get(timeout=bad)
    with pytest.raises(error, match="timeout"):
        q.sync.put(2, timeout=bad)
    assert q.sync.qsize() == 1


@pytest.mark.parametrize(
    ("bad", "error"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError)]
)
def test_a_bad_task_done_count_is_named_and_marks_nothing(bad: Any, error: type[Exception]) -> None:
    q: Queue[int] = Queue()
    q.sync.put(1)
    q.sync.put(2)
    with pytest.raises(error, match=r"\bn\b"):
        q.sync.task_done(bad)
    assert q.sync.unfinished_tasks == 2


def test_a_view_of_something_else_is_refused() -> None:
    with pytest.raises(TypeError, match="queue"):
        SyncQueue(queue.Queue())  # type: ignore[arg-type]


def test_shutdown_from_either_side_ends_waiting_threads_and_tasks() -> None:
    q: Queue[int] = Queue(1)
    empty: Queue[int] = Queue()
    q.sync.put(0)
    outcomes: list[object] = []

    def wait(call: Callable[[], object]) -> None:
        try:
            outcomes.append(call())
        except Exception as error:
            outcomes.append(error)

    threads = [
        threading.Thread(target=wait, args=(lambda: q.sync.put(1),)),
        threading.Thread(target=wait, args=(lambda: q.sync.put(2, timeout=60),)),
        threading.Thread(target=wait, args=(empty.sync.get,)),
        threading.Thread(target=wait, args=(lambda: empty.sync.get(timeout=60),)),
    ]
    for thread in threads:
        thread.start()

    async def main() -> None:
        waiting_put = asyncio.create_task(q.put(3))
        waiting_get = asyncio.create_task(empty.get())
        await wait_until_async(
            lambda: q.stats().putters_waiting == 3 and empty.stats().getters_waiting == 3
        )
        q.shutdown()  # the asyncio side ends the view's waiters ...
        empty.sync.shutdown()  # ... and the view ends the tasks'
        with pytest.raises(brakes.QueueShutDown):
            await waiting_put
        with pytest.raises(brakes.QueueShutDown):
            await waiting_get
        assert await q.get() == 0, "a plain shutdown leaves the items to get"
        with pytest.raises(brakes.QueueShutDown):
            await q.get()

    asyncio.run(main())
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert len(outcomes) == 4 and all(isinstance(o, ShutDown) for o in outcomes)
    assert q.sync.is_shutdown and empty.sync.is_shut_down


def test_immediate_shutdown_drops_what_is_left_for_both_sides() -> None:
    dropped: list[int] = []
    q: Queue[int] = Queue(2, on_drop=dropped.append)
    q.sync.put(1)
    q.sync.put(2)
    taken = q.sync.get()
    q.sync.shutdown(immediate=True)
    assert dropped == [2] and q.sync.empty()
    assert q.sync.unfinished_tasks == 1, "the item already got is still to be done"
    with pytest.raises(ShutDown):
        q.sync.get(timeout=1.0)
    with pytest.raises(brakes.QueueShutDown):
        q.get_nowait()
    q.sync.task_done()
    q.sync.join()
    assert taken == 1


def test_a_waiting_get_on_the_view_stops_for_ctrl_c_and_takes_nothing() -> None:
    q: Queue[int] = Queue()
    with ctrl_c_when(lambda: q.stats().getters_waiting == 1):
        with pytest.raises(KeyboardInterrupt):
            q.sync.get()
    q.sync.put(7)
    assert q.stats().getters_waiting == 0 and q.sync.get_nowait() == 7


def drain_with_workers(jobs: Any, results: Any, workers: int) -> None:
    """Code written for `queue.Queue`, as a program would have it."""

    def work() -> None:
        while True:
            try:
                job = jobs.get(timeout=5)
            except queue.Empty:
                return
            if job is None:
                jobs.task_done()
                return
            results.put(job * 2)
            jobs.task_done()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for n in range(200):
        jobs.put(n)
    for _ in threads:
        jobs.put(None)
    jobs.join()
    for thread in threads:
        thread.join()


def test_code_written_for_queue_queue_runs_unchanged_on_the_view() -> None:
    def run(jobs: Any, results: Any) -> list[int]:
        drain_with_workers(jobs, results, workers=3)
        out = []
        while not results.empty():
            out.append(results.get_nowait())
        return sorted(out)

    expected = run(queue.Queue(5), queue.Queue())
    assert run(Queue(5).sync, Queue().sync) == expected == [n * 2 for n in range(200)]
