"""brakes: backpressure for Python, with a Rust core.

Put the brakes on producers when consumers can't keep up: a `Gauge` lets at
most N calls in at once and makes the rest wait, wait up to a bound, or fail
at once, from threads and asyncio tasks alike.
"""

from brakes._brakes import BrakesError, Gauge, GaugeStats, Overloaded, RateLimited

__all__ = ["BrakesError", "Gauge", "GaugeStats", "Overloaded", "RateLimited"]
