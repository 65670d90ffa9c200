"""A fixed set of workers, threads or tasks, fed through a bounded channel."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
)
from dataclasses import dataclass
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    Never,
    ParamSpec,
    Self,
    TypeVar,
    cast,
    overload,
)

from brakes import _workers_async, _workers_sync
from brakes._brakes import Channel, Gauge, QueueEmpty, QueueFull, QueueShutDown, Reorder, Tally
from brakes._calls import is_async_callable
from brakes._checks import check_callable, check_count, check_flag, check_name
from brakes._own_loop import OwnLoop

__all__ = ["PoolStats", "WorkerPool"]

_T = TypeVar("_T")
_R = TypeVar("_R")
_P = ParamSpec("_P")
_ThreadOrAsync = Literal["thread", "async"]
# The pool's mode, for type checkers: `WorkerPool(4)` is a
# `WorkerPool[Literal["thread"]]`, whose `submit` returns a
# `concurrent.futures.Future`; `WorkerPool(4, mode="async")` a
# `WorkerPool[Literal["async"]]`, whose `submit` is awaited. A bare
# `WorkerPool` may be either: its `submit` and `map` are `Any`.
if TYPE_CHECKING:
    from typing_extensions import TypeVar as TypeVarWithDefault

    _Mode = TypeVarWithDefault("_Mode", bound=_ThreadOrAsync, covariant=True, default=Any)
else:  # Python 3.11's TypeVar takes no default, which only type checkers read.
    _Mode = TypeVar("_Mode", bound=_ThreadOrAsync, covariant=True)

# What Reorder.pop returns when the next result is not there yet.
_NOT_YET = object()
# How many items `map` reads ahead of its workers by default: enough that
# threads pass items in runs rather than one GIL hand-off each.
_READ_AHEAD = 256


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of a `WorkerPool`."""

    mode: Literal["thread", "async"]
    workers: int
    busy: int
    """Workers running a job now."""
    queued: int
    """Jobs waiting for a worker."""
    submitted: int
    completed: int
    failed: int
    """Jobs whose function raised."""
    rejected: int
    """Submissions refused at once (overflow="reject")."""
    cancelled: int
    """Jobs cancelled before they started."""


class _Finished:
    """An awaitable that is already done: `shutdown()` of a thread pool."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


class WorkerPool(Generic[_Mode]):
    """`workers` workers that run the functions given to them, at most
    `workers` at a time.

    mode="thread": a fixed set of threads; `submit` returns a
    `concurrent.futures.Future`. mode="async": that many tasks on the running
    loop; `await pool.submit(...)` returns the result. Plain functions in an
    async pool run in a thread; async functions in a thread pool run on a
    loop of the pool's own.

    `queue_size=0` hands a job straight to a free worker: `submit` waits
    while all are busy (or, with `overflow="reject"`, raises `QueueFull`).
    With `queue_size=n`, up to n jobs wait for a worker.

    >>> with WorkerPool(3) as pool:
    ...     list(pool.map(lambda x: x * 2, range(5)))
    [0, 2, 4, 6, 8]
    """

    @overload
    def __init__(
        self: WorkerPool[Literal["thread"]],
        workers: int,
        *,
        queue_size: int = 0,
        overflow: Literal["block", "reject"] = "block",
        mode: Literal["thread"] = "thread",
        name: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: WorkerPool[Literal["async"]],
        workers: int,
        *,
        queue_size: int = 0,
        overflow: Literal["block", "reject"] = "block",
        mode: Literal["async"],
        name: str | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: WorkerPool[Any],
        workers: int,
        *,
        queue_size: int = 0,
        overflow: Literal["block", "reject"] = "block",
        mode: _ThreadOrAsync,
        name: str | None = None,
    ) -> None: ...

    def __init__(
        self,
        workers: int,
        *,
        queue_size: int = 0,
        overflow: Literal["block", "reject"] = "block",
        mode: Literal["thread", "async"] = "thread",
        name: str | None = None,
    ) -> None:
        self._name = check_name(name)
        self._workers = check_count("workers", workers, 1)
        self._queue_size = check_count("queue_size", queue_size, 0)
        if overflow not in ("block", "reject"):
            raise ValueError(f"overflow must be 'block' or 'reject', got {overflow!r}")
        if mode not in ("thread", "async"):
            raise ValueError(f"mode must be 'thread' or 'async', got {mode!r}")
        self._reject = overflow == "reject"
        self._mode: Literal["thread", "async"] = mode
        # Room for every job submitted and not yet finished: one per worker,
        # plus the queue. The room admits a job (or refuses it, exactly when
        # every worker is busy and the queue is full); the channel, of the
        # queue's size, carries it to a worker.
        self._room = Gauge(self._workers + self._queue_size)
        self._jobs: Channel[_Job] = Channel(self._queue_size)
        self._lock = threading.Lock()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._own_loop = OwnLoop("brakes-pool-loop")
        self._busy = Tally()
        self._submitted = Tally()
        self._completed = Tally()
        self._failed = Tally()
        self._rejected = Tally()
        self._cancelled = Tally()
        # Dropped without shutdown(), the pool ends its workers (as
        # ThreadPoolExecutor does): the channel's end wakes them.
        weakref.finalize(self, _collected, self._jobs, self._own_loop)
        if mode == "thread":
            self._start_threads()

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def mode(self) -> _Mode:
        return cast(_Mode, self._mode)

    # Workers

    def _start_threads(self) -> None:
        for n in range(self._workers):
            thread = threading.Thread(
                target=_workers_sync.pool_worker_sync,
                args=(weakref.ref(self), self._jobs),
                name=f"brakes-pool-{n}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _start_workers_sync(self) -> None:
        """A thread pool's workers start with it."""

    async def _start_workers_async(self) -> None:
        """Starts an async pool's tasks on the loop it is first used on."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._loop is None:
                self._loop = loop
                self._tasks = [
                    loop.create_task(
                        _workers_async.pool_worker_async(weakref.ref(self), self._jobs)
                    )
                    for _ in range(self._workers)
                ]
        if self._loop is not loop:
            raise RuntimeError(
                "an async WorkerPool is bound to the event loop it was first used on"
            )

    def _caller_sync(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` as a thread calls it: an async function on the pool's loop."""
        if is_async_callable(fn):
            return lambda *args, **kwargs: self._own_loop.call(fn, *args, **kwargs)
        return fn

    def _caller_async(self, fn: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
        """`fn` as a task awaits it: a plain function in a thread."""
        if is_async_callable(fn):
            return fn
        return lambda *args, **kwargs: asyncio.to_thread(fn, *args, **kwargs)

    def _job_done(self) -> None:
        self._room.release()

    # Handing jobs over

    def _closed_error(self) -> RuntimeError:
        return RuntimeError("cannot submit to a WorkerPool after shutdown")

    def _shut_down_error(self) -> concurrent.futures.CancelledError:
        return concurrent.futures.CancelledError("the pool was shut down")

    def _full_error(self) -> QueueFull:
        return QueueFull(
            f"all {self._workers} workers are busy and {self._queue_size} jobs wait "
            "(overflow='reject')"
        )

    # A pool of unknown mode, `WorkerPool[Any]` (a bare `WorkerPool`
    # annotation), matches only `self: WorkerPool[Never]`: its result is Any.
    # A thread pool's future holds what an async function returns once
    # awaited (it runs on the pool's loop), as an async pool's await does.
    @overload
    def submit(
        self: WorkerPool[Never], fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any: ...

    @overload
    def submit(
        self: WorkerPool[Literal["thread"]],
        fn: Callable[_P, Coroutine[Any, Any, _R]],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> concurrent.futures.Future[_R]: ...

    @overload
    def submit(
        self: WorkerPool[Literal["thread"]],
        fn: Callable[_P, _R],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> concurrent.futures.Future[_R]: ...

    @overload
    def submit(
        self: WorkerPool[Literal["async"]],
        fn: Callable[_P, Coroutine[Any, Any, _R]],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Coroutine[Any, Any, _R]: ...

    @overload
    def submit(
        self: WorkerPool[Literal["async"]],
        fn: Callable[_P, _R],
        /,
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Coroutine[Any, Any, _R]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Runs `fn(*args, **kwargs)` on a worker. A thread pool returns a
        `concurrent.futures.Future` once a worker (or a place in the queue)
        took the job; an async pool returns an awaitable of the result."""
        check_callable("fn", fn)
        if self._mode == "async":
            return self._submit_async(fn, args, kwargs)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        _workers_sync.put_job_sync(self, _Submitted(future, fn, args, kwargs))
        return future

    async def _submit_async(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        future = asyncio.get_running_loop().create_future()
        await _workers_async.put_job_async(self, _Submitted(future, fn, args, kwargs))
        # Cancelling this await cancels the future: a job not started yet
        # is then skipped.
        return await future

    @overload
    def map(
        self: WorkerPool[Never],
        fn: Callable[[Any], Any],
        iterable: Iterable[Any] | AsyncIterable[Any],
        *,
        ordered: bool = True,
        window: int | None = None,
    ) -> Any: ...

    @overload
    def map(
        self: WorkerPool[Literal["thread"]],
        fn: Callable[[_T], Coroutine[Any, Any, _R]],
        iterable: Iterable[_T],
        *,
        ordered: bool = True,
        window: int | None = None,
    ) -> Iterator[_R]: ...

    @overload
    def map(
        self: WorkerPool[Literal["thread"]],
        fn: Callable[[_T], _R],
        iterable: Iterable[_T],
        *,
        ordered: bool = True,
        window: int | None = None,
    ) -> Iterator[_R]: ...

    @overload
    def map(
        self: WorkerPool[Literal["async"]],
        fn: Callable[[_T], Coroutine[Any, Any, _R]],
        iterable: Iterable[_T] | AsyncIterable[_T],
        *,
        ordered: bool = True,
        window: int | None = None,
    ) -> AsyncIterator[_R]: ...

    @overload
    def map(
        self: WorkerPool[Literal["async"]],
        fn: Callable[[_T], _R],
        iterable: Iterable[_T] | AsyncIterable[_T],
        *,
        ordered: bool = True,
        window: int | None = None,
    ) -> AsyncIterator[_R]: ...

    def map(
        self,
        fn: Callable[[Any], Any],
        iterable: Iterable[Any] | AsyncIterable[Any],
        *,
        ordered: bool = True,
        window: int | None = None,
    ) -> Any:
        """`fn(item)` for each item, as an iterator (thread pool) or an async
        iterator (async pool), on the pool's workers.

        `iterable` is read lazily, as results are taken: at most `window`
        items are read and not yet yielded (by default `workers` plus 256, or
        plus `queue_size` if larger), so an endless source is fine.
        `ordered=True` yields results in the order of `iterable`;
        `ordered=False` as they finish. An exception of `fn` is raised when
        its result is reached."""
        check_callable("fn", fn)
        check_flag("ordered", ordered)
        if window is not None:
            window = check_count("window", window, 1)
        mapping = _Mapping(self, fn, ordered, window)
        if self._mode == "async":
            if not isinstance(iterable, (Iterable, AsyncIterable)):
                raise TypeError(
                    f"iterable must be an iterable or an async iterable, got {iterable!r}"
                )
            return _workers_async.map_async(self, mapping, iterable)
        if not isinstance(iterable, Iterable):
            raise TypeError(f"iterable must be an iterable, got {iterable!r}")
        return _workers_sync.map_sync(self, mapping, iterable)

    def _put_nowait(self, job: _Job) -> bool:
        """Hands a job over only if there is room for it now."""
        if not self._room.try_acquire():
            return False
        try:
            self._jobs.put_nowait(job)
        except (QueueFull, QueueShutDown):
            self._room.release()
            return False
        self._submitted.add()
        return True

    # Ending

    def shutdown(self, wait: bool = True, *, cancel_pending: bool = False) -> Awaitable[None]:
        """Takes no more jobs; the workers finish the queued ones (or, with
        `cancel_pending`, cancel them) and end. A thread pool waits for its
        threads here when `wait`; an async pool's shutdown is awaited:
        `await pool.shutdown()`."""
        self._closed = True
        self._jobs.shutdown()
        if cancel_pending:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except (QueueEmpty, QueueShutDown):
                    break
                job.cancel(self)
                self._job_done()
        if self._mode == "async":
            return self._wait_tasks(wait)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()
            self._own_loop.close()
        return _Finished()

    async def _wait_tasks(self, wait: bool) -> None:
        if wait and self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self) -> Self:
        # Refused on the way in, so that the block does not run on a pool
        # that its exit could not shut down.
        if self._mode == "async":
            raise RuntimeError("use 'async with' with an async WorkerPool")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._mode == "async":
            await self.shutdown()
        else:
            await asyncio.get_running_loop().run_in_executor(None, self.shutdown)

    def stats(self) -> PoolStats:
        return PoolStats(
            mode=self._mode,
            workers=self._workers,
            busy=self._busy.value,
            queued=self._jobs.qsize(),
            submitted=self._submitted.value,
            completed=self._completed.value,
            failed=self._failed.value,
            rejected=self._rejected.value,
            cancelled=self._cancelled.value,
        )

    @property
    def name(self) -> str | None:
        """The pool's name (in reprs, logs and metrics), or None."""
        return self._name

    def __repr__(self) -> str:
        s = self.stats()
        state = " shut down" if self._closed else ""
        named = f" name={self._name!r}" if self._name is not None else ""
        return (
            f"<WorkerPool{named} mode={s.mode!r} workers={s.workers} busy={s.busy} "
            f"queued={s.queued} completed={s.completed}{state}>"
        )


class _Job:
    """A job in the pool's channel."""

    __slots__ = ()

    def run_sync(self, pool: WorkerPool) -> None:
        raise NotImplementedError

    async def run_async(self, pool: WorkerPool) -> None:
        raise NotImplementedError

    def cancel(self, pool: WorkerPool) -> None:
        raise NotImplementedError

    def orphan(self) -> None:
        """Its pool was collected before a worker could run it."""


class _Submitted(_Job):
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(
        self,
        future: concurrent.futures.Future[Any] | asyncio.Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run_sync(self, pool: WorkerPool) -> None:
        future = self.future
        assert isinstance(future, concurrent.futures.Future)
        if not future.set_running_or_notify_cancel():
            pool._cancelled.add()
            return
        pool._busy.add()
        try:
            result = pool._caller_sync(self.fn)(*self.args, **self.kwargs)
        except BaseException as exc:
            pool._failed.add()
            future.set_exception(exc)
        else:
            pool._completed.add()
            future.set_result(result)
        finally:
            pool._busy.add(-1)

    async def run_async(self, pool: WorkerPool) -> None:
        future = self.future
        assert isinstance(future, asyncio.Future)
        if future.done():
            pool._cancelled.add()
            return
        pool._busy.add()
        try:
            result = await pool._caller_async(self.fn)(*self.args, **self.kwargs)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            pool._failed.add()
            if not future.done():
                future.set_exception(exc)
        else:
            pool._completed.add()
            if not future.done():
                future.set_result(result)
        finally:
            pool._busy.add(-1)

    def cancel(self, pool: WorkerPool) -> None:
        if self.future.cancel():
            pool._cancelled.add()

    def orphan(self) -> None:
        self.future.cancel()


def _collected(jobs: Channel[_Job], own_loop: OwnLoop) -> None:
    """A pool collected without `shutdown()`: its workers end once the jobs
    queued are cancelled, and its own loop stops."""
    jobs.shutdown()
    own_loop.close(wait=False)


class _Mapping:
    """One `map` call: its items wait in a channel of their own, which up to
    `workers` drain jobs on the pool's workers empty; results come back
    numbered, to be put in order."""

    def __init__(
        self, pool: WorkerPool, fn: Callable[[Any], Any], ordered: bool, window: int | None
    ) -> None:
        self.pool = pool
        self.fn = fn
        # Items read and not yet yielded: waiting for a worker, worked on, or
        # waiting for an earlier result.
        if window is None:
            window = pool.workers + max(pool._queue_size, _READ_AHEAD)
        self.window = window
        self.items: Channel[Any] = Channel(window)
        self.results: Channel[tuple[int, bool, Any]] = Channel(self.window)
        self.reorder = Reorder() if ordered else None
        # Read from the source and not yet yielded.
        self.outstanding = 0
        self.exhausted = False
        # Drain jobs put on the pool and not cancelled.
        self.drains = 0
        self.lock = threading.Lock()

    def drain(self) -> _Drain:
        self.drains += 1
        return _Drain(self)

    def add_drains(self, put_nowait: Callable[[_Job], bool]) -> None:
        """More drain jobs, as long as workers are free to take them."""
        for _ in range(self.pool.workers - 1):
            if not put_nowait(_Drain(self)):
                break
            self.drains += 1

    def drain_cancelled(self) -> None:
        """A drain job was cancelled before it started; once none is left to
        serve the map, its consumer learns that the pool was shut down."""
        with self.lock:
            self.drains -= 1
            served = self.drains > 0
        if not served:
            error = concurrent.futures.CancelledError("the pool was shut down before this map ran")
            self.results.put_nowait((-1, False, error))

    def wants_items(self) -> bool:
        return not self.exhausted and self.outstanding < self.window

    def source_ended(self) -> None:
        self.exhausted = True
        self.items.shutdown()

    def deliver(self, done: tuple[int, bool, Any]) -> Iterator[Any]:
        """The results `done` lets out, in order if the map is ordered; a
        failed one raises its exception. A result parked until those before
        it come still counts as outstanding: the window bounds what is read
        and not yet yielded."""
        number, ok, value = done
        if number < 0:
            raise value
        if self.reorder is None:
            ready = [(ok, value)]
        elif self.reorder.push(number, (ok, value)):
            ready = []
            while (result := self.reorder.pop(_NOT_YET)) is not _NOT_YET:
                ready.append(result)
        else:
            ready = []
        self.outstanding -= len(ready)
        for ok, value in ready:
            if not ok:
                raise value
            yield value

    def close(self) -> None:
        """The consumer is done (or gone): the drain jobs end."""
        self.items.shutdown(immediate=True)
        if self.reorder is not None:
            self.reorder.clear()


class _Drain(_Job):
    """Runs a map's function on its items until they run out."""

    __slots__ = ("mapping",)

    def __init__(self, mapping: _Mapping) -> None:
        self.mapping = mapping

    def run_sync(self, pool: WorkerPool) -> None:
        _workers_sync.drain_sync(self.mapping, pool)

    async def run_async(self, pool: WorkerPool) -> None:
        await _workers_async.drain_async(self.mapping, pool)

    def cancel(self, pool: WorkerPool) -> None:
        pool._cancelled.add()
        self.mapping.drain_cancelled()


# Public names live in `brakes`, where users import them from.
PoolStats.__module__ = "brakes"
WorkerPool.__module__ = "brakes"
