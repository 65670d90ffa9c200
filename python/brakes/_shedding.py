"""What the ASGI and WSGI `LoadShed` share: their options, the response fields
they add, and their counters. The two differ only in how they wait and how
they speak to the server."""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Self, cast

from brakes._brakes import (
    Gauge,
    LeakyBucket,
    Overloaded,
    RateLimited,
    Tally,
    TokenBucket,
)
from brakes._checks import check_callable, check_flag, check_name
from brakes.http import Key, LoadShedStats

Fields = list[tuple[bytes, bytes]]

# Float arithmetic gives 3.0000000000000004 for three whole seconds; a
# nanosecond of slack keeps that at 3 when rounding up.
_SLACK = 1e-9


def whole_seconds(seconds: float) -> int:
    """Seconds rounded up to a whole number, as the HTTP fields want them."""
    return max(0, math.ceil(seconds - _SLACK))


def retry_after_seconds(error: Overloaded) -> int:
    """The `Retry-After` of a refusal: whole seconds, rounded up, never 0.

    A gauge cannot know when a slot frees up, so its refusals say 1 second.
    """
    seconds = getattr(error, "retry_after", None)
    if not isinstance(seconds, (int, float)) or not seconds > 0 or math.isinf(seconds):
        return 1
    return max(1, whole_seconds(seconds))


def _exempt_prefixes(exempt: object) -> tuple[str, ...]:
    if isinstance(exempt, str):
        exempt = (exempt,)
    if not isinstance(exempt, Iterable):
        raise TypeError(f"exempt must be a path prefix or a sequence of them, got {exempt!r}")
    prefixes = []
    for prefix in exempt:
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ValueError(f"exempt paths must be strings that start with '/', got {prefix!r}")
        prefixes.append(prefix.rstrip("/"))
    return tuple(prefixes)


@dataclass(frozen=True, slots=True)
class Wait:
    """A wait an admission needs: for a token of `key` or a slot of the
    gauge, up to `timeout` seconds (None: as long as it takes)."""

    limiter: Gauge | TokenBucket | LeakyBucket
    key: Key
    timeout: float | None

    def acquire_blocking(self) -> Overloaded | None:
        """Waits in this thread; the refusal if none came in time."""
        try:
            if isinstance(self.limiter, Gauge):
                self.limiter.acquire_blocking(timeout=self.timeout)
            else:
                self.limiter.acquire_blocking(key=self.key, timeout=self.timeout)
        except Overloaded as refusal:
            return refusal
        return None

    async def acquire_async(self) -> Overloaded | None:
        """Waits on the running loop; the refusal if none came in time."""
        try:
            if isinstance(self.limiter, Gauge):
                await self.limiter.acquire(timeout=self.timeout)
            else:
                await self.limiter.acquire(key=self.key, timeout=self.timeout)
        except Overloaded as refusal:
            return refusal
        return None


class Verdict(NamedTuple):
    """What an admission decided: admitted (`refusal` None) or refused, and
    the response fields the request's answer carries."""

    refusal: Overloaded | None
    fields: Fields | None
    holds_slot: bool = False


# An admission that has to wait: it yields the waits it needs, is sent each
# one's refusal (or None), and returns its verdict. ASGI drives it on the
# loop, WSGI in the server's thread.
Admission = Generator[Wait, Overloaded | None, Verdict]


def admit_blocking(admission: Verdict | Admission) -> Verdict:
    if isinstance(admission, Verdict):
        return admission
    try:
        wait = next(admission)
        while True:
            wait = admission.send(wait.acquire_blocking())
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def admit_async(admission: Admission) -> Verdict:
    try:
        wait = next(admission)
        while True:
            wait = admission.send(await wait.acquire_async())
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class Shedding:
    """The options of a `LoadShed`, checked, and what it counts."""

    __slots__ = (
        "admitted",
        "bucket",
        "bucket_wait",
        "exempt",
        "exempt_count",
        "gauge",
        "gauge_wait",
        "headers",
        "key",
        "on_reject",
        "overloaded",
        "peek_first",
        "policy_field",
        "rate_limited",
        "seconds_per_token",
        "shadow",
        "shadow_in_flight",
        "shadow_overloaded",
        "shadow_rate_limited",
        "token_bucket",
    )

    def __init__(
        self,
        gauge: object,
        bucket: object,
        key: object,
        shadow: object,
        exempt: object,
        headers: object,
        on_reject: object,
    ) -> None:
        if gauge is not None and not isinstance(gauge, Gauge):
            raise TypeError(f"gauge must be a brakes.Gauge or None, got {gauge!r}")
        if bucket is not None and not isinstance(bucket, (TokenBucket, LeakyBucket)):
            raise TypeError(
                f"bucket must be a brakes.TokenBucket, a brakes.LeakyBucket or None, got {bucket!r}"
            )
        if gauge is None and bucket is None:
            raise ValueError("LoadShed needs a gauge=, a bucket= or both")
        if key is not None:
            check_callable("key", key)
            if bucket is None:
                raise ValueError("key= chooses a bucket per client, so it needs a bucket=")
        if on_reject is not None:
            check_callable("on_reject", on_reject)
        self.gauge: Gauge | None = gauge
        self.bucket: TokenBucket | LeakyBucket | None = bucket
        self.key: Callable[[Any], Key] | None = key  # type: ignore[assignment]
        self.shadow = check_flag("shadow", shadow)
        self.headers = check_flag("headers", headers)
        self.exempt = _exempt_prefixes(exempt)
        self.on_reject: Callable[[Any, Overloaded], Any] | None = on_reject  # type: ignore[assignment]
        self.gauge_wait = gauge.max_wait if gauge is not None else 0.0
        self.bucket_wait = bucket.max_wait if bucket is not None else 0.0
        self.token_bucket = isinstance(bucket, TokenBucket)
        # A local bucket answers a peek in a fraction of a microsecond.
        self.peek_first = bucket is not None and bucket.backend is None
        self.seconds_per_token = 0.0
        self.policy_field = b""
        if bucket is not None:
            self.seconds_per_token = bucket.per / bucket.rate
            # A leaky bucket lets one request through at a time: a burst of 1.
            burst = bucket.burst if isinstance(bucket, TokenBucket) else 1
            window = max(1, whole_seconds(burst * self.seconds_per_token))
            self.policy_field = b'"default";q=%d;w=%d' % (burst, window)
        self.admitted = Tally()
        self.rate_limited = Tally()
        self.overloaded = Tally()
        self.exempt_count = Tally()
        self.shadow_rate_limited = Tally()
        self.shadow_overloaded = Tally()
        # In shadow mode nothing holds the gauge: this counts what would.
        self.shadow_in_flight = Tally()

    def is_exempt(self, path: str) -> bool:
        """Whether a path is one of the exempt prefixes or lies under one,
        segment by segment: "/health" covers "/health/live", not "/healthz"."""
        for prefix in self.exempt:
            if path.startswith(prefix) and (
                len(path) == len(prefix) or path[len(prefix)] == "/" or not prefix
            ):
                return True
        return False

    def rate_fields(self, key: Key) -> Fields:
        """`RateLimit-Policy` and `RateLimit` for the bucket of `key`, as it
        stands after this request."""
        bucket = self.bucket
        if self.token_bucket:
            tokens = bucket.tokens(key)  # type: ignore[union-attr]
            # Below 0 while callers wait for booked tokens; the field is >= 0.
            left = max(0, int(tokens))
            until_full = whole_seconds((bucket.burst - tokens) * self.seconds_per_token)  # type: ignore[union-attr]
        else:
            wait = bucket.retry_after(key=key)  # type: ignore[union-attr]
            left = 0 if wait > 0 else 1
            until_full = whole_seconds(wait)
        return [
            (b"ratelimit-policy", self.policy_field),
            (b"ratelimit", b'"default";r=%d;t=%d' % (left, until_full)),
        ]

    def bucket_refusal(self, key: Key) -> RateLimited:
        """The refusal of a bucket that had no token and may not wait."""
        seconds = self.bucket.retry_after(key=key)  # type: ignore[union-attr]
        error = RateLimited(f"rate limited: retry after {seconds:.3g} s")
        error.retry_after = seconds
        return error

    def gauge_refusal(self) -> Overloaded:
        """The refusal of a gauge that had no slot and may not wait."""
        gauge = self.gauge
        assert gauge is not None
        return Overloaded(
            f"no free slot: {gauge.in_flight} of {gauge.limit} in flight, none may wait"
        )

    def admission(self, request: Any, *, rate: bool = True) -> Verdict | Admission:
        """Admits a request: a slot of the gauge and a token of its key from
        the bucket (unless `rate` is false). Decided at once, it is the
        verdict; else the admission that waits.

        The token is taken only once the request holds a slot, so that a
        request the gauge refuses (503) leaves its client's tokens alone. The
        bucket is peeked at first: a request over the rate is refused (429)
        before it takes or waits for a slot, and one that a bucket with
        `max_wait` paces waits for its token holding no slot. A Redis bucket
        is not peeked at while the gauge has a slot free (a peek would cost a
        round trip): the slot is taken, then given back if the bucket says no.
        """
        bucket = self.bucket if rate else None
        key: Key = None
        if bucket is not None and self.key is not None:
            key = self.key(request)
        gauge = self.gauge
        if gauge is None:
            assert bucket is not None
            if bucket.try_acquire(key=key):
                self.admitted.add()
                return Verdict(None, self.rate_fields(key) if self.headers else None)
            return self._paced(key, asked=True)
        if bucket is None:
            if gauge.try_acquire():
                self.admitted.add()
                return Verdict(None, None, True)
            return self._slot_first(key, rate=False)
        peeked = self.peek_first
        if peeked and bucket.retry_after(key=key) > 0:
            return self._paced(key, asked=False)
        if gauge.try_acquire():
            verdict = self._token_for_slot(key)
            return verdict if verdict is not None else self._paced(key, asked=True)
        if not peeked and bucket.retry_after(key=key) > 0:
            return self._paced(key, asked=False)
        return self._slot_first(key, rate=True)

    def _token_for_slot(self, key: Key) -> Verdict | None:
        """With a slot of the gauge held: takes the request's token and
        returns the admitted verdict, or gives the slot back and returns None
        when the bucket has no token now."""
        gauge = cast(Gauge, self.gauge)
        bucket = cast("TokenBucket | LeakyBucket", self.bucket)
        try:
            took = bucket.try_acquire(key=key)
            fields = self.rate_fields(key) if took and self.headers else None
        except BaseException:
            gauge.release()
            raise
        if not took:
            gauge.release()
            return None
        self.admitted.add()
        return Verdict(None, fields, True)

    def _slot_first(self, key: Key, *, rate: bool) -> Admission:
        """The rest of an admission that found the gauge full (and, with
        `rate`, a token there): waits for a slot as long as the gauge's
        `max_wait` allows, then takes the token."""
        gauge = cast(Gauge, self.gauge)
        if self.gauge_wait == 0:
            refusal: Overloaded | None = self.gauge_refusal()
        else:
            refusal = yield Wait(gauge, None, self.gauge_wait)
        if refusal is not None:
            self.overloaded.add()
            return Verdict(refusal, self.rate_fields(key) if rate and self.headers else [])
        if not rate:
            self.admitted.add()
            return Verdict(None, None, True)
        verdict = self._token_for_slot(key)
        if verdict is not None:
            return verdict
        # Another request of the key took the token while this one waited.
        return (yield from self._paced(key, asked=True))

    def _paced(self, key: Key, *, asked: bool) -> Admission:
        """The rest of an admission whose client had no token and holds no
        slot: refused (429) unless the bucket may wait for one; then a slot
        of the gauge, waited for as its `max_wait` allows. A request the
        gauge then refuses has spent its token: a bucket takes none back.
        Unless `asked`, the bucket is asked first, so that it counts its
        own refusal (and grants a token that came since the peek)."""
        bucket = cast("TokenBucket | LeakyBucket", self.bucket)
        refusal: Overloaded | None = None
        if not asked and bucket.try_acquire(key=key):
            pass
        elif self.bucket_wait == 0:
            refusal = self.bucket_refusal(key)
        else:
            refusal = yield Wait(bucket, key, self.bucket_wait)
        if refusal is not None:
            self.rate_limited.add()
            return Verdict(refusal, self.rate_fields(key) if self.headers else [])
        fields = self.rate_fields(key) if self.headers else None
        gauge = self.gauge
        if gauge is None or gauge.try_acquire():
            self.admitted.add()
            return Verdict(None, fields, gauge is not None)
        if self.gauge_wait == 0:
            refusal = self.gauge_refusal()
        else:
            refusal = yield Wait(gauge, None, self.gauge_wait)
        if refusal is not None:
            self.overloaded.add()
            return Verdict(refusal, fields or [])
        self.admitted.add()
        return Verdict(None, fields, True)

    def _would_wait_too_long(self, key: Key) -> bool:
        """In shadow mode: whether the bucket would have refused this request."""
        wait = self.bucket_wait
        if wait is None:
            return False
        return self.bucket.retry_after(key=key) > wait  # type: ignore[union-attr]

    def shadow_admit(self, request: Any, *, rate: bool = True) -> Fields:
        """In shadow mode: counts the request in flight when there is a gauge
        (the caller calls `shadow_leave` once it is done, unless this raises),
        takes its token (unless `rate` is false) where a real `LoadShed`
        would, counts what would have refused it, and returns its response
        fields."""
        fields: Fields = []
        would_refuse = b""
        bucket = self.bucket if rate else None
        key: Key = None
        if bucket is not None and self.key is not None:
            key = self.key(request)
        gauge = self.gauge
        full = gauge is not None and self.shadow_in_flight.add() > gauge.limit
        try:
            if bucket is not None:
                if full:
                    # A real LoadShed takes no token for a request the gauge
                    # refuses: this one would get 429 without a token, else 503.
                    if self._would_wait_too_long(key):
                        would_refuse = b"429"
                elif not bucket.try_acquire(key=key) and self._would_wait_too_long(key):
                    would_refuse = b"429"
                if self.headers:
                    fields = self.rate_fields(key)
        except BaseException:
            if gauge is not None:
                self.shadow_leave()
            raise
        if would_refuse:
            self.shadow_rate_limited.add()
        elif full:
            self.shadow_overloaded.add()
            would_refuse = b"503"
        if would_refuse:
            fields.append((b"brakes-shadow", would_refuse))
        self.admitted.add()
        return fields

    def shadow_leave(self) -> None:
        self.shadow_in_flight.add(-1)

    def stats(self) -> LoadShedStats:
        return LoadShedStats(
            admitted=self.admitted.value,
            rate_limited=self.rate_limited.value,
            overloaded=self.overloaded.value,
            exempt=self.exempt_count.value,
            shadow_rate_limited=self.shadow_rate_limited.value,
            shadow_overloaded=self.shadow_overloaded.value,
        )

    def describe(self) -> str:
        parts = []
        if self.gauge is not None:
            parts.append(f"gauge={self.gauge!r}")
        if self.bucket is not None:
            parts.append(f"bucket={self.bucket!r}")
        if self.shadow:
            parts.append("shadow=True")
        return ", ".join(parts)


def retry_after_field(error: Overloaded) -> tuple[bytes, bytes]:
    """The `Retry-After` field every refusal carries, custom ones included."""
    return (b"retry-after", b"%d" % retry_after_seconds(error))


_REASONS = {429: "Too Many Requests", 503: "Service Unavailable"}


def refusal_fields(error: Overloaded, *, json: bool = False) -> tuple[int, bytes, Fields]:
    """Status, body and fields of the default refusal: plain text, or
    FastAPI's `{"detail": ...}` when the request prefers JSON (`json`)."""
    status = 429 if isinstance(error, RateLimited) else 503
    reason = _REASONS[status]
    if json:
        body = b'{"detail":"%s"}' % reason.encode()
        content_type = b"application/json"
    else:
        body = reason.encode() + b"\n"
        content_type = b"text/plain; charset=utf-8"
    return (
        status,
        body,
        [
            (b"content-type", content_type),
            (b"content-length", b"%d" % len(body)),
            # The body follows Accept: a cache must not answer one with the other.
            (b"vary", b"accept"),
            retry_after_field(error),
        ],
    )


# The live middleware made with a name=, by (class, name): the handle a user
# has on one the framework made (Starlette's add_middleware, Django's MIDDLEWARE).
_NAMED: weakref.WeakValueDictionary[tuple[type, str], LoadShedBase] = weakref.WeakValueDictionary()
_NAMED_LOCK = threading.Lock()


class LoadShedBase:
    """What the ASGI and WSGI `LoadShed` share beyond their options."""

    _kind = ""

    def __init__(
        self,
        app: Any,
        *,
        gauge: object,
        bucket: object,
        key: object,
        shadow: object,
        exempt: object,
        headers: object,
        on_reject: object,
        name: object = None,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a{self._kind} application, got {app!r}")
        self._name = check_name(name)
        self.app = app
        self._shedding = Shedding(gauge, bucket, key, shadow, exempt, headers, on_reject)
        if self._name is not None:
            with _NAMED_LOCK:
                _NAMED[type(self), self._name] = self

    @classmethod
    def named(cls, name: str) -> Self:
        """The live middleware of this class made with `name=`, the one made
        last if there are several: a handle on one that a framework built
        (`app.add_middleware(LoadShed, ..., name="api")` builds it at the
        app's first request or startup). Raises `LookupError` if there is none.
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        with _NAMED_LOCK:
            found = _NAMED.get((cls, name))
        if found is None:
            raise LookupError(
                f"no live {cls.__module__}.{cls.__qualname__} named {name!r}: it takes name=, "
                "and a framework makes it at the first request or at startup"
            )
        return cast(Self, found)

    @property
    def gauge(self) -> Gauge | None:
        """The gauge that bounds requests in flight, if any."""
        return self._shedding.gauge

    @property
    def bucket(self) -> TokenBucket | LeakyBucket | None:
        """The bucket that bounds the request rate, if any."""
        return self._shedding.bucket

    @property
    def name(self) -> str | None:
        """The middleware's name (in reprs, logs and metrics), or None."""
        return self._name

    def stats(self) -> LoadShedStats:
        """Counts of admitted, refused, exempt and shadow-refused requests."""
        return self._shedding.stats()

    def __repr__(self) -> str:
        named = f"name={self._name!r} " if self._name is not None else ""
        shedding = self._shedding.describe()
        kind = f"{type(self).__module__}.{type(self).__qualname__}"
        return f"<{kind} {named}{shedding} app={self.app!r}>"
