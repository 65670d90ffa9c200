"""ASGI middleware that sheds load: 429 over the rate, 503 over capacity.

Wrap any ASGI app (Starlette, FastAPI, Django's ASGI handler, ...)::

    from brakes import Gauge, TokenBucket
    from brakes.asgi import LoadShed
    from brakes.http import client_ip

    app = LoadShed(
        app,
        gauge=Gauge(32, max_wait=0.2),          # 32 at once; 503 after 200 ms
        bucket=TokenBucket(10, burst=20, max_wait=0, max_keys=100_000),
        key=client_ip(),                        # 10/s per client; 429 beyond
        exempt=["/health"],
    )

With FastAPI or Starlette, `app.add_middleware(LoadShed, gauge=..., ...)` does
the same. For limits on single endpoints, decorate the handler with the
limiter and install `exception_handlers`, which answer `Overloaded` with 503
and `RateLimited` with 429, with `Retry-After`::

    app = FastAPI(exception_handlers=brakes.asgi.exception_handlers)

    @app.get("/search")
    @TokenBucket(5, max_wait=0)
    async def search(q: str): ...
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from typing import Any, cast

from brakes._accept import prefers_json
from brakes._brakes import Gauge, LeakyBucket, Overloaded, RateLimited, TokenBucket
from brakes._shedding import (
    Fields,
    LoadShedBase,
    Verdict,
    admit_async,
    refusal_fields,
    retry_after_field,
)
from brakes.http import KeyFunction, _asgi_header

__all__ = ["LoadShed", "exception_handlers"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The close code of RFC 6455 for "try again later".
_TRY_AGAIN_LATER = 1013


class LoadShed(LoadShedBase):
    """ASGI middleware: admits a request when the bucket has a token for it
    and the gauge a slot, and answers it otherwise.

    - `bucket` (a `TokenBucket` or `LeakyBucket`), asked first: a request
      over the rate gets **429** with `Retry-After` (whole seconds, rounded up,
      at least 1). With `key=` (see `brakes.http`) each client draws from its
      own tokens; the bucket's `max_keys` bounds how many it remembers. A
      token is taken once the request has its slot: a 503 spends none. (A
      bucket with `max_wait` paces a request before it takes a slot, so one
      that waited for its token and then finds the gauge full has spent it.)
    - `gauge` (a `Gauge`): at most `gauge.limit` requests run at once. The
      slot is held until the app has returned or raised, the whole
      response and streaming included: a client that disconnects does not
      free a slot while its handler still runs. A request that gets no
      slot gets **503** with `Retry-After: 1`.
    - How long a request may wait for a token or a slot is the limiter's own
      `max_wait`: 0 answers at once, None waits as long as it takes.
    - `headers=True` adds `RateLimit-Policy` and `RateLimit` (IETF httpapi
      draft 11) to every response of a bucket-limited request.
    - `shadow=True` admits everything and only counts what it would have
      refused (`stats()`), marking such responses `brakes-shadow: 429` or
      `503`, so that a limit can be tried on real traffic first. A shadow
      gauge counts a request that finds `limit` requests in flight; a shadow
      bucket takes tokens as a real one would.
    - `exempt`: path prefixes never limited, such as "/health" (which covers
      "/health/live" but not "/healthz").
    - `on_reject(scope, error)`: called with the `RateLimited` or `Overloaded`
      error of a refusal; it may return an ASGI app to answer with (a
      Starlette `Response` is one), or an awaitable of one, or None for the
      default answer: plain text, or `{"detail": ...}` JSON when the request's
      `Accept` prefers `application/json`. `Retry-After` and the RateLimit fields are
      added to its response unless it sets them itself.

    With `name=`, `LoadShed.named(name)` returns the instance, for one that
    `app.add_middleware(LoadShed, ...)` built.

    Lifespan scopes pass through. A websocket connection takes a gauge slot
    for as long as it is open; one that gets none is accepted and closed at
    once with code 1013 ("try again later"). The bucket does not limit
    websockets.
    """

    _kind = "n ASGI"
    app: ASGIApp

    def __init__(
        self,
        app: ASGIApp,
        *,
        gauge: Gauge | None = None,
        bucket: TokenBucket | LeakyBucket | None = None,
        key: KeyFunction | None = None,
        shadow: bool = False,
        exempt: Iterable[str] | str = (),
        headers: bool = True,
        on_reject: Callable[[Scope, Overloaded], Any] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            app,
            gauge=gauge,
            bucket=bucket,
            key=key,
            shadow=shadow,
            exempt=exempt,
            headers=headers,
            on_reject=on_reject,
            name=name,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        shedding = self._shedding
        limited = kind == "http" or (kind == "websocket" and shedding.gauge is not None)
        if not limited:
            await self.app(scope, receive, send)
            return
        if shedding.exempt and shedding.is_exempt(scope["path"]):
            shedding.exempt_count.add()
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await self._websocket(scope, receive, send)
            return
        if shedding.shadow:
            await self._shadow(scope, receive, send)
            return

        verdict = shedding.admission(scope)
        if not isinstance(verdict, Verdict):
            verdict = await admit_async(verdict)
        if verdict.refusal is not None:
            await self._refuse(scope, receive, send, verdict.refusal, verdict.fields or [])
        elif verdict.holds_slot:
            gauge = cast(Gauge, shedding.gauge)
            await _holding_slot(self.app, scope, receive, send, gauge.release, verdict.fields)
        elif verdict.fields is None:
            await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, _adding(send, verdict.fields))

    async def _shadow(self, scope: Scope, receive: Receive, send: Send) -> None:
        shedding = self._shedding
        fields = shedding.shadow_admit(scope)
        try:
            await self.app(scope, receive, _adding(send, fields) if fields else send)
        finally:
            if shedding.gauge is not None:
                shedding.shadow_leave()

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, error: Overloaded, fields: Fields
    ) -> None:
        on_reject = self._shedding.on_reject
        if on_reject is not None:
            response = on_reject(scope, error)
            if inspect.isawaitable(response):
                response = await response
            if response is not None:
                own = [retry_after_field(error), *fields]
                await response(scope, receive, _adding(send, own, keep_existing=True))
                return
        json = prefers_json(_asgi_header(scope, b"accept"))
        status, body, default_fields = refusal_fields(error, json=json)
        await send(
            {"type": "http.response.start", "status": status, "headers": default_fields + fields}
        )
        await send({"type": "http.response.body", "body": body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        shedding = self._shedding
        gauge = shedding.gauge
        assert gauge is not None
        if shedding.shadow:
            # The bucket does not limit websockets, and they carry no fields.
            shedding.shadow_admit(scope, rate=False)
            try:
                await self.app(scope, receive, send)
            finally:
                shedding.shadow_leave()
            return
        verdict = shedding.admission(scope, rate=False)
        if not isinstance(verdict, Verdict):
            verdict = await admit_async(verdict)
        if verdict.refusal is not None:
            await _close_try_again_later(receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            gauge.release()


async def _close_try_again_later(receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": _TRY_AGAIN_LATER, "reason": "overloaded"})


def _adding(send: Send, fields: Fields, *, keep_existing: bool = False) -> Send:
    """`send`, adding `fields` to the response's start."""

    async def send_with_fields(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if keep_existing:
                present = {name.lower() for name, _ in headers}
                headers.extend(field for field in fields if field[0] not in present)
            else:
                headers.extend(fields)
            message = {**message, "headers": headers}
        await send(message)

    return send_with_fields


async def _holding_slot(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    release: Callable[[], None],
    fields: Fields | None,
) -> None:
    """Runs `app` and calls `release` once it has returned or raised. A
    client that disconnects does not end the work its request started: the
    slot bounds the handlers running, not the connections open."""
    try:
        await app(scope, receive, send if fields is None else _adding(send, fields))
    finally:
        release()


def _handler_response(error: Overloaded, accept: str | None) -> Any:
    from starlette.responses import Response

    status, body, fields = refusal_fields(error, json=prefers_json(accept))
    headers = {name.decode(): value.decode() for name, value in fields}
    return Response(body, status_code=status, headers=headers)


async def _overloaded_handler(request: Any, error: Exception) -> Any:
    """Starlette/FastAPI exception handler: `Overloaded` -> 503, `RateLimited`
    -> 429, with `Retry-After`; JSON when the request prefers it."""
    if not isinstance(error, Overloaded):
        raise error
    return _handler_response(error, request.headers.get("accept"))


# A coroutine function, as FastAPI's annotation asks (Starlette's takes any awaitable).
exception_handlers: dict[Any, Callable[[Any, Exception], Coroutine[Any, Any, Any]]] = {
    Overloaded: _overloaded_handler,
    RateLimited: _overloaded_handler,
}
"""For `Starlette(exception_handlers=...)` / `FastAPI(exception_handlers=...)`:
answers `Overloaded` raised by a decorated handler with 503 and `RateLimited`
with 429, each with `Retry-After` in whole seconds (at least 1)."""
