"""The ported seed servers behave as the seeds describe, over real sockets."""

from __future__ import annotations

import asyncio
import importlib.util
import pathlib
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

from brakes import Gauge
from brakes.testing import ManualClock

from .conftest import wait_until, wait_until_async

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_pressure_gauge_serves_ten_at_once_and_answers_429_to_the_rest() -> None:
    example = load("pressure_gauge_server")
    release_work = threading.Event()
    gauge = Gauge(10, max_wait=0)

    def work() -> str:
        release_work.wait(timeout=10)
        return "done"

    server = example.make_server(port=0, work=work, gauge=gauge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/request"
    try:
        with ThreadPoolExecutor(max_workers=15) as pool:
            first_ten = [pool.submit(get, url) for _ in range(10)]
            wait_until(lambda: gauge.in_flight == 10)
            turned_away = [pool.submit(get, url) for _ in range(5)]
            # The refusals come back while all ten slots are still busy.
            assert [f.result(timeout=10) for f in turned_away] == [(429, "Too many requests")] * 5
            release_work.set()
            assert [f.result(timeout=10) for f in first_ten] == [(200, "done")] * 10
        assert get(url) == (200, "done")
        assert gauge.in_flight == 0
    finally:
        release_work.set()
        server.shutdown()
        server.server_close()


async def http_get(port: int) -> tuple[int, str, float]:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    response = await reader.read()
    writer.close()
    head, _, body = response.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body, time.monotonic() - started


def test_semaphore_server_serves_a_request_that_gets_a_slot_within_200_ms() -> None:
    example = load("semaphore_server")

    async def main() -> None:
        release_work = asyncio.Event()

        async def work() -> str:
            await release_work.wait()
            return "done"

        app = example.RateLimitedServer(limit=2, max_wait=0.2, work=work)
        server = await app.serve(port=0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            busy = [asyncio.create_task(http_get(port)) for _ in range(2)]
            await wait_until_async(lambda: app.gauge.in_flight == 2)
            late = asyncio.create_task(http_get(port))
            # Both slots stay busy: the third request waits 200 ms, then 503.
            status, body, elapsed = await late
            assert (status, body) == (503, "server busy")
            assert elapsed >= 0.19
            # A slot that frees up within the wait lets the request through.
            waiting = asyncio.create_task(http_get(port))
            await wait_until_async(lambda: app.gauge.waiting == 1)
            release_work.set()
            assert (await waiting)[:2] == (200, "done")
            assert [(await t)[:2] for t in busy] == [(200, "done")] * 2
            assert app.gauge.in_flight == 0

    asyncio.run(main())


def test_leaky_bucket_seed_serves_one_then_five_500_ms_apart_and_refuses_fourteen() -> None:
    example = load("leaky_bucket")
    clock = ManualClock()

    async def main() -> list[tuple[int, str, float]]:
        bucket = example.make_bucket(clock)
        results: list[tuple[int, str, float]] = []
        run = asyncio.create_task(example.burst_of_requests(bucket, 20, clock.now, results))

        def served() -> int:
            return sum(outcome == "served" for _, outcome, _ in results)

        await wait_until_async(lambda: bucket.stats().waiting == 5 and served() == 1)
        assert bucket.stats().rejected == 14, "the refusals come at once"
        for count in range(2, 7):
            clock.advance(0.5)
            await wait_until_async(lambda count=count: served() == count)
        return await run

    results = asyncio.run(main())
    served = sorted(seconds for _, outcome, seconds in results if outcome == "served")
    refused = [seconds for _, outcome, seconds in results if outcome == "refused"]
    assert served == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert len(refused) == 14 and all(r > 0 for r in refused)


def test_token_bucket_seed_spends_the_burst_then_passes_every_other_request() -> None:
    example = load("token_bucket")
    clock = ManualClock()
    passed = example.produce(example.make_bucket(clock), 30, clock.advance)
    # Exactly: request k (at k·100 ms) passes while fewer than 5 + k·100/200
    # requests, rounded down, have passed.
    expected: list[bool] = []
    for k in range(30):
        expected.append(sum(expected) < 5 + k // 2)
    assert passed == expected
    assert passed[:5] == [True] * 5
    # After the burst, 20 requests over 2 s at 5 per second: 10 pass.
    assert sum(passed[10:]) == 10


def test_buffered_channel_holds_the_producer_within_the_buffer() -> None:
    example = load("buffered_channel")
    gate = threading.Semaphore(0)
    lines: list[str] = []

    def sent() -> int:
        return sum(line.startswith("sent") for line in lines)

    result: list[list[tuple[str, int]]] = []
    runner = threading.Thread(
        target=lambda: result.append(
            example.run(consume=lambda item: gate.acquire(), log=lines.append)
        )
    )
    runner.start()
    # The consumer holds item 0 and waits at the gate: 3 more fill the buffer.
    wait_until(lambda: sent() >= 4)
    assert sent() == 4
    for _ in range(10):
        gate.release()
    runner.join(timeout=10)
    events = result[0]
    in_flight = 0
    for kind, _ in events:
        in_flight += 1 if kind == "sent" else -1
        assert in_flight <= 3 + 1, "the buffer, plus the item in the consumer's hands"
    assert [n for kind, n in events if kind == "received"] == list(range(10))


def test_bounded_queue_never_holds_more_than_five() -> None:
    example = load("bounded_queue")
    report = asyncio.run(example.run(consumer_delay=0.001, log=lambda _: None))
    assert report.received == list(range(20))
    assert report.largest_size == 5
    assert report.puts_that_waited >= 14, "the producer was held back by the consumer"


def test_drop_when_full_keeps_the_oldest_or_the_newest() -> None:
    example = load("drop_when_full")
    received, dropped = asyncio.run(example.run("drop_new", log=lambda _: None))
    assert (received, dropped) == (list(range(5)), list(range(5, 20)))
    received, dropped = asyncio.run(example.run("drop_old", log=lambda _: None))
    assert (received, dropped) == (list(range(15, 20)), list(range(15)))


def test_worker_pool_runs_3_at_once_queues_5_and_holds_the_producer() -> None:
    report = load("worker_pool").run(log=lambda line: None)
    assert report.results == [2 * n for n in range(20)]
    assert report.most_running == 3
    assert report.most_queued == 5
    # Once 3 run and 5 wait, a submit waits for a worker to free up: the
    # last 12 jobs go in only as 4 rounds of 3 jobs finish.
    assert report.submits_that_waited >= 1
    assert report.seconds_to_submit_all >= 3 * 0.05


def test_batching_pipeline_batches_flushes_on_linger_and_holds_the_producer() -> None:
    example = load("batching_pipeline")
    flowing = example.run(items=500, log=lambda line: None)
    assert flowing.stored == list(range(500))
    sizes = flowing.batch_sizes
    assert (max(sizes["parse"]), max(sizes["enrich"]), max(sizes["store"])) == (10, 5, 3)
    assert sizes["parse"].count(10) == 50, "a steady source fills every batch"
    # Buffers 50+30+20; each batch stage fills one batch while the stage
    # after it works on another; one worker per stage.
    bound = (50 + 30 + 20) + 2 * (10 + 5 + 3) + 4
    assert flowing.most_ahead <= bound < 500, "the slow store stage held the producer back"

    lull = example.run(items=30, pause_after=7, pause_seconds=0.6, log=lambda line: None)
    assert lull.stored == list(range(30))
    assert lull.batch_sizes["parse"][0] == 7, "the partial batch went on after its linger"
