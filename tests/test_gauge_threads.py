"""The Gauge from plain threads: blocking waits, timeouts, interrupts, `with`."""

from __future__ import annotations

import threading
import time

import pytest

from brakes import Gauge, Overloaded

from .conftest import LoopThread, ctrl_c_raises, ctrl_c_when, wait_until


def test_acquire_blocking_returns_true_and_holds_the_permits() -> None:
    gauge = Gauge(3)
    assert gauge.acquire_blocking(2) is True
    assert gauge.in_flight == 2


def test_acquire_blocking_gives_up_after_its_timeout() -> None:
    gauge = Gauge(1)
    gauge.acquire_blocking()
    started = time.monotonic()
    with pytest.raises(Overloaded, match=r"within 0\.05 s"):
        gauge.acquire_blocking(timeout=0.05)
    assert time.monotonic() - started >= 0.045
    assert gauge.waiting == 0 and gauge.stats().timed_out == 1


def test_acquire_blocking_with_zero_timeout_never_parks() -> None:
    gauge = Gauge(1)
    gauge.acquire_blocking()
    with pytest.raises(Overloaded, match="without waiting"):
        gauge.acquire_blocking(timeout=0)
    assert gauge.stats().rejected == 1


def test_a_parked_thread_releases_the_gil() -> None:
    gauge = Gauge(1)
    gauge.acquire_blocking()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (gauge.acquire_blocking(), done.set()))
    thread.start()
    wait_until(lambda: gauge.waiting == 1)
    # If the parked thread held the GIL, none of this Python code could run.
    total = sum(range(200_000))
    assert total > 0
    gauge.release()
    thread.join(timeout=5)
    assert done.is_set()


def test_threads_and_tasks_are_served_in_one_fifo_order() -> None:
    gauge = Gauge(1)
    gauge.acquire_blocking()
    order: list[str] = []
    lt = LoopThread()
    try:
        threads = []
        futures = []
        for i in range(6):
            if i % 2:

                async def task(i: int = i) -> None:
                    await gauge.acquire()
                    order.append(f"task{i}")
                    gauge.release()

                futures.append(lt.submit(task()))
            else:

                def body(i: int = i) -> None:
                    gauge.acquire_blocking()
                    order.append(f"thread{i}")
                    gauge.release()

                threads.append(threading.Thread(target=body))
                threads[-1].start()
            wait_until(lambda i=i: gauge.waiting == i + 1)  # type: ignore[misc]
        gauge.release()
        for t in threads:
            t.join(timeout=5)
        for f in futures:
            f.result(timeout=5)
        assert order == [f"thread{i}" if i % 2 == 0 else f"task{i}" for i in range(6)]
        assert gauge.in_flight == 0
    finally:
        lt.close()


def test_keyboard_interrupt_stops_a_blocking_wait_and_leaves_the_queue() -> None:
    gauge = Gauge(1)
    gauge.acquire_blocking()

    with ctrl_c_when(lambda: gauge.waiting == 1):
        with pytest.raises(KeyboardInterrupt):
            gauge.acquire_blocking()
    assert gauge.waiting == 0 and gauge.in_flight == 1
    assert gauge.stats().cancelled == 1


def test_ctrl_c_that_came_before_a_grant_wins_and_the_grant_goes_back() -> None:
    # Ctrl-C, then a grant, both while the main thread is parked: the wait is
    # interrupted and the permit goes back, rather than taken and lost to the
    # exception raised as the call returns.
    import _thread

    gauge = Gauge(1)
    gauge.acquire_blocking()

    def interrupt_then_grant() -> None:
        wait_until(lambda: gauge.waiting == 1)
        _thread.interrupt_main()
        gauge.release()

    with ctrl_c_raises():
        helper = threading.Thread(target=interrupt_then_grant)
        helper.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                gauge.acquire_blocking()
        finally:
            helper.join()
    assert gauge.in_flight == 0 and gauge.waiting == 0
    assert gauge.try_acquire()


def test_with_holds_one_permit_and_releases_on_exception() -> None:
    gauge = Gauge(2)
    with gauge as entered:
        assert entered is True
        assert gauge.in_flight == 1
    with pytest.raises(KeyError):
        with gauge:
            raise KeyError("inside")
    assert gauge.in_flight == 0


def test_with_max_wait_zero_rejects_at_once_when_full() -> None:
    gauge = Gauge(1, max_wait=0)
    with gauge:
        with pytest.raises(Overloaded):
            with gauge:
                pytest.fail("entered a full gauge")
    assert gauge.in_flight == 0


def test_with_max_wait_admits_a_permit_that_comes_back_in_time() -> None:
    gauge = Gauge(1, max_wait=5)
    gauge.acquire_blocking()

    def release_once_queued() -> None:
        wait_until(lambda: gauge.waiting == 1)
        gauge.release()

    queued = threading.Thread(target=release_once_queued)
    queued.start()
    with gauge:
        assert gauge.in_flight == 1
    queued.join()
    assert gauge.in_flight == 0
