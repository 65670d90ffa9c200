"""Helpers shared by the tests: event loops in threads, waiting on a condition."""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import functools
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Waits for a state another thread or loop brings about; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.0005)


async def wait_until_async(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0)


@contextlib.contextmanager
def ctrl_c_raises() -> Iterator[None]:
    """Makes Ctrl-C raise KeyboardInterrupt in the main thread meanwhile.

    A process started in the background by a shell that has no job control
    starts with SIGINT ignored, and then Python installs no handler for it:
    `_thread.interrupt_main()` would do nothing, and a test waiting for it
    would wait for ever.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def ctrl_c_when(condition: Callable[[], bool]) -> Iterator[None]:
    """Sends Ctrl-C (KeyboardInterrupt) to the main thread once `condition` holds."""

    def interrupt() -> None:
        wait_until(condition)
        _thread.interrupt_main()

    with ctrl_c_raises():
        helper = threading.Thread(target=interrupt)
        helper.start()
        try:
            yield
        finally:
            helper.join()


class LoopThread:
    """An asyncio event loop running in its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if not self.loop.is_closed():
            self.submit(cancel_all()).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


def run_mixed(
    thread_body: Callable[[int], None],
    task_body: Callable[[int], Coroutine[Any, Any, None]],
    threads: int = 4,
    loops: int = 2,
) -> None:
    """Runs `threads` threads of `thread_body(seed)` and, on each of `loops`
    event loops in their own threads, `task_body(seed)`; waits for all."""
    loop_threads = [LoopThread() for _ in range(loops)]
    try:
        futures = [lt.submit(task_body(i + 1)) for i, lt in enumerate(loop_threads)]
        workers = [threading.Thread(target=thread_body, args=(1000 + i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
            assert not worker.is_alive(), "a thread never finished"
        for future in futures:
            future.result(timeout=60)
    finally:
        for lt in loop_threads:
            lt.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


def on_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Runs an async test on a fresh event loop."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run
