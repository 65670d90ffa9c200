"""brakes.asgi.LoadShed in front of a real Starlette app served by uvicorn,
driven by httpx over the network."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import brakes.wsgi
from brakes import Gauge, LeakyBucket, Overloaded, RateLimited, TokenBucket
from brakes.asgi import LoadShed
from brakes.http import client_ip, header
from brakes.redis import Backend as RedisBackend
from brakes.testing import ManualClock

from .conftest import wait_until, wait_until_async
from .http_servers import check_a_stream_holds_its_slot, in_background, serve_asgi


class Backend:
    """A Starlette app whose requests the test can hold and release."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()
        self.lifespan: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/ok", self.ok),
                Route("/health", self.ok),
                Route("/healthz", self.ok),
                Route("/hold", self.hold),
                Route("/boom", self.boom),
                Route("/stream", self.stream),
                Route("/stream-boom", self.stream_boom),
                Route("/endless", self.endless),
                Route("/work", self.work),
                WebSocketRoute("/ws", self.websocket),
            ],
            lifespan=self.lifespan_context,
        )

    @contextlib.asynccontextmanager
    async def lifespan_context(self, app: Starlette) -> AsyncIterator[None]:
        self.lifespan.append("startup")
        yield
        self.lifespan.append("shutdown")

    async def ok(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def hold(self, request: Request) -> Response:
        self.entered.set()
        await asyncio.to_thread(self.release.wait, 10)
        return PlainTextResponse("held")

    async def boom(self, request: Request) -> Response:
        raise RuntimeError("the app failed")

    async def stream(self, request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first\n"
            self.entered.set()
            await asyncio.to_thread(self.release.wait, 10)
            yield b"last\n"

        return StreamingResponse(chunks())

    async def stream_boom(self, request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first\n"
            raise RuntimeError("the stream failed")

        return StreamingResponse(chunks())

    async def endless(self, request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                yield b"x" * 1024
                await asyncio.sleep(0.005)

        return StreamingResponse(chunks())

    async def work(self, request: Request) -> Response:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(random.uniform(0, 0.01))
        finally:
            with self.lock:
                self.running -= 1
        return PlainTextResponse("done")

    async def websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        self.entered.set()
        async for text in ws.iter_text():
            await ws.send_text(text)


@pytest.fixture
def backend() -> Backend:
    return Backend()


@contextlib.contextmanager
def served(app: Any, **kwargs: Any) -> Iterator[httpx.Client]:
    with serve_asgi(app, **kwargs) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_a_request_over_the_rate_gets_429_and_one_over_capacity_gets_503(
    backend: Backend,
) -> None:
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0)
    shed = LoadShed(backend.app, gauge=gauge, bucket=bucket)
    with served(shed) as client:
        held = in_background(client, "/hold")
        assert backend.entered.wait(5)
        full = client.get("/ok")
        assert full.status_code == 503
        assert full.headers["retry-after"] == "1"
        assert full.text == "Service Unavailable\n"
        backend.release.set()
        assert held.result(5).status_code == 200
        # The 503 left its token: one is still there.
        assert client.get("/ok").status_code == 200
        assert client.get("/ok").status_code == 429
        # The bucket is asked first: out of tokens is 429 even with the gauge full.
        gauge.acquire_blocking()
        over = client.get("/ok")
        assert over.status_code == 429
        gauge.release()
    stats = shed.stats()
    assert (stats.admitted, stats.overloaded, stats.rate_limited) == (2, 1, 2)
    assert gauge.in_flight == 0


def test_ratelimit_remaining_is_never_negative_while_callers_are_booked(
    backend: Backend,
) -> None:
    """tokens() goes below 0 while callers wait for booked tokens; the
    field's remaining count stops at 0, as the draft requires."""
    clock = ManualClock()
    bucket = TokenBucket(1, per=4, burst=1, max_wait=0, clock=clock)
    assert bucket.try_acquire()
    waiter = threading.Thread(target=bucket.acquire_blocking)
    waiter.start()
    wait_until(lambda: bucket.stats().waiting == 1)
    assert bucket.tokens() == -1.0
    with served(LoadShed(backend.app, bucket=bucket)) as client:
        refused = client.get("/ok")
        assert refused.status_code == 429
        # The booked token comes in 4 s; the burst is whole again 4 s later.
        assert refused.headers["ratelimit"] == '"default";r=0;t=8'
    clock.advance(4)
    waiter.join()


def test_retry_after_and_ratelimit_fields_follow_the_bucket_clock(backend: Backend) -> None:
    clock = ManualClock()
    # A token every 4 s, bursts of 2: the policy refills its burst in 8 s.
    bucket = TokenBucket(1, per=4, burst=2, max_wait=0, clock=clock)
    with served(LoadShed(backend.app, bucket=bucket)) as client:
        first = client.get("/ok")
        assert first.status_code == 200
        assert first.headers["ratelimit-policy"] == '"default";q=2;w=8'
        assert first.headers["ratelimit"] == '"default";r=1;t=4'
        assert "retry-after" not in first.headers
        second = client.get("/ok")
        assert second.headers["ratelimit"] == '"default";r=0;t=8'
        refused = client.get("/ok")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "4"
        assert refused.headers["ratelimit"] == '"default";r=0;t=8'
        clock.advance(1.5)
        refused = client.get("/ok")
        # 2.5 s and 6.5 s, rounded up.
        assert refused.headers["retry-after"] == "3"
        assert refused.headers["ratelimit"] == '"default";r=0;t=7'
        clock.advance(2.4999)
        # A hair before the token: Retry-After never says 0 when refusing.
        refused = client.get("/ok")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        clock.advance(0.0001)
        again = client.get("/ok")
        assert again.status_code == 200
        assert again.headers["ratelimit"] == '"default";r=0;t=8'
        clock.advance(100)
        assert client.get("/ok").headers["ratelimit"] == '"default";r=1;t=4'


def test_headers_false_keeps_retry_after_and_drops_the_ratelimit_fields(
    backend: Backend,
) -> None:
    bucket = TokenBucket(1, per=60, burst=1, max_wait=0)
    with served(LoadShed(backend.app, bucket=bucket, headers=False)) as client:
        admitted = client.get("/ok")
        refused = client.get("/ok")
    assert "ratelimit" not in admitted.headers and "ratelimit-policy" not in admitted.headers
    assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
    assert "ratelimit" not in refused.headers


def test_a_leaky_bucket_reports_a_burst_of_one(backend: Backend) -> None:
    clock = ManualClock()
    bucket = LeakyBucket(1, per=2, max_wait=0, clock=clock)
    with served(LoadShed(backend.app, bucket=bucket)) as client:
        admitted = client.get("/ok")
        refused = client.get("/ok")
    assert admitted.headers["ratelimit-policy"] == '"default";q=1;w=2'
    assert admitted.headers["ratelimit"] == '"default";r=0;t=2'
    assert refused.status_code == 429 and refused.headers["retry-after"] == "2"


def test_a_request_waits_up_to_the_gauges_max_wait_for_a_slot(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=10)
    shed = LoadShed(backend.app, gauge=gauge)
    with served(shed) as client:
        held = in_background(client, "/hold")
        assert backend.entered.wait(5)
        waiting = in_background(client, "/ok")
        wait_until(lambda: gauge.waiting == 1)
        backend.release.set()
        assert held.result(5).status_code == 200
        assert waiting.result(5).status_code == 200
    assert gauge.stats().waited == 1 and shed.stats().overloaded == 0


def test_a_request_that_waits_past_max_wait_gets_503(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=0.05)
    with served(LoadShed(backend.app, gauge=gauge)) as client:
        held = in_background(client, "/hold")
        assert backend.entered.wait(5)
        refused = client.get("/ok")
        backend.release.set()
        held.result(5)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert gauge.stats().timed_out == 1


def test_a_bucket_with_max_wait_delays_instead_of_refusing(backend: Backend) -> None:
    clock = ManualClock()
    bucket = TokenBucket(1, per=1, burst=1, max_wait=5, clock=clock)
    with served(LoadShed(backend.app, bucket=bucket)) as client:
        assert client.get("/ok").status_code == 200
        waiting = in_background(client, "/ok")
        wait_until(lambda: bucket.stats().waiting == 1)
        clock.advance(1)
        assert waiting.result(5).status_code == 200
        # A wait longer than max_wait is refused at once.
        clock_refusal = TokenBucket(1, per=60, burst=1, max_wait=5, clock=clock)
    with served(LoadShed(backend.app, bucket=clock_refusal)) as client:
        client.get("/ok")
        refused = client.get("/ok")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "60"


def test_a_streaming_response_holds_its_slot_until_the_last_chunk(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=0)
    with served(LoadShed(backend.app, gauge=gauge)) as client:
        check_a_stream_holds_its_slot(client, gauge, backend.entered, backend.release)


def test_a_client_that_disconnects_mid_stream_gives_its_slot_back(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=0)
    with served(LoadShed(backend.app, gauge=gauge)) as client:
        with client.stream("GET", "/endless") as response:
            # Held in a name: an iterator dropped at once would close the stream.
            chunks = response.iter_bytes()
            assert next(chunks)
            assert gauge.in_flight == 1
        # Leaving the block closes the connection mid-body.
        wait_until(lambda: gauge.in_flight == 0)
        assert client.get("/ok").status_code == 200


def test_an_app_that_raises_gives_its_slot_back(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=0)
    with served(LoadShed(backend.app, gauge=gauge)) as client:
        assert client.get("/boom").status_code == 500
        # The answer can reach the client before the server's send returns.
        wait_until(lambda: gauge.in_flight == 0)
        with pytest.raises(httpx.HTTPError), client.stream("GET", "/stream-boom") as response:
            response.read()
        wait_until(lambda: gauge.in_flight == 0)
        assert client.get("/ok").status_code == 200


def test_shadow_mode_admits_everything_and_counts_what_it_would_refuse(
    backend: Backend,
) -> None:
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0)
    shed = LoadShed(backend.app, gauge=gauge, bucket=bucket, shadow=True)
    with served(shed) as client:
        held = in_background(client, "/hold")
        assert backend.entered.wait(5)
        over_capacity = client.get("/ok")
        backend.release.set()
        assert held.result(5).status_code == 200
        wait_until(lambda: shed._shedding.shadow_in_flight.value == 0)
        last_token = client.get("/ok")
        over_rate = client.get("/ok")
    assert over_capacity.status_code == 200
    assert over_capacity.headers["brakes-shadow"] == "503"
    # As a real one, a shadow LoadShed takes no token for a request it would refuse.
    assert over_capacity.headers["ratelimit"] == '"default";r=1;t=60'
    assert "brakes-shadow" not in last_token.headers
    assert over_rate.status_code == 200
    assert over_rate.headers["brakes-shadow"] == "429"
    assert over_rate.headers["ratelimit"] == '"default";r=0;t=120'
    assert "brakes-shadow" not in held.result().headers
    stats = shed.stats()
    assert stats.admitted == 4
    assert (stats.shadow_overloaded, stats.shadow_rate_limited) == (1, 1)
    assert (stats.overloaded, stats.rate_limited) == (0, 0)
    assert gauge.in_flight == 0


def test_exempt_paths_are_never_limited_and_match_whole_segments(backend: Backend) -> None:
    bucket = TokenBucket(1, per=60, burst=1, max_wait=0)
    shed = LoadShed(backend.app, bucket=bucket, exempt=["/health"])
    with served(shed) as client:
        assert client.get("/ok").status_code == 200
        for _ in range(3):
            health = client.get("/health")
            assert health.status_code == 200
            assert "ratelimit" not in health.headers
        assert client.get("/healthz").status_code == 429
    assert shed.stats().exempt == 3


@pytest.mark.parametrize(
    ("trusted", "expected_statuses", "expected_keys"),
    [
        # A peer outside trusted_proxies is keyed by its address, whatever it claims.
        (["10.0.0.0/8"], [200, 429, 429, 429], 1),
        # From a trusted proxy, each forwarded client has tokens of its own.
        (["127.0.0.1"], [200, 200, 200, 429], 3),
    ],
)
def test_forwarded_for_counts_only_from_a_trusted_proxy(
    backend: Backend, trusted: list[str], expected_statuses: list[int], expected_keys: int
) -> None:
    bucket = TokenBucket(1, per=60, burst=1, max_wait=0, max_keys=100)
    shed = LoadShed(backend.app, bucket=bucket, key=client_ip(trusted_proxies=trusted))
    with served(shed) as client:
        statuses = [
            client.get("/ok", headers={"x-forwarded-for": f"203.0.113.{n}"}).status_code
            for n in (0, 1, 2, 1)
        ]
    assert statuses == expected_statuses
    assert bucket.stats().keys == expected_keys


def test_each_key_draws_from_its_own_tokens(backend: Backend) -> None:
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0, max_keys=10)
    shed = LoadShed(backend.app, bucket=bucket, key=header("x-api-key"))
    with served(shed) as client:
        alice = [client.get("/ok", headers={"x-api-key": "alice"}) for _ in range(3)]
        bob = client.get("/ok", headers={"x-api-key": "bob"})
    assert [r.status_code for r in alice] == [200, 200, 429]
    assert bob.status_code == 200
    assert bob.headers["ratelimit"] == '"default";r=1;t=60'


def test_lifespan_events_pass_through_to_the_app(backend: Backend) -> None:
    with served(LoadShed(backend.app, gauge=Gauge(1, max_wait=0)), lifespan="on") as client:
        assert backend.lifespan == ["startup"]
        assert client.get("/ok").status_code == 200
    assert backend.lifespan == ["startup", "shutdown"]


def test_a_websocket_holds_a_slot_and_one_over_capacity_is_closed_with_1013(
    backend: Backend,
) -> None:
    gauge = Gauge(1, max_wait=0)
    shed = LoadShed(backend.app, gauge=gauge)
    with serve_asgi(shed) as url:
        ws_url = url.replace("http://", "ws://") + "/ws"
        with connect(ws_url) as first:
            first.send("hello")
            assert first.recv(timeout=5) == "hello"
            assert gauge.in_flight == 1
            with connect(ws_url) as second, pytest.raises(ConnectionClosed) as closed:
                second.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        wait_until(lambda: gauge.in_flight == 0)
        with connect(ws_url) as third:
            third.send("again")
            assert third.recv(timeout=5) == "again"
    assert shed.stats().overloaded == 1


def test_shadow_websockets_count_against_the_gauge_and_leave_the_bucket_alone(
    backend: Backend,
) -> None:
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=60, burst=1, max_wait=0)
    shed = LoadShed(backend.app, gauge=gauge, bucket=bucket, shadow=True)
    with serve_asgi(shed) as url:
        ws_url = url.replace("http://", "ws://") + "/ws"
        with connect(ws_url) as first, connect(ws_url) as second:
            for ws in (first, second):
                ws.send("hi")
                assert ws.recv(timeout=5) == "hi"
        wait_until(lambda: shed._shedding.shadow_in_flight.value == 0)
    assert (shed.stats().admitted, shed.stats().shadow_overloaded) == (2, 1)
    assert bucket.tokens() == 1 and gauge.in_flight == 0


def test_on_reject_answers_with_its_own_response_and_keeps_retry_after(
    backend: Backend,
) -> None:
    seen: list[tuple[str, type[BaseException]]] = []

    def on_reject(scope: Any, error: Overloaded) -> Response:
        seen.append((scope["path"], type(error)))
        status = 429 if isinstance(error, RateLimited) else 503
        return JSONResponse({"error": type(error).__name__}, status_code=status)

    bucket = TokenBucket(1, per=30, burst=1, max_wait=0)
    with served(LoadShed(backend.app, bucket=bucket, on_reject=on_reject)) as client:
        client.get("/ok")
        refused = client.get("/ok")
    assert refused.status_code == 429
    assert refused.json() == {"error": "RateLimited"}
    assert refused.headers["retry-after"] == "30"
    assert refused.headers["ratelimit"] == '"default";r=0;t=30'
    assert seen == [("/ok", RateLimited)]


def test_an_async_on_reject_that_returns_none_gets_the_default_answer(
    backend: Backend,
) -> None:
    async def on_reject(scope: Any, error: Overloaded) -> None:
        return None

    gauge = Gauge(1, max_wait=0)
    gauge.acquire_blocking()
    with served(LoadShed(backend.app, gauge=gauge, on_reject=on_reject)) as client:
        refused = client.get("/ok")
    assert refused.status_code == 503 and refused.text == "Service Unavailable\n"


def test_concurrent_clients_with_timeouts_never_exceed_the_gauge_or_leak_a_slot(
    backend: Backend,
) -> None:
    gauge = Gauge(3, max_wait=0.005)
    shed = LoadShed(backend.app, gauge=gauge)
    outcomes: list[int | str] = []
    lock = threading.Lock()

    async def client(url: str, requests: int) -> None:
        async with httpx.AsyncClient(base_url=url) as http:
            for _ in range(requests):
                timeout = random.choice([0.001, 0.003, 10])
                try:
                    response = await http.get("/work", timeout=timeout)
                    outcome: int | str = response.status_code
                except httpx.TimeoutException:
                    outcome = "timeout"
                with lock:
                    outcomes.append(outcome)

    async def clients(url: str) -> None:
        await asyncio.gather(*(client(url, 25) for _ in range(12)))

    with serve_asgi(shed) as url:
        threads = [threading.Thread(target=asyncio.run, args=(clients(url),)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        wait_until(lambda: gauge.in_flight == 0 and gauge.waiting == 0)
    assert len(outcomes) == 2 * 12 * 25
    assert backend.most_running <= 3
    assert set(outcomes) <= {200, 503, "timeout"}
    stats = shed.stats()
    # Both ways were taken: some requests admitted, some refused after waiting.
    assert stats.admitted > 0 and stats.overloaded > 0 and gauge.stats().timed_out > 0
    # Each request the server saw was admitted or refused, exactly once.
    assert stats.admitted >= outcomes.count(200)
    assert stats.overloaded >= outcomes.count(503)
    assert stats.admitted == gauge.stats().acquired


def test_bad_arguments_are_named() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(ValueError, match="gauge=, a bucket="):
        LoadShed(app)
    with pytest.raises(TypeError, match="gauge must be"):
        LoadShed(app, gauge=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bucket must be"):
        LoadShed(app, bucket=Gauge(1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"key= .* needs a bucket"):
        LoadShed(app, gauge=Gauge(1), key=client_ip())
    with pytest.raises(TypeError, match="key must be callable"):
        LoadShed(app, bucket=TokenBucket(1), key="ip")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="shadow must be True or False"):
        LoadShed(app, gauge=Gauge(1), shadow=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="headers must be True or False"):
        LoadShed(app, gauge=Gauge(1), headers="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exempt paths must"):
        LoadShed(app, gauge=Gauge(1), exempt=["health"])
    with pytest.raises(TypeError, match="on_reject must be callable"):
        LoadShed(app, gauge=Gauge(1), on_reject=503)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="app must be an ASGI application"):
        LoadShed(None, gauge=Gauge(1))  # type: ignore[arg-type]
    shed = LoadShed(app, gauge=Gauge(2), exempt="/health")
    assert shed.gauge is not None and shed.bucket is None
    assert repr(shed).startswith("<brakes.asgi.LoadShed gauge=<brakes.Gauge")


def test_exception_handlers_answer_decorated_fastapi_endpoints() -> None:
    from fastapi import FastAPI

    import brakes.asgi

    app = FastAPI(exception_handlers=brakes.asgi.exception_handlers)
    gauge = Gauge(1, max_wait=0)

    @app.get("/search")
    @TokenBucket(1, per=5, burst=1, max_wait=0)
    async def search(q: str) -> dict[str, str]:
        return {"q": q}

    @app.get("/report")
    @gauge
    def report() -> dict[str, str]:
        return {"report": "ready"}

    with served(app) as client:
        assert client.get("/search", params={"q": "x"}).json() == {"q": "x"}
        # The decorator keeps the signature: FastAPI still validates q.
        assert client.get("/search").status_code == 422
        refused = client.get("/search", params={"q": "y"})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
        assert client.get("/report").json() == {"report": "ready"}
        gauge.acquire_blocking()
        busy = client.get("/report")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"


def test_a_slot_is_held_until_the_app_returns_even_when_the_client_has_gone() -> None:
    """Clients that connect and vanish: their handlers go on running, and
    each holds its slot until it returns, so the gauge bounds the work."""
    gauge = Gauge(4, max_wait=0)
    running = 0
    most_running = 0
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal running, most_running
        running += 1
        most_running = max(most_running, running)
        try:
            assert (await receive())["type"] == "http.disconnect"
            await release.wait()  # work that goes on without its client
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"late"})
        finally:
            running -= 1

    shed = LoadShed(app, gauge=gauge)
    statuses: list[int] = []

    async def vanishing_client() -> None:
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": None}

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await shed(scope, receive, send)

    async def main() -> None:
        clients = [asyncio.create_task(vanishing_client()) for _ in range(12)]
        # Every client has called: 4 are in, 8 refused (the handlers wait
        # for `release`, so nothing else can change the counts).
        await wait_until_async(lambda: len(statuses) + running == 12, timeout=30)
        assert running == 4
        assert gauge.in_flight == 4
        release.set()
        await asyncio.gather(*clients)

    asyncio.run(main())
    assert most_running == 4
    assert sorted(statuses) == [200] * 4 + [503] * 8
    assert gauge.in_flight == 0


def test_requests_refused_with_503_leave_their_clients_tokens(backend: Backend) -> None:
    clock = ManualClock()
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=60, burst=3, max_wait=0, clock=clock, max_keys=10)
    shed = LoadShed(backend.app, gauge=gauge, bucket=bucket, key=header("x-api-key"))
    alice = {"x-api-key": "alice"}
    with served(shed) as client:
        gauge.acquire_blocking()  # the server is full
        refused = [client.get("/ok", headers=alice) for _ in range(5)]
        assert bucket.tokens("alice") == 3
        gauge.release()
        admitted = [client.get("/ok", headers=alice).status_code for _ in range(3)]
        over = client.get("/ok", headers=alice)
    assert [r.status_code for r in refused] == [503] * 5
    # Each 503 tells the client what it still has: all of it.
    assert {r.headers["ratelimit"] for r in refused} == {'"default";r=3;t=0'}
    assert admitted == [200] * 3 and over.status_code == 429
    stats = shed.stats()
    assert (stats.admitted, stats.overloaded, stats.rate_limited) == (3, 5, 1)
    assert bucket.stats().acquired == 3 == gauge.stats().acquired - 1
    assert gauge.in_flight == 0


def test_a_request_that_gives_up_waiting_for_a_slot_keeps_its_token(backend: Backend) -> None:
    clock = ManualClock()
    gauge = Gauge(1, max_wait=0.01)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0, clock=clock)
    with served(LoadShed(backend.app, gauge=gauge, bucket=bucket)) as client:
        gauge.acquire_blocking()
        refused = client.get("/ok")
        gauge.release()
    assert refused.status_code == 503 and gauge.stats().timed_out == 1
    assert bucket.tokens() == 2


def test_a_request_waiting_for_a_slot_takes_its_token_only_once_admitted(
    backend: Backend,
) -> None:
    clock = ManualClock()
    gauge = Gauge(1, max_wait=10)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0, clock=clock)
    with served(LoadShed(backend.app, gauge=gauge, bucket=bucket)) as client:
        gauge.acquire_blocking()
        waiting = in_background(client, "/ok")
        wait_until(lambda: gauge.waiting == 1)
        assert bucket.tokens() == 2
        gauge.release()
        admitted = waiting.result(5)
    assert admitted.status_code == 200
    assert admitted.headers["ratelimit"] == '"default";r=1;t=60'
    assert bucket.tokens() == 1


def test_a_request_cancelled_while_waiting_for_a_slot_takes_nothing(backend: Backend) -> None:
    clock = ManualClock()
    gauge = Gauge(1, max_wait=None)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0, clock=clock)
    shed = LoadShed(backend.app, gauge=gauge, bucket=bucket)
    scope = {"type": "http", "method": "GET", "path": "/ok", "headers": [], "client": None}

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        raise AssertionError("a cancelled request sends nothing")

    async def main() -> None:
        gauge.acquire_blocking()
        request = asyncio.ensure_future(shed(scope, receive, send))
        await wait_until_async(lambda: gauge.waiting == 1)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        gauge.release()

    asyncio.run(main())
    assert (gauge.in_flight, gauge.waiting, gauge.stats().cancelled) == (0, 0, 1)
    assert bucket.tokens() == 2
    assert shed.stats().admitted == shed.stats().overloaded == 0


def test_a_key_function_that_fails_takes_nothing(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0, max_keys=10)
    # Not a key a bucket takes: the bucket raises on it.
    shed = LoadShed(backend.app, gauge=gauge, bucket=bucket, key=lambda scope: [scope["path"]])  # type: ignore[arg-type, return-value]
    with served(shed) as client:
        assert client.get("/ok").status_code == 500
    assert gauge.in_flight == 0 and gauge.stats().acquired == 0


def test_a_bucket_that_fails_while_the_request_holds_a_slot_gives_the_slot_back(
    backend: Backend,
) -> None:
    # A Redis bucket is asked once the slot is taken; this Redis cannot be reached.
    unreachable = RedisBackend("redis://127.0.0.1:1", on_error="raise")
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0, backend=unreachable, name="api")
    gauge = Gauge(1, max_wait=0)
    with served(LoadShed(backend.app, gauge=gauge, bucket=bucket)) as client:
        assert client.get("/ok").status_code == 500
    assert gauge.stats().acquired == 1 and gauge.in_flight == 0


def test_a_bucket_that_waits_takes_the_token_before_the_slot(backend: Backend) -> None:
    """A request that a bucket with max_wait paces waits holding no slot, so
    one client's paced requests never fill the gauge."""
    clock = ManualClock()
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=1, burst=1, max_wait=5, clock=clock)
    with served(LoadShed(backend.app, gauge=gauge, bucket=bucket)) as client:
        assert client.get("/ok").status_code == 200
        paced = in_background(client, "/ok")
        wait_until(lambda: bucket.stats().waiting == 1)
        assert gauge.in_flight == 0
        clock.advance(1)
        assert paced.result(5).status_code == 200
    assert gauge.stats().acquired == 2 and gauge.in_flight == 0


@pytest.mark.parametrize(
    ("accept", "json"),
    [
        ("application/json", True),
        ("text/plain;q=0.9, application/json", True),
        ("*/*", False),  # curl, httpx
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        (None, False),
    ],
)
def test_a_refusal_answers_json_to_a_request_that_prefers_it(
    backend: Backend, accept: str | None, json: bool
) -> None:
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=30, burst=2, max_wait=0)
    headers = {} if accept is None else {"accept": accept}
    with served(LoadShed(backend.app, gauge=gauge, bucket=bucket)) as client:
        client.headers.pop("accept")
        gauge.acquire_blocking()
        overloaded = client.get("/ok", headers=headers)
        gauge.release()
        client.get("/ok"), client.get("/ok")
        limited = client.get("/ok", headers=headers)
    for response, detail, status in (
        (overloaded, "Service Unavailable", 503),
        (limited, "Too Many Requests", 429),
    ):
        assert response.status_code == status
        assert "retry-after" in response.headers and "ratelimit" in response.headers
        assert response.headers["vary"] == "accept"
        if json:
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {"detail": detail}
        else:
            assert response.headers["content-type"] == "text/plain; charset=utf-8"
            assert response.text == detail + "\n"
    assert limited.headers["retry-after"] == "30"


def test_exception_handlers_answer_json_to_a_request_that_prefers_it() -> None:
    from fastapi import FastAPI

    import brakes.asgi

    app = FastAPI(exception_handlers=brakes.asgi.exception_handlers)

    @app.get("/export")
    @TokenBucket(1, per=60, burst=1, max_wait=0)
    async def export() -> dict[str, str]:
        return {"export": "ready"}

    with served(app) as client:
        assert client.get("/export").status_code == 200
        as_json = client.get("/export", headers={"accept": "application/json"})
        as_text = client.get("/export")
    assert as_json.status_code == 429 and as_json.json() == {"detail": "Too Many Requests"}
    assert as_json.headers["retry-after"] == "60"
    assert as_text.status_code == 429 and as_text.text == "Too Many Requests\n"


def test_named_finds_the_middleware_starlette_built() -> None:
    seen_at_startup: list[LoadShed] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Starlette builds its middleware before the startup runs.
        seen_at_startup.append(LoadShed.named("api-under-test"))
        yield

    async def stats(request: Request) -> Response:
        shed = LoadShed.named("api-under-test")
        return JSONResponse({"admitted": shed.stats().admitted})

    gauge = Gauge(4, max_wait=0)
    app = Starlette(routes=[Route("/stats", stats)], lifespan=lifespan)
    app.add_middleware(LoadShed, gauge=gauge, name="api-under-test")
    with pytest.raises(LookupError, match="api-under-test"):
        LoadShed.named("api-under-test")
    with served(app, lifespan="on") as client:
        assert [client.get("/stats").json()["admitted"] for _ in range(3)] == [1, 2, 3]
    shed = LoadShed.named("api-under-test")
    assert seen_at_startup == [shed]
    assert shed.gauge is gauge and shed.name == "api-under-test"
    assert shed.stats().admitted == 3 == gauge.stats().acquired
    # A WSGI LoadShed of the same name is another one.
    with pytest.raises(LookupError):
        brakes.wsgi.LoadShed.named("api-under-test")
    # The registry holds them weakly: a middleware goes with its app.
    seen_at_startup.clear()
    del app, shed
    gc.collect()
    with pytest.raises(LookupError):
        LoadShed.named("api-under-test")
