"""TokenBucket against the popular Python rate limiters, side by side.

Speed rows: every contender takes a token on a bucket that always has room,
once without a key and once over 100,000 distinct keys; each round runs all
of them back to back, and the table gives the median of paired ratios (brakes
time / peer time). The memory row builds 1,000,000 active keys in a fresh
process per contender. The last rows run 1000 tasks against a 10,000/s
bucket and compare the achieved rate and the lateness of wake-ups.

    pip install '.[bench]' && python benchmarks/bench_buckets.py
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import aiolimiter
import limits
import limits.storage
import limits.strategies
import pyrate_limiter
import throttled
import token_bucket
from side_by_side import Row, Scenario, measure, pinned_to_one_cpu, start, table

import brakes

ROOM = 10**9  # a rate and burst that never run out within a benchmark

# -- each contender as "take one token for this key, now", no waiting -------


def brakes_take() -> Callable[[str], bool]:
    bucket = brakes.TokenBucket(ROOM, burst=ROOM)
    return lambda key: bucket.try_acquire(key=key)


def brakes_take_shared() -> Callable[[str], bool]:
    bucket = brakes.TokenBucket(ROOM, burst=ROOM)
    return lambda key: bucket.try_acquire()


def token_bucket_take() -> Callable[[str], bool]:
    limiter = token_bucket.Limiter(ROOM, ROOM, token_bucket.MemoryStorage())
    return lambda key: limiter.consume(key)


def limits_take(strategy: type[limits.strategies.RateLimiter]) -> Callable[[], Any]:
    def make() -> Callable[[str], bool]:
        limiter = strategy(limits.storage.MemoryStorage())
        item = limits.RateLimitItemPerSecond(ROOM)
        return lambda key: limiter.hit(item, key)

    return make


class PerNameBuckets(pyrate_limiter.BucketFactory):
    """pyrate-limiter keeps one bucket per item name only through a factory."""

    def __init__(self, rate: pyrate_limiter.Rate) -> None:
        self.rate = rate
        self.buckets: dict[str, pyrate_limiter.InMemoryBucket] = {}
        self.clock = pyrate_limiter.MonotonicClock()

    def wrap_item(self, name: str, weight: int = 1) -> pyrate_limiter.RateItem:
        return pyrate_limiter.RateItem(name, self.clock.now(), weight=weight)

    def get(self, item: pyrate_limiter.RateItem) -> pyrate_limiter.InMemoryBucket:
        bucket = self.buckets.get(item.name)
        if bucket is None:
            bucket = self.buckets[item.name] = pyrate_limiter.InMemoryBucket([self.rate])
        return bucket


def pyrate_take() -> Callable[[str], bool]:
    rate = pyrate_limiter.Rate(ROOM, pyrate_limiter.Duration.SECOND)
    limiter = pyrate_limiter.Limiter(PerNameBuckets(rate))
    return lambda key: bool(limiter.try_acquire(key, blocking=False))


def throttled_take() -> Callable[[str], bool]:
    limiter = throttled.Throttled(
        using=throttled.RateLimiterType.TOKEN_BUCKET.value,
        quota=throttled.rate_limiter.per_sec(ROOM, burst=ROOM),
        store=throttled.MemoryStore(),
    )
    return lambda key: not limiter.limit(key).limited


def take_all(make: Callable[[], Callable[[str], bool]], keys: list[str]) -> float:
    take = make()
    started = time.perf_counter()
    for key in keys:
        take(key)
    return time.perf_counter() - started


def await_all(make: Callable[[], Any], iterations: int) -> float:
    async def main() -> float:
        acquire = make()
        started = time.perf_counter()
        for _ in range(iterations):
            await acquire()
        return time.perf_counter() - started

    return asyncio.run(main())


def speed_scenarios(scale: float) -> list[Scenario]:
    n = max(1, int(100_000 * scale))
    same = ["client"] * n
    distinct = [f"client-{i}" for i in range(n)]
    keyed: dict[str, Callable[[], Any]] = {
        "brakes": brakes_take,
        "token_bucket.Limiter.consume": token_bucket_take,
        "limits fixed window": limits_take(limits.strategies.FixedWindowRateLimiter),
        "limits moving window": limits_take(limits.strategies.MovingWindowRateLimiter),
        "pyrate_limiter": pyrate_take,
        "throttled-py token bucket": throttled_take,
    }
    return [
        (
            f"`try_acquire()` on a bucket with room, {n:,} times",
            pinned_to_one_cpu(take_all),
            {"keys": same},
            {**keyed, "brakes": brakes_take_shared},
        ),
        (
            f"`try_acquire(key=k)` over {n:,} distinct keys",
            pinned_to_one_cpu(take_all),
            {"keys": distinct},
            keyed,
        ),
        (
            f"`await acquire()` on a bucket with room, {n:,} times",
            pinned_to_one_cpu(await_all),
            {"iterations": n},
            {
                "brakes": lambda: brakes.TokenBucket(ROOM, burst=ROOM).acquire,
                "aiolimiter": lambda: aiolimiter.AsyncLimiter(ROOM, 1).acquire,
            },
        ),
    ]


# -- memory: 1M active keys, each contender in a fresh process ----------------

MEMORY_PROGRAM = """
import gc, sys
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
keys = [f"client-{i}" for i in range(int(sys.argv[2]))]
gc.collect()
before = rss()
if sys.argv[1] == "brakes":
    import brakes
    bucket = brakes.TokenBucket(1, per=3600, burst=10)
    for k in keys:
        bucket.try_acquire(key=k)
    assert bucket.stats().keys == len(keys)
else:
    import limits, limits.storage, limits.strategies
    limiter = limits.strategies.FixedWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerHour(10)
    for k in keys:
        limiter.hit(item, k)
gc.collect()
print(rss() - before)
"""


def memory_for_keys(contender: str, count: int) -> int:
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROGRAM, contender, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip())


def memory_row(scale: float) -> Row:
    count = max(1000, int(1_000_000 * scale))
    ours = memory_for_keys("brakes", count)
    theirs = memory_for_keys("limits", count)
    title = f"memory for {count:,} distinct active keys"
    return (title, "limits MemoryStorage (fixed window)", ours / theirs, 0.0)


# -- the longest single call while the key table grows ------------------------

STALL_PROGRAM = """
import sys, time
count = int(sys.argv[2])
if sys.argv[1] == "brakes":
    import brakes
    bucket = brakes.TokenBucket(1, per=3600, burst=10)
    take = lambda key: bucket.try_acquire(key=key)
else:
    import token_bucket
    limiter = token_bucket.Limiter(1 / 3600, 10, token_bucket.MemoryStorage())
    take = limiter.consume
worst = 0.0
clock = time.perf_counter
for i in range(count):
    started = clock()
    take(f"client-{i}")
    worst = max(worst, clock() - started)
print(worst)
"""


def worst_call(contender: str, count: int) -> float:
    result = subprocess.run(
        [sys.executable, "-c", STALL_PROGRAM, contender, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


def stall_row(scale: float) -> Row:
    """The longest single `try_acquire(key=k)` while that many keys arrive
    and stay active: a table that grows all at once stops every caller."""
    count = max(1000, int(3_000_000 * scale))
    ours = worst_call("brakes", count)
    theirs = worst_call("token_bucket", count)
    title = f"longest single call while {count:,} active keys arrive"
    return (title, "token_bucket MemoryStorage", ours / theirs, 0.0)


# -- 1000 tasks on a 10,000/s bucket: rate and lateness -----------------------


def pace_run(make: Callable[[], Callable[[], Any]], rate: int, burst: int, grants: int) -> Any:
    """Returns (achieved rate after the burst, p99 lateness in ms)."""

    async def main() -> tuple[float, float]:
        acquire = make()
        loop = asyncio.get_running_loop()
        times: list[float] = []
        start = loop.time()

        async def task() -> None:
            while len(times) < grants:
                await acquire()
                times.append(loop.time())

        await asyncio.gather(*(task() for _ in range(1000)))
        steady = times[burst:grants]
        achieved = (len(steady) - 1) / (steady[-1] - steady[0])
        # The k-th token after the burst is due k/rate after the start.
        lateness = [t - (start + (k + 1) / rate) for k, t in enumerate(steady)]
        p99 = statistics.quantiles(lateness, n=100)[98]
        return achieved, max(0.0, p99) * 1000

    return asyncio.run(main())


def pace_rows(rounds: int, seconds: float) -> list[tuple[str, float, float, float, float]]:
    rate, burst = 10_000, 10_000
    grants = burst + int(rate * seconds)
    contenders = {
        "brakes": lambda: brakes.TokenBucket(rate, burst=burst).acquire,
        "aiolimiter": lambda: aiolimiter.AsyncLimiter(rate, 1).acquire,
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for r in range(rounds):
        for name in contenders if r % 2 == 0 else reversed(list(contenders)):
            results[name].append(pace_run(contenders[name], rate, burst, grants))
    rows = []
    for name, runs in results.items():
        achieved = statistics.median(a for a, _ in runs)
        late = statistics.median(p for _, p in runs)
        rows.append((name, achieved, abs(achieved / rate - 1) * 100, late, rate))
    return rows


def main() -> None:
    args = start(__doc__, rounds=9)
    rows = measure(speed_scenarios(args.scale), args.rounds)
    rows.append(memory_row(args.scale))
    rows.append(stall_row(args.scale))
    print(table(rows))
    fastest: dict[str, float] = {}
    for title, _, ratio, _ in rows:
        fastest[title] = max(fastest.get(title, 0.0), ratio)
    print("\n| scenario | brakes / fastest peer |\n|---|---|")
    for title, ratio in fastest.items():
        print(f"| {title} | {ratio:.2f} |")
    print(
        "\n| 1000 tasks on a 10,000/s bucket | achieved rate | off by | wake-up lateness p99 |"
        "\n|---|---|---|---|"
    )
    for name, achieved, off, late, _ in pace_rows(max(1, args.rounds // 3), 2.0 * args.scale):
        print(f"| `{name}` | {achieved:,.0f}/s | {off:.2f} % | {late:.2f} ms |")


if __name__ == "__main__":
    main()
