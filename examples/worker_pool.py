"""A worker pool: 20 jobs, 3 workers, room for 5 jobs waiting.

A port of the classic worker-pool example: jobs go through a buffered
channel of 5 to 3 workers. At most 3 jobs run at once and at most 5 wait;
when all of that is taken, submitting the next job waits for a worker to
free up, so the producer never runs ahead: `brakes.WorkerPool(3, queue_size=5)`.

    python examples/worker_pool.py
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from brakes import WorkerPool


@dataclass
class Report:
    results: list[int] = field(default_factory=list)
    most_running: int = 0
    most_queued: int = 0
    submits_that_waited: int = 0
    seconds_to_submit_all: float = 0.0
    """How long the producer took to hand over every job: it is held back."""


def run(
    jobs: int = 20,
    workers: int = 3,
    queue_size: int = 5,
    work_seconds: float = 0.05,
    log: Callable[[str], None] = print,
) -> Report:
    report = Report()
    running = 0
    lock = threading.Lock()

    def work(job: int) -> int:
        nonlocal running
        with lock:
            running += 1
            report.most_running = max(report.most_running, running)
        log(f"worker {threading.current_thread().name} started job {job}")
        time.sleep(work_seconds)
        with lock:
            running -= 1
        return job * 2

    with WorkerPool(workers, queue_size=queue_size) as pool:
        started = time.monotonic()
        futures = []
        for job in range(jobs):
            if pool.stats().queued == queue_size:
                report.submits_that_waited += 1  # this submit waits for room
            futures.append(pool.submit(work, job))
            report.most_queued = max(report.most_queued, pool.stats().queued)
            log(f"submitted job {job} ({pool.stats().queued} waiting)")
        report.seconds_to_submit_all = time.monotonic() - started
        report.results = [f.result() for f in futures]
    log(f"all {jobs} jobs done: at most {report.most_running} ran at once")
    return report


if __name__ == "__main__":
    run()
