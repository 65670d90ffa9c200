"""CPython's own `queue` tests, run against `brakes.Queue(...).sync`.

The tests come from the interpreter's `test.test_queue` module (the one this
Python installs; it is imported, not copied), run on a stand-in for the
`queue` module whose `Queue`, `LifoQueue` and `PriorityQueue` make the view of
a new brakes queue: `Queue(maxsize)` is `brakes.Queue(maxsize).sync`, and so on.
They are thin `SyncQueue` subclasses only because `basic_queue_test` picks the
expected order by the class name (`q.__class__.__name__`); the `SimpleQueue`
tests use the `sync` getter itself. `Full`, `Empty` and `ShutDown` are the
standard library's (`ShutDown` is `brakes.QueueShutDown` before 3.13).

From Python 3.13 that module also holds the `shutdown` tests, and they run here
as they are. Python 3.11 and 3.12 have no `shutdown`, so the tests at the end
of this file pin the same behaviour (3.13's `queue.Queue.shutdown`) on every
version; they are our own, written from the 3.13 semantics.

Left out, on purpose:
- `test_shrinking_queue`: it assigns `q.maxsize = 2`; a brakes queue's bound is
  fixed at construction (`maxsize` is read-only on the view).
- the `FailingQueueTest` classes: they subclass `queue.Queue` and override the
  private `_put` / `_get` hooks, which the native queue does not call.
- `CSimpleQueueTest.test_is_default`: it checks that `queue.SimpleQueue` is the
  C `_queue.SimpleQueue`, which says nothing about brakes.
- the `Py*` / `C*` split itself: the C and pure-Python `queue` modules are one
  implementation here, so each test runs once per queue kind.
Nothing in the kept tests touches `mutex`, `not_empty`, `not_full`,
`all_tasks_done` or the `queue` deque, which the view does not have.
"""

from __future__ import annotations

import functools
import queue
import sys
import threading
import types
import unittest
from collections.abc import Callable
from typing import Any

import pytest

import brakes

from .conftest import wait_until

test_queue: Any = pytest.importorskip(
    "test.test_queue", reason="this Python has no test suite installed"
)

ShutDown: type[Exception] = getattr(queue, "ShutDown", brakes.QueueShutDown)


class Queue(brakes.SyncQueue[Any]):
    """`brakes.Queue(maxsize).sync`, under the name the tests look for."""

    __slots__ = ()

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(brakes.Queue(maxsize))


class LifoQueue(brakes.SyncQueue[Any]):
    """`brakes.LifoQueue(maxsize).sync`."""

    __slots__ = ()

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(brakes.LifoQueue(maxsize))


class PriorityQueue(brakes.SyncQueue[Any]):
    """`brakes.PriorityQueue(maxsize).sync`."""

    __slots__ = ()

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(brakes.PriorityQueue(maxsize))


def simple_queue() -> brakes.SyncQueue[Any]:
    return brakes.Queue().sync


brakes_queue_module = types.SimpleNamespace(
    Queue=Queue,
    LifoQueue=LifoQueue,
    PriorityQueue=PriorityQueue,
    SimpleQueue=simple_queue,
    Full=queue.Full,
    Empty=queue.Empty,
    ShutDown=ShutDown,
)


class _OnBrakes:
    queue = brakes_queue_module
    test_shrinking_queue = None


class TestQueue(_OnBrakes, test_queue.QueueTest, unittest.TestCase):  # type: ignore[misc]
    pass


class TestLifoQueue(_OnBrakes, test_queue.LifoQueueTest, unittest.TestCase):  # type: ignore[misc]
    pass


class TestPriorityQueue(_OnBrakes, test_queue.PriorityQueueTest, unittest.TestCase):  # type: ignore[misc]
    pass


class TestAsSimpleQueue(test_queue.CSimpleQueueTest):  # type: ignore[misc]
    """The unbounded queue's tests (order, many threads, references,
    reentrant puts from `__del__`), with the view as the queue."""

    queue = brakes_queue_module
    test_is_default = None

    def setUp(self) -> None:
        self.type2test = simple_queue
        self.q = self.type2test()


def test_the_suite_really_uses_brakes_queues() -> None:
    for make, native in [
        (Queue, brakes.Queue),
        (LifoQueue, brakes.LifoQueue),
        (PriorityQueue, brakes.PriorityQueue),
    ]:
        view = make(2)
        assert isinstance(view, brakes.SyncQueue)
        assert type(view.brakes_queue) is native
        assert view.maxsize == 2
    assert type(simple_queue()) is brakes.SyncQueue
    # The subclasses add no behaviour: only a name and a constructor.
    for make in (Queue, LifoQueue, PriorityQueue):
        assert {name for name in vars(make) if not name.startswith("__")} == set()
        assert make.put is brakes.SyncQueue.put and make.get is brakes.SyncQueue.get


# Python 3.13's shutdown, pinned on every version -----------------------------

KINDS: list[Callable[[int], brakes.SyncQueue[Any]]] = [
    lambda maxsize: brakes.Queue(maxsize).sync,
    lambda maxsize: brakes.LifoQueue(maxsize).sync,
    lambda maxsize: brakes.PriorityQueue(maxsize).sync,
]
KIND_IDS = ["Queue", "LifoQueue", "PriorityQueue"]


@pytest.fixture(params=KINDS, ids=KIND_IDS)
def make(request: pytest.FixtureRequest) -> Callable[[int], brakes.SyncQueue[Any]]:
    return request.param  # type: ignore[no-any-return]


def test_shutdown_error_is_the_standard_librarys_where_it_has_one() -> None:
    if sys.version_info >= (3, 13):
        assert issubclass(brakes.QueueShutDown, queue.ShutDown)
    assert ShutDown in brakes.QueueShutDown.__mro__


def test_after_shutdown_puts_fail_and_gets_drain_then_fail(
    make: Callable[[int], brakes.SyncQueue[Any]],
) -> None:
    q = make(2)
    q.put("a")
    q.put_nowait("b")
    assert not q.is_shutdown
    q.shutdown()
    assert q.is_shutdown and q.is_shut_down
    with pytest.raises(ShutDown):
        q.put("c")
    with pytest.raises(ShutDown):
        q.put_nowait("c")
    with pytest.raises(ShutDown):
        q.put("c", timeout=1.0)
    assert sorted([q.get(), q.get_nowait()]) == ["a", "b"]
    q.task_done(2)
    q.join()
    with pytest.raises(ShutDown):
        q.get()
    with pytest.raises(ShutDown):
        q.get_nowait()
    with pytest.raises(ShutDown):
        q.get(True, 1.0)
    with pytest.raises(ShutDown):
        q.get(False)


def test_immediate_shutdown_removes_the_items_and_counts_them_done(
    make: Callable[[int], brakes.SyncQueue[Any]],
) -> None:
    q = make(2)
    q.put("a")
    q.put("b")
    q.shutdown(immediate=True)
    assert q.empty() and q.qsize() == 0 and q.unfinished_tasks == 0
    with pytest.raises(ShutDown):
        q.get()
    with pytest.raises(ShutDown):
        q.get_nowait()
    with pytest.raises(ShutDown):
        q.put_nowait("c")
    with pytest.raises(ValueError):
        q.task_done()
    q.join()


def test_immediate_shutdown_leaves_items_already_got_unfinished(
    make: Callable[[int], brakes.SyncQueue[Any]],
) -> None:
    q = make(0)
    for item in "abc":
        q.put(item)
    q.get()
    q.shutdown(immediate=True)
    assert q.unfinished_tasks == 1
    q.task_done()
    q.join()


def test_shutdown_may_be_repeated_and_made_immediate(
    make: Callable[[int], brakes.SyncQueue[Any]],
) -> None:
    q = make(0)
    q.put(1)
    q.shutdown()
    q.shutdown()
    assert q.qsize() == 1
    q.shutdown(immediate=True)
    assert q.is_shutdown and q.empty()
    q.shutdown(immediate=False)
    assert q.is_shutdown


def _record(results: list[object], call: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            results.append(call())
        except Exception as error:
            results.append(error)

    return run


def test_shutdown_wakes_a_thread_waiting_to_get(
    make: Callable[[int], brakes.SyncQueue[Any]],
) -> None:
    q = make(0)
    results: list[object] = []
    getter = threading.Thread(target=_record(results, q.get))
    getter.start()
    wait_until(lambda: q.brakes_queue.stats().getters_waiting == 1)
    q.shutdown()
    getter.join(timeout=30)
    assert not getter.is_alive()
    assert len(results) == 1 and isinstance(results[0], ShutDown)


@pytest.mark.parametrize("immediate", [False, True])
def test_shutdown_wakes_threads_waiting_to_put_into_a_full_queue(
    make: Callable[[int], brakes.SyncQueue[Any]], immediate: bool
) -> None:
    q = make(2)
    q.put("a")
    q.put("b")
    results: list[object] = []
    putters = [
        threading.Thread(target=_record(results, functools.partial(q.put, item)))
        for item in ("c", "d")
    ]
    for putter in putters:
        putter.start()
    wait_until(lambda: q.brakes_queue.stats().putters_waiting == 2)
    q.shutdown(immediate)
    for putter in putters:
        putter.join(timeout=30)
        assert not putter.is_alive()
    assert len(results) == 2 and all(isinstance(r, ShutDown) for r in results)
    assert q.qsize() == (0 if immediate else 2)


@pytest.mark.parametrize("immediate", [False, True])
def test_getters_waiting_at_shutdown_of_a_full_queue(
    make: Callable[[int], brakes.SyncQueue[Any]], immediate: bool
) -> None:
    # Two items, three getters let go at once after the shutdown: a plain
    # shutdown lets two of them have an item and the third fails; an immediate
    # one removed the items, so every getter fails.
    q = make(2)
    q.put("a")
    q.put("b")
    go = threading.Event()
    results: list[object] = []

    def get() -> object:
        go.wait()
        return q.get()

    getters = [threading.Thread(target=_record(results, get)) for _ in range(3)]
    for getter in getters:
        getter.start()
    q.shutdown(immediate)
    go.set()
    for getter in getters:
        getter.join(timeout=30)
        assert not getter.is_alive()
    failed = [r for r in results if isinstance(r, ShutDown)]
    got = sorted(r for r in results if isinstance(r, str))
    if immediate:
        assert len(failed) == 3 and got == []
    else:
        assert len(failed) == 1 and got == ["a", "b"]


@pytest.mark.parametrize("immediate", [False, True])
def test_join_ends_after_shutdown_once_the_items_are_done(
    make: Callable[[int], brakes.SyncQueue[Any]], immediate: bool
) -> None:
    q = make(2)
    q.put("a")
    results: list[object] = []
    joiners = [threading.Thread(target=_record(results, q.join)) for _ in range(2)]
    for joiner in joiners:
        joiner.start()
    assert q.unfinished_tasks == 1
    q.shutdown(immediate)
    with pytest.raises(ShutDown):
        q.put("b")
    if immediate:
        with pytest.raises(ShutDown):
            q.get_nowait()
    else:
        assert q.get() == "a"
        q.task_done()
    for joiner in joiners:
        joiner.join(timeout=30)
        assert not joiner.is_alive()
    assert results == [None, None]


def test_workers_drain_a_shut_down_queue_and_join_returns(
    make: Callable[[int], brakes.SyncQueue[Any]],
) -> None:
    q = make(2)
    q.put(1)
    q.put(2)
    assert q.unfinished_tasks == q.qsize() == 2
    done: list[object] = []

    def work() -> None:
        while True:
            try:
                done.append(q.get())
            except ShutDown:
                return
            q.task_done()

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    q.shutdown()
    q.join()
    for worker in workers:
        worker.join(timeout=30)
        assert not worker.is_alive()
    assert sorted(done) == [1, 2]  # type: ignore[type-var]


@pytest.mark.parametrize("immediate", [False, True])
def test_shutdown_in_the_middle_of_many_producers_and_consumers(
    make: Callable[[int], brakes.SyncQueue[Any]], immediate: bool
) -> None:
    # Producers put numbered items until the shutdown stops them; consumers
    # take items (blocking, polling and with timeouts) until it does. Every
    # item that went in came out exactly once, or was removed by an immediate
    # shutdown; join returns at the end.
    q = make(8)
    producers, consumers = 3, 4
    half_way = threading.Event()
    put: list[list[int]] = [[] for _ in range(producers)]
    got: list[list[int]] = [[] for _ in range(consumers)]
    errors: list[BaseException] = []

    def produce(index: int) -> None:
        number = index * 1_000_000
        try:
            while True:
                q.put(number)
                put[index].append(number)
                number += 1
                if len(put[index]) == 200:
                    half_way.set()
        except ShutDown:
            pass
        except BaseException as error:
            errors.append(error)

    def consume(index: int) -> None:
        try:
            while True:
                try:
                    if index % 3 == 0:
                        item = q.get()
                    elif index % 3 == 1:
                        item = q.get(timeout=0.001)
                    else:
                        item = q.get(block=False)
                except (queue.Empty, queue.Full):
                    continue
                got[index].append(item)
                q.task_done()
        except ShutDown:
            pass
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
    threads += [threading.Thread(target=consume, args=(i,)) for i in range(consumers)]
    for thread in threads:
        thread.start()
    assert half_way.wait(timeout=60)
    q.shutdown(immediate)
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    q.join()
    assert errors == []
    assert q.empty() and q.unfinished_tasks == 0
    all_put = sorted(n for numbers in put for n in numbers)
    all_got = sorted(n for numbers in got for n in numbers)
    assert len(set(all_got)) == len(all_got)
    dropped = q.brakes_queue.stats().dropped
    assert len(all_got) + dropped == len(all_put)
    assert set(all_got) <= set(all_put)
    if not immediate:
        assert all_got == all_put
