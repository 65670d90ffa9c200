"""brakes.django.LoadShedMiddleware in a real Django project (tests/django_project),
served by uvicorn (ASGI) and by wsgiref (WSGI), driven by httpx over the network."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

django = pytest.importorskip("django")

from asgiref.sync import iscoroutinefunction  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import override_settings  # noqa: E402

from brakes import Gauge, TokenBucket  # noqa: E402
from brakes.django import LoadShedMiddleware  # noqa: E402
from brakes.http import header  # noqa: E402
from brakes.testing import ManualClock  # noqa: E402

from .conftest import wait_until  # noqa: E402
from .django_project.urls import HOLD  # noqa: E402
from .http_servers import (  # noqa: E402
    check_a_stream_holds_its_slot,
    in_background,
    serve_asgi,
    serve_wsgi,
)

# Django's settings are the process's: loaded once, here, from the test project;
# each test sets BRAKES_LOADSHED with override_settings. The variable is not
# left behind for the subprocesses other tests start.
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django_project.settings"
try:
    django.setup()
finally:
    del os.environ["DJANGO_SETTINGS_MODULE"]

_names = itertools.count()


@pytest.fixture(params=["asgi", "wsgi"])
def kind(request: pytest.FixtureRequest) -> str:
    HOLD.entered.clear()
    HOLD.release.clear()
    return str(request.param)


@contextlib.contextmanager
def served(kind: str, **options: Any) -> Iterator[tuple[httpx.Client, LoadShedMiddleware]]:
    """The project under a real server, its middleware built from `options`."""
    name = f"django-{kind}-{next(_names)}"
    with override_settings(BRAKES_LOADSHED={**options, "name": name}):
        # Django builds its middleware with the handler.
        handler = get_asgi_application() if kind == "asgi" else get_wsgi_application()
    shed = LoadShedMiddleware.named(name)
    serve = serve_asgi if kind == "asgi" else serve_wsgi
    with serve(handler) as url, httpx.Client(base_url=url, timeout=10) as client:
        try:
            yield client, shed
        finally:
            # Before the server stops: it waits for the views still running.
            HOLD.release.set()


def test_429_and_503_with_their_fields_and_503s_leave_the_tokens(kind: str) -> None:
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0, clock=ManualClock())
    with served(kind, gauge=gauge, bucket=bucket) as (client, shed):
        # Under an ASGI server it waits on the loop, under WSGI in the thread.
        assert shed.async_mode is (kind == "asgi")
        held = in_background(client, "/hold")
        assert HOLD.entered.wait(5)
        full = [client.get("/ok") for _ in range(3)]
        as_json = client.get("/ok", headers={"accept": "application/json"})
        assert bucket.tokens() == 1
        HOLD.release.set()
        assert held.result(5).status_code == 200
        wait_until(lambda: gauge.in_flight == 0)
        last = client.get("/ok")
        over = client.get("/ok")
        over_json = client.get("/ok", headers={"accept": "application/json"})
    for response in full:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.headers["ratelimit"] == '"default";r=1;t=60'
        assert response.headers["ratelimit-policy"] == '"default";q=2;w=120'
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.text == "Service Unavailable\n"
    assert as_json.status_code == 503 and as_json.json() == {"detail": "Service Unavailable"}
    assert as_json.headers["content-type"] == "application/json"
    assert held.result().headers["ratelimit"] == '"default";r=1;t=60'
    assert last.status_code == 200 and last.text == "ok\n"
    assert last.headers["ratelimit"] == '"default";r=0;t=120'
    assert over.status_code == 429 and over.headers["retry-after"] == "60"
    assert over.text == "Too Many Requests\n" and over.headers["vary"] == "accept"
    assert over.headers["ratelimit"] == '"default";r=0;t=120'
    assert over_json.status_code == 429 and over_json.json() == {"detail": "Too Many Requests"}
    stats = shed.stats()
    assert (stats.admitted, stats.overloaded, stats.rate_limited) == (2, 4, 2)
    # The limiters' own counts agree: only admitted requests took a slot and a token.
    assert gauge.stats().acquired == 2 and gauge.in_flight == 0
    assert (bucket.stats().acquired, bucket.stats().rejected) == (2, 2)


def test_exempt_paths_are_never_limited(kind: str) -> None:
    bucket = TokenBucket(1, per=60, burst=1, max_wait=0)
    with served(kind, bucket=bucket, exempt=["/health"]) as (client, shed):
        assert client.get("/ok").status_code == 200
        exempt = [client.get(path) for path in ("/health", "/health", "/health/live")]
        limited = client.get("/healthz")
    assert [r.status_code for r in exempt] == [200] * 3
    assert all("ratelimit" not in r.headers for r in exempt)
    assert limited.status_code == 429
    assert (shed.stats().exempt, shed.stats().admitted, shed.stats().rate_limited) == (3, 1, 1)
    assert bucket.stats().acquired == 1


def test_shadow_mode_admits_everything_and_marks_what_it_would_refuse(kind: str) -> None:
    gauge = Gauge(1, max_wait=0)
    bucket = TokenBucket(1, per=60, burst=2, max_wait=0, clock=ManualClock())
    with served(kind, gauge=gauge, bucket=bucket, shadow=True) as (client, shed):
        held = in_background(client, "/hold")
        assert HOLD.entered.wait(5)
        over_capacity = client.get("/ok")
        HOLD.release.set()
        assert held.result(5).status_code == 200
        wait_until(lambda: shed._shedding.shadow_in_flight.value == 0)
        last = client.get("/ok")
        over_rate = client.get("/ok")
    assert over_capacity.status_code == 200 and over_capacity.headers["brakes-shadow"] == "503"
    assert over_capacity.headers["ratelimit"] == '"default";r=1;t=60'
    assert last.status_code == 200 and "brakes-shadow" not in last.headers
    assert over_rate.status_code == 200 and over_rate.headers["brakes-shadow"] == "429"
    stats = shed.stats()
    assert (stats.admitted, stats.shadow_overloaded, stats.shadow_rate_limited) == (4, 1, 1)
    assert (stats.overloaded, stats.rate_limited) == (0, 0)
    # A shadow gauge is never taken.
    assert gauge.stats().acquired == 0 and bucket.stats().acquired == 2


def test_each_client_key_draws_from_its_own_tokens(kind: str) -> None:
    bucket = TokenBucket(1, per=60, burst=1, max_wait=0, max_keys=10)
    with served(kind, bucket=bucket, key=header("x-api-key")) as (client, _):
        alice = [client.get("/ok", headers={"x-api-key": "alice"}).status_code for _ in range(2)]
        bob = client.get("/ok", headers={"x-api-key": "bob"}).status_code
    assert alice == [200, 429] and bob == 200
    assert bucket.stats().keys == 2


def test_a_streaming_response_holds_its_slot_until_it_is_sent(kind: str) -> None:
    gauge = Gauge(1, max_wait=0)
    with served(kind, gauge=gauge) as (client, _):
        check_a_stream_holds_its_slot(client, gauge, HOLD.entered, HOLD.release)
    assert gauge.stats().acquired == 2


def test_a_request_waits_up_to_the_gauges_max_wait(kind: str) -> None:
    gauge = Gauge(1, max_wait=10)
    bucket = TokenBucket(1, per=60, burst=3, max_wait=0, clock=ManualClock())
    with served(kind, gauge=gauge, bucket=bucket) as (client, _):
        gauge.acquire_blocking()
        waiting = in_background(client, "/ok")
        wait_until(lambda: gauge.waiting == 1)
        assert bucket.tokens() == 3  # no token is taken while it waits
        gauge.release()
        assert waiting.result(5).status_code == 200
    assert bucket.tokens() == 2 and gauge.stats().waited == 1


def test_the_middleware_is_async_under_an_async_chain_and_sync_under_a_sync_one() -> None:
    def get_response(request: Any) -> HttpResponse:
        return HttpResponse("ok")

    async def get_response_async(request: Any) -> HttpResponse:
        return HttpResponse("ok")

    with override_settings(BRAKES_LOADSHED={"gauge": Gauge(1)}):
        sync = LoadShedMiddleware(get_response)
        asynchronous = LoadShedMiddleware(get_response_async)
    assert not iscoroutinefunction(sync) and not sync.async_mode
    assert iscoroutinefunction(asynchronous) and asynchronous.async_mode
    assert LoadShedMiddleware.sync_capable and LoadShedMiddleware.async_capable
    assert repr(sync).startswith("<brakes.django.LoadShedMiddleware gauge=<brakes.Gauge")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({}, 'BRAKES_LOADSHED needs a "gauge", a "bucket" or both'),
        ("gauge", "BRAKES_LOADSHED must be a dict, got 'gauge'"),
        ({"gague": 1}, "BRAKES_LOADSHED has an unknown key 'gague'"),
        ({"gauge": 3}, "BRAKES_LOADSHED is invalid: gauge must be a brakes.Gauge"),
        ({"bucket": Gauge(1)}, "BRAKES_LOADSHED is invalid: bucket must be"),
        ({"gauge": Gauge(1), "shadow": "yes"}, "BRAKES_LOADSHED is invalid: shadow must be"),
        ({"gauge": Gauge(1), "exempt": ["health"]}, "BRAKES_LOADSHED is invalid: exempt"),
        ({"gauge": Gauge(1), "key": header("x")}, "BRAKES_LOADSHED is invalid: key="),
        ({"bucket": TokenBucket(1), "key": "ip"}, "BRAKES_LOADSHED is invalid: key must be"),
        ({"gauge": Gauge(1), "name": ""}, "BRAKES_LOADSHED is invalid: name must be"),
    ],
)
def test_an_invalid_setting_is_improperly_configured_and_names_the_key(
    setting: object, message: str
) -> None:
    with override_settings(BRAKES_LOADSHED=setting), pytest.raises(ImproperlyConfigured) as error:
        get_wsgi_application()  # loads the middleware
    assert str(error.value).startswith(message)


def test_a_missing_setting_is_improperly_configured() -> None:
    with pytest.raises(ImproperlyConfigured, match="BRAKES_LOADSHED is not set"):
        get_asgi_application()


def test_importing_brakes_never_imports_django() -> None:
    code = (
        "import sys, brakes, brakes.asgi, brakes.wsgi, brakes.http, brakes.testing\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('django', 'asgiref')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_an_asgi_client_that_goes_away_cancels_the_view_and_frees_its_slot() -> None:
    HOLD.entered.clear()
    HOLD.release.clear()
    gauge = Gauge(1, max_wait=0)
    with served("asgi", gauge=gauge) as (client, shed):
        host, port = str(client.base_url).removeprefix("http://").rstrip("/").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert HOLD.entered.wait(5)
            assert gauge.in_flight == 1
        # Django cancels the view when the client disconnects; the view is still held.
        wait_until(lambda: gauge.in_flight == 0)
        assert not HOLD.release.is_set()
        assert client.get("/ok").status_code == 200
    assert shed.stats().admitted == 2
