"""Django middleware that sheds load: 429 over the rate, 503 over capacity.

In settings.py (`pip install 'brakes[django]'`)::

    from brakes import Gauge, TokenBucket
    from brakes.http import client_ip

    MIDDLEWARE = [
        "brakes.django.LoadShedMiddleware",  # first: it refuses before other work
        # ...
    ]

    BRAKES_LOADSHED = {
        "gauge": Gauge(16, max_wait=0.2),    # 16 at once; 503 after 200 ms
        "bucket": TokenBucket(10, burst=20, max_wait=0, max_keys=100_000),
        "key": client_ip(),                  # 10/s per client; 429 beyond
        "exempt": ["/health"],
    }

It runs under WSGI and ASGI: with async middleware around it and an ASGI
server it waits on the event loop, else in the worker thread.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from brakes._accept import prefers_json
from brakes._shedding import (
    Admission,
    Fields,
    LoadShedBase,
    Verdict,
    admit_async,
    admit_blocking,
    refusal_fields,
)

__all__ = ["LoadShedMiddleware"]

_SETTING = "BRAKES_LOADSHED"
_OPTIONS = ("gauge", "bucket", "key", "shadow", "exempt", "headers", "name")

GetResponse = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]


def _options() -> dict[str, Any]:
    from django.conf import settings

    config = getattr(settings, _SETTING, None)
    if config is None:
        raise ImproperlyConfigured(
            f'{_SETTING} is not set: LoadShedMiddleware needs it, a dict with a "gauge", '
            'a "bucket" or both'
        )
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(f"{_SETTING} must be a dict, got {config!r}")
    for name in config:
        if name not in _OPTIONS:
            known = ", ".join(f'"{option}"' for option in _OPTIONS)
            raise ImproperlyConfigured(f"{_SETTING} has an unknown key {name!r}; it takes {known}")
    if config.get("gauge") is None and config.get("bucket") is None:
        raise ImproperlyConfigured(f'{_SETTING} needs a "gauge", a "bucket" or both')
    return dict(config)


class LoadShedMiddleware(LoadShedBase):
    """Django middleware: admits a request when the bucket has a token for it
    and the gauge a slot, and answers it otherwise, as `brakes.wsgi.LoadShed`
    does: 429 over the rate and 503 over capacity, each with `Retry-After`,
    the RateLimit fields, JSON for a request that prefers it.

    Its options are the `BRAKES_LOADSHED` setting, a dict of `gauge`,
    `bucket`, `key`, `shadow`, `exempt`, `headers` and `name`, as
    `brakes.wsgi.LoadShed` takes them; a missing or invalid one raises
    `ImproperlyConfigured` when Django loads its middleware. A key function
    gets `request.META`, under ASGI too. `LoadShedMiddleware.named(name)`
    finds the instance Django made, for its `stats()`.

    The gauge slot is held until the view has returned, or, for a streaming
    response, until the server has closed it.
    """

    sync_capable = True
    async_capable = True
    _kind = " Django"

    def __init__(self, get_response: GetResponse) -> None:
        options = _options()
        try:
            super().__init__(
                get_response,
                gauge=options.get("gauge"),
                bucket=options.get("bucket"),
                key=options.get("key"),
                shadow=options.get("shadow", False),
                exempt=options.get("exempt", ()),
                headers=options.get("headers", True),
                on_reject=None,
                name=options.get("name"),
            )
        except (TypeError, ValueError) as error:
            raise ImproperlyConfigured(f"{_SETTING} is invalid: {error}") from error
        self.get_response = get_response
        # As Django's own hybrid middleware: async when the chain it calls is.
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        admission = self._admission(request)
        if admission is None:
            return self.get_response(request)
        verdict = admit_blocking(admission)
        if verdict.refusal is not None:
            return self._refusal(request, verdict)
        release = self._release(verdict)
        try:
            response = self.get_response(request)
        except BaseException:
            if release is not None:
                release()
            raise
        return _finish(response, verdict.fields, release)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        admission = self._admission(request)
        if admission is None:
            return await self.get_response(request)
        verdict = admission if isinstance(admission, Verdict) else await admit_async(admission)
        if verdict.refusal is not None:
            return self._refusal(request, verdict)
        release = self._release(verdict)
        try:
            response = await self.get_response(request)
        except BaseException:
            # A client that went away cancels the view here: the slot comes back.
            if release is not None:
                release()
            raise
        return _finish(response, verdict.fields, release)

    def _admission(self, request: HttpRequest) -> Verdict | Admission | None:
        """None for an exempt path; else the shared admission (in shadow
        mode, a verdict that admits, `holds_slot` when it counts in flight)."""
        shedding = self._shedding
        if shedding.exempt and shedding.is_exempt(request.path):
            shedding.exempt_count.add()
            return None
        if shedding.shadow:
            return Verdict(None, shedding.shadow_admit(request.META), shedding.gauge is not None)
        return shedding.admission(request.META)

    def _release(self, verdict: Verdict) -> Callable[[], None] | None:
        shedding = self._shedding
        if not verdict.holds_slot:
            return None
        if shedding.shadow:
            return shedding.shadow_leave
        assert shedding.gauge is not None
        return shedding.gauge.release

    def _refusal(self, request: HttpRequest, verdict: Verdict) -> HttpResponse:
        assert verdict.refusal is not None
        json = prefers_json(request.META.get("HTTP_ACCEPT"))
        status, body, fields = refusal_fields(verdict.refusal, json=json)
        response = HttpResponse(body, status=status)
        _add(response, fields + (verdict.fields or []))
        return response


def _add(response: HttpResponseBase, fields: Fields) -> None:
    for name, value in fields:
        response.headers[name.decode("latin-1")] = value.decode("latin-1")


def _finish(
    response: HttpResponseBase, fields: Fields | None, release: Callable[[], None] | None
) -> HttpResponseBase:
    """The view's response with the admission's fields; the slot released
    now, or once a streaming response is closed."""
    try:
        if fields:
            _add(response, fields)
    except BaseException:
        if release is not None:
            release()
        raise
    if release is None:
        return response
    if not getattr(response, "streaming", False):
        release()
        return response
    # Servers close a response when done with it, a client gone included (PEP
    # 3333; Django's ASGI handler alike); collecting it is the backstop for a
    # response nobody closes. Calling a finalizer runs it once, whichever comes first.
    finalizer = weakref.finalize(response, release)
    finalizer.atexit = False
    close = response.close

    def close_and_release() -> None:
        try:
            close()
        finally:
            finalizer()

    response.close = close_and_release
    return response
