"""Exporters of brakes' measurements: `brakes.metrics.prometheus` (a
`prometheus_client` collector) and `brakes.metrics.otel` (observable
instruments on an OpenTelemetry `Meter`).

Both read `stats()` of the objects registered with them when they are
collected, never on a call. Each needs its library installed
(`pip install 'brakes[prometheus]'` or `'brakes[otel]'`); importing
`brakes` imports neither.
"""

from __future__ import annotations

from brakes.metrics._readings import KINDS, Metric, Reading, kind_of, read

__all__ = ["KINDS", "Metric", "Reading", "kind_of", "read"]
