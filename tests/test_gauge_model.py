"""Random sequences of calls from one thread, checked against a plain model."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from brakes import Gauge


class GaugeAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.gauge = Gauge(3)
        self.limit = 3
        self.in_flight = 0
        self.acquired = 0
        self.rejected = 0

    @rule(n=st.integers(min_value=1, max_value=5))
    def try_acquire(self, n: int) -> None:
        if self.limit > 0 and n > self.limit:
            try:
                self.gauge.try_acquire(n)
            except ValueError:
                return
            raise AssertionError(f"n={n} above limit {self.limit} was not refused")
        expected = self.in_flight + n <= self.limit
        assert self.gauge.try_acquire(n) is expected
        if expected:
            self.in_flight += n
            self.acquired += 1
        else:
            self.rejected += 1

    @rule(n=st.integers(min_value=1, max_value=5))
    def release(self, n: int) -> None:
        if n > self.in_flight:
            try:
                self.gauge.release(n)
            except ValueError:
                return
            raise AssertionError(f"released {n} with {self.in_flight} held")
        self.gauge.release(n)
        self.in_flight -= n

    @rule(limit=st.integers(min_value=0, max_value=6))
    def set_limit(self, limit: int) -> None:
        self.gauge.limit = limit
        self.limit = limit

    @invariant()
    def matches_the_model(self) -> None:
        stats = self.gauge.stats()
        assert (stats.limit, stats.in_flight, stats.waiting) == (self.limit, self.in_flight, 0)
        assert stats.available == max(0, self.limit - self.in_flight)
        assert self.gauge.locked() is (self.in_flight >= self.limit)
        assert (stats.acquired, stats.rejected) == (self.acquired, self.rejected)


TestGaugeAgainstModel = GaugeAgainstModel.TestCase
TestGaugeAgainstModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
