"""CircuitBreaker against pybreaker and purgatory, side by side.

Every contender wraps the same trivial function with its defaults and a
closed breaker; each round runs all of them back to back, and the table gives
the median of paired ratios of the time per call, the bare call's time taken
off (brakes' overhead / the peer's overhead).

    pip install '.[bench]' && python benchmarks/bench_breaker.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import purgatory
import pybreaker
from side_by_side import Row, measure, pinned_to_one_cpu, start, table

import brakes


def work() -> int:
    return 1


def brakes_decorated() -> Callable[[], int]:
    return brakes.CircuitBreaker()(work)


def brakes_with() -> Callable[[], int]:
    breaker = brakes.CircuitBreaker()

    def call() -> int:
        with breaker:
            return work()

    return call


def pybreaker_call() -> Callable[[], int]:
    breaker = pybreaker.CircuitBreaker()
    return lambda: breaker.call(work)


def purgatory_with() -> Callable[[], int]:
    breaker = purgatory.SyncCircuitBreakerFactory().get_breaker("work")

    def call() -> int:
        with breaker:
            return work()

    return call


def overhead(make: Callable[[], Callable[[], int]], calls: int) -> float:
    """Seconds per call beyond the bare call."""
    call = make()
    started = time.perf_counter()
    for _ in range(calls):
        call()
    wrapped = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(calls):
        work()
    bare = time.perf_counter() - started
    return max(wrapped - bare, 1e-12) / calls


def main() -> None:
    args = start(__doc__, rounds=9)
    calls = max(1000, int(100_000 * args.scale))
    peers = {"pybreaker.CircuitBreaker.call": pybreaker_call, "purgatory (with)": purgatory_with}
    rows: list[Row] = measure(
        [
            (
                f"decorated call through a closed breaker, {calls:,} times",
                pinned_to_one_cpu(overhead),
                {"calls": calls},
                {"brakes": brakes_decorated, **peers},
            ),
            (
                f"`with breaker:` around a call, {calls:,} times",
                pinned_to_one_cpu(overhead),
                {"calls": calls},
                {"brakes": brakes_with, **peers},
            ),
        ],
        args.rounds,
    )
    print(table(rows))


if __name__ == "__main__":
    main()
