"""Pipeline: bounded stages of plain and async functions."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from brakes import Pipeline, StageStats

from .conftest import on_loop, wait_until, wait_until_async


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("brakes-")]


def no_pipeline_thread_left() -> None:
    wait_until(lambda: not pipeline_threads())


def double(x: int) -> int:
    return 2 * x


async def double_async(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def test_stages_map_filter_flat_map_in_order() -> None:
    out = (
        Pipeline(range(10))
        .map(double, workers=3)
        .filter(lambda x: x % 3 == 0, workers=2)
        .flat_map(lambda x: [x, -x], workers=2)
        .to_list()
    )
    assert out == [y for x in range(10) if (2 * x) % 3 == 0 for y in (2 * x, -2 * x)]
    no_pipeline_thread_left()


def test_async_and_plain_functions_mix_in_a_threaded_run() -> None:
    out = list(Pipeline(range(20)).map(double_async, workers=4).map(double, workers=3, buffer=2))
    assert out == [4 * x for x in range(20)]
    no_pipeline_thread_left()


@on_loop
async def test_async_and_plain_functions_mix_in_an_async_run() -> None:
    async def source() -> AsyncIterator[int]:
        for n in range(20):
            yield n

    out = [
        x
        async for x in Pipeline(source())
        .map(double, workers=2)
        .map(double_async, workers=3, buffer=1)
    ]
    assert out == [4 * x for x in range(20)]
    await wait_until_async(lambda: not pipeline_threads())


@pytest.mark.parametrize("kind", ["thread", "async"])
def test_ordered_output_with_8_workers_and_random_delays(kind: str) -> None:
    rng = random.Random(7)
    delays = [rng.random() * 0.004 for _ in range(300)]

    def slow(n: int) -> int:
        time.sleep(delays[n])
        return n

    async def slow_async(n: int) -> int:
        await asyncio.sleep(delays[n])
        return n

    fn: Any = slow if kind == "thread" else slow_async
    assert Pipeline(range(300)).map(fn, workers=8).to_list() == list(range(300))
    unordered = Pipeline(range(300)).map(fn, workers=8, ordered=False).to_list()
    assert sorted(unordered) == list(range(300))


def test_an_unordered_stage_emits_results_as_they_finish() -> None:
    release_first = threading.Event()

    def slow_first(n: int) -> int:
        if n == 0:
            release_first.wait(5)
        return n

    out = []
    for x in Pipeline(range(5)).map(slow_first, workers=2, ordered=False):
        out.append(x)
        if len(out) == 4:
            release_first.set()
    assert out[:4] == [1, 2, 3, 4] and out[4] == 0


def test_a_slow_stage_holds_the_source_back_within_the_bound() -> None:
    """A 10M-item source through a stage that sleeps: what the source has
    yielded minus what the sink has seen never exceeds buffers + workers."""
    yielded = 0
    most_alive = 0
    seen = 0

    def source() -> Iterator[int]:
        nonlocal yielded, most_alive
        for n in range(10_000_000):
            yielded += 1
            most_alive = max(most_alive, yielded - seen)
            yield n

    def slow(x: int) -> int:
        time.sleep(0.0005)
        return x

    buffers, workers = 3 + 5 + 2, 2 + 3
    pipeline = (
        Pipeline(source(), buffer=3).map(slow, workers=2, buffer=5).map(double, workers=3, buffer=2)
    )
    for _x in pipeline:
        seen += 1
        most_alive = max(most_alive, yielded - seen)
        if seen == 400:
            break
    # Two items are counted that the pipeline does not hold: the one the
    # source is yielding, and the one the loop has taken but not yet counted.
    assert most_alive <= buffers + workers + 2
    assert yielded < 400 + buffers + workers + 2
    no_pipeline_thread_left()


def test_batches_fill_flush_on_linger_and_at_the_end() -> None:
    gate = threading.Semaphore(0)

    def gated() -> Iterator[int]:
        for n in range(7):
            if n == 5:
                gate.acquire()  # the source pauses after 5 items
            yield n

    batches: list[list[int]] = []
    started = time.monotonic()
    for batch in Pipeline(gated()).batch(3, linger=0.05):
        batches.append(batch)
        if len(batches) == 2:
            assert time.monotonic() - started >= 0.04, "the partial batch waited its linger"
            gate.release()
    assert batches == [[0, 1, 2], [3, 4], [5, 6]]


@on_loop
async def test_batch_and_unbatch_round_trip_on_a_loop() -> None:
    out = [b async for b in Pipeline(range(25), buffer=10).batch(10)]
    assert out == [list(range(0, 10)), list(range(10, 20)), list(range(20, 25))]
    flat = [x async for x in Pipeline(range(25)).batch(4).unbatch()]
    assert flat == list(range(25))


def test_a_batch_without_linger_waits_until_full_or_the_end() -> None:
    assert Pipeline(range(5)).batch(2).to_list() == [[0, 1], [2, 3], [4]]


class Boom(Exception):
    pass


@pytest.mark.parametrize("kind", ["thread", "async"])
def test_an_error_in_stage_2_of_3_reraises_and_leaves_no_worker(kind: str) -> None:
    def fail_at_50(x: int) -> int:
        if x == 50:
            raise Boom(x)
        return x

    async def fail_at_50_async(x: int) -> int:
        return fail_at_50(x)

    fn: Any = fail_at_50 if kind == "thread" else fail_at_50_async
    pipeline = (
        Pipeline(range(10_000))
        .map(double, workers=2, buffer=4)
        .map(fn, workers=3)
        .map(double, workers=2)
    )
    with pytest.raises(Boom) as raised:
        pipeline.run()
    assert any(frame.name == "fail_at_50" for frame in raised.traceback), "the original traceback"
    no_pipeline_thread_left()


@on_loop
async def test_an_error_cancels_the_other_stages_async_work() -> None:
    sleeping = asyncio.Event()
    cancelled = asyncio.Event()

    async def one_fails_one_sleeps(x: int) -> int:
        if x == 0:
            await sleeping.wait()
            raise Boom(x)
        sleeping.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x

    with pytest.raises(Boom):
        await asyncio.wait_for(
            Pipeline(range(2)).map(one_fails_one_sleeps, workers=2).run_async(), 10
        )
    assert cancelled.is_set()


def test_on_error_skip_and_callable_count_and_go_on() -> None:
    def odd_fails(x: int) -> int:
        if x % 2:
            raise ValueError(x)
        return x

    pipeline = Pipeline(range(10)).map(odd_fails, workers=3, on_error="skip")
    assert pipeline.to_list() == [0, 2, 4, 6, 8]
    assert pipeline.stats()[0].errors == 5
    seen: list[tuple[int, str]] = []
    out = (
        Pipeline(range(6))
        .map(odd_fails, on_error=lambda item, exc: seen.append((item, type(exc).__name__)))
        .to_list()
    )
    assert out == [0, 2, 4]
    assert seen == [(1, "ValueError"), (3, "ValueError"), (5, "ValueError")]


def test_breaking_out_early_stops_every_worker() -> None:
    def endless() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    for x in Pipeline(endless()).map(double, workers=4).batch(3).unbatch():
        if x >= 100:
            break
    no_pipeline_thread_left()


@on_loop
async def test_cancelling_the_consumer_stops_every_worker() -> None:
    def endless() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    got = asyncio.Event()

    async def consume() -> None:
        async for _ in Pipeline(endless()).map(double, workers=3).map(double_async, workers=2):
            got.set()

    task = asyncio.create_task(consume())
    await got.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until_async(lambda: not pipeline_threads())


@on_loop
async def test_breaking_an_async_for_stops_the_pipeline() -> None:
    started = 0

    async def counted(x: int) -> int:
        nonlocal started
        started += 1
        return x

    async for x in Pipeline(range(1_000_000)).map(counted, workers=2):
        if x == 10:
            break
    # Once every worker task has ended, nothing can start any more.
    this = asyncio.current_task()
    await wait_until_async(lambda: asyncio.all_tasks() == {this})
    # 11 taken, at most the stage's default buffer of 100 passed on and not
    # taken, and one item in each of its 2 workers.
    assert started <= 11 + 100 + 2


def test_each_is_a_sink_and_run_returns_when_it_is_done() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def record(x: int) -> None:
        with lock:
            seen.append(x)

    pipeline = Pipeline(range(50)).map(double).each(record, workers=3)
    pipeline.run()
    assert sorted(seen) == [2 * x for x in range(50)]
    assert pipeline.stats()[-1].items_out == 50
    with pytest.raises(ValueError, match="each"):
        pipeline.map(double)


def test_stats_show_backpressure_per_stage() -> None:
    def slow(x: int) -> int:
        time.sleep(0.002)
        return x

    pipeline = Pipeline(range(40)).map(double, buffer=2).map(slow)
    assert pipeline.to_list() == [2 * x for x in range(40)]
    first, second = pipeline.stats()
    assert isinstance(first, StageStats)
    assert (first.items_in, first.items_out, second.items_in, second.items_out) == (40, 40, 40, 40)
    assert first.blocked_seconds > 0.01, "the fast stage waited for the slow one"
    assert second.blocked_seconds < first.blocked_seconds
    assert first.errors == second.errors == 0


def test_a_source_error_reaches_the_consumer() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise Boom("source")

    with pytest.raises(Boom, match="source"):
        Pipeline(broken()).map(double).run()
    no_pipeline_thread_left()


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: Pipeline(range(3)).map(double, workers=0), ValueError, "workers"),
        (lambda: Pipeline(range(3)).map(double, buffer=-1), ValueError, "buffer"),
        (lambda: Pipeline(range(3)).map(double, workers=1.5), TypeError, "workers"),
        (lambda: Pipeline(range(3)).batch(0), ValueError, "size"),
        (lambda: Pipeline(range(3)).batch(2, linger=-1), ValueError, "linger"),
        (lambda: Pipeline(range(3)).map(42), TypeError, "fn"),
        (lambda: Pipeline(range(3)).filter(double, on_error="ignore"), ValueError, "on_error"),
        (lambda: Pipeline(range(3)).map(double, ordered="yes"), TypeError, "ordered"),
        (lambda: Pipeline(42), TypeError, "source"),
        (lambda: Pipeline(range(3), buffer=-2), ValueError, "buffer"),
    ],
)
def test_bad_arguments_are_named(build: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build()


def test_repr_names_the_stages() -> None:
    assert repr(Pipeline(range(3)).map(double).batch(2)) == "<Pipeline map(double) -> batch>"
