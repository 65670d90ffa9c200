"""Bounded pipelines: stages of plain or async functions, joined by bounded
channels, so that a slow stage slows the source instead of filling memory.

The channels, the reorder windows and the counters are native (`Channel`,
`Reorder`, `Tally` in `brakes._brakes`); this module runs the user's
functions on threads and on event loops, and stops every worker when the
consumer stops, fails or finishes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast, overload

from brakes._brakes import Channel, QueueEmpty, QueueFull, QueueShutDown, Reorder, Tally
from brakes._running import (
    OwnLoop,
    async_items,
    check_callable,
    check_count,
    check_flag,
    check_seconds,
    is_async_callable,
)

__all__ = ["Pipeline", "StageStats"]

_T = TypeVar("_T", covariant=True)
_U = TypeVar("_U")

OnError = Literal["raise", "skip"] | Callable[[Any, Exception], object]

# What an ordered stage pushes for an item it emits nothing for.
_NOTHING = object()
# What Reorder.pop returns when the next result is not there yet.
_NOT_YET = object()
# Tickets of an ordered stage's window are all the same object.
_TICKET = None


@dataclass(frozen=True)
class StageStats:
    """One stage of a pipeline, as `Pipeline.stats()` reports it."""

    name: str
    workers: int
    items_in: int
    """Items this stage has taken from the one before it."""
    items_out: int
    """Items passed on to the next stage (for a sink: items handled)."""
    queued: int
    """Items waiting for this stage's workers."""
    busy: int
    """Workers running the stage's function (or waiting to pass a result on)."""
    blocked_seconds: float
    """Time the stage's workers spent waiting for the next stage: the backpressure."""
    errors: int
    """Exceptions of the stage's function that `on_error` let the stage skip."""


@dataclass(frozen=True)
class _Stage:
    kind: Literal["map", "filter", "flat_map", "each", "batch", "unbatch"]
    fn: Callable[..., Any] | None = None
    workers: int = 1
    buffer: int = 0
    ordered: bool = True
    on_error: OnError = "raise"
    size: int = 0
    linger: float | None = None

    @property
    def name(self) -> str:
        fn_name = getattr(self.fn, "__qualname__", None) or type(self.fn).__name__
        return self.kind if self.fn is None else f"{self.kind}({fn_name})"

    @property
    def is_async(self) -> bool | None:
        """True: an async function, run as tasks; False: threads; None:
        built in, run where the consumer runs."""
        return None if self.fn is None else is_async_callable(self.fn)

    @property
    def reorders(self) -> bool:
        return self.ordered and self.workers > 1 and self.kind in ("map", "filter", "flat_map")


def _check_on_error(on_error: object) -> OnError:
    if on_error in ("raise", "skip") or callable(on_error):
        return cast(OnError, on_error)
    raise ValueError(f"on_error must be 'raise', 'skip' or a callable, got {on_error!r}")


class Pipeline(Generic[_T]):
    """A chain of stages fed by `source` (any iterable or async iterable).

    The source is read `buffer` items ahead of the first stage (0: only
    when a worker of the first stage is free). Each stage runs its function
    on `workers` workers: threads for a plain function, tasks for an
    `async def`. A stage hands its results to the
    next through a bounded buffer of `buffer` items (0: a direct hand-over,
    as on Go's unbuffered channel), so when a stage falls behind, the stages
    before it wait and the source is not read further. A pipeline never
    holds more items than the sum of its buffers, batch sizes and workers.

    >>> Pipeline(range(10)).map(lambda x: x * x, workers=4).filter(lambda x: x % 2).to_list()
    [1, 9, 25, 49, 81]

    Consume it with `for`, `async for`, `run()`, `await run_async()` or
    `to_list()`. An exception in a stage stops every stage and is raised to
    the consumer; closing the consumer early stops every worker.
    """

    def __init__(self, source: Iterable[_T] | AsyncIterable[_T], *, buffer: int = 0) -> None:
        if not isinstance(source, (Iterable, AsyncIterable)):
            raise TypeError(f"source must be an iterable or an async iterable, got {source!r}")
        self._source = source
        self._buffer = check_count("buffer", buffer, 0)
        self._stages: list[_Stage] = []
        self._run: _Run | None = None

    def _add(self, stage: _Stage) -> Any:
        if self._stages and self._stages[-1].kind == "each":
            raise ValueError("each() ends a pipeline: no stage can follow it")
        self._stages.append(stage)
        return self

    def _stage(
        self,
        kind: Literal["map", "filter", "flat_map", "each"],
        fn: object,
        workers: object,
        buffer: object,
        ordered: object,
        on_error: object,
    ) -> Any:
        check_callable("fn", fn)
        return self._add(
            _Stage(
                kind,
                cast(Callable[..., Any], fn),
                workers=check_count("workers", workers, 1),
                buffer=check_count("buffer", buffer, 0),
                ordered=check_flag("ordered", ordered),
                on_error=_check_on_error(on_error),
            )
        )

    @overload
    def map(
        self,
        fn: Callable[[_T], Awaitable[_U]],
        *,
        workers: int = 1,
        buffer: int = 0,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[_U]: ...
    @overload
    def map(
        self,
        fn: Callable[[_T], _U],
        *,
        workers: int = 1,
        buffer: int = 0,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[_U]: ...
    def map(
        self,
        fn: Callable[[_T], Any],
        *,
        workers: int = 1,
        buffer: int = 0,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[Any]:
        """Passes on `fn(item)` for each item. With several workers,
        `ordered=True` keeps the source's order (a result waits for those
        before it, within a window of `workers + buffer` items);
        `ordered=False` passes results on as they finish.

        `on_error="skip"` drops an item whose `fn` raised and goes on;
        a callable `on_error(item, exc)` is called first. Skipped items are
        counted in `stats()`. The default stops the pipeline and raises."""
        return cast(Pipeline[Any], self._stage("map", fn, workers, buffer, ordered, on_error))

    def filter(
        self,
        fn: Callable[[_T], object] | Callable[[_T], Awaitable[object]],
        *,
        workers: int = 1,
        buffer: int = 0,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[_T]:
        """Passes on the items for which `fn(item)` is true."""
        return cast(Pipeline[_T], self._stage("filter", fn, workers, buffer, ordered, on_error))

    @overload
    def flat_map(
        self,
        fn: Callable[[_T], Awaitable[Iterable[_U]]],
        *,
        workers: int = 1,
        buffer: int = 0,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[_U]: ...
    @overload
    def flat_map(
        self,
        fn: Callable[[_T], Iterable[_U]],
        *,
        workers: int = 1,
        buffer: int = 0,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[_U]: ...
    def flat_map(
        self,
        fn: Callable[[_T], Any],
        *,
        workers: int = 1,
        buffer: int = 0,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[Any]:
        """Passes on every item of the iterable `fn(item)` returns."""
        return cast(Pipeline[Any], self._stage("flat_map", fn, workers, buffer, ordered, on_error))

    def each(
        self,
        fn: Callable[[_T], object] | Callable[[_T], Awaitable[object]],
        *,
        workers: int = 1,
        on_error: OnError = "raise",
    ) -> Pipeline[None]:
        """Ends the pipeline with a sink: calls `fn(item)` for each item."""
        return cast(Pipeline[None], self._stage("each", fn, workers, 0, False, on_error))

    def batch(self, size: int, *, linger: float | None = None) -> Pipeline[list[_T]]:
        """Passes on lists of up to `size` items. A partial batch is passed
        on `linger` seconds after its first item came (never, with None),
        and at the end of the source."""
        size = check_count("size", size, 1)
        return cast(
            Pipeline[list[_T]],
            self._add(_Stage("batch", size=size, linger=check_seconds("linger", linger))),
        )

    def unbatch(self: Pipeline[Iterable[_U]]) -> Pipeline[_U]:
        """Passes on the items of each batch (or any iterable) one by one."""
        return cast(Pipeline[_U], self._add(_Stage("unbatch")))

    def __iter__(self) -> Iterator[_T]:
        run = self._start(None)
        finished = False
        try:
            get = run.output.get_blocking
            while True:
                try:
                    item = get()
                except QueueShutDown:
                    break
                yield item
            finished = True
        finally:
            if not finished:
                run.stop()
            run.finish()
        run.raise_failure()

    def __aiter__(self) -> AsyncIterator[_T]:
        return _AsyncIteration(self)

    def run(self) -> None:
        """Runs the pipeline to its end in this thread, dropping its output."""
        for _ in self:
            pass

    async def run_async(self) -> None:
        """Runs the pipeline to its end on the running loop, dropping its output."""
        async for _ in self:
            pass

    def to_list(self) -> list[_T]:
        """Runs the pipeline in this thread and returns its output."""
        return list(self)

    def stats(self) -> tuple[StageStats, ...]:
        """Per stage, in order: the current run's counters (or the last run's)."""
        run = self._run
        if run is None:
            return tuple(
                StageStats(stage.name, stage.workers, 0, 0, 0, 0, 0.0, 0) for stage in self._stages
            )
        return tuple(part.stats() for part in run.parts)

    def __repr__(self) -> str:
        stages = " -> ".join(stage.name for stage in self._stages)
        return f"<Pipeline {stages or '(no stages)'}>"

    def _start(self, loop: asyncio.AbstractEventLoop | None) -> _Run:
        run = _Run(self._source, self._buffer, self._stages, loop)
        self._run = run
        run.start()
        return run


class _AsyncIteration(AsyncIterator[_T]):
    """`async for` over a pipeline: runs it on the running loop, and stops it
    when iteration stops early (break, an exception, cancellation)."""

    def __init__(self, pipeline: Pipeline[_T]) -> None:
        self._pipeline = pipeline
        self._run: _Run | None = None
        self._done = False

    async def __anext__(self) -> _T:
        if self._done:
            raise StopAsyncIteration
        run = self._run
        if run is None:
            run = self._run = self._pipeline._start(asyncio.get_running_loop())
        try:
            try:
                return cast(_T, run.output.get_nowait())
            except QueueEmpty:
                return cast(_T, await run.output.get())
        except QueueShutDown:
            self._done = True
            await run.finish_async()
            run.raise_failure()
            raise StopAsyncIteration from None
        except BaseException:
            self._done = True
            run.stop()
            raise

    async def aclose(self) -> None:
        """Stops the pipeline and waits for its workers to end."""
        if self._run is not None and not self._done:
            self._done = True
            self._run.stop()
            await self._run.finish_async()

    def __del__(self) -> None:
        if self._run is not None and not self._done:
            self._run.stop()


class _Run:
    """One run of a pipeline: its channels, workers and counters."""

    def __init__(
        self,
        source: Iterable[Any] | AsyncIterable[Any],
        buffer: int,
        stages: list[_Stage],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.source = source
        self.loop = loop
        self.own_loop = OwnLoop("brakes-pipeline-loop")
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.stopped = False
        self.threads: list[threading.Thread] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.own_tasks: list[concurrent.futures.Future[None]] = []
        self.first: Channel[Any] = Channel(buffer)
        channel = self.first
        self.parts: list[_Part] = []
        for stage in stages:
            out: Channel[Any] = Channel(0 if stage.reorders else stage.buffer)
            self.parts.append(_Part(self, stage, channel, out))
            channel = out
        self.output = channel

    # Starting

    def start(self) -> None:
        # A plain iterable is read in a thread of its own, or on the
        # consumer's loop; an async one on a loop.
        source_is_async = True if not isinstance(self.source, Iterable) else None
        self._place(source_is_async, self._feed_async, self._feed_thread, "brakes-pipeline-source")
        for part in self.parts:
            for n in range(part.stage.workers):
                name = f"brakes-{part.stage.name}-{n}"
                self._place(part.stage.is_async, part.run_async, part.run_thread, name)

    def _place(
        self,
        is_async: bool | None,
        coroutine: Callable[[], Awaitable[None]],
        thread_target: Callable[[], None],
        name: str,
    ) -> None:
        if is_async is None:
            is_async = self.loop is not None
        if not is_async:
            thread = threading.Thread(target=thread_target, name=name, daemon=True)
            self.threads.append(thread)
            thread.start()
        elif self.loop is not None:
            self.tasks.append(self.loop.create_task(cast(Any, coroutine())))
        else:
            self.own_tasks.append(self.own_loop.submit(cast(Any, coroutine())))

    # The source

    def _feed_thread(self) -> None:
        put = self.first.put_blocking
        try:
            for item in cast(Iterable[Any], self.source):
                put(item)
        except QueueShutDown:
            return
        except BaseException as exc:
            self.fail(exc)
            return
        self.first.shutdown()

    async def _feed_async(self) -> None:
        first = self.first
        put_nowait, put = first.put_nowait, first.put
        try:
            if isinstance(self.source, AsyncIterable):
                async for item in self.source:
                    try:
                        put_nowait(item)
                    except QueueFull:
                        await put(item)
            else:
                for item in self.source:
                    try:
                        put_nowait(item)
                    except QueueFull:
                        await put(item)
        except (QueueShutDown, asyncio.CancelledError):
            return
        except BaseException as exc:
            self.fail(exc)
            return
        first.shutdown()

    # Stopping

    def fail(self, exc: BaseException) -> None:
        """A stage or the source raised: stop everything, and keep the first
        exception for the consumer."""
        with self.lock:
            if self.error is None and not self.stopped:
                self.error = exc
        self.stop()

    def stop(self) -> None:
        """Shuts every channel and cancels every task; threads end once
        their current call returns."""
        with self.lock:
            if self.stopped:
                return
            self.stopped = True
        self.first.shutdown(immediate=True)
        for part in self.parts:
            part.stop()
        current = _current_task()
        for task in self.tasks:
            if task is not current:
                _cancel_soon(task)
        for future in self.own_tasks:
            future.cancel()

    def raise_failure(self) -> None:
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """Waits, in this thread, for every worker to end."""
        for thread in self.threads:
            thread.join()
        for future in self.own_tasks:
            try:
                future.result()
            except BaseException:
                pass
        self.own_loop.close()

    async def finish_async(self) -> None:
        """Waits, on the running loop, for every worker to end."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if any(thread.is_alive() for thread in self.threads) or self.own_tasks:
            await asyncio.get_running_loop().run_in_executor(None, self.finish)
        else:
            self.own_loop.close()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _cancel_soon(task: asyncio.Task[Any]) -> None:
    loop = task.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        task.cancel()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(task.cancel)


class _Part:
    """A stage at run time: its input and output channels, and its workers'
    loops for threads and for tasks."""

    def __init__(self, run: _Run, stage: _Stage, inbox: Channel[Any], outbox: Channel[Any]) -> None:
        self.run = run
        self.stage = stage
        self.inbox = inbox
        self.outbox = outbox
        self.live = stage.workers
        self.errors = Tally()
        self.blocked_ns = Tally()
        self.handled = Tally()
        self.tickets: Channel[None] | None = None
        self.reorder: Reorder | None = None
        if stage.reorders:
            self.tickets = Channel(stage.workers + stage.buffer)
            self.reorder = Reorder()

    def stop(self) -> None:
        self.inbox.shutdown(immediate=True)
        self.outbox.shutdown(immediate=True)
        if self.tickets is not None:
            self.tickets.shutdown(immediate=True)
        if self.reorder is not None:
            self.reorder.clear()

    def worker_ended(self) -> None:
        with self.run.lock:
            self.live -= 1
            last = self.live == 0 and not self.run.stopped
        if last:
            self.outbox.shutdown()

    def skips(self, item: Any, exc: Exception) -> bool:
        """Whether the stage goes on without `item`, whose function raised."""
        on_error = self.stage.on_error
        if on_error == "raise":
            return False
        if callable(on_error):
            on_error(item, exc)
        self.errors.add()
        return True

    def stats(self) -> StageStats:
        inbox = self.inbox.stats()
        outbox = self.outbox.stats()
        waiting = inbox.getters_waiting + outbox.putters_waiting
        if self.tickets is not None:
            waiting += self.tickets.stats().putters_waiting
        out = self.handled.value if self.stage.kind == "each" else outbox.put
        return StageStats(
            name=self.stage.name,
            workers=self.stage.workers,
            items_in=inbox.got,
            items_out=out,
            queued=inbox.size,
            busy=max(0, self.live - waiting),
            blocked_seconds=self.blocked_ns.value / 1e9,
            errors=self.errors.value,
        )

    # Threads

    def run_thread(self) -> None:
        try:
            kind = self.stage.kind
            if kind == "batch":
                self._batch_thread()
            elif kind == "unbatch":
                self._unbatch_thread()
            elif self.reorder is not None:
                self._ordered_thread()
            else:
                self._plain_thread()
        except QueueShutDown:
            pass
        except BaseException as exc:
            self.run.fail(exc)
        finally:
            self.worker_ended()

    def _send_blocking(self, item: Any) -> None:
        try:
            self.outbox.put_nowait(item)
        except QueueFull:
            started = time.perf_counter_ns()
            self.outbox.put_blocking(item)
            self.blocked_ns.add(time.perf_counter_ns() - started)

    def _plain_thread(self) -> None:
        fn = cast(Callable[[Any], Any], self.stage.fn)
        kind = self.stage.kind
        get = self.inbox.get_blocking
        send = self._send_blocking
        handled = self.handled.add
        while True:
            item = get()
            try:
                result = fn(item)
                if kind == "map":
                    send(result)
                elif kind == "filter":
                    if result:
                        send(item)
                elif kind == "flat_map":
                    for each in result:
                        send(each)
                else:
                    handled()
            except QueueShutDown:
                raise
            except Exception as exc:
                if not self.skips(item, exc):
                    raise

    def _ordered_thread(self) -> None:
        fn = cast(Callable[[Any], Any], self.stage.fn)
        kind = self.stage.kind
        tickets = cast(Channel[None], self.tickets)
        reorder = cast(Reorder, self.reorder)
        get = cast(Any, self.inbox).get_numbered_blocking
        while True:
            tickets.put_blocking(_TICKET)
            number, item = get()
            try:
                result = _ordered_result(kind, item, fn(item))
            except Exception as exc:
                if not self.skips(item, exc):
                    raise
                result = _NOTHING
            if reorder.push(number, result):
                self._emit_blocking()

    def _emit_blocking(self) -> None:
        reorder = cast(Reorder, self.reorder)
        tickets = cast(Channel[None], self.tickets)
        flat = self.stage.kind == "flat_map"
        while (result := reorder.pop(_NOT_YET)) is not _NOT_YET:
            tickets.get_nowait()
            if result is _NOTHING:
                continue
            if flat:
                for each in result:
                    self._send_blocking(each)
            else:
                self._send_blocking(result)

    def _batch_thread(self) -> None:
        size, linger = self.stage.size, self.stage.linger
        get_batch = self.inbox.get_batch_blocking
        while True:
            batch = get_batch(size)
            deadline = None if linger is None else time.monotonic() + linger
            try:
                while len(batch) < size:
                    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                    batch += get_batch(size - len(batch), timeout=timeout)
            except QueueEmpty:
                pass
            except QueueShutDown:
                self._send_blocking(batch)
                raise
            self._send_blocking(batch)

    def _unbatch_thread(self) -> None:
        get = self.inbox.get_blocking
        while True:
            for item in get():
                self._send_blocking(item)

    # Tasks

    async def run_async(self) -> None:
        try:
            kind = self.stage.kind
            if kind == "batch":
                await self._batch_async()
            elif kind == "unbatch":
                await self._unbatch_async()
            elif self.reorder is not None:
                await self._ordered_async()
            else:
                await self._plain_async()
        except (QueueShutDown, asyncio.CancelledError):
            pass
        except BaseException as exc:
            self.run.fail(exc)
        finally:
            self.worker_ended()

    async def _send_slowly(self, item: Any) -> None:
        started = time.perf_counter_ns()
        await self.outbox.put(item)
        self.blocked_ns.add(time.perf_counter_ns() - started)

    async def _plain_async(self) -> None:
        fn = cast(Callable[[Any], Awaitable[Any]], self.stage.fn)
        kind = self.stage.kind
        inbox = self.inbox
        get_nowait, get = inbox.get_nowait, inbox.get
        put_nowait = self.outbox.put_nowait
        handled = self.handled.add
        while True:
            try:
                item = get_nowait()
            except QueueEmpty:
                item = await get()
            try:
                result = await fn(item)
                if kind == "map":
                    try:
                        put_nowait(result)
                    except QueueFull:
                        await self._send_slowly(result)
                elif kind == "filter":
                    if result:
                        try:
                            put_nowait(item)
                        except QueueFull:
                            await self._send_slowly(item)
                elif kind == "flat_map":
                    async for each in async_items(result):
                        try:
                            put_nowait(each)
                        except QueueFull:
                            await self._send_slowly(each)
                else:
                    handled()
            except QueueShutDown:
                raise
            except Exception as exc:
                if not self.skips(item, exc):
                    raise

    async def _ordered_async(self) -> None:
        fn = cast(Callable[[Any], Awaitable[Any]], self.stage.fn)
        kind = self.stage.kind
        tickets = cast(Channel[None], self.tickets)
        reorder = cast(Reorder, self.reorder)
        get = cast(Any, self.inbox).get_numbered
        while True:
            try:
                tickets.put_nowait(_TICKET)
            except QueueFull:
                await tickets.put(_TICKET)
            number, item = await get()
            try:
                result = await fn(item)
                if kind == "flat_map":
                    result = [each async for each in async_items(result)]
                result = _ordered_result(kind, item, result)
            except Exception as exc:
                if not self.skips(item, exc):
                    raise
                result = _NOTHING
            if reorder.push(number, result):
                await self._emit_async()

    async def _emit_async(self) -> None:
        reorder = cast(Reorder, self.reorder)
        tickets = cast(Channel[None], self.tickets)
        flat = self.stage.kind == "flat_map"
        while (result := reorder.pop(_NOT_YET)) is not _NOT_YET:
            tickets.get_nowait()
            if result is _NOTHING:
                continue
            for each in result if flat else (result,):
                try:
                    self.outbox.put_nowait(each)
                except QueueFull:
                    await self._send_slowly(each)

    async def _batch_async(self) -> None:
        size, linger = self.stage.size, self.stage.linger
        inbox = self.inbox
        while True:
            batch = await inbox.get_batch(size)
            deadline = None if linger is None else time.monotonic() + linger
            try:
                while len(batch) < size:
                    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                    batch += await inbox.get_batch(size - len(batch), timeout=timeout)
            except QueueEmpty:
                pass
            except QueueShutDown:
                await self._send_async(batch)
                raise
            await self._send_async(batch)

    async def _send_async(self, item: Any) -> None:
        try:
            self.outbox.put_nowait(item)
        except QueueFull:
            await self._send_slowly(item)

    async def _unbatch_async(self) -> None:
        get = self.inbox.get
        while True:
            for item in await get():
                await self._send_async(item)


def _ordered_result(kind: str, item: Any, result: Any) -> Any:
    if kind == "filter":
        return item if result else _NOTHING
    if kind == "flat_map":
        return list(result)
    return result


# Public names live in `brakes`, where users import them from.
StageStats.__module__ = "brakes"
Pipeline.__module__ = "brakes"
