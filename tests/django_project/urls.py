"""The views of the test project; a test holds /hold and /stream with `HOLD`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path


class Hold:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


HOLD = Hold()


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


async def hold(request: HttpRequest) -> HttpResponse:
    HOLD.entered.set()
    await asyncio.to_thread(HOLD.release.wait, 10)
    return HttpResponse("held\n", content_type="text/plain")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """A first chunk, then (once `HOLD.release` is set) the last: an async
    iterator under ASGI, a sync one under WSGI, as Django wants them."""

    def chunks() -> Iterator[bytes]:
        yield b"first\n"
        HOLD.entered.set()
        HOLD.release.wait(10)
        yield b"last\n"

    async def async_chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        HOLD.entered.set()
        await asyncio.to_thread(HOLD.release.wait, 10)
        yield b"last\n"

    content = async_chunks() if isinstance(request, ASGIRequest) else chunks()
    return StreamingHttpResponse(content, content_type="text/plain")


urlpatterns = [
    path("ok", ok),
    path("health", ok),
    path("health/live", ok),
    path("healthz", ok),
    path("hold", hold),
    path("stream", stream),
]
