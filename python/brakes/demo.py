"""`python -m brakes demo`: a gauge under a burst of concurrent callers.

Each caller does a short piece of work inside `async with gauge`. The same
burst runs three times: with no bound on the wait (the queue just grows),
failing fast when the gauge is full (`max_wait=0`), and waiting at most
200 ms (`max_wait=0.2`). For each it prints how many callers were admitted,
how many of those waited, how many were turned away, and the latency of the
admitted ones, from arrival to the end of their work.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from brakes import Gauge, Overloaded


@dataclass(frozen=True)
class Row:
    mode: str
    callers: int
    admitted: int
    waited: int
    rejected: int
    p50_ms: float
    p99_ms: float


def _percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[round(fraction * 100) - 1]


async def _burst(
    mode: str, gauge: Gauge, callers: int, burst_seconds: float, work_seconds: float
) -> Row:
    latencies: list[float] = []

    async def caller() -> None:
        arrived = time.perf_counter()
        try:
            async with gauge:
                await asyncio.sleep(work_seconds)
        except Overloaded:
            return
        latencies.append((time.perf_counter() - arrived) * 1000)

    tasks = []
    gap = burst_seconds / callers
    for _ in range(callers):
        tasks.append(asyncio.create_task(caller()))
        await asyncio.sleep(gap)
    await asyncio.gather(*tasks)
    stats = gauge.stats()
    return Row(
        mode=mode,
        callers=callers,
        admitted=stats.acquired,
        waited=stats.waited,
        rejected=stats.rejected + stats.timed_out,
        p50_ms=_percentile(latencies, 0.50),
        p99_ms=_percentile(latencies, 0.99),
    )


async def run_demo(
    callers: int = 400, limit: int = 10, burst_seconds: float = 0.2, work_seconds: float = 0.02
) -> list[Row]:
    """Runs the burst once per mode and returns one row per mode."""
    modes = [
        ("unbounded wait (max_wait=None)", None),
        ("fail fast (max_wait=0)", 0.0),
        ("wait up to 200 ms (max_wait=0.2)", 0.2),
    ]
    rows = []
    for mode, max_wait in modes:
        gauge = Gauge(limit, max_wait=max_wait)
        rows.append(await _burst(mode, gauge, callers, burst_seconds, work_seconds))
    return rows


def format_rows(rows: list[Row]) -> str:
    header = f"{'mode':<34}{'admitted':>9}{'waited':>8}{'rejected':>9}{'p50 ms':>9}{'p99 ms':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.mode:<34}{r.admitted:>9}{r.waited:>8}{r.rejected:>9}"
            f"{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}"
        )
    return "\n".join(lines)


def main(callers: int = 400, limit: int = 10) -> None:
    burst, work = 0.2, 0.02
    print(
        f"brakes demo: {callers} callers arrive within {burst * 1000:.0f} ms, each doing "
        f"{work * 1000:.0f} ms of work, through Gauge({limit}).\n"
        f"Capacity is {limit / work:.0f} calls/s; the burst offers {callers / burst:.0f} calls/s.\n"
    )
    rows = asyncio.run(run_demo(callers, limit, burst, work))
    print(format_rows(rows))
    print(
        "\nLatency is from arrival to the end of the work, for admitted callers only.\n"
        "Failing fast keeps admitted latency at the work time; a bounded wait trades a\n"
        "little latency for fewer refusals; an unbounded wait admits all and makes the\n"
        "last callers wait for the whole queue."
    )
