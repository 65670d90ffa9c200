"""Real HTTP servers for the middleware tests: uvicorn for ASGI apps and
wsgiref (threaded) for WSGI apps, each on a free port of 127.0.0.1 in a
thread of its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import uvicorn

from brakes import Gauge

from .conftest import wait_until


def _listening_socket() -> socket.socket:
    # With proto=IPPROTO_TCP (not 0) asyncio sets TCP_NODELAY on each connection;
    # without it every response split in two sends waits out a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server that says when it has started."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextlib.contextmanager
def serve_asgi(app: Any, *, lifespan: str = "off") -> Iterator[str]:
    """Runs `app` under uvicorn; yields its base URL."""
    sock = _listening_socket()
    # uvicorn would itself take X-Forwarded-For from 127.0.0.1: the tests need
    # the peer as it connected.
    config = uvicorn.Config(
        app, lifespan=lifespan, log_level="critical", ws="websockets-sansio", proxy_headers=False
    )
    server = _Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as error:  # reported to the test below
            failure.append(error)
        finally:
            server.ready.set()

    thread = threading.Thread(target=run, name="uvicorn", daemon=True)
    thread.start()
    try:
        assert server.ready.wait(10), "uvicorn did not start"
        assert not failure, failure
        host, port = sock.getsockname()
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Runs `app` under wsgiref, a thread per request; yields its base URL."""
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="wsgiref", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def in_background(client: httpx.Client, path: str) -> concurrent.futures.Future[httpx.Response]:
    """GETs `path` from another thread; the future holds the answer."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(client.get, path)
    pool.shutdown(wait=False)
    return future


def check_a_stream_holds_its_slot(
    client: httpx.Client, gauge: Gauge, entered: threading.Event, release: threading.Event
) -> None:
    """GET /stream sends a first chunk, sets `entered`, and sends the last once
    `release` is set: the slot must stay taken in between, and come back after."""
    with client.stream("GET", "/stream") as response:
        chunks = response.iter_bytes()
        assert next(chunks).startswith(b"first")
        assert entered.wait(5)
        assert gauge.in_flight == 1
        assert client.get("/ok").status_code == 503
        release.set()
        assert b"".join(chunks).endswith(b"last\n")
    wait_until(lambda: gauge.in_flight == 0)
    assert client.get("/ok").status_code == 200
