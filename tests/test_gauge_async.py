"""The Gauge from asyncio: the awaitable, FIFO order, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import inspect
import threading

import pytest

from brakes import Gauge, Overloaded

from .conftest import LoopThread, wait_until, wait_until_async


def test_acquire_on_a_free_gauge_finishes_on_its_first_step_with_true() -> None:
    gauge = Gauge(1)
    coro = gauge.acquire()
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value is True
    assert gauge.in_flight == 1


def test_acquire_does_its_work_only_when_stepped() -> None:
    gauge = Gauge(1)
    never_awaited = gauge.acquire()
    closed = gauge.acquire()
    closed.close()
    assert gauge.in_flight == 0
    with pytest.warns(RuntimeWarning, match="coroutine 'Gauge.acquire' was never awaited"):
        del never_awaited
        gc.collect()
    assert gauge.in_flight == 0 and gauge.try_acquire()


def test_the_awaitable_is_a_coroutine_to_asyncio() -> None:
    coro = Gauge(1).acquire()
    assert isinstance(coro, collections.abc.Coroutine)
    assert asyncio.iscoroutine(coro)
    assert inspect.isawaitable(coro)
    coro.close()


def test_an_awaitable_cannot_be_awaited_twice() -> None:
    async def main() -> None:
        gauge = Gauge(2)
        coro = gauge.acquire()
        assert await coro is True
        with pytest.raises(RuntimeError, match="reuse"):
            await coro

    asyncio.run(main())


def test_awaiting_a_full_gauge_outside_a_running_loop_raises_runtime_error() -> None:
    gauge = Gauge(1)
    gauge.try_acquire()
    coro = gauge.acquire()
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        coro.send(None)
    assert gauge.waiting == 0 and gauge.in_flight == 1


def test_create_task_gather_taskgroup_and_wait_for_accept_acquire() -> None:
    async def main() -> None:
        gauge = Gauge(10)
        assert await asyncio.create_task(gauge.acquire()) is True
        assert await asyncio.gather(gauge.acquire(), gauge.acquire(2)) == [True, True]
        async with asyncio.TaskGroup() as group:
            task = group.create_task(gauge.acquire(3))
        assert task.result() is True
        assert await asyncio.wait_for(gauge.acquire(), timeout=1) is True
        assert await asyncio.ensure_future(gauge.acquire()) is True
        assert gauge.in_flight == 9

    asyncio.run(main())


def test_twenty_waiters_are_served_in_arrival_order() -> None:
    async def main() -> list[int]:
        gauge = Gauge(1)
        await gauge.acquire()
        order: list[int] = []

        async def worker(i: int) -> None:
            async with gauge:
                order.append(i)
                await asyncio.sleep(0)

        tasks = []
        for i in range(20):
            tasks.append(asyncio.create_task(worker(i)))
            await wait_until_async(lambda: gauge.waiting == len(tasks))
        gauge.release()
        await asyncio.gather(*tasks)
        assert gauge.in_flight == 0
        return order

    assert asyncio.run(main()) == list(range(20))


def test_a_heavy_waiter_at_the_head_is_not_overtaken_by_light_ones() -> None:
    async def main() -> list[str]:
        gauge = Gauge(3)
        await gauge.acquire(2)
        order: list[str] = []

        async def take(name: str, n: int) -> None:
            await gauge.acquire(n)
            order.append(name)

        heavy = asyncio.create_task(take("heavy", 3))
        await wait_until_async(lambda: gauge.waiting == 1)
        light = asyncio.create_task(take("light", 1))
        await wait_until_async(lambda: gauge.waiting == 2)
        assert gauge.available == 1 and not gauge.try_acquire()
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == []
        gauge.release(2)
        await heavy
        gauge.release(3)
        await light
        return order

    assert asyncio.run(main()) == ["heavy", "light"]


def test_a_timeout_raises_overloaded_and_leaves_the_queue() -> None:
    async def main() -> None:
        gauge = Gauge(1)
        await gauge.acquire()
        with pytest.raises(Overloaded, match=r"within 0\.01 s") as info:
            await gauge.acquire(timeout=0.01)
        assert info.value.retry_after is None
        assert gauge.waiting == 0 and gauge.in_flight == 1
        assert gauge.stats().timed_out == 1

    asyncio.run(main())


def test_a_zero_timeout_fails_at_once_without_a_future() -> None:
    gauge = Gauge(1)
    gauge.try_acquire()
    with pytest.raises(Overloaded, match="without waiting"):
        # No running loop is needed: the call never waits.
        gauge.acquire(timeout=0).send(None)
    assert gauge.stats().rejected == 1


def test_cancelled_waiter_leaves_the_queue_and_the_next_one_moves_up() -> None:
    async def main() -> None:
        gauge = Gauge(1)
        await gauge.acquire()
        first = asyncio.create_task(gauge.acquire())
        second = asyncio.create_task(gauge.acquire())
        await wait_until_async(lambda: gauge.waiting == 2)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert gauge.waiting == 1
        gauge.release()
        assert await second is True
        assert gauge.in_flight == 1 and gauge.stats().cancelled == 1

    asyncio.run(main())


def test_cancelled_waiter_returns_a_permit_granted_before_it_ran() -> None:
    async def main() -> None:
        gauge = Gauge(1)
        await gauge.acquire()
        waiter = asyncio.create_task(gauge.acquire())
        await wait_until_async(lambda: gauge.waiting == 1)
        gauge.release()  # grants the waiter: its future is resolved ...
        assert gauge.in_flight == 1 and gauge.waiting == 0
        waiter.cancel()  # ... and it is cancelled before it gets to run.
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gauge.in_flight == 0
        assert gauge.try_acquire()

    asyncio.run(main())


def test_grant_from_another_thread_racing_a_cancel_never_leaks(loop_thread: LoopThread) -> None:
    gauge = Gauge(1)
    for round_ in range(200):
        gauge.acquire_blocking()

        async def wait_then_maybe_cancel(round_: int = round_) -> bool:
            task = asyncio.create_task(gauge.acquire())
            await wait_until_async(lambda: gauge.waiting == 1)
            releaser = threading.Thread(target=gauge.release)
            releaser.start()
            if round_ % 2:
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return False
            releaser.join()
            return True

        got_it = loop_thread.submit(wait_then_maybe_cancel()).result(timeout=10)
        wait_until(lambda: gauge.waiting == 0)
        assert gauge.in_flight == (1 if got_it else 0), f"round {round_}"
        if got_it:
            gauge.release()
    assert gauge.in_flight == 0


def test_wait_for_timing_out_a_waiting_acquire_leaves_no_trace() -> None:
    async def main() -> None:
        gauge = Gauge(1)
        await gauge.acquire()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(gauge.acquire(), timeout=0.01)
        assert gauge.waiting == 0 and gauge.in_flight == 1

    asyncio.run(main())


def test_closing_or_dropping_a_waiting_awaitable_leaves_the_queue() -> None:
    async def main() -> None:
        gauge = Gauge(1)
        await gauge.acquire()
        closed = gauge.acquire()
        future = closed.send(None)
        assert isinstance(future, asyncio.Future)
        assert gauge.waiting == 1
        closed.close()
        assert gauge.waiting == 0
        dropped = gauge.acquire()
        dropped.send(None)
        assert gauge.waiting == 1
        del dropped
        gc.collect()
        assert gauge.waiting == 0

    asyncio.run(main())


def test_throw_into_a_waiting_awaitable_raises_it_and_leaves_the_queue() -> None:
    async def main() -> None:
        gauge = Gauge(1)
        await gauge.acquire()
        coro = gauge.acquire()
        coro.send(None)
        with pytest.raises(KeyError, match="boom"):
            coro.throw(KeyError("boom"))
        with pytest.raises(ValueError):
            coro.throw(ValueError)
        assert gauge.waiting == 0 and gauge.in_flight == 1

    asyncio.run(main())


def test_async_with_holds_one_permit_and_returns_none() -> None:
    async def main() -> None:
        gauge = Gauge(2)
        async with gauge as value:
            assert value is None
            assert gauge.in_flight == 1
        assert gauge.in_flight == 0

    asyncio.run(main())


def test_async_with_releases_when_the_body_raises() -> None:
    async def main() -> None:
        gauge = Gauge(1)
        with pytest.raises(KeyError):
            async with gauge:
                raise KeyError("inside")
        assert gauge.in_flight == 0

    asyncio.run(main())


def test_async_with_max_wait_zero_fails_fast_when_full() -> None:
    async def main() -> None:
        gauge = Gauge(1, max_wait=0)
        async with gauge:
            with pytest.raises(Overloaded):
                async with gauge:
                    pytest.fail("entered a full gauge")
            # The refusal comes at call time: nothing is queued, no timer runs.
            with pytest.raises(Overloaded):
                gauge.__aenter__()
        assert gauge.in_flight == 0 and gauge.waiting == 0
        stats = gauge.stats()
        assert (stats.rejected, stats.waited, stats.timed_out) == (2, 0, 0)

    asyncio.run(main())


def test_async_with_max_wait_waits_up_to_the_bound_then_gives_up() -> None:
    async def main() -> None:
        gauge = Gauge(1, max_wait=0.02)
        await gauge.acquire()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Overloaded):
            async with gauge:
                pytest.fail("entered a full gauge")
        assert loop.time() - started >= 0.015
        # A permit that comes back within the bound lets the waiter in.
        loop.call_later(0.005, gauge.release)
        async with gauge:
            assert gauge.in_flight == 1

    asyncio.run(main())


def test_explicit_timeout_overrides_max_wait() -> None:
    async def main() -> None:
        gauge = Gauge(1, max_wait=0)
        await gauge.acquire()
        waiter = asyncio.create_task(gauge.acquire(timeout=5))
        await wait_until_async(lambda: gauge.waiting == 1)
        gauge.release()
        assert await waiter is True

    asyncio.run(main())


def test_release_from_another_thread_wakes_a_task(loop_thread: LoopThread) -> None:
    gauge = Gauge(1)
    gauge.acquire_blocking()
    result = loop_thread.submit(gauge.acquire())
    wait_until(lambda: gauge.waiting == 1)
    gauge.release()
    assert result.result(timeout=5) is True
    assert gauge.in_flight == 1


def test_tasks_on_two_loops_and_a_thread_share_one_gauge() -> None:
    gauge = Gauge(1)
    gauge.acquire_blocking()
    loops = [LoopThread(), LoopThread()]
    try:
        order: list[str] = []

        async def task(name: str) -> None:
            async with gauge:
                order.append(name)

        futures = []
        for i, lt in enumerate(loops):
            futures.append(lt.submit(task(f"loop{i}")))
            wait_until(lambda i=i: gauge.waiting == i + 1)  # type: ignore[misc]

        def thread_body() -> None:
            with gauge:
                order.append("thread")

        thread = threading.Thread(target=thread_body)
        thread.start()
        wait_until(lambda: gauge.waiting == 3)
        gauge.release()
        for future in futures:
            future.result(timeout=5)
        thread.join(timeout=5)
        assert order == ["loop0", "loop1", "thread"]
        assert gauge.in_flight == 0
    finally:
        for lt in loops:
            lt.close()


def test_a_waiter_whose_loop_closed_passes_its_grant_on() -> None:
    gauge = Gauge(1)
    gauge.acquire_blocking()
    dead_loop = asyncio.new_event_loop()
    orphan = dead_loop.create_task(gauge.acquire())
    dead_loop.run_until_complete(asyncio.sleep(0))
    assert gauge.waiting == 1
    dead_loop.close()  # the task is left waiting on a loop that is gone

    got = threading.Event()
    thread = threading.Thread(target=lambda: (gauge.acquire_blocking(), got.set()))
    thread.start()
    wait_until(lambda: gauge.waiting == 2)
    gauge.release()
    thread.join(timeout=5)
    assert got.is_set()
    assert gauge.in_flight == 1 and gauge.waiting == 0
    assert not orphan.done()


def test_a_waiter_whose_loop_closed_in_another_thread_passes_its_grant_on() -> None:
    gauge = Gauge(1)
    gauge.acquire_blocking()
    orphans: list[asyncio.Task[bool]] = []

    def run_and_abandon_a_loop() -> None:
        dead_loop = asyncio.new_event_loop()
        orphans.append(dead_loop.create_task(gauge.acquire()))
        dead_loop.run_until_complete(asyncio.sleep(0))
        dead_loop.close()

    thread = threading.Thread(target=run_and_abandon_a_loop)
    thread.start()
    thread.join(timeout=5)
    assert gauge.waiting == 1
    gauge.release()  # call_soon_threadsafe finds the loop closed
    assert gauge.waiting == 0 and gauge.in_flight == 0
    assert gauge.try_acquire()


def test_fail_fast_callers_take_free_permits_while_a_granted_task_resumes() -> None:
    async def main() -> None:
        gauge = Gauge(3)
        await gauge.acquire(3)
        waiter = asyncio.create_task(gauge.acquire())
        await wait_until_async(lambda: gauge.waiting == 1)
        gauge.release(3)  # the waiter is granted but has not run yet
        # An acquire() that would wait goes behind it, as with asyncio ...
        assert gauge.locked()
        # ... but a caller that never waits takes a free permit: it passes nobody.
        assert gauge.try_acquire()
        assert gauge.acquire_blocking(timeout=0)
        assert await waiter is True
        assert gauge.in_flight == 3

    asyncio.run(main())
