"""Retrying without a retry storm: `RetryBudget`, and waits taken from the
`retry_after` a refusal carries.

A refusal from brakes (`RateLimited`, an `Overloaded` that knows when room
comes back) says how long to wait in `retry_after`. `retry_after(error,
default)` reads it for a plain retry loop; `wait_retry_after(fallback)` is a
`wait=` for tenacity that waits what the refusal asks, and otherwise what
`fallback` says.

>>> import brakes
>>> from brakes.retry import retry_after
>>> bucket = brakes.TokenBucket(2, burst=1)
>>> bucket.try_acquire()
True
>>> try:
...     bucket.acquire_blocking(timeout=0)
... except brakes.RateLimited as refused:
...     0 < retry_after(refused, default=1.0) <= 0.5
True
>>> retry_after(ConnectionError(), default=1.0)
1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brakes._brakes import RetryBudget, RetryBudgetStats

__all__ = ["RetryBudget", "RetryBudgetStats", "retry_after", "wait_retry_after"]


def retry_after(error: BaseException | None, default: float) -> float:
    """Seconds to wait before retrying after `error`: its `retry_after` when
    it has one (a brakes refusal that knows when room comes back), otherwise
    `default`."""
    seconds = getattr(error, "retry_after", None)
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0:
        return float(seconds)
    return float(default)


def wait_retry_after(
    fallback: Callable[[Any], float] | float = 0.0,
) -> Callable[[Any], float]:
    """A tenacity `wait=` strategy: after an attempt that raised a refusal
    with a `retry_after`, wait that long; after anything else, wait what
    `fallback` gives (a number of seconds, or another tenacity wait).

        tenacity.retry(
            wait=wait_retry_after(tenacity.wait_exponential(max=10)),
            stop=tenacity.stop_after_attempt(5),
        )
    """
    if not callable(fallback):
        if isinstance(fallback, bool) or not isinstance(fallback, (int, float)):
            raise TypeError(
                f"fallback must be a number of seconds or a tenacity wait, got {fallback!r}"
            )
        if not 0 <= fallback < float("inf"):
            raise ValueError(f"fallback must be a number of seconds >= 0, got {fallback!r}")

    def wait(retry_state: Any) -> float:
        outcome = getattr(retry_state, "outcome", None)
        error = outcome.exception() if outcome is not None and outcome.failed else None
        seconds = retry_after(error, -1.0)
        if seconds >= 0:
            return seconds
        if callable(fallback):
            return float(fallback(retry_state))
        return float(fallback)

    return wait
