"""The leaky bucket: one request leaves every 500 ms, and at most 5 may wait.

A port of the classic leaky-bucket example: a bucket of capacity 5 that leaks
one token every 500 ms, hit by 20 requests at once. Here it is
`brakes.LeakyBucket(1, per=0.5, capacity=5)`: the first request passes at
once, the next five wait their turn and pass exactly 500 ms apart, and the
other fourteen are refused at once with `RateLimited`, whose `retry_after`
says when their turn would have come: by then the queue has drained.

    python examples/leaky_bucket.py
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from brakes import LeakyBucket, RateLimited
from brakes.testing import ManualClock


async def burst_of_requests(
    bucket: LeakyBucket,
    count: int,
    now: Callable[[], float],
    results: list[tuple[int, str, float]] | None = None,
) -> list[tuple[int, str, float]]:
    """Sends `count` requests at once. Each outcome, (request, "served" or
    "refused", seconds after the start or to retry after), is appended to
    `results` as it comes."""
    results = [] if results is None else results
    start = now()

    async def request(i: int) -> None:
        try:
            await bucket.acquire()
        except RateLimited as refused:
            results.append((i, "refused", refused.retry_after or 0.0))
            return
        results.append((i, "served", now() - start))

    await asyncio.gather(*(request(i) for i in range(count)))
    return results


def make_bucket(clock: ManualClock | None = None) -> LeakyBucket:
    return LeakyBucket(1, per=0.5, capacity=5, clock=clock)


async def main() -> None:
    results = await burst_of_requests(make_bucket(), 20, time.monotonic)
    for i, outcome, seconds in sorted(results):
        detail = f"after {seconds:.2f} s" if outcome == "served" else f"retry after {seconds:.2f} s"
        print(f"request {i + 1:2}: {outcome} {detail}")


if __name__ == "__main__":
    asyncio.run(main())
