"""brakes.asgi.LoadShed against slowapi, and a server's p99 with and without it.

1. Added latency per admitted request: the same Starlette app called in
   process (no network) bare, behind LoadShed and behind slowapi's ASGI
   middleware (memory storage), each with a per-client-IP limit high enough to
   admit every request and rate-limit headers on. The ratio is brakes' added
   time over slowapi's added time, both over the bare app, per round.
2. Requests per second with a per-IP limit of 1000/s over 10k distinct
   client IPs: the same app and the same calls; the ratio is slowapi's time
   over brakes' time (how many times as many requests brakes serves).
3. p99 latency of admitted requests at 3x capacity over that at 0.5x: the
   demo's server (uvicorn, 20 ms of work on 2 slots) under an open-loop load,
   behind LoadShed(gauge=Gauge(2, max_wait=...)) and with no limiter.

Run with `python benchmarks/bench_http.py` (`--rounds`, `--scale`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from side_by_side import start
from slowapi import Limiter
from slowapi.middleware import SlowAPIASGIMiddleware
from slowapi.util import get_remote_address
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from brakes import TokenBucket
from brakes.asgi import LoadShed
from brakes.demo import run_demo
from brakes.http import client_ip


async def endpoint(request: Request) -> Response:
    return PlainTextResponse("ok")


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/", endpoint)])


def brakes_app(per_second: int, ips: int) -> Starlette:
    bucket = TokenBucket(per_second, burst=per_second, max_wait=0, max_keys=2 * ips)
    return Starlette(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(LoadShed, bucket=bucket, key=client_ip())],
    )


def slowapi_app(per_second: int, ips: int) -> Starlette:
    limiter = Limiter(
        key_func=get_remote_address,
        default_limits=[f"{per_second}/second"],
        headers_enabled=True,
        storage_uri="memory://",
    )
    app = Starlette(routes=[Route("/", endpoint)], middleware=[Middleware(SlowAPIASGIMiddleware)])
    app.state.limiter = limiter
    return app


def call_many(app: Any, requests: int, ips: int) -> tuple[float, int]:
    """Calls `app` in process, `requests` times, from `ips` client addresses in
    turn; returns the seconds taken and how many got 200."""
    scopes = [
        {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "raw_path": b"/",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"bench")],
            "client": (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 4711),
            "server": ("bench", 80),
        }
        for n in range(ips)
    ]
    ok = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal ok
        if message["type"] == "http.response.start" and message["status"] == 200:
            ok += 1

    async def main() -> float:
        await app(dict(scopes[0]), receive, send)  # warm: routes, caches
        started = time.perf_counter()
        for n in range(requests):
            await app(dict(scopes[n % ips]), receive, send)
        return time.perf_counter() - started

    seconds = asyncio.run(main())
    return seconds, ok - 1


def paired(rounds: int, contenders: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Runs every contender once per round, in alternating order."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for name in names:
        contenders[name]()  # warm up
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            times[name].append(contenders[name]())
    return times


def spread(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[2] - quartiles[0]


def main() -> None:
    args = start(__doc__.splitlines()[0] if __doc__ else None, rounds=7)
    rows = []

    # 1. Added latency, one client, a limit that admits everything.
    requests = int(20_000 * args.scale)
    apps = {
        "bare": bare_app(),
        "brakes": brakes_app(10**9, 1),
        "slowapi": slowapi_app(10**9, 1),
    }
    times = paired(
        args.rounds,
        {name: lambda app=app: call_many(app, requests, 1)[0] for name, app in apps.items()},
    )
    added = [
        (ours - bare) / (theirs - bare)
        for bare, ours, theirs in zip(times["bare"], times["brakes"], times["slowapi"], strict=True)
    ]
    per_request = {name: statistics.median(t) / requests * 1e6 for name, t in times.items()}
    rows.append(
        (
            "added latency per admitted request, in-process ASGI (target <= 0.1)",
            "slowapi (memory storage)",
            statistics.median(added),
            spread(added),
        )
    )
    print(
        "per request (µs, this machine, for orientation): "
        + ", ".join(f"{name} {us:.1f}" for name, us in per_request.items())
    )

    # 2. Throughput with a per-IP limit of 1000/s over 10k client IPs.
    ips = 10_000
    requests = int(40_000 * args.scale)
    limited = {"brakes": brakes_app(1000, ips), "slowapi": slowapi_app(1000, ips)}
    admitted: dict[str, int] = {}

    def timed(name: str) -> float:
        seconds, ok = call_many(limited[name], requests, ips)
        admitted[name] = ok
        return seconds

    times = paired(args.rounds, {name: lambda name=name: timed(name) for name in limited})
    speedups = [
        theirs / ours for ours, theirs in zip(times["brakes"], times["slowapi"], strict=True)
    ]
    rows.append(
        (
            "requests/s, per-IP limit 1000/s, 10k client IPs (target >= 4x)",
            "slowapi (memory storage)",
            statistics.median(speedups),
            spread(speedups),
        )
    )
    print(f"admitted in the last round: {admitted}")

    # 3. p99 of admitted requests at 3x capacity over p99 at 0.5x.
    step_seconds = max(1.0, 3.0 * args.scale)
    tails: dict[str, list[float]] = {}
    for _ in range(max(1, args.rounds // 3)):
        for max_wait in (0.0, 0.2):
            bare, braked = run_demo(step_seconds=step_seconds, steps=(0.5, 3.0), max_wait=max_wait)
            for name, run in (
                (f"LoadShed(gauge=Gauge(2, max_wait={max_wait:g}))", braked),
                ("no limiter", bare),
            ):
                calm, overloaded = run.steps
                tails.setdefault(name, []).append(
                    overloaded.percentile_ms(0.99) / calm.percentile_ms(0.99)
                )

    print()
    print("| scenario | peer | brakes vs peer (median) | spread (IQR) |")
    print("|---|---|---|---|")
    for title, peer, ratio, iqr in rows:
        print(f"| {title} | {peer} | {ratio:.2f} | {iqr:.2f} |")
    print()
    print("| p99 of 200s at 3x capacity / p99 at 0.5x (target <= 3) | median | spread (IQR) |")
    print("|---|---|---|")
    for name, ratios in tails.items():
        print(f"| {name} | {statistics.median(ratios):.1f} | {spread(ratios):.1f} |")


if __name__ == "__main__":
    main()
