"""brakes: backpressure for Python, with a Rust core.

Put the brakes on producers when consumers can't keep up: a `Gauge` lets at
most N calls in at once and makes the rest wait, wait up to a bound, or fail
at once (an `AdaptiveGauge` finds N itself from measured latency); a
`TokenBucket` or `LeakyBucket` limits the rate of calls, per key when
needed; a bounded `Queue` blocks, refuses or drops what a producer puts when
its consumer lags; a `WorkerPool` or a `Pipeline` of stages runs functions
on bounded channels, so that a slow stage slows its source. All of them work
from threads and asyncio tasks alike.
"""

from importlib.metadata import version as _version

import brakes._log  # noqa: F401  (creates the loggers)
from brakes._brakes import (
    AdaptiveGauge,
    AdaptiveGaugeStats,
    BackendError,
    BrakesError,
    BucketKey,
    BucketStats,
    CircuitBreakerStats,
    CircuitOpen,
    Gauge,
    GaugeKey,
    GaugeStats,
    Histogram,
    LeakyBucket,
    LifoQueue,
    Overloaded,
    PriorityQueue,
    Queue,
    QueueEmpty,
    QueueFull,
    QueueShutDown,
    QueueStats,
    RateLimited,
    RetryBudget,
    RetryBudgetStats,
    TokenBucket,
)
from brakes._breaker import CircuitBreaker
from brakes._pacer import Pacer, PacerStats
from brakes._queue_sync import SyncQueue
from brakes.pipeline import Pipeline, StageStats
from brakes.pool import PoolStats, WorkerPool

__version__: str = _version("brakes")
"""The installed version (from the package metadata: Cargo.toml's version)."""

__all__ = [
    "AdaptiveGauge",
    "AdaptiveGaugeStats",
    "BackendError",
    "BrakesError",
    "BucketKey",
    "BucketStats",
    "CircuitBreaker",
    "CircuitBreakerStats",
    "CircuitOpen",
    "Gauge",
    "GaugeKey",
    "GaugeStats",
    "Histogram",
    "LeakyBucket",
    "LifoQueue",
    "Overloaded",
    "Pacer",
    "PacerStats",
    "Pipeline",
    "PoolStats",
    "PriorityQueue",
    "Queue",
    "QueueEmpty",
    "QueueFull",
    "QueueShutDown",
    "QueueStats",
    "RateLimited",
    "RetryBudget",
    "RetryBudgetStats",
    "StageStats",
    "SyncQueue",
    "TokenBucket",
    "WorkerPool",
]
