"""brakes.wsgi.LoadShed in front of a WSGI app served by wsgiref in threads,
driven by httpx over the network."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest

from brakes import Gauge, Overloaded, RateLimited, TokenBucket
from brakes.http import client_ip, header
from brakes.redis import Backend as RedisBackend
from brakes.testing import ManualClock
from brakes.wsgi import LoadShed

from .conftest import wait_until
from .http_servers import check_a_stream_holds_its_slot, in_background, serve_wsgi

Environ = dict[str, Any]


class Backend:
    """A WSGI app whose requests the test can hold and release."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.closed = threading.Event()
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/hold":
            self.entered.set()
            self.release.wait(10)
        elif path == "/boom":
            raise RuntimeError("the app failed")
        elif path == "/stream":
            start_response("200 OK", [("content-type", "text/plain")])
            return self.stream()
        elif path == "/endless":
            start_response("200 OK", [("content-type", "text/plain")])
            return self.endless()
        elif path == "/work":
            with self.lock:
                self.running += 1
                self.most_running = max(self.most_running, self.running)
            time.sleep(random.uniform(0, 0.004))
            with self.lock:
                self.running -= 1
        start_response("200 OK", [("content-type", "text/plain"), ("content-length", "3")])
        return [b"ok\n"]

    def stream(self) -> Iterator[bytes]:
        yield b"first\n"
        self.entered.set()
        self.release.wait(10)
        yield b"last\n"

    def endless(self) -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 65536
        finally:
            self.closed.set()


@pytest.fixture
def backend() -> Backend:
    return Backend()


@contextlib.contextmanager
def served(app: Any) -> Iterator[httpx.Client]:
    with serve_wsgi(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_a_request_over_the_rate_gets_429_and_one_over_capacity_gets_503(
    backend: Backend,
) -> None:
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0)
    shed = LoadShed(backend, gauge=gauge, bucket=bucket)
    with served(shed) as client:
        held = in_background(client, "/hold")
        assert backend.entered.wait(5)
        full = client.get("/ok")
        backend.release.set()
        assert held.result(5).status_code == 200
        wait_until(lambda: gauge.in_flight == 0)
        # The 503 left its token: one is still there.
        last_token = client.get("/ok")
        over = client.get("/ok")
    assert full.status_code == 503 and full.headers["retry-after"] == "1"
    assert full.text == "Service Unavailable\n"
    assert last_token.status_code == 200
    assert over.status_code == 429 and over.headers["retry-after"] == "60"
    assert (shed.stats().admitted, shed.stats().overloaded, shed.stats().rate_limited) == (2, 1, 1)
    wait_until(lambda: gauge.in_flight == 0)


def test_retry_after_and_ratelimit_fields_follow_the_bucket_clock(backend: Backend) -> None:
    clock = ManualClock()
    bucket = TokenBucket(1, per=4, burst=2, max_wait=0, clock=clock)
    with served(LoadShed(backend, bucket=bucket)) as client:
        first = client.get("/ok")
        client.get("/ok")
        refused = client.get("/ok")
        clock.advance(1.5)
        later = client.get("/ok")
    assert first.headers["ratelimit-policy"] == '"default";q=2;w=8'
    assert first.headers["ratelimit"] == '"default";r=1;t=4'
    assert refused.status_code == 429 and refused.headers["retry-after"] == "4"
    assert later.status_code == 429 and later.headers["retry-after"] == "3"
    assert later.headers["ratelimit"] == '"default";r=0;t=7'


def test_a_request_waits_up_to_the_gauges_max_wait_for_a_slot(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=10)
    with served(LoadShed(backend, gauge=gauge)) as client:
        held = in_background(client, "/hold")
        assert backend.entered.wait(5)
        waiting = in_background(client, "/ok")
        wait_until(lambda: gauge.waiting == 1)
        backend.release.set()
        assert held.result(5).status_code == 200
        assert waiting.result(5).status_code == 200


def test_a_streamed_body_holds_its_slot_until_the_server_has_it_all(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=0)
    with served(LoadShed(backend, gauge=gauge)) as client:
        check_a_stream_holds_its_slot(client, gauge, backend.entered, backend.release)


def test_a_client_that_goes_away_mid_body_gives_its_slot_back(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=0)
    with serve_wsgi(LoadShed(backend, gauge=gauge)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"GET /endless HTTP/1.1\r\nHost: test\r\n\r\n")
            assert sock.recv(1024)
            assert gauge.in_flight == 1
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        # The server's next write fails; it closes the body, which releases.
        assert backend.closed.wait(5)
        wait_until(lambda: gauge.in_flight == 0)


def test_an_app_that_raises_gives_its_slot_back(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=0)
    with served(LoadShed(backend, gauge=gauge)) as client:
        assert client.get("/boom").status_code == 500
        wait_until(lambda: gauge.in_flight == 0)
        assert client.get("/ok").status_code == 200


def test_shadow_mode_admits_everything_and_marks_what_it_would_refuse(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0)
    shed = LoadShed(backend, gauge=gauge, bucket=bucket, shadow=True)
    with served(shed) as client:
        held = in_background(client, "/hold")
        assert backend.entered.wait(5)
        over_capacity = client.get("/ok")
        backend.release.set()
        held.result(5)
        wait_until(lambda: shed._shedding.shadow_in_flight.value == 0)
        client.get("/ok")  # the last token
        over_rate = client.get("/ok")
    assert over_capacity.status_code == 200 and over_capacity.headers["brakes-shadow"] == "503"
    assert over_capacity.headers["ratelimit"] == '"default";r=1;t=60'
    assert over_rate.status_code == 200 and over_rate.headers["brakes-shadow"] == "429"
    stats = shed.stats()
    assert (stats.admitted, stats.shadow_overloaded, stats.shadow_rate_limited) == (4, 1, 1)
    wait_until(lambda: shed._shedding.shadow_in_flight.value == 0)


def test_exempt_paths_are_never_limited(backend: Backend) -> None:
    bucket = TokenBucket(1, per=60, burst=1, max_wait=0)
    shed = LoadShed(backend, bucket=bucket, exempt=("/health",))
    with served(shed) as client:
        assert client.get("/ok").status_code == 200
        assert [client.get("/health/live").status_code for _ in range(3)] == [200] * 3
        assert client.get("/ok").status_code == 429


def test_forwarded_for_counts_only_from_trusted_proxies(backend: Backend) -> None:
    untrusted = TokenBucket(1, per=60, burst=1, max_wait=0, max_keys=100)
    trusted = TokenBucket(1, per=60, burst=1, max_wait=0, max_keys=100)
    spoofed = LoadShed(backend, bucket=untrusted, key=client_ip(trusted_proxies=["10.0.0.0/8"]))
    proxied = LoadShed(backend, bucket=trusted, key=client_ip(trusted_proxies=["127.0.0.0/8"]))
    for shed, expected in ((spoofed, [200, 429, 429]), (proxied, [200, 200, 200])):
        with served(shed) as client:
            statuses = [
                client.get("/ok", headers={"x-forwarded-for": f"198.51.100.{n}"}).status_code
                for n in range(3)
            ]
        assert statuses == expected


def test_each_key_draws_from_its_own_tokens(backend: Backend) -> None:
    bucket = TokenBucket(1, per=60, burst=1, max_wait=0, max_keys=10)
    with served(LoadShed(backend, bucket=bucket, key=header("x-api-key"))) as client:
        alice = [client.get("/ok", headers={"x-api-key": "alice"}).status_code for _ in range(2)]
        bob = client.get("/ok", headers={"x-api-key": "bob"}).status_code
    assert alice == [200, 429] and bob == 200


def test_on_reject_answers_with_a_wsgi_app_of_its_own(backend: Backend) -> None:
    def teapot(environ: Environ, start_response: Any) -> Iterable[bytes]:
        start_response("418 I'm a teapot", [("content-type", "text/plain")])
        return [b"busy\n"]

    seen: list[type[BaseException]] = []

    def on_reject(environ: Environ, error: Overloaded) -> Any:
        seen.append(type(error))
        return teapot

    bucket = TokenBucket(1, per=30, burst=1, max_wait=0)
    with served(LoadShed(backend, bucket=bucket, on_reject=on_reject)) as client:
        client.get("/ok")
        refused = client.get("/ok")
    assert refused.status_code == 418 and refused.text == "busy\n"
    assert refused.headers["retry-after"] == "30"
    assert seen == [RateLimited]


def test_threads_with_client_timeouts_never_exceed_the_gauge_or_leak_a_slot(
    backend: Backend,
) -> None:
    gauge = Gauge(3, max_wait=0.02)
    shed = LoadShed(backend, gauge=gauge)
    outcomes: list[int | str] = []
    lock = threading.Lock()

    def client(url: str) -> None:
        with httpx.Client(base_url=url) as http:
            for _ in range(25):
                try:
                    outcome: int | str = http.get(
                        "/work", timeout=random.choice([0.002, 10])
                    ).status_code
                except httpx.TimeoutException:
                    outcome = "timeout"
                with lock:
                    outcomes.append(outcome)

    with serve_wsgi(shed) as url:
        threads = [threading.Thread(target=client, args=(url,)) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        wait_until(lambda: gauge.in_flight == 0 and gauge.waiting == 0)
    assert len(outcomes) == 250
    assert backend.most_running <= 3
    assert 200 in outcomes
    assert shed.stats().admitted == gauge.stats().acquired


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="needs a gauge="):
        LoadShed(lambda environ, start: [])
    with pytest.raises(TypeError, match="app must be a WSGI application"):
        LoadShed(None, gauge=Gauge(1))  # type: ignore[arg-type]


def test_requests_refused_with_503_leave_their_clients_tokens(backend: Backend) -> None:
    clock = ManualClock()
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=60, burst=3, max_wait=0, clock=clock, max_keys=10)
    shed = LoadShed(backend, gauge=gauge, bucket=bucket, key=header("x-api-key"))
    alice = {"x-api-key": "alice"}
    with served(shed) as client:
        gauge.acquire_blocking()  # the server is full
        refused = [client.get("/ok", headers=alice) for _ in range(5)]
        assert bucket.tokens("alice") == 3
        gauge.release()
        admitted = [client.get("/ok", headers=alice).status_code for _ in range(3)]
        over = client.get("/ok", headers=alice)
        wait_until(lambda: gauge.in_flight == 0)
    assert [r.status_code for r in refused] == [503] * 5
    assert {r.headers["ratelimit"] for r in refused} == {'"default";r=3;t=0'}
    assert admitted == [200] * 3 and over.status_code == 429
    stats = shed.stats()
    assert (stats.admitted, stats.overloaded, stats.rate_limited) == (3, 5, 1)
    assert bucket.stats().acquired == 3 == gauge.stats().acquired - 1


def test_a_request_that_gives_up_waiting_for_a_slot_keeps_its_token(backend: Backend) -> None:
    gauge = Gauge(1, max_wait=0.01)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0, clock=ManualClock())
    with served(LoadShed(backend, gauge=gauge, bucket=bucket)) as client:
        gauge.acquire_blocking()
        refused = client.get("/ok")
        gauge.release()
    assert refused.status_code == 503 and gauge.stats().timed_out == 1
    assert bucket.tokens() == 2


def test_a_bucket_that_fails_while_the_request_holds_a_slot_gives_the_slot_back(
    backend: Backend,
) -> None:
    unreachable = RedisBackend("redis://127.0.0.1:1", on_error="raise")
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0, backend=unreachable, name="api")
    gauge = Gauge(1, max_wait=0)
    with served(LoadShed(backend, gauge=gauge, bucket=bucket)) as client:
        assert client.get("/ok").status_code == 500
    assert gauge.stats().acquired == 1 and gauge.in_flight == 0


@pytest.mark.parametrize(
    ("accept", "json"),
    [("application/json", True), ("*/*", False), ("text/html,*/*;q=0.8", False)],
)
def test_a_refusal_answers_json_to_a_request_that_prefers_it(
    backend: Backend, accept: str, json: bool
) -> None:
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=30, burst=1, max_wait=0)
    with served(LoadShed(backend, gauge=gauge, bucket=bucket)) as client:
        gauge.acquire_blocking()
        overloaded = client.get("/ok", headers={"accept": accept})
        gauge.release()
        client.get("/ok")
        limited = client.get("/ok", headers={"accept": accept})
    for response, detail, status in (
        (overloaded, "Service Unavailable", 503),
        (limited, "Too Many Requests", 429),
    ):
        assert response.status_code == status and response.headers["vary"] == "accept"
        assert "retry-after" in response.headers and "ratelimit" in response.headers
        if json:
            assert response.headers["content-type"] == "application/json"
            assert response.json() == {"detail": detail}
        else:
            assert response.text == detail + "\n"
    assert limited.headers["retry-after"] == "30"


def test_named_finds_a_live_middleware_by_its_name(backend: Backend) -> None:
    shed = LoadShed(backend, gauge=Gauge(1, max_wait=0), name="wsgi-under-test")
    assert LoadShed.named("wsgi-under-test") is shed
    with pytest.raises(LookupError, match=r"no live brakes\.wsgi\.LoadShed named 'other'"):
        LoadShed.named("other")
    newer = LoadShed(backend, gauge=Gauge(1, max_wait=0), name="wsgi-under-test")
    assert LoadShed.named("wsgi-under-test") is newer
