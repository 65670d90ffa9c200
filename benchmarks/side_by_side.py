"""The measuring both benchmark scripts share: paired rounds, median ratios."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
from collections.abc import Callable
from typing import Any

# (title, work, keyword arguments, {contender name: factory}); "brakes" first.
Scenario = tuple[str, Callable[..., float], dict[str, Any], dict[str, Callable[[], Any]]]
Row = tuple[str, str, float, float]


def pinned_to_one_cpu(work: Callable[..., float]) -> Callable[..., float]:
    """Runs a single-threaded scenario on one CPU: moves between cores are the
    largest source of noise on a small machine, and both sides get the same."""

    def run(*args: Any, **kwargs: Any) -> float:
        if not hasattr(os, "sched_setaffinity"):
            return work(*args, **kwargs)
        allowed = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {max(allowed)})
        try:
            return work(*args, **kwargs)
        finally:
            os.sched_setaffinity(0, allowed)

    return run


def measure(scenarios: list[Scenario], rounds: int) -> list[Row]:
    """Returns (scenario, peer, median ratio, spread) rows.

    Each round runs every contender once, back to back, in alternating order;
    the ratio of a round compares brakes with a peer measured moments apart,
    so drift in the machine's speed hits both sides of it alike. The spread is
    the interquartile range of the per-round ratios.
    """
    rows = []
    for title, work, kwargs, contenders in scenarios:
        times: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for name in names:
            work(contenders[name], **kwargs)  # warm up: imports, caches, allocator
        for r in range(rounds):
            for name in names if r % 2 == 0 else reversed(names):
                times[name].append(work(contenders[name], **kwargs))
        for name in names[1:]:
            pairs = zip(times["brakes"], times[name], strict=True)
            ratios = [ours / theirs for ours, theirs in pairs]
            quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [0, 0, 0]
            rows.append((title, name, statistics.median(ratios), quartiles[2] - quartiles[0]))
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | peer | brakes / peer (median) | spread (IQR) |",
        "|---|---|---|---|",
    ]
    for title, peer, ratio, spread in rows:
        lines.append(f"| {title} | `{peer}` | {ratio:.2f} | {spread:.2f} |")
    return "\n".join(lines)


def start(
    description: str | None,
    rounds: int,
    options: Callable[[argparse.ArgumentParser], object] | None = None,
) -> argparse.Namespace:
    """Reads `--rounds`, `--scale` (and what `options` adds), and says on
    stderr what runs where."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=rounds, help="paired rounds per scenario")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the counts")
    if options is not None:
        options(parser)
    args = parser.parse_args()
    print(
        f"brakes on CPython {platform.python_version()}, {platform.machine()}, "
        f"{datetime.date.today().isoformat()}; median of {args.rounds} paired rounds\n",
        file=sys.stderr,
    )
    return args
