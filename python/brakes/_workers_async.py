"""The workers of pipelines and pools, as asyncio tasks.

This file is the one the worker logic is written in: `_workers_sync.py`, the
same workers as threads, is made from it by `scripts/unasync.py` (awaits and
async loops become plain ones, `put`/`get` become `put_blocking`/
`get_blocking`, `*_async` names become `*_sync`). Edit this file, then run
the script; the tests check that the two agree.
"""

from __future__ import annotations

import time
import weakref
from asyncio import CancelledError as Cancelled
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, cast

from brakes._brakes import QueueEmpty, QueueFull, QueueShutDown
from brakes._calls import async_items

if TYPE_CHECKING:
    from brakes._brakes import Channel
    from brakes.pipeline import _Part, _Run
    from brakes.pool import WorkerPool, _Job, _Mapping

# What an ordered stage pushes for an item it emits nothing for.
NOTHING = object()
# What Reorder.pop returns when the next result is not there yet.
NOT_YET = object()


# -- pipeline stages ------------------------------------------------------------


async def run_part_async(part: _Part) -> None:
    """One worker of a stage, until its input ends or the pipeline stops."""
    try:
        kind = part.stage.kind
        if kind == "batch":
            await _batches_async(part)
        elif kind == "unbatch":
            await _unbatch_async(part)
        elif part.reorder is not None:
            await _ordered_async(part)
        else:
            await _plain_async(part)
    except (QueueShutDown, Cancelled):
        pass
    except BaseException as exc:
        part.run.fail(exc)
    finally:
        part.worker_ended()


async def _send_async(part: _Part, item: Any) -> None:
    """Passes `item` on, counting the time the next stage held it back."""
    try:
        part.outbox.put_nowait(item)
    except QueueFull:
        started = time.perf_counter_ns()
        await part.outbox.put(item)
        part.blocked_ns.add(time.perf_counter_ns() - started)


async def _plain_async(part: _Part) -> None:
    fn = cast(Callable[[Any], Any], part.stage.fn)
    kind = part.stage.kind
    inbox, outbox = part.inbox, part.outbox
    handled = part.handled.add
    while True:
        try:
            item = inbox.get_nowait()
        except QueueEmpty:
            item = await inbox.get()
        try:
            result = await fn(item)
            if kind == "map" or (kind == "filter" and result):
                sent = result if kind == "map" else item
                try:
                    outbox.put_nowait(sent)
                except QueueFull:
                    await _send_async(part, sent)
            elif kind == "flat_map":
                async for each in async_items(result):
                    await _send_async(part, each)
            elif kind == "each":
                handled()
        except QueueShutDown:
            raise
        except Exception as exc:
            if not part.skips(item, exc):
                raise


async def _ordered_async(part: _Part) -> None:
    """A worker of an ordered stage with several workers: it takes a ticket
    of the reorder window before an item, and its results leave in order."""
    fn = cast(Callable[[Any], Any], part.stage.fn)
    kind = part.stage.kind
    tickets, reorder = part.tickets, part.reorder
    assert tickets is not None and reorder is not None
    inbox: Any = part.inbox
    while True:
        try:
            tickets.put_nowait(None)
        except QueueFull:
            await tickets.put(None)
        number, item = await inbox.get_numbered()
        try:
            result = await fn(item)
            if kind == "flat_map":
                result = [each async for each in async_items(result)]
            elif kind == "filter":
                result = item if result else NOTHING
        except Exception as exc:
            if not part.skips(item, exc):
                raise
            result = NOTHING
        if reorder.push(number, result):
            await _emit_async(part)


async def _emit_async(part: _Part) -> None:
    """Sends on, in order, every result the window lets out."""
    tickets, reorder = part.tickets, part.reorder
    assert tickets is not None and reorder is not None
    flat = part.stage.kind == "flat_map"
    while (result := reorder.pop(NOT_YET)) is not NOT_YET:
        # A result keeps its ticket until the next stage has it: while it
        # waits to be sent, it still counts against the window.
        if result is not NOTHING:
            for each in result if flat else (result,):
                await _send_async(part, each)
        tickets.get_nowait()


async def _batches_async(part: _Part) -> None:
    size, linger = part.stage.size, part.stage.linger
    inbox = part.inbox
    while True:
        # The queue lingers for the batch, on its own clock; at the end of
        # the source it hands over what it has.
        await _send_async(part, await inbox.get_batch(size, linger=linger))


async def _unbatch_async(part: _Part) -> None:
    inbox = part.inbox
    while True:
        for item in await inbox.get():
            await _send_async(part, item)


async def feed_async(run: _Run) -> None:
    """Reads the source into the first stage's channel."""
    first = run.first
    # A thread reads only plain iterables; a task reads either kind.
    source: Any = run.source
    try:
        # A plain iterable is read without an async generator around it:
        # that would cost more than the hand-over of the item.
        if isinstance(source, AsyncIterable):  # async only
            async for item in source:
                try:
                    first.put_nowait(item)
                except QueueFull:
                    await first.put(item)
        else:
            for item in source:
                try:
                    first.put_nowait(item)
                except QueueFull:
                    await first.put(item)
    except (QueueShutDown, Cancelled):
        return
    except BaseException as exc:
        run.fail(exc)
        return
    first.shutdown()


# -- worker pools ---------------------------------------------------------------


async def pool_worker_async(pool_ref: weakref.ref[WorkerPool], jobs: Channel[_Job]) -> None:
    """One worker of a pool: runs jobs until the pool shuts down or is
    collected. It holds the pool only while it runs a job, so a pool that is
    dropped without `shutdown()` lets its workers go."""
    while True:
        try:
            try:
                job = jobs.get_nowait()
            except QueueEmpty:
                job = await jobs.get()
        except QueueShutDown:
            return
        pool = pool_ref()
        if pool is None:
            # Collected with the job still queued: nobody can run it now.
            job.orphan()
            continue
        try:
            await job.run_async(pool)
        finally:
            pool._job_done()
            del pool, job


async def put_job_async(pool: WorkerPool, job: _Job) -> None:
    """Hands a job to the pool once there is room for it (a free worker or a
    place in its queue): at once or not at all when the pool rejects."""
    if pool._closed:
        raise pool._closed_error()
    await pool._start_workers_async()
    if pool._reject:
        if not pool._room.try_acquire():
            pool._rejected.add()
            raise pool._full_error()
    else:
        await pool._room.acquire()
    try:
        try:
            pool._jobs.put_nowait(job)
        except QueueFull:
            # There is room: a worker is free and about to take the job (it
            # may still be starting), or about to make space in the queue.
            await pool._jobs.put(job)
    except BaseException:
        pool._job_done()
        if pool._closed:
            raise pool._closed_error() from None
        raise
    pool._submitted.add()


async def map_async(pool: WorkerPool, mapping: _Mapping, iterable: Any) -> AsyncIterator[Any]:
    """`pool.map`: reads the source as results are taken, at most the
    window ahead, and yields results (in order, if the map is ordered)."""
    await put_job_async(pool, mapping.drain())
    mapping.add_drains(pool._put_nowait)
    items = async_items(iterable)
    try:
        while True:
            while mapping.wants_items():
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    mapping.source_ended()
                    break
                try:
                    mapping.items.put_nowait(item)
                except QueueFull:
                    await mapping.items.put(item)
                mapping.outstanding += 1
            if mapping.outstanding == 0:
                return
            try:
                done = mapping.results.get_nowait()
            except QueueEmpty:
                done = await mapping.results.get()
            for value in mapping.deliver(done):
                yield value
    finally:
        mapping.close()


async def drain_async(mapping: _Mapping, pool: WorkerPool) -> None:
    """A map's job on a worker: runs the map's function on its items until
    they run out, and puts each result back numbered."""
    items: Any = mapping.items
    put = mapping.results.put_nowait
    call = pool._caller_async(mapping.fn)
    busy, completed, failed = pool._busy.add, pool._completed.add, pool._failed.add
    while True:
        try:
            number, item = await items.get_numbered()
        except QueueShutDown:
            return
        busy()
        try:
            done = (number, True, await call(item))
            completed()
        except Cancelled:
            put((number, False, pool._shut_down_error()))
            raise
        except BaseException as exc:
            failed()
            done = (number, False, exc)
        finally:
            busy(-1)
        put(done)
