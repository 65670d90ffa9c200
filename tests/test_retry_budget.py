"""RetryBudget: retries within a ratio of recent successes plus a floor."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

import brakes
from brakes import RetryBudget
from brakes.retry import retry_after, wait_retry_after
from brakes.testing import ManualClock


def test_the_floor_allows_min_per_second_times_the_window() -> None:
    clock = ManualClock()
    budget = RetryBudget(0, min_per_second=3, window=2, clock=clock)
    assert [budget.try_retry() for _ in range(7)] == [True] * 6 + [False]
    stats = budget.stats()
    assert (stats.retries, stats.available, stats.retried, stats.refused) == (6, 0, 6, 1)
    clock.advance(2)  # the retries have left the window
    assert budget.stats().available == 6
    assert budget.try_retry()


def test_successes_buy_a_ratio_of_retries_and_age_out() -> None:
    clock = ManualClock()
    budget = RetryBudget(0.5, min_per_second=0, window=10, clock=clock)
    assert not budget.try_retry()  # no successes, no floor: no retry
    for _ in range(6):
        budget.record_success()
    assert [budget.try_retry() for _ in range(4)] == [True, True, True, False]
    clock.advance(5)
    for _ in range(2):
        budget.record_success()
    assert budget.try_retry()  # 8 successes buy 4 retries; 3 were taken
    assert not budget.try_retry()
    clock.advance(5)  # the first 6 successes and 3 retries leave the window
    stats = budget.stats()
    assert (stats.successes, stats.retries, stats.available) == (2, 1, 0)
    assert (stats.retried, stats.refused) == (4, 3)


def test_a_decimal_ratio_gives_the_retries_it_says() -> None:
    budget = RetryBudget(0.7, min_per_second=0, clock=ManualClock())
    for _ in range(10):
        budget.record_success()
    assert sum(budget.try_retry() for _ in range(10)) == 7


def test_the_defaults_and_repr() -> None:
    budget = RetryBudget()
    assert (budget.ratio, budget.min_per_second, budget.window) == (0.1, 10.0, 10.0)
    assert budget.stats().available == 100
    assert repr(budget) == (
        "<brakes.RetryBudget ratio=0.1 min_per_second=10.0 window=10.0 available=100>"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"ratio": -0.1}, ValueError, "ratio"),
        ({"ratio": float("nan")}, ValueError, "ratio"),
        ({"ratio": "0.1"}, TypeError, "ratio"),
        ({"min_per_second": -1}, ValueError, "min_per_second"),
        ({"min_per_second": float("inf")}, ValueError, "min_per_second"),
        ({"window": 0}, ValueError, "window"),
        ({"window": True}, TypeError, "window"),
        ({"clock": "now"}, TypeError, "clock"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], error: type, named: str) -> None:
    with pytest.raises(error, match=named):
        RetryBudget(**kwargs)  # type: ignore[arg-type]


def test_threads_and_two_loops_share_one_exact_budget() -> None:
    budget = RetryBudget(0.5, min_per_second=10, window=3600)
    for _ in range(100):
        budget.record_success()
    # 50 bought by successes plus a floor of 36,000; spend most of it first.
    taken = sum(budget.try_retry() for _ in range(36_000))
    assert taken == 36_000
    start = threading.Barrier(6)
    counts: list[int] = []
    lock = threading.Lock()

    def in_thread() -> None:
        start.wait()
        got = sum(budget.try_retry() for _ in range(40))
        with lock:
            counts.append(got)

    def in_loop() -> None:
        async def task() -> int:
            got = 0
            for _ in range(10):
                got += budget.try_retry()
                await asyncio.sleep(0)
            return got

        async def main() -> int:
            start.wait()
            return sum(await asyncio.gather(*(task() for _ in range(4))))

        got = asyncio.run(main())
        with lock:
            counts.append(got)

    workers = [threading.Thread(target=in_thread) for _ in range(4)]
    workers += [threading.Thread(target=in_loop) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    # 240 asked for, 50 left: exactly 50 granted, none twice.
    assert sum(counts) == 50
    stats = budget.stats()
    assert (stats.retried, stats.refused, stats.available) == (36_050, 190, 0)


def test_a_retry_loop_stays_within_the_budget() -> None:
    budget = RetryBudget(0.1, min_per_second=0, clock=ManualClock())
    for _ in range(50):
        budget.record_success()
    attempts = 0

    def flaky() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("down")

    for _ in range(20):  # 20 calls, each retried while the budget allows
        while True:
            try:
                flaky()
            except ConnectionError:
                if budget.try_retry():
                    continue
            break
    assert attempts == 20 + 5  # every call once, and 10 % of 50 retries


@dataclass
class Outcome:
    error: BaseException | None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def exception(self) -> BaseException | None:
        return self.error


@dataclass
class RetryState:
    """What tenacity hands a wait strategy: the attempt's outcome."""

    outcome: Outcome
    attempt_number: int = 1


def refusal() -> brakes.RateLimited:
    bucket = brakes.TokenBucket(1, per=60, burst=1, clock=ManualClock())
    assert bucket.try_acquire()
    with pytest.raises(brakes.RateLimited) as refused:
        bucket.acquire_blocking(timeout=0)
    return refused.value


def test_retry_after_reads_a_refusal_and_falls_back() -> None:
    refused = refusal()
    assert retry_after(refused, default=1.0) == refused.retry_after == 60.0
    assert retry_after(brakes.Overloaded("no room"), default=1.5) == 1.5  # not known
    assert retry_after(ConnectionError(), default=2) == 2.0
    assert retry_after(None, default=0.5) == 0.5


def test_wait_retry_after_waits_what_the_refusal_asks() -> None:
    wait = wait_retry_after(3.0)
    assert wait(RetryState(Outcome(refusal()))) == 60.0
    assert wait(RetryState(Outcome(ConnectionError()))) == 3.0
    assert wait(RetryState(Outcome(None))) == 3.0
    backoff = wait_retry_after(lambda state: 0.1 * 2**state.attempt_number)
    assert backoff(RetryState(Outcome(ConnectionError()), attempt_number=3)) == 0.8
    with pytest.raises(ValueError, match="fallback"):
        wait_retry_after(-1)
    with pytest.raises(TypeError, match="fallback"):
        wait_retry_after("soon")  # type: ignore[arg-type]
