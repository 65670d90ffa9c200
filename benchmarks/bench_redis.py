"""Shared limits through Redis against `limits` and `throttled-py`, side by side.

Every contender talks to the same local redis-server, started here on a free
loopback port, with its defaults: brakes' `TokenBucket(backend=...)`, limits'
fixed window (its cheapest strategy) on its async storage (coredis) and its
sync storage (redis-py), and throttled-py's token bucket on its Redis store.
Each round runs all of them back to back, alternating the order; the tables
give medians over the rounds of brakes' number divided by the peer's.

- 64 asyncio tasks make decisions on a per-key bucket with room, over 1000
  keys: decisions per second, and the 99th percentile of one decision's time.
- 8 threads make blocking decisions the same way.
- One thread floods one key that is over its limit (10/s): decisions per
  second, and Redis commands per 1000 refused decisions (INFO commandstats).

The last table splits the CPU time of one asyncio decision between the
Python thread (the caller, the event loop and the bridge), the Redis client
(brakes' tokio threads; the peers have none) and redis-server.

    apt-get install redis-server
    pip install '.[bench]' && python benchmarks/bench_redis.py
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import limits
import limits.aio.storage
import limits.aio.strategies
import limits.storage
import limits.strategies
import throttled
import throttled.asyncio
from side_by_side import start

import brakes
import brakes.redis

ROOM = 10**6  # a rate and burst that never run out within a benchmark
KEYS = [f"client-{i}" for i in range(1000)]
TASKS = 64
THREADS = 8


class Server:
    """A private redis-server on a free loopback port, without persistence."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            sys.exit("redis-server is missing (Debian: apt-get install redis-server)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while self.cli("PING") != "PONG":
            if time.monotonic() > deadline:
                sys.exit("redis-server did not start")
            time.sleep(0.02)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True
        )
        return done.stdout.strip()

    def info(self, section: str) -> dict[str, str]:
        fields = {}
        for line in self.cli("INFO", section).splitlines():
            name, sep, value = line.partition(":")
            if sep:
                fields[name] = value
        return fields

    def commands(self) -> int:
        """Commands Redis has run, leaving out the INFO calls that count them."""
        total = 0
        for name, value in self.info("commandstats").items():
            if name.startswith("cmdstat_") and name != "cmdstat_info":
                total += int(value.split(",")[0].removeprefix("calls="))
        return total

    def cpu(self) -> float:
        fields = self.info("cpu")
        return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


# -- each contender as "decide for this key, now" ----------------------------

AsyncDecide = Callable[[str], Awaitable[Any]]
SyncDecide = Callable[[str], Any]


def brakes_async(url: str, rate: int, burst: int) -> AsyncDecide:
    bucket = brakes.TokenBucket(rate, burst=burst, backend=brakes.redis.Backend(url), name="b")

    async def decide(key: str) -> bool:
        try:
            await bucket.acquire(key=key, timeout=0)
        except brakes.RateLimited:
            return False
        return True

    return decide


def brakes_sync(url: str, rate: int, burst: int) -> SyncDecide:
    bucket = brakes.TokenBucket(rate, burst=burst, backend=brakes.redis.Backend(url), name="b")
    return lambda key: bucket.try_acquire(key=key)


def limits_async(url: str, rate: int, burst: int) -> AsyncDecide:
    storage = limits.aio.storage.RedisStorage(url.replace("redis://", "async+redis://"))
    limiter = limits.aio.strategies.FixedWindowRateLimiter(storage)
    item = limits.RateLimitItemPerSecond(rate)
    return lambda key: limiter.hit(item, key)


def limits_sync(url: str, rate: int, burst: int) -> SyncDecide:
    limiter = limits.strategies.FixedWindowRateLimiter(limits.storage.RedisStorage(url))
    item = limits.RateLimitItemPerSecond(rate)
    return lambda key: limiter.hit(item, key)


def throttled_async(url: str, rate: int, burst: int) -> AsyncDecide:
    limiter = throttled.asyncio.Throttled(
        using=throttled.RateLimiterType.TOKEN_BUCKET.value,
        quota=throttled.asyncio.per_sec(rate, burst=burst),
        store=throttled.asyncio.RedisStore(server=url),
    )

    async def decide(key: str) -> bool:
        return not (await limiter.limit(key)).limited

    return decide


def throttled_sync(url: str, rate: int, burst: int) -> SyncDecide:
    limiter = throttled.Throttled(
        using=throttled.RateLimiterType.TOKEN_BUCKET.value,
        quota=throttled.rate_limiter.per_sec(rate, burst=burst),
        store=throttled.RedisStore(server=url),
    )
    return lambda key: not limiter.limit(key).limited


ASYNC = {
    "brakes": brakes_async,
    "limits (async storage, coredis)": limits_async,
    "throttled-py (asyncio)": throttled_async,
}
SYNC = {
    "brakes": brakes_sync,
    "limits (sync storage, redis-py)": limits_sync,
    "throttled-py": throttled_sync,
}

# -- the work ----------------------------------------------------------------


def schedule(count: int, seed: int) -> list[str]:
    chosen = random.Random(seed)
    return [chosen.choice(KEYS) for _ in range(count)]


def many_tasks(server: Server, make: Callable[..., AsyncDecide], count: int) -> dict[str, float]:
    """64 tasks share `count` decisions; returns rate, p99 and CPU per decision."""
    server.cli("FLUSHALL")
    plans = [schedule(count // TASKS, seed) for seed in range(TASKS)]

    async def main() -> dict[str, float]:
        decide = make(f"redis://127.0.0.1:{server.port}/0", ROOM, ROOM)
        for key in KEYS[:TASKS]:
            await decide(key)  # connections opened, scripts loaded
        latencies: list[int] = []

        async def task(plan: list[str]) -> None:
            clock = time.perf_counter_ns
            for key in plan:
                began = clock()
                await decide(key)
                latencies.append(clock() - began)

        redis_cpu, process, thread = server.cpu(), time.process_time(), time.thread_time()
        started = time.perf_counter()
        await asyncio.gather(*(task(plan) for plan in plans))
        elapsed = time.perf_counter() - started
        thread = time.thread_time() - thread
        process = time.process_time() - process
        redis_cpu = server.cpu() - redis_cpu
        done = len(latencies)
        return {
            "rate": done / elapsed,
            "p99": statistics.quantiles(latencies, n=100)[98] / 1e9,
            "python": thread / done,
            "client": (process - thread) / done,
            "redis": redis_cpu / done,
        }

    return asyncio.run(main())


def many_threads(server: Server, make: Callable[..., SyncDecide], count: int) -> dict[str, float]:
    server.cli("FLUSHALL")
    decide = make(f"redis://127.0.0.1:{server.port}/0", ROOM, ROOM)
    for key in KEYS[:THREADS]:
        decide(key)
    plans = [schedule(count // THREADS, seed) for seed in range(THREADS)]
    ready = threading.Barrier(THREADS + 1)

    def work(plan: list[str]) -> None:
        ready.wait()
        for key in plan:
            decide(key)

    threads = [threading.Thread(target=work, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return {"rate": sum(map(len, plans)) / (time.perf_counter() - started)}


def flooded_key(server: Server, make: Callable[..., SyncDecide], count: int) -> dict[str, float]:
    server.cli("FLUSHALL")
    decide = make(f"redis://127.0.0.1:{server.port}/0", 10, 10)
    while decide("hot"):
        pass  # the key is over its limit from here on
    commands = server.commands()
    refused = 0
    started = time.perf_counter()
    for _ in range(count):
        refused += not decide("hot")
    elapsed = time.perf_counter() - started
    commands = server.commands() - commands
    return {"rate": count / elapsed, "commands": 1000 * commands / max(refused, 1)}


def rounds_of(
    work: Callable[..., dict[str, float]],
    contenders: dict[str, Callable[..., Any]],
    server: Server,
    count: int,
    rounds: int,
) -> dict[str, list[dict[str, float]]]:
    names = list(contenders)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for name in names:
        work(server, contenders[name], max(TASKS, count // 10))  # warm up
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            results[name].append(work(server, contenders[name], count))
    return results


def ratio_rows(
    title: str,
    results: dict[str, list[dict[str, float]]],
    field: str,
) -> list[tuple[str, str, float, float]]:
    rows = []
    for peer in list(results)[1:]:
        pairs = zip(results["brakes"], results[peer], strict=True)
        ratios = [ours[field] / theirs[field] for ours, theirs in pairs]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [0, 0, 0]
        rows.append((title, peer, statistics.median(ratios), quartiles[2] - quartiles[0]))
    return rows


def median(results: list[dict[str, float]], field: str) -> float:
    return statistics.median(result[field] for result in results)


def main() -> None:
    args = start(__doc__, rounds=5)
    count = max(TASKS, int(20_000 * args.scale))
    server = Server()
    try:
        tasks = rounds_of(many_tasks, ASYNC, server, count, args.rounds)
        threads = rounds_of(many_threads, SYNC, server, count, args.rounds)
        flood = rounds_of(flooded_key, SYNC, server, count * 5, args.rounds)
    finally:
        server.stop()
    rows = [
        *ratio_rows("decisions/s, 64 asyncio tasks, 1000 keys", tasks, "rate"),
        *ratio_rows("p99 decision time at that load", tasks, "p99"),
        *ratio_rows("decisions/s, 8 threads, blocking", threads, "rate"),
        *ratio_rows("decisions/s, one flooded key over its limit", flood, "rate"),
        *ratio_rows("Redis commands per 1000 refused decisions", flood, "commands"),
    ]
    print("| scenario | peer | brakes / peer (median) | spread (IQR) |\n|---|---|---|---|")
    for title, peer, ratio, spread in rows:
        print(f"| {title} | `{peer}` | {ratio:.3g} | {spread:.2g} |")
    print(
        "\n| contender | decisions/s (64 tasks) | p99 | 8 threads | flooded key"
        " | commands / 1000 refused |\n|---|---|---|---|---|---|"
    )
    for (name, ours), sync_name in zip(tasks.items(), SYNC, strict=True):
        print(
            f"| `{name}` / `{sync_name}` | {median(ours, 'rate'):,.0f} "
            f"| {median(ours, 'p99') * 1e3:.2f} ms | {median(threads[sync_name], 'rate'):,.0f} "
            f"| {median(flood[sync_name], 'rate'):,.0f} "
            f"| {median(flood[sync_name], 'commands'):.3g} |"
        )
    print(
        "\n| CPU per decision, 64 tasks | Python thread | Redis client threads | redis-server |"
        "\n|---|---|---|---|"
    )
    for name, ours in tasks.items():
        print(
            f"| `{name}` | {median(ours, 'python') * 1e6:.1f} µs "
            f"| {median(ours, 'client') * 1e6:.1f} µs | {median(ours, 'redis') * 1e6:.1f} µs |"
        )


if __name__ == "__main__":
    main()
