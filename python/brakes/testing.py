"""Helpers for testing code that uses brakes.

`ManualClock` stands in for the monotonic clock of the rate limiters: time
moves only when a test advances it, and advancing it wakes every waiter,
thread or task, whose time has come, so tests never need real sleeps.
"""

from brakes._brakes import ManualClock

__all__ = ["ManualClock"]
