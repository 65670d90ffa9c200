"""WSGI middleware that sheds load: 429 over the rate, 503 over capacity.

Wrap any WSGI app (Flask, Django's WSGI handler, ...)::

    from brakes import Gauge, TokenBucket
    from brakes.http import client_ip
    from brakes.wsgi import LoadShed

    app.wsgi_app = LoadShed(            # Flask; for Django wrap get_wsgi_application()
        app.wsgi_app,
        gauge=Gauge(16, max_wait=0.2),
        bucket=TokenBucket(10, burst=20, max_wait=0, max_keys=100_000),
        key=client_ip(),
    )

Waits happen in the server's worker thread, with the GIL released.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from brakes._accept import prefers_json
from brakes._brakes import Gauge, LeakyBucket, Overloaded, TokenBucket
from brakes._shedding import (
    Fields,
    LoadShedBase,
    admit_blocking,
    refusal_fields,
    retry_after_field,
)
from brakes.http import KeyFunction

if TYPE_CHECKING:
    from _typeshed import OptExcInfo

__all__ = ["LoadShed"]

# The standard library's WSGI types, which Flask and Werkzeug annotate with too.
Environ = WSGIEnvironment
Headers = list[tuple[str, str]]
WSGIApp = WSGIApplication

_REASONS = {429: "429 Too Many Requests", 503: "503 Service Unavailable"}


def _text(fields: Fields) -> Headers:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in fields]


def _path(environ: Environ) -> str:
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


class LoadShed(LoadShedBase):
    """WSGI middleware: admits a request when the bucket has a token for it
    and the gauge a slot, and answers it otherwise.

    It takes the options of `brakes.asgi.LoadShed` and behaves the same way:
    the bucket is asked first and answers 429, the gauge answers 503 (and
    a request it refuses spends no token, unless a bucket with `max_wait`
    paced it first), each with `Retry-After`, in JSON
    when the request's `Accept` prefers it; `RateLimit-Policy`/`RateLimit` fields when
    `headers=True`; `shadow`, `exempt` and `on_reject` alike (`on_reject`
    gets the `environ` and may return a WSGI app to answer with, such as a
    Flask or Werkzeug `Response`).

    The gauge slot is held until the server has taken the whole body and
    closed it (which it also does when the client goes away), or until the
    app raises.
    """

    _kind = " WSGI"
    app: WSGIApp

    def __init__(
        self,
        app: WSGIApp,
        *,
        gauge: Gauge | None = None,
        bucket: TokenBucket | LeakyBucket | None = None,
        key: KeyFunction | None = None,
        shadow: bool = False,
        exempt: Iterable[str] | str = (),
        headers: bool = True,
        on_reject: Callable[[Environ, Overloaded], WSGIApp | None] | None = None,
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

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        shedding = self._shedding
        if shedding.exempt and shedding.is_exempt(_path(environ)):
            shedding.exempt_count.add()
            return self.app(environ, start_response)
        if shedding.shadow:
            return self._shadow(environ, start_response)

        verdict = admit_blocking(shedding.admission(environ))
        if verdict.refusal is not None:
            return self._refuse(environ, start_response, verdict.refusal, verdict.fields or [])
        fields = verdict.fields
        start = start_response if fields is None else _adding(start_response, _text(fields))
        if verdict.holds_slot:
            gauge = cast(Gauge, shedding.gauge)
            return _holding(self.app, environ, start, gauge.release)
        return self.app(environ, start)

    def _shadow(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        shedding = self._shedding
        fields = shedding.shadow_admit(environ)
        start = _adding(start_response, _text(fields)) if fields else start_response
        if shedding.gauge is None:
            return self.app(environ, start)
        return _holding(self.app, environ, start, shedding.shadow_leave)

    def _refuse(
        self,
        environ: Environ,
        start_response: StartResponse,
        error: Overloaded,
        fields: Fields,
    ) -> Iterable[bytes]:
        on_reject = self._shedding.on_reject
        if on_reject is not None:
            response = on_reject(environ, error)
            if response is not None:
                own = _text([retry_after_field(error), *fields])
                return response(environ, _adding(start_response, own, keep_existing=True))  # type: ignore[no-any-return]
        json = prefers_json(environ.get("HTTP_ACCEPT"))
        status, body, default_fields = refusal_fields(error, json=json)
        start_response(_REASONS[status], _text(default_fields + fields))
        return [body]


def _adding(start_response: StartResponse, fields: Headers, *, keep_existing: bool = False) -> Any:
    """`start_response`, adding `fields` to the response's headers."""

    def start_with_fields(
        status: str, headers: Headers, exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if keep_existing:
            present = {name.lower() for name, _ in headers}
            extra = [field for field in fields if field[0] not in present]
        else:
            extra = fields
        return start_response(status, [*headers, *extra], exc_info)

    return start_with_fields


def _holding(
    app: WSGIApp, environ: Environ, start_response: StartResponse, release: Callable[[], object]
) -> Iterable[bytes]:
    """Runs `app` and calls `release` once its body is done with."""
    try:
        body = app(environ, start_response)
    except BaseException:
        release()
        raise
    if hasattr(body, "__len__"):
        return _SizedReleasingBody(body, release)
    return _ReleasingBody(body, release)


class _ReleasingBody:
    """The app's body, passed on to the server; `release` is called once,
    when the server has read it all or closes it (PEP 3333 has servers call
    `close()` whatever happens, a client gone included)."""

    __slots__ = ("_body", "_iterator", "_release")

    def __init__(self, body: Iterable[bytes], release: Callable[[], object]) -> None:
        self._body = body
        self._release: Callable[[], object] | None = release
        self._iterator: Iterator[bytes] | None = None

    def _give_back(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._body)
        try:
            return next(self._iterator)
        except BaseException:
            # StopIteration included: the server has the whole body.
            self._give_back()
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._give_back()


class _SizedReleasingBody(_ReleasingBody):
    """The same, for a body with a length (a list of chunks), so that a
    server can still set Content-Length from a one-chunk body."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._body)  # type: ignore[arg-type]
