"""brakes' measurements as observable instruments on an OpenTelemetry `Meter`.

>>> import brakes
>>> from opentelemetry.sdk.metrics import MeterProvider
>>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
>>> from brakes.metrics import otel
>>> reader = InMemoryMetricReader()
>>> meter = MeterProvider(metric_readers=[reader]).get_meter("app")
>>> api = otel.register(brakes.TokenBucket(5, name="api"), meter)
>>> api.try_acquire()
True
>>> data = reader.get_metrics_data()

The instruments' callbacks read `stats()` of the registered objects when the
reader collects, never on a call. Names follow OpenTelemetry's conventions
for rate limiting where they exist: `brakes.gauge.active_request_leases`,
`brakes.gauge.queued_requests`, `brakes.<kind>.requests` with a `result`
attribute. The API has no observable histogram, so a wait is exported as
`brakes.time_in_queue` (a gauge of its 0.5, 0.9 and 0.99 quantiles, in
seconds, with a `quantile` attribute) and `brakes.time_in_queue.count`;
the gauge's sampled hold times likewise as
`brakes.gauge.request_lease.duration`. Needs `opentelemetry-api`
(`pip install 'brakes[otel]'`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from brakes._brakes import Histogram
from brakes.metrics import _readings
from brakes.metrics._readings import kind_of, metrics_of, read, registered_name

__all__ = ["register", "unregister"]

T = TypeVar("T")

# Counts of what is there now go up and down; the rest are gauges.
_UP_DOWN = {
    _readings.GAUGE_IN_FLIGHT,
    _readings.GAUGE_WAITING,
    _readings.BUCKET_WAITING,
    _readings.QUEUE_SIZE,
    _readings.QUEUE_WAITING,
    _readings.POOL_BUSY,
    _readings.POOL_QUEUED,
    _readings.STAGE_QUEUED,
    _readings.STAGE_BUSY,
}

_QUANTILES = (0.5, 0.9, 0.99)
_WAITING_KINDS = ("gauge", "bucket", "queue")


def _attributes(name: str, metric: _readings.Metric, labels: tuple[str, ...]) -> dict[str, str]:
    attributes = {"name": name}
    for key, value in zip(metric.labels, labels, strict=True):
        attributes["result" if key == "outcome" else key] = value
    return attributes


class _Exporter:
    """The instruments of one meter, and the objects they read."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str], object] = {}
        self.created: set[_readings.Metric] = set()

    def readings(self, kind: str) -> Iterator[tuple[str, _readings.Reading]]:
        with self.lock:
            objects = [(key[1], obj) for key, obj in self.objects.items() if key[0] == kind]
        for name, obj in objects:
            for reading in read(obj, kind):
                yield name, reading

    def observe(self, kind: str, metric: _readings.Metric) -> Iterable[Observation]:
        for name, (found, labels, value) in self.readings(kind):
            if found is not metric or isinstance(value, Histogram):
                continue
            yield Observation(value, _attributes(name, metric, labels))

    def observe_quantiles(self, kind: str, metric: _readings.Metric) -> Iterable[Observation]:
        for name, (found, labels, value) in self.readings(kind):
            if found is not metric or not isinstance(value, Histogram):
                continue
            for q in _QUANTILES:
                seconds = value.quantile(q)
                if seconds is not None:
                    attributes = {**_attributes(name, metric, labels), "quantile": str(q)}
                    yield Observation(seconds, attributes)

    def observe_counts(self, kind: str, metric: _readings.Metric) -> Iterable[Observation]:
        for name, (found, labels, value) in self.readings(kind):
            if found is metric and isinstance(value, Histogram):
                yield Observation(value.count, _attributes(name, metric, labels))

    def instruments_for(self, kind: str) -> None:
        """Creates, once each, the instruments of everything `kind` exports."""
        for metric in metrics_of(kind):
            with self.lock:
                if metric in self.created:
                    continue
                self.created.add(metric)
            self._create(kind, metric)

    def _create(self, kind: str, metric: _readings.Metric) -> None:
        if metric.type == "histogram":
            # The wait is one instrument for every kind that makes callers wait.
            kinds = _WAITING_KINDS if metric is _readings.WAIT else (kind,)

            def quantiles(options: CallbackOptions) -> Iterable[Observation]:
                return [o for k in kinds for o in self.observe_quantiles(k, metric)]

            def counts(options: CallbackOptions) -> Iterable[Observation]:
                return [o for k in kinds for o in self.observe_counts(k, metric)]

            self.meter.create_observable_gauge(
                metric.otel, callbacks=[quantiles], unit="s", description=metric.help
            )
            self.meter.create_observable_counter(
                f"{metric.otel}.count",
                callbacks=[counts],
                unit="{request}",
                description=f"Observations of {metric.otel}.",
            )
            return

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return list(self.observe(kind, metric))

        create: Callable[..., object]
        if metric.type == "counter":
            create = self.meter.create_observable_counter
        elif metric in _UP_DOWN:
            create = self.meter.create_observable_up_down_counter
        else:
            create = self.meter.create_observable_gauge
        create(metric.otel, callbacks=[observe], unit=metric.unit, description=metric.help)


_exporters: dict[int, tuple[Meter, _Exporter]] = {}
_default: list[Meter] = []


def _default_meter() -> Meter:
    """The global provider's meter "brakes", got once: before the app sets a
    provider, each call would give another proxy meter (each forwarding to
    the provider once it is set)."""
    with _exporters_lock:
        if not _default:
            from opentelemetry import metrics

            _default.append(metrics.get_meter("brakes"))
        return _default[0]


_exporters_lock = threading.Lock()


def _exporter(meter: Meter, create: bool) -> _Exporter | None:
    with _exporters_lock:
        found = _exporters.get(id(meter))
        if found is not None and found[0] is meter:
            return found[1]
        if not create:
            return None
        exporter = _Exporter(meter)
        _exporters[id(meter)] = (meter, exporter)
        return exporter


def register(obj: T, meter: Meter | None = None, name: str | None = None) -> T:
    """Exports `obj` (a limiter, queue, pool, pipeline, breaker, retry budget,
    pacer or LoadShed) through `meter` (by default the global provider's meter
    "brakes") under `name`, or under its own name; returns `obj`. A second
    object of the same kind and name is a ValueError."""
    if meter is None:
        meter = _default_meter()
    if not callable(getattr(meter, "create_observable_counter", None)):
        raise TypeError(f"meter must be an OpenTelemetry Meter, got {meter!r}")
    label = registered_name(obj, name)
    kind = kind_of(obj)
    exporter = _exporter(meter, create=True)
    assert exporter is not None
    with exporter.lock:
        present = exporter.objects.get((kind, label))
        if present is not None and present is not obj:
            raise ValueError(f"a {kind} named {label!r} is registered already")
        exporter.objects[(kind, label)] = obj
    exporter.instruments_for(kind)
    return obj


def unregister(obj: object, meter: Meter | None = None) -> bool:
    """Stops exporting `obj` through `meter`; False if it was not registered."""
    if meter is None:
        meter = _default_meter()
    exporter = _exporter(meter, create=False)
    if exporter is None:
        return False
    with exporter.lock:
        keys = [key for key, value in exporter.objects.items() if value is obj]
        for key in keys:
            del exporter.objects[key]
    return bool(keys)
