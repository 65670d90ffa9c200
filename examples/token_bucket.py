"""The token bucket: 5 tokens, one more every 200 ms, a producer every 100 ms.

A port of the classic token-bucket example: a bucket that holds 5 tokens and
gains one every 200 ms, fed by a producer that sends a request every 100 ms,
twice as fast. Here it is `brakes.TokenBucket(1, per=0.2, burst=5)`: the
first requests spend the stored burst, and from then on every other request
passes, at the bucket's pace of 5 per second; the rest are dropped.

    python examples/token_bucket.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

from brakes import TokenBucket
from brakes.testing import ManualClock


def make_bucket(clock: ManualClock | None = None) -> TokenBucket:
    return TokenBucket(1, per=0.2, burst=5, clock=clock)


def produce(
    bucket: TokenBucket, requests: int, wait: Callable[[float], None] = time.sleep
) -> list[bool]:
    """Sends a request every 100 ms; returns whether each one passed."""
    passed = []
    for i in range(requests):
        if i:
            wait(0.1)
        passed.append(bucket.try_acquire())
    return passed


def main() -> None:
    for i, ok in enumerate(produce(make_bucket(), 30)):
        print(f"t={i * 0.1:.1f}s request {i + 1:2}: {'sent' if ok else 'dropped'}")


if __name__ == "__main__":
    main()
