"""AdaptiveGauge: how well each algorithm follows a changing capacity, and
what it costs per call against the plain Gauge.

Convergence runs the simulated service of the test suite
(`tests/simulated_service.py`, on a ManualClock: C servers, `base` = 0.1 s
of service, open-loop arrivals at 3 x capacity) through C -> C/2 -> C, 150
simulated seconds each, and reads each phase from 60 s after its change: the
goodput (finished calls per second over capacity) and the median latency of
the admitted calls, the worst over seeds and both initial limits (5 and
500). The reference row is a limit fixed at the first C (min_limit =
max_limit = C), the best fixed limit for the first and last phases, which
only a user who knows C could set. `--plot` writes a PNG of
each algorithm's limit following the capacity (matplotlib, the `plot`
extra).

Overhead is measured as the other benchmarks are: paired rounds, the median
ratio of AdaptiveGauge (its defaults: gradient2) to Gauge on the same work.

    pip install '.[bench,plot]'
    python benchmarks/bench_adaptive.py --plot benchmarks/adaptive_limits.png
"""

from __future__ import annotations

import asyncio
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

from side_by_side import Row, measure, pinned_to_one_cpu, start, table

import brakes
from brakes.testing import ManualClock

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from tests.simulated_service import Run, simulate

BASE = 0.1
PHASE = 150.0
ALGORITHMS: dict[str, dict[str, float]] = {
    "aimd": {"timeout": 2 * BASE},
    "vegas": {},
    "gradient2": {},
}


def converge(
    algorithm: str | None, servers: int, initial: int, seed: int
) -> tuple[Run, float, float]:
    """One run; returns it with its worst goodput and median latency / base."""
    clock = ManualClock()
    if algorithm is None:  # the reference: a fixed limit of exactly C
        gauge = brakes.AdaptiveGauge(
            algorithm="aimd",
            initial=servers,
            min_limit=servers,
            max_limit=servers,
            clock=clock,
        )
    else:
        gauge = brakes.AdaptiveGauge(
            algorithm=algorithm,  # type: ignore[arg-type]
            initial=initial,
            clock=clock,
            **ALGORITHMS[algorithm],
        )
    phases = [(PHASE, servers), (PHASE, servers // 2), (PHASE, servers)]
    run = simulate(gauge, clock, phases=phases, base=BASE, seed=seed)
    windows = [run.window(i * PHASE + 60, (i + 1) * PHASE) for i in range(3)]
    return (
        run,
        min(w.goodput for w in windows),
        max(w.median_latency for w in windows) / BASE,
    )


def convergence_table(seeds: int) -> tuple[str, dict[tuple[str, int], list[Run]]]:
    lines = [
        "| algorithm | C = 10: goodput, median latency | C = 20 | C = 40 |",
        "|---|---|---|---|",
    ]
    traces: dict[tuple[str, int], list[Run]] = {}
    for algorithm in [*ALGORITHMS, None]:
        cells = []
        for servers in (10, 20, 40):
            goodput, latency = 9.0, 0.0
            for initial in (5, 500) if algorithm else (servers,):
                for seed in range(1, seeds + 1):
                    run, g, m = converge(algorithm, servers, initial, seed)
                    goodput, latency = min(goodput, g), max(latency, m)
                    if seed == 1 and algorithm:
                        traces.setdefault((algorithm, servers), []).append(run)
            cells.append(f"{goodput:.2f}, {latency:.2f} x base")
        name = f"`{algorithm}`" if algorithm else "limit fixed at C (reference)"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines), traces


def plot(traces: dict[tuple[str, int], list[Run]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = (10, 20, 40)
    figure, axes = plt.subplots(
        len(ALGORITHMS), len(sizes), figsize=(13, 8), sharex=True, squeeze=False
    )
    for row, algorithm in enumerate(ALGORITHMS):
        for col, servers in enumerate(sizes):
            ax = axes[row][col]
            for run, initial in zip(traces[(algorithm, servers)], (5, 500), strict=True):
                times = [t for t, _, _ in run.limits]
                # The algorithm's limit: the gauge's dips to probe_limit while probing.
                limits = [lim for _, _, lim in run.limits]
                ax.plot(times, limits, lw=0.8, label=f"initial {initial}")
            steps = [t for t, _ in run.capacity] + [3 * PHASE]
            counts = [c for _, c in run.capacity]
            ax.step(steps, [*counts, counts[-1]], where="post", color="k", ls="--", label="C")
            ax.set_ylim(0, 3 * servers)
            ax.set_title(f"{algorithm}, C = {servers} -> {servers // 2} -> {servers}", fontsize=9)
            if col == 0:
                ax.set_ylabel("limit")
            if row == len(ALGORITHMS) - 1:
                ax.set_xlabel("simulated seconds")
    axes[0][0].legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


# --- overhead against the plain Gauge ---------------------------------------


def plain() -> brakes.Gauge:
    return brakes.Gauge(20)


def adaptive() -> brakes.AdaptiveGauge:
    return brakes.AdaptiveGauge()


def try_and_release(make: Callable[[], Any], n: int) -> float:
    gauge = make()
    sample = {"rtt": 0.001} if isinstance(gauge, brakes.AdaptiveGauge) else {}
    started = time.perf_counter()
    for _ in range(n):
        gauge.try_acquire()
        gauge.release(**sample)
    return time.perf_counter() - started


def with_block(make: Callable[[], Any], n: int) -> float:
    gauge = make()
    started = time.perf_counter()
    for _ in range(n):
        with gauge:
            pass
    return time.perf_counter() - started


def decorated(make: Callable[[], Any], n: int) -> float:
    call = make()(lambda: None)
    started = time.perf_counter()
    for _ in range(n):
        call()
    return time.perf_counter() - started


def async_with(make: Callable[[], Any], n: int) -> float:
    async def main() -> float:
        gauge = make()
        started = time.perf_counter()
        for _ in range(n):
            async with gauge:
                pass
        return time.perf_counter() - started

    return asyncio.run(main())


def tasks_contending(make: Callable[[], Any], n: int) -> float:
    async def main() -> float:
        gauge = make()

        async def worker() -> None:
            for _ in range(n // 100):
                async with gauge:
                    await asyncio.sleep(0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(100)))
        return time.perf_counter() - started

    return asyncio.run(main())


def main() -> None:
    args = start(
        __doc__,
        rounds=9,
        options=lambda parser: parser.add_argument("--plot", metavar="PNG", help="plot to PNG"),
    )
    path = args.plot
    n = max(1000, int(100_000 * args.scale))
    contenders = {"brakes": adaptive, "Gauge(20)": plain}
    rows: list[Row] = measure(
        [
            (
                f"`try_acquire()` + `release(rtt=...)`, {n:,} times",
                pinned_to_one_cpu(try_and_release),
                {"n": n},
                contenders,
            ),
            (f"`with gauge:`, {n:,} times", pinned_to_one_cpu(with_block), {"n": n}, contenders),
            (f"decorated call, {n:,} times", pinned_to_one_cpu(decorated), {"n": n}, contenders),
            (
                f"`async with` on a free gauge, {n:,} times",
                pinned_to_one_cpu(async_with),
                {"n": n},
                contenders,
            ),
            (
                f"100 tasks, `async with` around `sleep(0)`, {n:,} in all",
                pinned_to_one_cpu(tasks_contending),
                {"n": n},
                contenders,
            ),
        ],
        args.rounds,
    )
    print("AdaptiveGauge (defaults) against Gauge:\n")
    print(table(rows))
    print("\nConvergence: worst goodput and worst median latency over the phases:\n")
    text, traces = convergence_table(seeds=max(1, round(3 * args.scale)))
    print(text)
    if path:
        plot(traces, path)
        print(f"\nplot written to {path}")


if __name__ == "__main__":
    main()
