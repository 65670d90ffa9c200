"""A simulated service behind an AdaptiveGauge, driven by a ManualClock.

The service has `servers` servers (its capacity, which may change over
time). A call the gauge admits is served for `base` seconds, waiting in the
service's own FIFO queue while every server is busy; a call the gauge refuses
(`try_acquire()` is False) is rejected. Calls arrive open-loop, as a Poisson
process at `load` times the capacity, from a seeded random generator, so a
run is the same every time. Each finished call releases its permit with its
latency (from its arrival) as the round trip.

The best limit for such a service is exactly its number of servers: fewer
leaves servers idle, more only queues calls inside the service.

The tests check convergence with it; `benchmarks/bench_adaptive.py` plots it.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import random
import statistics

from brakes import AdaptiveGauge
from brakes.testing import ManualClock

NS = 1_000_000_000


@dataclasses.dataclass
class Window:
    """What a stretch of simulated time saw."""

    start: float
    end: float
    capacity: float  # calls per second the servers could finish
    finished: int
    rejected: int
    latencies: list[float]

    @property
    def goodput(self) -> float:
        """Finished calls per second, as a fraction of the capacity."""
        return self.finished / ((self.end - self.start) * self.capacity)

    @property
    def median_latency(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("inf")


@dataclasses.dataclass
class Run:
    """A finished simulation: its trace and the limits the gauge took."""

    base: float
    # (time, servers) from the start, in order.
    capacity: list[tuple[float, int]]
    # (arrival, finish) of every finished call, in order of finishing.
    calls: list[tuple[float, float]]
    rejections: list[float]
    # (time, gauge limit, algorithm limit) once per `sample_every` seconds:
    # they differ while a probe pins the gauge's limit low.
    limits: list[tuple[float, int, int]]
    lowest_limit: int
    highest_limit: int

    def servers_at(self, t: float) -> int:
        servers = self.capacity[0][1]
        for when, count in self.capacity:
            if when <= t:
                servers = count
        return servers

    def window(self, start: float, end: float) -> Window:
        """Calls that finished in [start, end); the capacity must be constant there."""
        servers = self.servers_at(start)
        if any(start < when < end and count != servers for when, count in self.capacity):
            raise ValueError("the capacity changes inside the window")
        finished = [(a, f) for a, f in self.calls if start <= f < end]
        return Window(
            start=start,
            end=end,
            capacity=servers / self.base,
            finished=len(finished),
            rejected=sum(1 for t in self.rejections if start <= t < end),
            latencies=[f - a for a, f in finished],
        )


def simulate(
    gauge: AdaptiveGauge,
    clock: ManualClock,
    *,
    phases: list[tuple[float, int]],
    base: float = 0.1,
    load: float = 3.0,
    seed: int = 1,
    sample_every: float = 0.5,
) -> Run:
    """Runs the service through `phases`: (seconds, servers) one after another.

    The arrival rate follows the capacity: `load` x servers / base per second.
    """
    rng = random.Random(seed)
    base_ns = round(base * NS)
    origin = round(clock.now() * NS)
    now = origin

    def advance_to(t: int) -> None:
        nonlocal now
        if t > now:
            clock.advance((t - now) / NS)
            now = t

    # Events: (time, kind, order, arrival time or servers); finishes sort first
    # when they tie, so a server freed at t serves the call queued at t.
    FINISH, CHANGE, ARRIVE, SAMPLE = 0, 1, 2, 3
    events: list[tuple[int, int, int, int]] = []
    order = 0

    def schedule(t: int, kind: int, arrival: int = 0) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (t, kind, order, arrival))

    capacity: list[tuple[float, int]] = []
    t = origin
    for seconds, servers in phases:
        capacity.append(((t - origin) / NS, servers))
        schedule(t, CHANGE, servers)
        t += round(seconds * NS)
    end = t
    servers = phases[0][1]
    busy = 0
    waiting: collections.deque[int] = collections.deque()
    calls: list[tuple[float, float]] = []
    rejections: list[float] = []
    limits: list[tuple[float, int, int]] = []
    lowest = highest = gauge.limit

    def next_arrival(after: int) -> int:
        rate = load * servers / base
        return after + max(1, round(rng.expovariate(rate) * NS))

    schedule(next_arrival(origin), ARRIVE)
    schedule(origin, SAMPLE)

    def serve() -> None:
        nonlocal busy
        while waiting and busy < servers:
            busy += 1
            schedule(now + base_ns, FINISH, waiting.popleft())

    while events:
        t, kind, _, arrival = heapq.heappop(events)
        if t >= end:
            break
        advance_to(t)
        if kind == FINISH:
            busy -= 1
            gauge.release(rtt=(now - arrival) / NS)
            calls.append(((arrival - origin) / NS, (now - origin) / NS))
            serve()
        elif kind == ARRIVE:
            if gauge.try_acquire():
                waiting.append(now)
                serve()
            else:
                rejections.append((now - origin) / NS)
            schedule(next_arrival(now), ARRIVE)
        elif kind == CHANGE:
            servers = arrival
            serve()
        else:
            limits.append(((now - origin) / NS, gauge.limit, gauge.stats().algorithm_limit))
            schedule(now + round(sample_every * NS), SAMPLE)
        limit = gauge.limit
        lowest = min(lowest, limit)
        highest = max(highest, limit)
    advance_to(end)
    return Run(
        base=base,
        capacity=capacity,
        calls=calls,
        rejections=rejections,
        limits=limits,
        lowest_limit=lowest,
        highest_limit=highest,
    )
