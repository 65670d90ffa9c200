"""Waits whose waiters ahead can never run: loops that block, stop or close
while someone waits. A deadline is kept whatever the waiters ahead do, and a
grant that cannot be delivered goes back."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from brakes import Gauge, LeakyBucket, Overloaded, Queue, TokenBucket

from .conftest import LoopThread, wait_until

Bucket = Callable[[], "TokenBucket | LeakyBucket"]
BUCKETS: list[Any] = [
    pytest.param(lambda: TokenBucket(20, burst=1), id="token"),
    pytest.param(lambda: LeakyBucket(20), id="leaky"),
]


def block_loop(lt: LoopThread) -> threading.Event:
    """Makes `lt`'s loop busy (a callback that blocks) until the event is set."""
    release = threading.Event()
    entered = threading.Event()

    def busy() -> None:
        entered.set()
        release.wait(60)

    lt.loop.call_soon_threadsafe(busy)
    assert entered.wait(10)
    return release


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize("make", BUCKETS)
def test_a_thread_behind_a_task_on_a_busy_loop_is_served_at_its_own_turn(make: Bucket) -> None:
    bucket = make()
    assert bucket.try_acquire()
    lt = LoopThread()
    try:
        task = lt.submit(bucket.acquire())
        wait_until(lambda: bucket.stats().waiting == 1)
        release = block_loop(lt)
        # The task's turn comes while its loop cannot run; the thread behind
        # it still gets its token at its own turn, not when the loop is free.
        thread, result = in_thread(lambda: bucket.acquire_blocking(timeout=30))
        thread.join(30)
        served_while_blocked = not thread.is_alive()
        release.set()
        assert served_while_blocked
        assert result == [True]
        assert task.result(30) is True
        assert bucket.stats().acquired == 3
    finally:
        lt.close()


@pytest.mark.parametrize("make", BUCKETS)
def test_a_task_on_a_closed_loop_does_not_hold_the_line(make: Bucket) -> None:
    bucket = make()
    assert bucket.try_acquire()
    lt = LoopThread()
    waiting = lt.submit(bucket.acquire())
    wait_until(lambda: bucket.stats().waiting == 1)
    # The loop stops and closes with its task still waiting.
    lt.loop.call_soon_threadsafe(lt.loop.stop)
    lt.thread.join(10)
    lt.loop.close()
    thread, result = in_thread(lambda: bucket.acquire_blocking(timeout=30))
    thread.join(30)
    assert not thread.is_alive()
    assert result == [True]
    assert not waiting.done()
    del waiting, lt
    gc.collect()
    assert bucket.stats().waiting == 0


def test_a_gauge_wait_keeps_its_deadline_behind_a_task_on_a_busy_loop() -> None:
    gauge = Gauge(1)
    assert gauge.try_acquire()
    lt = LoopThread()
    try:
        task = lt.submit(gauge.acquire())
        wait_until(lambda: gauge.stats().waiting == 1)
        release = block_loop(lt)
        gauge.release()  # granted to the task, which cannot run yet
        thread, result = in_thread(lambda: gauge.acquire_blocking(timeout=0.05))
        thread.join(30)
        ended_while_blocked = not thread.is_alive()
        release.set()
        assert ended_while_blocked
        assert len(result) == 1
        assert isinstance(result[0], Overloaded)
        assert task.result(30) is True
        gauge.release()
        assert gauge.available == 1
    finally:
        lt.close()


def stopped_loop_with(make_wait: Callable[[], Any]) -> tuple[LoopThread, Any]:
    """A loop thread whose loop runs a task waiting on `make_wait()`, then stops
    (not closed): its ready callbacks stay queued and never run."""
    lt = LoopThread()
    future = lt.submit(make_wait())
    return lt, future


@pytest.mark.parametrize("kind", ["gauge", "queue"])
def test_a_grant_to_a_stopped_loop_goes_back_once_the_loop_is_gone(kind: str) -> None:
    gauge = Gauge(1)
    queue: Queue[int] = Queue(1)
    if kind == "gauge":
        assert gauge.try_acquire()
        lt, waiting = stopped_loop_with(gauge.acquire)
        wait_until(lambda: gauge.stats().waiting == 1)
    else:
        lt, waiting = stopped_loop_with(queue.get)
        wait_until(lambda: queue.stats().getters_waiting == 1)
    lt.loop.call_soon_threadsafe(lt.loop.stop)
    lt.thread.join(10)
    # Granted to a task whose loop is stopped: the wake-up is queued on the
    # loop, and nothing will run it.
    if kind == "gauge":
        gauge.release()
        assert gauge.available == 0
    else:
        queue.put_nowait(7)
        assert queue.qsize() == 0
    loop_ref = weakref.ref(lt.loop)
    lt.loop.close()
    del lt, waiting
    gc.collect()
    # The loop, its task and the task's future are collected, and the grant
    # is back where it came from.
    assert loop_ref() is None
    if kind == "gauge":
        assert gauge.available == 1
        assert gauge.try_acquire()
    else:
        assert queue.get_nowait() == 7


def test_waiters_left_on_a_closed_loop_are_collected() -> None:
    gauge = Gauge(1)
    assert gauge.try_acquire()
    loop = asyncio.new_event_loop()
    tasks = [loop.create_task(gauge.acquire()) for _ in range(5)]
    loop.run_until_complete(asyncio.sleep(0))
    assert gauge.stats().waiting == 5
    refs = [weakref.ref(t) for t in tasks] + [weakref.ref(loop)]
    loop.close()
    del tasks, loop
    gc.collect()
    assert [r() for r in refs] == [None] * 6
    assert gauge.stats().waiting == 0
    gauge.release()
    assert gauge.available == 1
