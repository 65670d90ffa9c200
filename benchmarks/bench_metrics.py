"""What the wait and hold histograms cost on the fast paths, and how long a
scrape of many registered objects takes.

The fast paths are measured against brakes as it was before the histograms:
`--baseline DIR` names a directory that holds that build (`pip install
--no-deps --target DIR brakes-*.whl`), or `--baseline-commit REV` builds one
from this repository's history (with maturin, into a cache directory). Each
scenario runs in a fresh interpreter per side, pinned to one CPU, in paired
rounds that alternate the order; the ratio is the median of the rounds'
(new / old).

The scrape compares `registry.collect()` of N registered brakes gauges with
prometheus_client's own collection of the same series (N labelled children
of a Gauge, a Counter and a Histogram), and gives the time in milliseconds.

    pip install '.[bench]'
    python benchmarks/bench_metrics.py --baseline-commit 822fb1c
    python benchmarks/bench_metrics.py --baseline-commit 822fb1c --instructions

`--instructions` counts instructions per operation under `valgrind
--tool=callgrind` instead of timing: the same for the same build whatever
else the machine does, where a wall-clock ratio on a small shared machine
wobbles by tens of percent.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from side_by_side import start

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Each prints the best ns per operation of `repeat` runs of `n` operations.
SETUP = """
import os, time, asyncio, brakes
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
n, repeat = %d, %d
"""

SCENARIOS = {
    "`try_acquire` + `release` (Gauge)": """
gauge = brakes.Gauge(10)
take, give = gauge.try_acquire, gauge.release
def run():
    t = time.perf_counter_ns()
    for _ in range(n):
        take(); give()
    return time.perf_counter_ns() - t
""",
    "`with gauge:` (free)": """
gauge = brakes.Gauge(10)
def run():
    t = time.perf_counter_ns()
    for _ in range(n):
        with gauge:
            pass
    return time.perf_counter_ns() - t
""",
    "`async with gauge:` (free)": """
gauge = brakes.Gauge(10)
async def loop():
    t = time.perf_counter_ns()
    for _ in range(n):
        async with gauge:
            pass
    return time.perf_counter_ns() - t
def run():
    return asyncio.run(loop())
""",
    "`await gauge.acquire()` + `release` on a busy gauge (waits)": """
gauge = brakes.Gauge(1)
n //= 20  # each operation is a hand-over between tasks: far slower
async def loop():
    async def worker():
        for _ in range(n // 20):
            await gauge.acquire()
            await asyncio.sleep(0)
            gauge.release()
    t = time.perf_counter_ns()
    await asyncio.gather(*(worker() for _ in range(20)))
    return time.perf_counter_ns() - t
def run():
    return asyncio.run(loop())
""",
    "`TokenBucket.try_acquire`": """
bucket = brakes.TokenBucket(1e12, burst=10**9)
take = bucket.try_acquire
def run():
    t = time.perf_counter_ns()
    for _ in range(n):
        take()
    return time.perf_counter_ns() - t
""",
    "`Queue.put_nowait` + `get_nowait`": """
q = brakes.Queue(10)
put, get = q.put_nowait, q.get_nowait
def run():
    t = time.perf_counter_ns()
    for _ in range(n):
        put(1); get()
    return time.perf_counter_ns() - t
""",
}

REPORT = """
best = min(run() for _ in range(repeat))
print(best / n)
"""


def ns_per_op(code: str, n: int, repeat: int, baseline: str | None) -> float:
    env = dict(os.environ)
    if baseline is not None:
        # Ahead of site-packages, so that `import brakes` finds the old build.
        env["PYTHONPATH"] = baseline
    env["PYTHONHASHSEED"] = "0"
    program = SETUP % (n, repeat) + code + REPORT
    # The same address layout in every run (no ASLR) takes most of the noise
    # between one interpreter and the next.
    same_layout = ["setarch", platform.machine(), "-R"] if shutil.which("setarch") else []
    done = subprocess.run(
        [*same_layout, sys.executable, "-c", program],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


def instructions(code: str, n: int, baseline: str | None) -> float:
    """Instructions per operation under callgrind: a run of `n` operations
    less a run of 1, so that start-up cancels out."""
    counts = []
    for ops in (1, n):
        env = dict(os.environ, PYTHONHASHSEED="0")
        if baseline is not None:
            env["PYTHONPATH"] = baseline
        program = (SETUP % (ops, 1)).replace("os.sched_setaffinity", "(lambda *a: None)")
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={tmp}/out",
                    sys.executable,
                    "-c",
                    program + code + REPORT,
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
        found = re.search(r"Collected : (\d+)", done.stderr)
        assert found is not None, done.stderr
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / (n - 1)


def build_baseline(commit: str) -> str:
    """Builds brakes at `commit` into a cache directory; returns it."""
    cache = pathlib.Path(tempfile.gettempdir()) / f"brakes-baseline-{commit}"
    if (cache / "site" / "brakes").is_dir():
        return str(cache / "site")
    tree = cache / "tree"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True
        )
    subprocess.run(
        [sys.executable, "-m", "maturin", "build", "--release", "-q", "-o", str(cache / "wheel")],
        cwd=tree,
        env={**os.environ, "CARGO_TARGET_DIR": str(cache / "target")},
        check=True,
    )
    wheel = next((cache / "wheel").glob("brakes-*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(cache / "site"),
            str(wheel),
        ],
        check=True,
    )
    return str(cache / "site")


def fast_paths(baseline: str, rounds: int, n: int) -> list[tuple[str, float, float]]:
    rows = []
    for title, code in SCENARIOS.items():
        ns_per_op(code, 1000, 1, None)  # warm up the file cache of both builds
        ns_per_op(code, 1000, 1, baseline)
        ratios = []
        for r in range(rounds):
            sides = [None, baseline] if r % 2 == 0 else [baseline, None]
            times = {str(side): ns_per_op(code, n, 5, side) for side in sides}
            ratios.append(times["None"] / times[baseline])
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [0, 0, 0]
        rows.append((title, statistics.median(ratios), quartiles[2] - quartiles[0]))
    return rows


def scrape(count: int, rounds: int) -> tuple[float, float, float]:
    """(median ratio to prometheus_client's own metrics, its spread, brakes' ms)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    import brakes
    from brakes.metrics import prometheus

    ours = CollectorRegistry()
    gauges = [
        prometheus.register(brakes.Gauge(10, name=f"g{i}"), registry=ours) for i in range(count)
    ]
    for gauge in gauges:
        with gauge:
            pass
    theirs = CollectorRegistry()
    in_flight = Gauge("peer_in_flight", "in flight", ["name"], registry=theirs)
    limit = Gauge("peer_limit", "limit", ["name"], registry=theirs)
    waiting = Gauge("peer_waiting", "waiting", ["name"], registry=theirs)
    acquisitions = Counter(
        "peer_acquisitions", "acquisitions", ["name", "outcome"], registry=theirs
    )
    buckets = [0.0, *(1e-6 * 4**k for k in range(14))]
    wait = Histogram(
        "peer_wait_seconds", "wait", ["name", "kind", "op"], buckets=buckets, registry=theirs
    )
    hold = Histogram("peer_hold_seconds", "hold", ["name"], buckets=buckets, registry=theirs)
    for i in range(count):
        name = f"g{i}"
        in_flight.labels(name).set(0)
        limit.labels(name).set(10)
        waiting.labels(name).set(0)
        for outcome in ("immediate", "waited", "rejected", "timed_out", "cancelled"):
            acquisitions.labels(name, outcome).inc()
        wait.labels(name, "gauge", "acquire").observe(0)
        hold.labels(name).observe(0)

    def timed(registry: CollectorRegistry) -> float:
        t = time.perf_counter()
        for family in registry.collect():
            len(family.samples)
        return time.perf_counter() - t

    ratios, ours_ms = [], []
    for r in range(rounds):
        if r % 2 == 0:
            a, b = timed(ours), timed(theirs)
        else:
            b, a = timed(theirs), timed(ours)
        ratios.append(a / b)
        ours_ms.append(a * 1e3)
    quartiles = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), quartiles[2] - quartiles[0], statistics.median(ours_ms)


def options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--baseline", help="a directory holding the build to compare with")
    group.add_argument("--baseline-commit", help="build the baseline from this commit")
    parser.add_argument("--gauges", type=int, default=1000, help="gauges registered for a scrape")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per operation under callgrind instead (needs valgrind)",
    )


def main() -> None:
    args = start(__doc__.split("\n\n")[0], rounds=15, options=options)
    baseline = args.baseline or build_baseline(args.baseline_commit)
    n = int(400_000 * args.scale)
    if args.instructions:
        print("| scenario | instructions, new / old |")
        print("|---|---|")
        for title, code in SCENARIOS.items():
            if "n //=" in code:  # scheduling between tasks: timed above only
                continue
            new = instructions(code, 20_000, None)
            old = instructions(code, 20_000, baseline)
            print(f"| {title} | {new:.0f} / {old:.0f} = {new / old:.3f} |", flush=True)
        return
    print("| scenario | against | new / old (median) | spread (IQR) |")
    print("|---|---|---|---|")
    for title, ratio, spread in fast_paths(baseline, args.rounds, n):
        print(
            f"| {title} | brakes before the histograms | {ratio:.3f} | {spread:.3f} |", flush=True
        )
    ratio, spread, ms = scrape(args.gauges, max(args.rounds, 5))
    print(
        f"| `registry.collect()` of {args.gauges} registered gauges ({ms:.0f} ms) "
        f"| `prometheus_client` metrics with the same series | {ratio:.2f} | {spread:.2f} |"
    )


if __name__ == "__main__":
    main()
