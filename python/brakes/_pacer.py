"""`Pacer`: a producer's rate that follows the fill level of the queue it feeds."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

from brakes._brakes import LeakyBucket, ManualClock, RateLimited
from brakes._checks import check_name
from brakes._decorate import limit_calls

F = TypeVar("F", bound=Callable[..., Any])


class SizedQueue(Protocol):
    """What a pacer reads of its queue: `queue.Queue`, `asyncio.Queue` and
    brakes' queues all have it."""

    @property
    def maxsize(self) -> int: ...
    def qsize(self) -> int: ...


@dataclasses.dataclass(frozen=True)
class PacerStats:
    """A snapshot of a pacer: its rate, the last fill level it read, and
    how often it moved."""

    rate: float
    fill: float | None
    checks: int
    decreases: int
    increases: int
    acquired: int


def _deadline(now: float, timeout: float | None) -> float | None:
    if timeout is None or (isinstance(timeout, float) and timeout == math.inf):
        return None
    seconds = _number("timeout", timeout)
    if seconds < 0:
        raise ValueError(f"timeout must be None or 0 or more seconds, got {timeout!r}")
    return now + seconds


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


class Pacer:
    """A rate limiter for a producer, whose rate follows the fill level of
    the queue it feeds: the consumer's backlog tells the producer to slow
    down, and its recovery to speed up again.

    It starts at `max_rate` calls a second, evenly spaced (a `LeakyBucket`).
    At most every `every` seconds, when a caller asks for a slot or while
    one waits for it, it reads the fill level `queue.qsize() /
    queue.maxsize`: above `high` the rate is multiplied by `decrease`, below
    `low` it grows by `increase` (by default a tenth of `max_rate -
    min_rate`); it stays within [`min_rate`, `max_rate`]. Callers queued for
    a slot are re-booked at the new rate. Several missed periods count as
    one check.

    The protocol is a bucket's: `try_acquire()`, `await acquire()`,
    `acquire_blocking()`, `with`, `async with` and `@pacer`, from threads
    and tasks alike.

    >>> from brakes import Queue
    >>> from brakes.testing import ManualClock
    >>> clock = ManualClock()
    >>> queue = Queue(10)
    >>> pacer = Pacer(queue, min_rate=1, max_rate=100, clock=clock)
    >>> for i in range(9):
    ...     queue.put_nowait(i)  # the consumer lags: 90 % full
    >>> pacer.try_acquire(), pacer.rate
    (True, 50.0)
    >>> clock.advance(0.5)
    >>> pacer.try_acquire(), pacer.rate
    (True, 25.0)
    """

    def __init__(
        self,
        queue: SizedQueue,
        *,
        min_rate: float,
        max_rate: float,
        low: float = 0.2,
        high: float = 0.8,
        every: float = 0.5,
        decrease: float = 0.5,
        increase: float | None = None,
        clock: ManualClock | None = None,
        name: str | None = None,
    ) -> None:
        self._name = check_name(name)
        maxsize = getattr(queue, "maxsize", None)
        if not callable(getattr(queue, "qsize", None)) or not isinstance(maxsize, int):
            raise TypeError(f"queue must have qsize() and an int maxsize, got {queue!r}")
        if maxsize <= 0:
            raise ValueError(
                f"queue must be bounded (maxsize > 0) to have a fill level, got {queue!r}"
            )
        self._min_rate = _number("min_rate", min_rate)
        self._max_rate = _number("max_rate", max_rate)
        if self._min_rate <= 0:
            raise ValueError(f"min_rate must be above 0, got {min_rate!r}")
        if self._max_rate < self._min_rate:
            raise ValueError(f"max_rate must be at least min_rate ({min_rate!r}), got {max_rate!r}")
        self._low = _number("low", low)
        self._high = _number("high", high)
        if not 0 <= self._low < self._high <= 1:
            raise ValueError(
                f"low and high must be 0 <= low < high <= 1, got low={low!r} high={high!r}"
            )
        self._every = _number("every", every)
        if self._every <= 0:
            raise ValueError(f"every must be above 0 seconds, got {every!r}")
        self._decrease = _number("decrease", decrease)
        if not 0 < self._decrease < 1:
            raise ValueError(f"decrease must be above 0 and below 1, got {decrease!r}")
        if increase is None:
            self._increase = (self._max_rate - self._min_rate) / 10
        else:
            self._increase = _number("increase", increase)
            if self._increase <= 0:
                raise ValueError(f"increase must be above 0, got {increase!r}")
        if clock is not None and not isinstance(clock, ManualClock):
            raise TypeError(f"clock must be a brakes.testing.ManualClock or None, got {clock!r}")
        self._queue = queue
        self._clock = clock
        self._bucket = LeakyBucket(self._max_rate, clock=clock)
        self._rate = self._max_rate
        self._lock = threading.Lock()
        self._next_check = -math.inf
        self._fill: float | None = None
        self._checks = self._decreases = self._increases = 0

    # --- the feedback -------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now() if self._clock is not None else time.monotonic()

    def _check(self) -> float:
        """Reads the queue if a check is due; returns the seconds to the next."""
        now = self._now()
        with self._lock:
            if now < self._next_check:
                return self._next_check - now
            self._next_check = now + self._every
            fill = self._queue.qsize() / self._queue.maxsize
            self._fill = fill
            self._checks += 1
            rate = self._rate
            if fill > self._high:
                rate = max(self._min_rate, rate * self._decrease)
            elif fill < self._low:
                rate = min(self._max_rate, rate + self._increase)
            # Twelve digits: a rate the bucket keeps exactly.
            rate = float(f"{rate:.12g}")
            if rate != self._rate:
                # Under the lock, so that rates land in the order decided.
                self._bucket.rate = rate
                if rate < self._rate:
                    self._decreases += 1
                else:
                    self._increases += 1
                self._rate = rate
            return self._every

    # --- the limiter protocol -------------------------------------------------

    def try_acquire(self, n: int = 1) -> bool:
        """Takes `n` slots now if the current rate allows; never waits."""
        self._check()
        return self._bucket.try_acquire(n)

    async def acquire(self, n: int = 1, *, timeout: float | None = None) -> Literal[True]:
        """Waits for `n` slots (up to `timeout` seconds, else `RateLimited`),
        checking the queue every `every` seconds while it waits."""
        deadline = _deadline(self._now(), timeout)
        while True:
            until_check = self._check()
            left = None if deadline is None else deadline - self._now()
            slice_ = until_check if left is None else min(until_check, max(0.0, left))
            try:
                return await self._bucket.acquire(n, timeout=slice_)
            except RateLimited:
                if left is not None and left <= until_check:
                    raise
            await self._sleep(until_check)

    def acquire_blocking(self, n: int = 1, *, timeout: float | None = None) -> Literal[True]:
        """`acquire()` for threads: blocks this thread while it waits."""
        deadline = _deadline(self._now(), timeout)
        while True:
            until_check = self._check()
            left = None if deadline is None else deadline - self._now()
            slice_ = until_check if left is None else min(until_check, max(0.0, left))
            try:
                return self._bucket.acquire_blocking(n, timeout=slice_)
            except RateLimited:
                if left is not None and left <= until_check:
                    raise
            self._sleep_blocking(until_check)

    def retry_after(self, n: int = 1) -> float:
        """Seconds until `n` slots could be taken at the current rate."""
        return self._bucket.retry_after(n)

    def _sleeper(self, seconds: float) -> LeakyBucket:
        """A wait of `seconds` on the manual clock: a bucket that grants one
        now and the next `seconds` later."""
        sleeper = LeakyBucket(1, per=max(seconds, 1e-9), clock=self._clock)
        sleeper.try_acquire()
        return sleeper

    async def _sleep(self, seconds: float) -> None:
        if self._clock is None:
            await asyncio.sleep(seconds)
        else:
            await self._sleeper(seconds).acquire()

    def _sleep_blocking(self, seconds: float) -> None:
        if self._clock is None:
            time.sleep(seconds)
        else:
            self._sleeper(seconds).acquire_blocking()

    def __enter__(self) -> Literal[True]:
        return self.acquire_blocking()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __call__(self, func: F, /) -> F:
        """`@pacer` on a def or async def: each call waits for its slot."""
        return limit_calls(self, func)

    # --- what it is doing -----------------------------------------------------

    @property
    def rate(self) -> float:
        """The rate now, in calls a second."""
        return self._rate

    @property
    def queue(self) -> SizedQueue:
        return self._queue

    @property
    def min_rate(self) -> float:
        return self._min_rate

    @property
    def max_rate(self) -> float:
        return self._max_rate

    @property
    def low(self) -> float:
        return self._low

    @property
    def high(self) -> float:
        return self._high

    @property
    def every(self) -> float:
        return self._every

    @property
    def decrease(self) -> float:
        return self._decrease

    @property
    def increase(self) -> float:
        return self._increase

    def stats(self) -> PacerStats:
        bucket = self._bucket.stats()
        with self._lock:
            return PacerStats(
                rate=self._rate,
                fill=self._fill,
                checks=self._checks,
                decreases=self._decreases,
                increases=self._increases,
                acquired=bucket.acquired,
            )

    @property
    def name(self) -> str | None:
        """The pacer's name (in reprs, logs and metrics), or None."""
        return self._name

    def __repr__(self) -> str:
        named = f" name={self._name!r}" if self._name is not None else ""
        return (
            f"<brakes.Pacer{named} rate={self._rate:g} min_rate={self._min_rate:g} "
            f"max_rate={self._max_rate:g} fill={self._fill}>"
        )


Pacer.__module__ = "brakes"
PacerStats.__module__ = "brakes"
