"""A three-stage pipeline with batching: a slow stage holds the producer back.

A port of the classic batching-pipeline example. Items flow through three
stages joined by buffers of 50, 30 and 20. Each stage works on batches (10,
5 and 3 items), and sends a partial batch on once it has waited 300, 200 and
100 ms since its first item, so a trickle of items is not held forever.
The last stage is the slowest: the buffers fill, and the producer waits,
instead of memory growing.

    python examples/batching_pipeline.py
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from brakes import Pipeline


@dataclass
class Report:
    batch_sizes: dict[str, list[int]] = field(
        default_factory=lambda: {"parse": [], "enrich": [], "store": []}
    )
    stored: list[int] = field(default_factory=list)
    produced: int = 0
    most_ahead: int = 0
    """The most items the producer was ahead of the last stage."""


def run(
    items: int = 200,
    store_seconds_per_batch: float = 0.01,
    pause_after: int | None = None,
    pause_seconds: float = 0.0,
    log: Callable[[str], None] = print,
) -> Report:
    report = Report()

    def produce() -> Iterator[int]:
        for n in range(items):
            if pause_after is not None and n == pause_after:
                time.sleep(pause_seconds)  # a lull: partial batches flush on linger
            report.produced += 1
            report.most_ahead = max(report.most_ahead, report.produced - len(report.stored))
            yield n

    def parse(batch: list[int]) -> list[int]:
        report.batch_sizes["parse"].append(len(batch))
        return batch

    def enrich(batch: list[int]) -> list[int]:
        report.batch_sizes["enrich"].append(len(batch))
        return batch

    def store(batch: list[int]) -> None:
        report.batch_sizes["store"].append(len(batch))
        time.sleep(store_seconds_per_batch)  # the slowest stage
        report.stored.extend(batch)
        log(f"stored {batch} (producer is {report.produced - len(report.stored)} ahead)")

    (
        Pipeline(produce(), buffer=50)
        .batch(10, linger=0.3)
        .flat_map(parse, buffer=30)
        .batch(5, linger=0.2)
        .flat_map(enrich, buffer=20)
        .batch(3, linger=0.1)
        .each(store)
    ).run()
    log(f"stored {len(report.stored)} items; the producer was at most {report.most_ahead} ahead")
    return report


if __name__ == "__main__":
    run()
