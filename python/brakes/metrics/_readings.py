"""What each kind of brakes object exports: one table of metrics, read from
`stats()`, that the Prometheus and OpenTelemetry exporters both render."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import brakes
from brakes._brakes import Histogram, _Bucket
from brakes._shedding import LoadShedBase

Type = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Metric:
    """One exported metric.

    `prometheus` is its Prometheus name (counters without `_total`, which
    the client adds), `otel` its OpenTelemetry instrument name, `labels` the
    labels beyond `name`, `unit` the OpenTelemetry unit.
    """

    kind: str
    prometheus: str
    otel: str
    type: Type
    unit: str
    help: str
    labels: tuple[str, ...] = ()


# One reading: the metric, the values of its labels beyond `name`, the value.
Reading = tuple[Metric, tuple[str, ...], "float | Histogram"]


def _m(
    kind: str,
    what: str,
    type: Type,
    unit: str,
    help: str,
    labels: tuple[str, ...] = (),
    otel: str | None = None,
) -> Metric:
    prom_unit = "_seconds" if unit == "s" else ""
    return Metric(
        kind=kind,
        prometheus=f"brakes_{kind}_{what}{prom_unit}",
        otel=otel or f"brakes.{kind}.{what}",
        type=type,
        unit=unit,
        help=help,
        labels=labels,
    )


# The wait of every kind that makes callers wait: one histogram, with the kind
# and the operation as labels.
WAIT = Metric(
    kind="*",
    prometheus="brakes_wait_seconds",
    otel="brakes.time_in_queue",
    type="histogram",
    unit="s",
    help="How long callers waited for a permit, a token, room or an item (0: not at all).",
    labels=("kind", "op"),
)

GAUGE_LIMIT = _m("gauge", "limit", "gauge", "{permit}", "The gauge's limit.")
GAUGE_IN_FLIGHT = _m(
    "gauge",
    "in_flight",
    "gauge",
    "{permit}",
    "Permits held now.",
    otel="brakes.gauge.active_request_leases",
)
GAUGE_WAITING = _m(
    "gauge",
    "waiting",
    "gauge",
    "{request}",
    "Callers queued for a permit.",
    otel="brakes.gauge.queued_requests",
)
GAUGE_KEYS = _m("gauge", "keys", "gauge", "{key}", "Keys in use (with key=).")
GAUGE_ACQUISITIONS = _m(
    "gauge",
    "acquisitions",
    "counter",
    "{request}",
    "Attempts to acquire, by outcome: immediate, waited, rejected, timed_out, cancelled.",
    labels=("outcome",),
    otel="brakes.gauge.requests",
)
GAUGE_HOLD = _m(
    "gauge",
    "hold",
    "histogram",
    "s",
    "How long permits were held, on a sample of with/async with/decorator blocks.",
    otel="brakes.gauge.request_lease.duration",
)

BUCKET_DECISIONS = _m(
    "bucket",
    "decisions",
    "counter",
    "{request}",
    "Decisions, by outcome: immediate, waited, limited, cancelled.",
    labels=("outcome",),
    otel="brakes.bucket.requests",
)
BUCKET_WAITING = _m(
    "bucket",
    "waiting",
    "gauge",
    "{request}",
    "Callers queued for their turn.",
    otel="brakes.bucket.queued_requests",
)
BUCKET_KEYS = _m("bucket", "keys", "gauge", "{key}", "Keys with state kept.")
BUCKET_BACKEND_ERRORS = _m(
    "bucket", "backend_errors", "counter", "{error}", "Decisions the Redis backend failed."
)
GAUGE_BACKEND_ERRORS = _m(
    "gauge", "backend_errors", "counter", "{error}", "Decisions the Redis backend failed."
)

QUEUE_SIZE = _m("queue", "size", "gauge", "{item}", "Items a consumer could take now.")
QUEUE_MAXSIZE = _m("queue", "maxsize", "gauge", "{item}", "The bound (0: unbounded).")
QUEUE_WAITING = _m(
    "queue",
    "waiting",
    "gauge",
    "{request}",
    "Producers (op=put) and consumers (op=get) waiting.",
    labels=("op",),
    otel="brakes.queue.queued_requests",
)
QUEUE_ITEMS = _m(
    "queue",
    "items",
    "counter",
    "{item}",
    "Items stored (op=put) and taken (op=get).",
    labels=("op",),
)
QUEUE_DROPPED = _m("queue", "dropped", "counter", "{item}", "Items an overflow policy dropped.")
QUEUE_REJECTED = _m("queue", "rejected", "counter", "{item}", "Puts refused at once (full).")

POOL_WORKERS = _m("pool", "workers", "gauge", "{worker}", "The pool's workers.")
POOL_BUSY = _m("pool", "busy", "gauge", "{worker}", "Workers running a job now.")
POOL_QUEUED = _m("pool", "queued", "gauge", "{job}", "Jobs waiting for a worker.")
POOL_JOBS = _m(
    "pool",
    "jobs",
    "counter",
    "{job}",
    "Jobs, by outcome: completed, failed, rejected, cancelled.",
    labels=("outcome",),
)

STAGE_ITEMS = _m(
    "pipeline",
    "stage_items",
    "counter",
    "{item}",
    "Items a stage took in (direction=in) and passed on (direction=out).",
    labels=("stage", "direction"),
)
STAGE_QUEUED = _m(
    "pipeline", "stage_queued", "gauge", "{item}", "Items waiting for a stage.", ("stage",)
)
STAGE_BUSY = _m(
    "pipeline", "stage_busy", "gauge", "{worker}", "A stage's workers at work.", ("stage",)
)
STAGE_BLOCKED = _m(
    "pipeline",
    "stage_blocked",
    "counter",
    "s",
    "Time a stage's workers waited for the next stage: the backpressure.",
    ("stage",),
)
STAGE_ERRORS = _m(
    "pipeline", "stage_errors", "counter", "{error}", "Errors a stage skipped.", ("stage",)
)

BREAKER_STATE = _m(
    "breaker",
    "state",
    "gauge",
    "1",
    "1 for the breaker's state now, 0 for the others.",
    labels=("state",),
)
BREAKER_CALLS = _m(
    "breaker",
    "calls",
    "counter",
    "{call}",
    "Calls, by outcome: successful, failed, ignored, rejected.",
    labels=("outcome",),
)
BREAKER_TRANSITIONS = _m(
    "breaker",
    "transitions",
    "counter",
    "{transition}",
    "Changes of state, by the state entered.",
    labels=("state",),
)

LOADSHED_REQUESTS = _m(
    "loadshed",
    "requests",
    "counter",
    "{request}",
    "Requests, by outcome: admitted, rate_limited, overloaded, exempt, "
    "shadow_rate_limited, shadow_overloaded.",
    labels=("outcome",),
)

BUDGET_AVAILABLE = _m("retry_budget", "available", "gauge", "{retry}", "Retries allowed now.")
BUDGET_RETRIES = _m(
    "retry_budget",
    "retries",
    "counter",
    "{retry}",
    "Retries asked for, by outcome: retried, refused.",
    labels=("outcome",),
)

PACER_RATE = _m("pacer", "rate", "gauge", "1/s", "The pacer's rate now, per second.")
PACER_FILL = _m("pacer", "fill", "gauge", "1", "The queue's fill level at the last check.")
PACER_CHANGES = _m(
    "pacer",
    "rate_changes",
    "counter",
    "{change}",
    "Changes of rate, by direction: decrease, increase.",
    labels=("direction",),
)
PACER_ACQUIRED = _m("pacer", "acquired", "counter", "{request}", "Calls let through.")

BREAKER_STATES = ("closed", "open", "half_open", "disabled", "forced_open")

KINDS = (
    "gauge",
    "bucket",
    "queue",
    "pool",
    "pipeline",
    "breaker",
    "loadshed",
    "retry_budget",
    "pacer",
)


def _gauge(obj: Any) -> Iterator[Reading]:
    s = obj.stats()
    yield GAUGE_LIMIT, (), s.limit
    yield GAUGE_IN_FLIGHT, (), s.in_flight
    yield GAUGE_WAITING, (), s.waiting
    keys = getattr(s, "keys", None)
    if keys is not None and obj.backend is None:
        yield GAUGE_KEYS, (), keys
    yield GAUGE_ACQUISITIONS, ("immediate",), s.acquired - s.waited
    yield GAUGE_ACQUISITIONS, ("waited",), s.waited
    yield GAUGE_ACQUISITIONS, ("rejected",), s.rejected
    yield GAUGE_ACQUISITIONS, ("timed_out",), s.timed_out
    yield GAUGE_ACQUISITIONS, ("cancelled",), s.cancelled
    yield WAIT, ("gauge", "acquire"), s.wait
    hold = getattr(s, "hold", None)
    if hold is not None:
        yield GAUGE_HOLD, (), hold
    errors = getattr(s, "backend_errors", None)
    if errors is not None and obj.backend is not None:
        yield GAUGE_BACKEND_ERRORS, (), errors


def _bucket(obj: Any) -> Iterator[Reading]:
    s = obj.stats()
    yield BUCKET_DECISIONS, ("immediate",), s.acquired - s.waited
    yield BUCKET_DECISIONS, ("waited",), s.waited
    yield BUCKET_DECISIONS, ("limited",), s.rejected
    yield BUCKET_DECISIONS, ("cancelled",), s.cancelled
    yield BUCKET_WAITING, (), s.waiting
    yield BUCKET_KEYS, (), s.keys
    yield WAIT, ("bucket", "acquire"), s.wait
    if obj.backend is not None:
        yield BUCKET_BACKEND_ERRORS, (), s.backend_errors


def _queue(obj: Any) -> Iterator[Reading]:
    s = obj.stats()
    yield QUEUE_SIZE, (), s.size
    yield QUEUE_MAXSIZE, (), s.maxsize
    yield QUEUE_WAITING, ("put",), s.putters_waiting
    yield QUEUE_WAITING, ("get",), s.getters_waiting
    yield QUEUE_ITEMS, ("put",), s.put
    yield QUEUE_ITEMS, ("get",), s.got
    yield QUEUE_DROPPED, (), s.dropped
    yield QUEUE_REJECTED, (), s.rejected
    yield WAIT, ("queue", "put"), s.put_wait
    yield WAIT, ("queue", "get"), s.get_wait


def _pool(obj: Any) -> Iterator[Reading]:
    s = obj.stats()
    yield POOL_WORKERS, (), s.workers
    yield POOL_BUSY, (), s.busy
    yield POOL_QUEUED, (), s.queued
    yield POOL_JOBS, ("completed",), s.completed
    yield POOL_JOBS, ("failed",), s.failed
    yield POOL_JOBS, ("rejected",), s.rejected
    yield POOL_JOBS, ("cancelled",), s.cancelled


def _pipeline(obj: Any) -> Iterator[Reading]:
    seen: dict[str, int] = {}
    for stage in obj.stats():
        # Two stages of one function get "name", "name#2": labels stay apart.
        seen[stage.name] = seen.get(stage.name, 0) + 1
        label = stage.name if seen[stage.name] == 1 else f"{stage.name}#{seen[stage.name]}"
        yield STAGE_ITEMS, (label, "in"), stage.items_in
        yield STAGE_ITEMS, (label, "out"), stage.items_out
        yield STAGE_QUEUED, (label,), stage.queued
        yield STAGE_BUSY, (label,), stage.busy
        yield STAGE_BLOCKED, (label,), stage.blocked_seconds
        yield STAGE_ERRORS, (label,), stage.errors


def _breaker(obj: Any) -> Iterator[Reading]:
    s = obj.stats()
    for state in BREAKER_STATES:
        yield BREAKER_STATE, (state,), 1 if s.state == state else 0
    yield BREAKER_CALLS, ("successful",), s.successful
    yield BREAKER_CALLS, ("failed",), s.failed
    yield BREAKER_CALLS, ("ignored",), s.ignored
    yield BREAKER_CALLS, ("rejected",), s.rejected
    transitions = obj.transitions()
    for state in BREAKER_STATES:
        yield BREAKER_TRANSITIONS, (state,), transitions.get(state, 0)


def _loadshed(obj: Any) -> Iterator[Reading]:
    s = obj.stats()
    for outcome in (
        "admitted",
        "rate_limited",
        "overloaded",
        "exempt",
        "shadow_rate_limited",
        "shadow_overloaded",
    ):
        yield LOADSHED_REQUESTS, (outcome,), getattr(s, outcome)


def _retry_budget(obj: Any) -> Iterator[Reading]:
    s = obj.stats()
    yield BUDGET_AVAILABLE, (), s.available
    yield BUDGET_RETRIES, ("retried",), s.retried
    yield BUDGET_RETRIES, ("refused",), s.refused


def _pacer(obj: Any) -> Iterator[Reading]:
    s = obj.stats()
    yield PACER_RATE, (), s.rate
    if s.fill is not None:
        yield PACER_FILL, (), s.fill
    yield PACER_CHANGES, ("decrease",), s.decreases
    yield PACER_CHANGES, ("increase",), s.increases
    yield PACER_ACQUIRED, (), s.acquired


_READERS: dict[str, Callable[[Any], Iterator[Reading]]] = {
    "gauge": _gauge,
    "bucket": _bucket,
    "queue": _queue,
    "pool": _pool,
    "pipeline": _pipeline,
    "breaker": _breaker,
    "loadshed": _loadshed,
    "retry_budget": _retry_budget,
    "pacer": _pacer,
}


_WAITING_KINDS = ("gauge", "bucket", "queue")

_BY_KIND: dict[str, tuple[Metric, ...]] = {
    kind: tuple(m for m in list(globals().values()) if isinstance(m, Metric) and m.kind == kind)
    + ((WAIT,) if kind in _WAITING_KINDS else ())
    for kind in KINDS
}


def metrics_of(kind: str) -> tuple[Metric, ...]:
    """Every metric objects of `kind` may export (some only at times: a
    pacer's fill once it has read one, a pipeline's stages once it has some)."""
    return _BY_KIND[kind]


def kind_of(obj: object) -> str:
    """The kind of a brakes object, as metric names say it ("gauge", ...)."""
    if isinstance(obj, (brakes.Gauge, brakes.AdaptiveGauge)):
        return "gauge"
    if isinstance(obj, _Bucket):
        return "bucket"
    if isinstance(obj, brakes.Queue):
        return "queue"
    if isinstance(obj, brakes.WorkerPool):
        return "pool"
    if isinstance(obj, brakes.Pipeline):
        return "pipeline"
    if isinstance(obj, brakes.CircuitBreaker):
        return "breaker"
    if isinstance(obj, LoadShedBase):
        return "loadshed"
    if isinstance(obj, brakes.RetryBudget):
        return "retry_budget"
    if isinstance(obj, brakes.Pacer):
        return "pacer"
    raise TypeError(
        "obj must be a brakes limiter, queue, pool, pipeline, breaker, retry budget, "
        f"pacer or LoadShed, got {type(obj).__name__}"
    )


def read(obj: object, kind: str | None = None) -> list[Reading]:
    """What `obj` exports now, read from its `stats()`."""
    return list(_READERS[kind or kind_of(obj)](obj))


def registered_name(obj: object, name: object) -> str:
    """The name an object is exported under: `name`, else its own."""
    from brakes._checks import check_name

    chosen = check_name(name) if name is not None else getattr(obj, "name", None)
    if chosen is None:
        raise ValueError(
            f"{type(obj).__name__} has no name: give it name= at construction, "
            "or pass name= to register()"
        )
    return str(chosen)
