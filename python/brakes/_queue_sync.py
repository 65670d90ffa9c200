"""`Queue.sync`: a brakes queue seen through `queue.Queue`'s API, for threads."""

from __future__ import annotations

from typing import Generic, TypeVar

from brakes._brakes import Queue

T = TypeVar("T")

_NEGATIVE_TIMEOUT = "'timeout' must be a non-negative number"


def _blocking_timeout(timeout: float | None) -> float | None:
    """`timeout` for a wait, refused with `queue.Queue`'s message when negative.

    Anything that is not a number of seconds (a string, a bool, NaN) goes on to
    the native call, whose error names it.
    """
    if timeout is not None:
        try:
            negative = timeout < 0
        except TypeError:
            return timeout
        if negative:
            raise ValueError(_NEGATIVE_TIMEOUT)
    return timeout


class SyncQueue(Generic[T]):
    """A view of a brakes queue with `queue.Queue`'s API, for thread code.

    `q.sync` is that view: code written for `queue.Queue` (a `put`/`get` with
    `block` and `timeout`, `task_done`, `join`, `shutdown` as in Python 3.13)
    runs unchanged on a queue that asyncio tasks share. There is one queue:
    what a thread puts on `q.sync`, a task gets with `await q.get()`, and the
    other way round. A waiting thread holds no GIL. The errors are the standard
    library's: `queue.Full`, `queue.Empty` and, from Python 3.13,
    `queue.ShutDown` (before 3.13, `brakes.QueueShutDown`).

    `brakes_queue` is the queue it views (`.queue` is not used: on a
    `queue.Queue` it is the deque of items, which a brakes queue does not expose).
    Every `q.sync` is a new view; views of one queue compare equal.

    >>> import brakes
    >>> q = brakes.Queue(2)
    >>> jobs = q.sync
    >>> jobs.put("a")
    >>> jobs.put_nowait("b")
    >>> jobs.full(), jobs.qsize()
    (True, 2)
    >>> jobs.put("c", timeout=0.01)
    Traceback (most recent call last):
      ...
    brakes.QueueFull: the queue is full (maxsize=2)
    >>> q.get_nowait(), jobs.get()
    ('a', 'b')
    >>> jobs.task_done(2)
    >>> jobs.join()
    """

    __slots__ = ("__weakref__", "_queue")

    def __init__(self, queue: Queue[T]) -> None:
        if not isinstance(queue, Queue):
            raise TypeError(f"queue must be a brakes.Queue, got {type(queue).__name__!r}")
        self._queue = queue

    @property
    def brakes_queue(self) -> Queue[T]:
        """The brakes queue this view shows."""
        return self._queue

    @property
    def maxsize(self) -> int:
        """The queue's bound; 0 or less is unbounded."""
        return self._queue.maxsize

    @property
    def unfinished_tasks(self) -> int:
        """Items put and not yet marked done by `task_done`, as on `queue.Queue`."""
        return self._queue.stats().unfinished

    @property
    def is_shutdown(self) -> bool:
        """`queue.Queue`'s name (Python 3.13) for `is_shut_down`."""
        return self._queue.is_shut_down

    @property
    def is_shut_down(self) -> bool:
        """True once `shutdown()` was called (on this view or the queue)."""
        return self._queue.is_shut_down

    def qsize(self) -> int:
        """The number of items in the queue."""
        return self._queue.qsize()

    def empty(self) -> bool:
        """True if the queue holds no item."""
        return self._queue.empty()

    def full(self) -> bool:
        """True if the queue is bounded and holds `maxsize` items."""
        return self._queue.full()

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Puts `item`, waiting up to `timeout` seconds for room (`None`: as long
        as it takes); `queue.Full` if there is none. With `block=False` it does
        not wait and `timeout` is ignored, as in `queue.Queue`. A negative
        `timeout` is a `ValueError` (here on an unbounded queue too).
        """
        if not block:
            self._queue.put_nowait(item)
        else:
            self._queue.put_blocking(item, timeout=_blocking_timeout(timeout))

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Removes and returns an item, waiting up to `timeout` seconds for one
        (`None`: as long as it takes); `queue.Empty` if none came. With
        `block=False` it does not wait and `timeout` is ignored.
        """
        if not block:
            return self._queue.get_nowait()
        return self._queue.get_blocking(timeout=_blocking_timeout(timeout))

    def put_nowait(self, item: T) -> None:
        """`put(item, block=False)`."""
        self._queue.put_nowait(item)

    def get_nowait(self) -> T:
        """`get(block=False)`."""
        return self._queue.get_nowait()

    def task_done(self, n: int = 1) -> None:
        """Marks `n` items got earlier as processed; `ValueError` (marking
        nothing) if fewer than `n` are unfinished.
        """
        self._queue.task_done(n)

    def join(self) -> None:
        """Waits until every item put has been marked done (`task_done`).

        For a bounded wait, `q.join_blocking(timeout=...)` raises `TimeoutError`.
        """
        self._queue.join_blocking()

    def shutdown(self, immediate: bool = False) -> None:
        """Ends the queue, as `queue.Queue.shutdown` in Python 3.13: puts fail
        with `ShutDown` from now on, and gets do once the queue is empty. With
        `immediate=True` the items left are removed and counted as done.
        """
        self._queue.shutdown(bool(immediate))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SyncQueue):
            return self._queue is other._queue
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._queue)

    def __repr__(self) -> str:
        return f"<brakes.SyncQueue of {self._queue!r}>"


SyncQueue.__module__ = "brakes"
