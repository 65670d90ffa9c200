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
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast, overload

from brakes import _workers_async, _workers_sync
from brakes._brakes import Channel, QueueEmpty, QueueShutDown, Reorder, Tally
from brakes._calls import is_async_callable
from brakes._checks import check_callable, check_count, check_flag, check_name, check_seconds
from brakes._own_loop import OwnLoop

__all__ = ["Pipeline", "StageStats"]

_T = TypeVar("_T", covariant=True)
_U = TypeVar("_U")

OnError = Literal["raise", "skip"] | Callable[[Any, Exception], object]

# The channels' capacity when a buffer is not given: enough that items cross
# between workers in runs, rather than one wake-up each.
DEFAULT_BUFFER = 100


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
    buffer: int | None = None
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


def _check_buffer(buffer: object) -> int | None:
    return None if buffer is None else check_count("buffer", buffer, 0)


def _capacity(buffer: int | None, reader: _Stage | None) -> int:
    """The capacity of a channel: the buffer given, or by default room for
    runs of items, and for a whole batch of the stage that reads it."""
    if buffer is not None:
        return buffer
    if reader is not None and reader.kind == "batch":
        return max(DEFAULT_BUFFER, reader.size)
    return DEFAULT_BUFFER


class Pipeline(Generic[_T]):
    """A chain of stages fed by `source` (any iterable or async iterable).

    The source is read up to `buffer` items ahead of the first stage. Each
    stage runs its function on `workers` workers: threads for a plain
    function, tasks for an `async def`. A stage hands its results to the
    next through a bounded buffer of `buffer` items, so when a stage falls
    behind, the stages before it wait and the source is not read further.
    A buffer not given holds 100 items, or a whole batch when the next stage
    is `batch(size)` with a larger size. `buffer=0` is a direct hand-over, as
    on Go's unbuffered channel: an item moves only to a worker waiting for
    it; a batch stage hands its batches over so. A pipeline never holds more
    items than the sum of its buffers, its batch sizes and its workers.

    >>> Pipeline(range(10)).map(lambda x: x * x, workers=4).filter(lambda x: x % 2).to_list()
    [1, 9, 25, 49, 81]

    Consume it with `for`, `async for`, `run()`, `await run_async()` or
    `to_list()`. An exception in a stage stops every stage and is raised to
    the consumer; closing the consumer early stops every worker.
    """

    def __init__(
        self,
        source: Iterable[_T] | AsyncIterable[_T],
        *,
        buffer: int | None = None,
        name: str | None = None,
    ) -> None:
        self._name = check_name(name)
        if not isinstance(source, (Iterable, AsyncIterable)):
            raise TypeError(f"source must be an iterable or an async iterable, got {source!r}")
        self._source = source
        self._buffer = _check_buffer(buffer)
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
                buffer=_check_buffer(buffer),
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
        buffer: int | None = None,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[_U]: ...
    @overload
    def map(
        self,
        fn: Callable[[_T], _U],
        *,
        workers: int = 1,
        buffer: int | None = None,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[_U]: ...
    def map(
        self,
        fn: Callable[[_T], Any],
        *,
        workers: int = 1,
        buffer: int | None = None,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[Any]:
        """Passes on `fn(item)` for each item, through a buffer of `buffer`
        items (see `Pipeline`). With several workers, `ordered=True` keeps the
        source's order (a result waits for those before it, within a window
        of `workers + buffer` items);
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
        buffer: int | None = None,
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
        buffer: int | None = None,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[_U]: ...
    @overload
    def flat_map(
        self,
        fn: Callable[[_T], Iterable[_U]],
        *,
        workers: int = 1,
        buffer: int | None = None,
        ordered: bool = True,
        on_error: OnError = "raise",
    ) -> Pipeline[_U]: ...
    def flat_map(
        self,
        fn: Callable[[_T], Any],
        *,
        workers: int = 1,
        buffer: int | None = None,
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
        return cast(Pipeline[None], self._stage("each", fn, workers, None, False, on_error))

    def batch(self, size: int, *, linger: float | None = None) -> Pipeline[list[_T]]:
        """Passes on lists of up to `size` items. A partial batch is passed
        on `linger` seconds after its first item came (never, with None),
        and at the end of the source."""
        size = check_count("size", size, 1)
        stage = _Stage("batch", size=size, linger=check_seconds("linger", linger), buffer=0)
        return cast(Pipeline[list[_T]], self._add(stage))

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

    @property
    def name(self) -> str | None:
        """The pipeline's name (in reprs, logs and metrics), or None."""
        return self._name

    def __repr__(self) -> str:
        stages = " -> ".join(stage.name for stage in self._stages)
        named = f"{self._name!r}: " if self._name is not None else ""
        return f"<Pipeline {named}{stages or '(no stages)'}>"

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
        buffer: int | None,
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
        self.first: Channel[Any] = Channel(_capacity(buffer, stages[0] if stages else None))
        channel = self.first
        self.parts: list[_Part] = []
        for n, stage in enumerate(stages):
            reader = stages[n + 1] if n + 1 < len(stages) else None
            # An ordered stage's window is its buffer: it hands over to the next.
            out: Channel[Any] = Channel(0 if stage.reorders else _capacity(stage.buffer, reader))
            self.parts.append(_Part(self, stage, channel, out))
            channel = out
        self.output = channel

    # Starting

    def start(self) -> None:
        # A plain iterable is read in a thread of its own, or on the
        # consumer's loop; an async one on a loop.
        source_is_async = True if not isinstance(self.source, Iterable) else None
        self._place(
            source_is_async,
            lambda: _workers_async.feed_async(self),
            lambda: _workers_sync.feed_sync(self),
            "brakes-pipeline-source",
        )
        for part in self.parts:
            for n in range(part.stage.workers):
                self._place(
                    part.stage.is_async,
                    lambda part=part: _workers_async.run_part_async(part),  # type: ignore[misc]
                    lambda part=part: _workers_sync.run_part_sync(part),  # type: ignore[misc]
                    f"brakes-{part.stage.name}-{n}",
                )

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
    """A stage at run time: its input and output channels, its reorder
    window and its counters. Its workers (`brakes._workers_async` and
    `_workers_sync`) run on it."""

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
            window = _capacity(stage.buffer, None)
            self.tickets = Channel(stage.workers + window)
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


# Public names live in `brakes`, where users import them from.
StageStats.__module__ = "brakes"
Pipeline.__module__ = "brakes"
