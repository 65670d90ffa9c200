"""Names, the native wait and hold histograms, and their export to
Prometheus (a real HTTP scrape, parsed by prometheus_client's own parser) and
OpenTelemetry (the SDK's in-memory reader), checked against the behaviour
that produced each value."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

import brakes
import brakes.asgi
from brakes.metrics import otel, prometheus
from brakes.testing import ManualClock

from .conftest import wait_until
from .http_servers import serve_asgi

# --- names -----------------------------------------------------------------


def _named(name: str) -> list[Any]:
    queue: brakes.Queue[int] = brakes.Queue(4)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    return [
        brakes.Gauge(2, name=name),
        brakes.AdaptiveGauge(name=name),
        brakes.TokenBucket(5, name=name),
        brakes.LeakyBucket(5, name=name),
        brakes.Queue(3, name=name),
        brakes.LifoQueue(3, name=name),
        brakes.PriorityQueue(3, name=name),
        brakes.RetryBudget(name=name),
        brakes.CircuitBreaker(name=name),
        brakes.Pacer(queue, min_rate=1, max_rate=10, name=name),
        brakes.WorkerPool(1, name=name),
        brakes.Pipeline([1], name=name),
        brakes.asgi.LoadShed(app, gauge=brakes.Gauge(1), name=name),
    ]


def test_every_object_takes_a_name_and_shows_it_in_its_repr() -> None:
    for obj in _named("orders-db"):
        assert obj.name == "orders-db", type(obj)
        assert "'orders-db'" in repr(obj) or '"orders-db"' in repr(obj), repr(obj)


@pytest.mark.parametrize(
    "bad", ["", "tab\there", "line\nbreak", "\x00", "zero\u200bwidth", "\ud800"]
)
def test_a_name_must_be_non_empty_and_printable(bad: str) -> None:
    queue: brakes.Queue[int] = brakes.Queue(4)
    makers = [
        lambda: brakes.Gauge(2, name=bad),
        lambda: brakes.TokenBucket(5, name=bad),
        lambda: brakes.Queue(3, name=bad),
        lambda: brakes.AdaptiveGauge(name=bad),
        lambda: brakes.RetryBudget(name=bad),
        lambda: brakes.CircuitBreaker(name=bad),
        lambda: brakes.Pacer(queue, min_rate=1, max_rate=10, name=bad),
        lambda: brakes.WorkerPool(1, name=bad),
        lambda: brakes.Pipeline([1], name=bad),
    ]
    for make in makers:
        with pytest.raises(ValueError, match="name must be a non-empty string"):
            make()


def test_a_name_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="name must be a string"):
        brakes.Gauge(2, name=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a string"):
        brakes.WorkerPool(1, name=7)  # type: ignore[arg-type]


# --- histograms ------------------------------------------------------------


def test_a_gauge_counts_every_acquisition_in_its_wait_histogram() -> None:
    clock = ManualClock()
    gauge = brakes.Gauge(1, clock=clock)

    async def main() -> None:
        for _ in range(5):
            async with gauge:
                pass
        await gauge.acquire()
        waiter = asyncio.ensure_future(gauge.acquire())
        await asyncio.sleep(0)
        assert gauge.waiting == 1
        clock.advance(0.25)
        gauge.release()
        await waiter
        gauge.release()

    asyncio.run(main())
    s = gauge.stats()
    assert s.wait.count == s.acquired == 7
    assert s.wait.counts[0] == 6  # the ones that did not wait
    assert s.wait.sum == pytest.approx(0.25)
    # The one wait of 0.25 s lies in the bucket (0.131 s, 0.262 s].
    k = next(i for i, n in enumerate(s.wait.counts) if n and i > 0)
    assert s.wait.bounds[k - 1] < 0.25 <= s.wait.bounds[k]
    assert s.wait.p50 == 0.0
    assert s.wait.quantile(1.0) is not None and s.wait.quantile(1.0) <= s.wait.bounds[k]


def test_a_thread_that_waits_for_a_permit_records_its_wait() -> None:
    clock = ManualClock()
    gauge = brakes.Gauge(1, clock=clock)
    gauge.acquire_blocking()
    done = threading.Event()

    def wait() -> None:
        gauge.acquire_blocking()
        done.set()

    thread = threading.Thread(target=wait)
    thread.start()
    wait_until(lambda: gauge.waiting == 1)
    clock.advance(2.0)
    gauge.release()
    thread.join()
    assert done.is_set()
    s = gauge.stats()
    assert (s.wait.count, s.waited) == (2, 1)
    assert s.wait.sum == pytest.approx(2.0)


def test_a_bucket_records_how_long_a_caller_waited_for_its_turn() -> None:
    clock = ManualClock()
    bucket = brakes.TokenBucket(10, burst=1, clock=clock)

    async def main() -> None:
        assert bucket.try_acquire()
        waiter = asyncio.ensure_future(bucket.acquire())
        await asyncio.sleep(0)
        clock.advance(0.1)
        await waiter

    asyncio.run(main())
    s = bucket.stats()
    assert (s.wait.count, s.acquired, s.waited) == (2, 2, 1)
    assert s.wait.sum == pytest.approx(0.1)
    assert s.wait.counts[0] == 1


def test_a_queue_records_the_waits_of_producers_and_consumers_per_item() -> None:
    q: brakes.Queue[int] = brakes.Queue(1)
    q.put_nowait(1)
    got = []

    def produce() -> None:
        q.put_blocking(2)

    producer = threading.Thread(target=produce)
    producer.start()
    wait_until(lambda: q.stats().putters_waiting == 1)
    got.append(q.get_nowait())
    producer.join()
    got.append(q.get_nowait())

    def consume() -> None:
        got.append(q.get_blocking())

    consumer = threading.Thread(target=consume)
    consumer.start()
    wait_until(lambda: q.stats().getters_waiting == 1)
    q.put_nowait(3)
    consumer.join()
    s = q.stats()
    assert got == [1, 2, 3]
    assert (s.put_wait.count, s.put_wait.counts[0]) == (s.put, 2) == (3, 2)
    assert (s.get_wait.count, s.get_wait.counts[0]) == (s.got, 2) == (3, 2)
    assert s.put_wait.sum > 0 and s.get_wait.sum > 0


def test_a_batch_counts_each_of_its_items_with_the_batchs_wait() -> None:
    q: brakes.Queue[int] = brakes.Queue(10)

    async def main() -> list[int]:
        batch = asyncio.ensure_future(q.get_batch(3, linger=None))
        await asyncio.sleep(0)
        for i in range(3):
            q.put_nowait(i)
        return await batch

    assert asyncio.run(main()) == [0, 1, 2]
    s = q.stats().get_wait
    assert s.count == 3 and s.counts[0] == 0


def test_hold_times_are_sampled_from_blocks_and_timed_on_the_gauges_clock() -> None:
    clock = ManualClock()
    gauge = brakes.Gauge(4, clock=clock)
    for _ in range(2560):
        with gauge:
            clock.advance(0.01)

    async def main() -> None:
        for _ in range(2560):
            async with gauge:
                clock.advance(0.02)

    asyncio.run(main())
    hold = gauge.stats().hold
    # Every 256th acquisition makes a sample due; the next block takes it.
    assert 18 <= hold.count <= 20
    assert 0.01 * hold.count <= hold.sum <= 0.02 * hold.count + 1e-9
    assert hold.p99 is not None and 0.008 <= hold.p99 <= 0.033
    # A bare acquire/release pair is never timed: it cannot be paired.
    for _ in range(2560):
        gauge.try_acquire()
        gauge.release()
    assert gauge.stats().hold.count == hold.count


def test_a_block_that_waited_for_its_permit_is_timed_from_when_it_got_it() -> None:
    clock = ManualClock()
    gauge = brakes.Gauge(1, clock=clock)
    for _ in range(255):
        gauge.try_acquire()
        gauge.release()
    assert gauge.try_acquire()  # the 256th acquisition: a sample is due

    async def block() -> None:
        async with gauge:
            clock.advance(0.5)

    async def main() -> None:
        task = asyncio.ensure_future(block())
        await asyncio.sleep(0)
        assert gauge.waiting == 1
        clock.advance(3.0)  # waiting is not holding
        gauge.release()
        await task

    asyncio.run(main())
    s = gauge.stats()
    assert (s.hold.count, s.hold.sum) == (1, pytest.approx(0.5))
    assert s.wait.sum == pytest.approx(3.0)


def test_a_block_nested_in_the_timed_one_does_not_end_its_sample() -> None:
    clock = ManualClock()
    gauge = brakes.Gauge(4, clock=clock)
    for _ in range(255):
        gauge.try_acquire()
        gauge.release()

    @gauge
    def inner() -> None:
        clock.advance(0.001)

    with gauge:  # the 256th acquisition: this block is timed
        inner()
        clock.advance(0.2)

    async def nested() -> None:
        for _ in range(255):
            gauge.try_acquire()
            gauge.release()
        async with gauge:
            async with gauge:
                clock.advance(0.001)
            clock.advance(0.3)

    asyncio.run(nested())
    hold = gauge.stats().hold
    assert hold.count == 2
    assert hold.sum == pytest.approx(0.201 + 0.301)


def test_interleaved_async_blocks_time_their_own_holds() -> None:
    clock = ManualClock()
    gauge = brakes.Gauge(100, clock=clock)

    async def block(step: asyncio.Event, hold: float) -> None:
        async with gauge:
            await step.wait()
            clock.advance(hold)

    async def main() -> None:
        for _ in range(1200):
            short, long = asyncio.Event(), asyncio.Event()
            tasks = [
                asyncio.ensure_future(block(long, 0.5)),
                asyncio.ensure_future(block(short, 0.001)),
            ]
            await asyncio.sleep(0)
            short.set()
            await asyncio.sleep(0)
            long.set()
            await asyncio.gather(*tasks)

    asyncio.run(main())
    hold = gauge.stats().hold
    assert hold.count >= 4
    # Each sample is a short hold (0.001) or a long one (0.001 + 0.5 for the
    # task that was held open while the short one ran): never anything else.
    counts = hold.counts
    bounds = hold.bounds
    for k, n in enumerate(counts):
        if n:
            assert bounds[k] >= 0.001 and (bounds[k] <= 0.0021 or 0.26 <= bounds[k] <= 1.05)


def test_a_histogram_quantile_outside_0_to_1_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="q must be"):
        brakes.Gauge(1).stats().wait.quantile(1.5)
    assert brakes.Gauge(1).stats().wait.p99 is None
    assert "Histogram(count=0" in repr(brakes.Gauge(1).stats())


# --- Prometheus --------------------------------------------------------------


@pytest.fixture
def scrape() -> Iterator[tuple[CollectorRegistry, Any]]:
    registry = CollectorRegistry()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"

    def read() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return values

    try:
        yield registry, read
    finally:
        server.shutdown()
        thread.join()


def _value(values: dict[Any, float], metric: str, /, **labels: str) -> float:
    return values[(metric, tuple(sorted(labels.items())))]


def test_a_scrape_reports_what_a_gauge_did(scrape: Any) -> None:
    registry, read = scrape
    gauge = prometheus.register(brakes.Gauge(2, name="db"), registry=registry)
    assert gauge.try_acquire(2)
    refusals = 7
    for _ in range(refusals):
        assert not gauge.try_acquire()
    with pytest.raises(brakes.Overloaded):
        gauge.acquire_blocking(timeout=0.001)
    gauge.release(2)
    for _ in range(3):
        with gauge:
            pass
    values = read()
    assert _value(values, "brakes_gauge_acquisitions_total", name="db", outcome="rejected") == 7
    assert _value(values, "brakes_gauge_acquisitions_total", name="db", outcome="timed_out") == 1
    assert _value(values, "brakes_gauge_acquisitions_total", name="db", outcome="immediate") == 4
    assert _value(values, "brakes_gauge_limit", name="db") == 2
    assert _value(values, "brakes_gauge_in_flight", name="db") == 0
    labels = {"name": "db", "kind": "gauge", "op": "acquire"}
    assert _value(values, "brakes_wait_seconds_count", **labels) == gauge.stats().acquired == 4
    assert _value(values, "brakes_wait_seconds_bucket", le="0.0", **labels) == 4
    assert _value(values, "brakes_wait_seconds_bucket", le="+Inf", **labels) == 4


def test_a_scrape_reports_a_keyed_gauges_totals_and_keys_in_use(scrape: Any) -> None:
    registry, read = scrape
    hosts = prometheus.register(brakes.Gauge(1, name="hosts"), registry=registry)
    for host in ("a", "b", "c"):
        assert hosts.try_acquire(key=host)
    assert not hosts.try_acquire(key="a")
    hosts.release(key="c")
    values = read()
    assert _value(values, "brakes_gauge_keys", name="hosts") == 2
    assert _value(values, "brakes_gauge_in_flight", name="hosts") == 2
    assert _value(values, "brakes_gauge_acquisitions_total", name="hosts", outcome="immediate") == 3
    assert _value(values, "brakes_gauge_acquisitions_total", name="hosts", outcome="rejected") == 1


def test_a_scrape_reports_buckets_queues_and_breakers(scrape: Any) -> None:
    registry, read = scrape
    bucket = prometheus.register(brakes.TokenBucket(1, burst=3, name="api"), registry=registry)
    q = prometheus.register(brakes.Queue(2, overflow="drop_old", name="jobs"), registry=registry)
    breaker = prometheus.register(
        brakes.CircuitBreaker(minimum_calls=2, window_size=2, name="svc"), registry=registry
    )
    taken = sum(bucket.try_acquire() for _ in range(10))
    for i in range(5):
        q.put_nowait(i)
    q.get_nowait()

    def fail() -> None:
        raise OSError

    for _ in range(2):
        with pytest.raises(OSError):
            breaker.call(fail)
    with pytest.raises(brakes.CircuitOpen):
        breaker.call(fail)
    values = read()
    assert (
        _value(values, "brakes_bucket_decisions_total", name="api", outcome="limited") == 10 - taken
    )
    assert _value(values, "brakes_bucket_decisions_total", name="api", outcome="immediate") == taken
    assert _value(values, "brakes_queue_dropped_total", name="jobs") == 3
    assert _value(values, "brakes_queue_items_total", name="jobs", op="put") == 5
    assert _value(values, "brakes_queue_items_total", name="jobs", op="get") == 1
    assert _value(values, "brakes_queue_size", name="jobs") == 1
    assert _value(values, "brakes_breaker_state", name="svc", state="open") == 1
    assert _value(values, "brakes_breaker_state", name="svc", state="closed") == 0
    assert _value(values, "brakes_breaker_calls_total", name="svc", outcome="failed") == 2
    assert _value(values, "brakes_breaker_calls_total", name="svc", outcome="rejected") == 1
    assert _value(values, "brakes_breaker_transitions_total", name="svc", state="open") == 1


def test_a_scrape_reports_a_pipelines_stages_and_a_pools_jobs(scrape: Any) -> None:
    registry, read = scrape
    release = threading.Event()

    def slow(x: int) -> int:
        release.wait()
        return x

    pipeline = (
        brakes.Pipeline(range(20), buffer=1, name="etl")
        .map(lambda x: x + 1, buffer=1, ordered=False)
        .map(slow, buffer=1)
    )
    prometheus.register(pipeline, registry=registry)
    out: list[int] = []
    runner = threading.Thread(target=lambda: out.extend(pipeline))
    runner.start()
    # The first stage waits to pass an item on to the slow one.
    wait_until(
        lambda: (
            pipeline._run is not None and pipeline._run.parts[0].outbox.stats().putters_waiting == 1
        )
    )
    release.set()
    runner.join()
    pool = prometheus.register(brakes.WorkerPool(2, name="workers"), registry=registry)
    futures = [pool.submit(abs, -i) for i in range(5)]
    assert [f.result() for f in futures] == [0, 1, 2, 3, 4]
    pool.shutdown()
    values = read()
    stages = [s.name for s in pipeline.stats()]
    assert len(out) == 20
    first = stages[0]
    blocked = _value(values, "brakes_pipeline_stage_blocked_seconds_total", name="etl", stage=first)
    assert blocked == pytest.approx(pipeline.stats()[0].blocked_seconds) and blocked > 0
    second = stages[1] if stages[1] != first else f"{first}#2"
    assert (
        _value(
            values, "brakes_pipeline_stage_items_total", name="etl", stage=second, direction="out"
        )
        == 20
    )
    assert _value(values, "brakes_pool_jobs_total", name="workers", outcome="completed") == 5


def test_a_loadshed_apps_exported_counts_equal_the_responses_the_client_saw(
    scrape: Any,
) -> None:
    registry, read = scrape
    clock = ManualClock()
    gate = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await asyncio.get_running_loop().run_in_executor(None, gate.wait)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    shed = brakes.asgi.LoadShed(
        app,
        gauge=brakes.Gauge(2, max_wait=0),
        bucket=brakes.TokenBucket(1, burst=15, max_wait=0, clock=clock),
        name="web",
    )
    prometheus.register(shed, registry=registry)
    statuses: collections.Counter[int] = collections.Counter()
    with serve_asgi(shed) as url, httpx.Client(base_url=url) as client:
        slow = [threading.Thread(target=lambda: client.get("/slow")) for _ in range(2)]
        for thread in slow:
            thread.start()
        wait_until(lambda: shed.gauge is not None and shed.gauge.in_flight == 2)
        for _ in range(20):
            statuses[client.get("/").status_code] += 1
        gate.set()
        for thread in slow:
            thread.join()
        # The 503s spent no tokens: 13 are left for these, then 429.
        for _ in range(15):
            statuses[client.get("/").status_code] += 1
    statuses[200] += 2
    values = read()
    exported = {
        outcome: _value(values, "brakes_loadshed_requests_total", name="web", outcome=outcome)
        for outcome in ("admitted", "rate_limited", "overloaded")
    }
    assert exported == {
        "admitted": statuses[200],
        "rate_limited": statuses[429],
        "overloaded": statuses[503],
    }
    assert statuses[429] > 0 and statuses[503] > 0


def test_registering_needs_a_name_and_refuses_a_second_object_of_that_name() -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match="has no name"):
        prometheus.register(brakes.Gauge(1), registry=registry)
    unnamed = prometheus.register(brakes.Gauge(1), name="given", registry=registry)
    assert registry.get_sample_value("brakes_gauge_limit", {"name": "given"}) == 1
    with pytest.raises(ValueError, match="registered already"):
        prometheus.register(brakes.Gauge(1, name="given"), registry=registry)
    # Another kind may share the name.
    prometheus.register(brakes.TokenBucket(1, name="given"), registry=registry)
    with pytest.raises(TypeError, match="obj must be a brakes"):
        prometheus.register(object(), name="x", registry=registry)
    assert prometheus.unregister(unnamed, registry=registry)
    assert not prometheus.unregister(unnamed, registry=registry)
    assert registry.get_sample_value("brakes_gauge_limit", {"name": "given"}) is None


# --- OpenTelemetry -----------------------------------------------------------


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[tuple[dict[str, Any], float]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [
                    (dict(p.attributes or {}), p.value)  # type: ignore[union-attr]
                    for p in metric.data.data_points
                ]
    return points


def _point(points: dict[str, Any], metric: str, /, **attributes: str) -> float:
    matches = [value for attrs, value in points[metric] if attrs == attributes]
    assert len(matches) == 1, (metric, attributes, points.get(metric))
    return float(matches[0])


def test_opentelemetry_instruments_report_what_the_limiters_did() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    clock = ManualClock()
    gauge = otel.register(brakes.Gauge(2, name="db", clock=clock), meter)
    bucket = otel.register(brakes.TokenBucket(1, burst=2, name="api"), meter)
    q = otel.register(brakes.Queue(1, name="jobs"), meter)
    assert gauge.try_acquire(2)
    for _ in range(4):
        assert not gauge.try_acquire()
    taken = sum(bucket.try_acquire() for _ in range(6))
    q.put_nowait(1)
    with pytest.raises(brakes.QueueFull):
        q.put_nowait(2)

    async def wait_for_a_permit() -> None:
        waiter = asyncio.ensure_future(gauge.acquire())
        await asyncio.sleep(0)
        clock.advance(3.0)
        gauge.release()
        await waiter

    asyncio.run(wait_for_a_permit())
    points = _points(reader)
    assert _point(points, "brakes.gauge.requests", name="db", result="rejected") == 4
    assert _point(points, "brakes.gauge.requests", name="db", result="waited") == 1
    assert _point(points, "brakes.gauge.active_request_leases", name="db") == 2
    assert _point(points, "brakes.gauge.queued_requests", name="db") == 0
    assert _point(points, "brakes.bucket.requests", name="api", result="limited") == 6 - taken
    assert _point(points, "brakes.queue.rejected", name="jobs") == 1
    wait = {"name": "db", "kind": "gauge", "op": "acquire"}
    assert _point(points, "brakes.time_in_queue.count", **wait) == gauge.stats().acquired == 2
    p99 = _point(points, "brakes.time_in_queue", quantile="0.99", **wait)
    assert 2.0 < p99 <= 4.2  # the one 3 s wait, within its bucket
    assert _point(points, "brakes.time_in_queue.count", name="jobs", kind="queue", op="put") == 1
    assert otel.unregister(q, meter)
    assert "jobs" not in {a["name"] for a, _ in _points(reader).get("brakes.queue.size", [])}


def test_instruments_exist_for_what_an_object_exports_only_later() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    clock = ManualClock()
    queue: brakes.Queue[int] = brakes.Queue(10)
    pacer = otel.register(
        brakes.Pacer(queue, min_rate=1, max_rate=100, clock=clock, name="producer"), meter
    )
    pipeline = otel.register(brakes.Pipeline(range(3), name="later"), meter)
    assert "brakes.pacer.fill" not in _points(reader)
    for i in range(9):
        queue.put_nowait(i)
    clock.advance(1.0)
    pacer.try_acquire()  # reads the fill level: 0.9

    def double(x: int) -> int:
        return x * 2

    pipeline = pipeline.map(double)
    assert pipeline.to_list() == [0, 2, 4]
    points = _points(reader)
    stage = pipeline.stats()[0].name
    assert _point(points, "brakes.pacer.fill", name="producer") == pytest.approx(0.9)
    assert (
        _point(
            points,
            "brakes.pipeline.stage_items",
            name="later",
            stage=stage,
            direction="out",
        )
        == 3
    )


def test_objects_registered_on_the_default_meter_before_a_provider_is_set_are_exported() -> None:
    from opentelemetry import metrics

    first = otel.register(brakes.Gauge(3, name="first-default"))
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    second = otel.register(brakes.Gauge(3, name="second-default"))
    first.try_acquire()
    second.try_acquire(2)
    points = _points(reader)
    assert _point(points, "brakes.gauge.active_request_leases", name="first-default") == 1
    assert _point(points, "brakes.gauge.active_request_leases", name="second-default") == 2
    assert otel.unregister(first) and otel.unregister(second)


# --- logs --------------------------------------------------------------------


def test_a_flapping_breaker_writes_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="brakes")
    clock = ManualClock()
    breaker = brakes.CircuitBreaker(
        minimum_calls=1, window_size=1, open_for=1.0, half_open_calls=1, clock=clock, name="flappy"
    )

    def fail() -> None:
        raise OSError

    for _ in range(1000):
        with pytest.raises(OSError):
            breaker.call(fail)  # closed -> open
        clock.advance(1.0)
        assert breaker.call(lambda: 1) == 1  # open -> half_open -> closed
    assert breaker.transitions() == {"open": 1000, "half_open": 1000, "closed": 1000}
    lines = [r for r in caplog.records if r.name == "brakes.breaker"]
    assert 1 <= len(lines) <= 10
    assert lines[0].levelno == logging.WARNING
    assert "'flappy'" in lines[0].getMessage() and "closed -> open" in lines[0].getMessage()


def test_the_loggers_exist_once_brakes_is_imported() -> None:
    manager = logging.Logger.manager.loggerDict
    for kind in ("gauge", "bucket", "queue", "breaker", "adaptive", "redis", "pipeline", "pool"):
        assert f"brakes.{kind}" in manager
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("brakes").handlers)


def test_an_adaptive_limit_that_moves_far_is_logged_once_per_move(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="brakes.adaptive")
    clock = ManualClock()
    gauge = brakes.AdaptiveGauge(
        algorithm="aimd", initial=10, max_limit=200, clock=clock, name="svc", timeout=1.0
    )
    for _ in range(2000):
        held = [gauge.try_acquire() for _ in range(gauge.limit)]
        for ok in held:
            if ok:
                gauge.release(rtt=0.01)
    moves = [r.getMessage() for r in caplog.records if r.name == "brakes.adaptive"]
    assert gauge.limit >= 40
    assert 1 <= len(moves) <= 6
    assert all("'svc'" in m and "aimd" in m for m in moves)
    assert "limit 10 -> 20" in moves[0]
