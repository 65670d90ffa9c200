"""brakes' measurements as a `prometheus_client` collector.

>>> import brakes
>>> from prometheus_client import CollectorRegistry
>>> from brakes.metrics import prometheus
>>> registry = CollectorRegistry()
>>> db = prometheus.register(brakes.Gauge(10, name="db"), registry=registry)
>>> db.try_acquire()
True
>>> registry.get_sample_value("brakes_gauge_in_flight", {"name": "db"})
1.0

Registered objects are read when the registry is collected (at each
scrape), never on a call. Names follow Prometheus conventions: counters end
in `_total`, times are in seconds, every metric has a `name` label, and one
histogram, `brakes_wait_seconds`, holds every wait, with `kind` and `op`
labels. Needs `prometheus_client` (`pip install 'brakes[prometheus]'`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from itertools import accumulate
from typing import TypeVar

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from brakes._brakes import Histogram
from brakes.metrics import _readings
from brakes.metrics._readings import kind_of, read, registered_name

__all__ = ["BrakesCollector", "register", "unregister"]

T = TypeVar("T")

# Of the native buckets (0, then doubling from 1 µs), every other one: a
# factor of 4 between bounds keeps each histogram at 16 series.
_EXPORTED = (0, *range(1, 28, 2))


def _go_float(value: float) -> str:
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


# The native bounds are the same for every histogram: their labels are made once.
_LE = tuple(_go_float(bound) for bound in (0.0, *(1e-6 * 2 ** (k - 1) for k in _EXPORTED[1:])))


def _add_histogram(
    family: HistogramMetricFamily, labels: dict[str, str], histogram: Histogram
) -> None:
    """Adds one histogram's series, cumulative, without the per-bucket checks
    of `add_metric` (collecting a thousand gauges stays well under 100 ms)."""
    cumulative = list(accumulate(histogram.counts))
    name = family.name
    samples = family.samples
    bucket = f"{name}_bucket"
    for le, k in zip(_LE, _EXPORTED, strict=True):
        samples.append(Sample(bucket, {**labels, "le": le}, cumulative[k]))
    count = cumulative[-1]
    samples.append(Sample(bucket, {**labels, "le": "+Inf"}, count))
    samples.append(Sample(f"{name}_count", labels, count))
    samples.append(Sample(f"{name}_sum", labels, histogram.sum))


Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily


def _family(metric: _readings.Metric) -> Family:
    labels = ["name", *metric.labels]
    if metric.type == "counter":
        return CounterMetricFamily(metric.prometheus, metric.help, labels=labels)
    if metric.type == "gauge":
        return GaugeMetricFamily(metric.prometheus, metric.help, labels=labels)
    return HistogramMetricFamily(metric.prometheus, metric.help, labels=labels)


class BrakesCollector(Collector):
    """Reads the `stats()` of the objects registered with it at each collection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], object] = {}

    def add(self, obj: object, name: str) -> None:
        kind = kind_of(obj)
        with self._lock:
            present = self._objects.get((kind, name))
            if present is not None and present is not obj:
                raise ValueError(f"a {kind} named {name!r} is registered already")
            self._objects[(kind, name)] = obj

    def remove(self, obj: object) -> bool:
        with self._lock:
            keys = [key for key, value in self._objects.items() if value is obj]
            for key in keys:
                del self._objects[key]
            return bool(keys)

    def describe(self) -> Iterator[Metric]:
        # Nothing to describe up front: the registry then never collects on
        # registration, and the metrics appear as objects are registered.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            objects = list(self._objects.items())
        families: dict[_readings.Metric, Family] = {}
        for (kind, name), obj in objects:
            for metric, labels, value in read(obj, kind):
                family = families.get(metric)
                if family is None:
                    family = families[metric] = _family(metric)
                if isinstance(family, HistogramMetricFamily):
                    assert isinstance(value, Histogram)
                    label_values = dict(zip(("name", *metric.labels), (name, *labels), strict=True))
                    _add_histogram(family, label_values, value)
                else:
                    assert not isinstance(value, Histogram)
                    family.add_metric([name, *labels], float(value))
        return iter(families.values())


_collectors: dict[int, tuple[CollectorRegistry, BrakesCollector]] = {}
_collectors_lock = threading.Lock()


def _collector(registry: CollectorRegistry, create: bool) -> BrakesCollector | None:
    with _collectors_lock:
        found = _collectors.get(id(registry))
        if found is not None and found[0] is registry:
            return found[1]
        if not create:
            return None
        collector = BrakesCollector()
        registry.register(collector)
        _collectors[id(registry)] = (registry, collector)
        return collector


def register(obj: T, name: str | None = None, registry: CollectorRegistry = REGISTRY) -> T:
    """Exports `obj` (a limiter, queue, pool, pipeline, breaker, retry budget,
    pacer or LoadShed) to `registry` under `name`, or under its own name;
    returns `obj`. A second object of the same kind and name is a ValueError."""
    if not isinstance(registry, CollectorRegistry):
        raise TypeError(f"registry must be a prometheus_client CollectorRegistry, got {registry!r}")
    label = registered_name(obj, name)
    collector = _collector(registry, create=True)
    assert collector is not None
    collector.add(obj, label)
    return obj


def unregister(obj: object, registry: CollectorRegistry = REGISTRY) -> bool:
    """Stops exporting `obj` to `registry`; False if it was not registered."""
    collector = _collector(registry, create=False)
    return collector is not None and collector.remove(obj)
