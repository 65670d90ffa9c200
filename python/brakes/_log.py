"""The `brakes` loggers, one per kind, and the throttle that keeps repeated
events to a bounded number of lines.

brakes logs changes of state (a breaker opening or closing, an adaptive
limit moving far, a Redis backend losing and regaining its server, a lease
lost), never a single refusal. The loggers carry a `NullHandler`, as a
library's should: the application decides where the lines go.
"""

from __future__ import annotations

import logging
import threading
import time

KINDS = (
    "adaptive",
    "breaker",
    "bucket",
    "gauge",
    "loadshed",
    "pacer",
    "pipeline",
    "pool",
    "queue",
    "redis",
    "retry",
)

root = logging.getLogger("brakes")
root.addHandler(logging.NullHandler())
loggers = {kind: logging.getLogger(f"brakes.{kind}") for kind in KINDS}

# Each subject (one breaker, one backend) may log this many lines per window;
# the events beyond are counted and told in the next line that gets through.
BURST = 5
WINDOW = 60.0


class Throttle:
    """At most `burst` lines per `window` seconds for one subject; the
    events held back are counted, and the next line says how many there were."""

    __slots__ = ("_burst", "_lock", "_logged", "_suppressed", "_window", "_window_start")

    def __init__(self, burst: int = BURST, window: float = WINDOW) -> None:
        self._burst = burst
        self._window = window
        self._lock = threading.Lock()
        self._window_start = -float("inf")
        self._logged = 0
        self._suppressed = 0

    def admit(self, now: float | None = None) -> int | None:
        """None if this event is held back, else how many were held back before it."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._window_start >= self._window:
                self._window_start = now
                self._logged = 0
            if self._logged >= self._burst:
                self._suppressed += 1
                return None
            self._logged += 1
            suppressed, self._suppressed = self._suppressed, 0
            return suppressed


def log(
    kind: str, throttle: Throttle, level: int, message: str, *args: object, what: str = "events"
) -> None:
    """Logs `message % args` on `brakes.<kind>` unless `throttle` holds it back."""
    logger = loggers[kind]
    if not logger.isEnabledFor(level):
        return
    suppressed = throttle.admit()
    if suppressed is None:
        return
    if suppressed:
        message += f" ({suppressed} more {what} were not logged)"
    logger.log(level, message, *args)


def log_native(kind: str, level: int, message: str) -> None:
    """A line from the native layer, which throttles its own events."""
    loggers[kind].log(level, "%s", message)


_limit_throttles: dict[str, Throttle] = {}


def limit_moved(label: str, algorithm: str, old: int, new: int) -> None:
    """An adaptive gauge's limit moved to twice or half what was last told."""
    throttle = _limit_throttles.setdefault(label, Throttle())
    log(
        "adaptive",
        throttle,
        logging.INFO,
        "adaptive gauge %s (%s): limit %d -> %d",
        repr(label) if label != "(unnamed)" else label,
        algorithm,
        old,
        new,
        what="moves",
    )
