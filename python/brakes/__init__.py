"""brakes: backpressure for Python, with a Rust core.

Put the brakes on producers when consumers can't keep up: a `Gauge` lets at
most N calls in at once and makes the rest wait, wait up to a bound, or fail
at once; a `TokenBucket` or `LeakyBucket` limits the rate of calls, per key
when needed; a bounded `Queue` blocks, refuses or drops what a producer puts
when its consumer lags. All of them work from threads and asyncio tasks alike.
"""

from brakes._brakes import (
    BrakesError,
    BucketStats,
    Gauge,
    GaugeStats,
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
    TokenBucket,
)

__all__ = [
    "BrakesError",
    "BucketStats",
    "Gauge",
    "GaugeStats",
    "LeakyBucket",
    "LifoQueue",
    "Overloaded",
    "PriorityQueue",
    "Queue",
    "QueueEmpty",
    "QueueFull",
    "QueueShutDown",
    "QueueStats",
    "RateLimited",
    "TokenBucket",
]
