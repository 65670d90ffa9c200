"""Uses every public name the way users do; `mypy --strict` must accept it."""

from __future__ import annotations

import asyncio

import brakes
from brakes import BrakesError, Gauge, GaugeStats, Overloaded, RateLimited

gauge: Gauge = Gauge(10, max_wait=0.2)
gauge.limit = 12
limit: int = gauge.limit
in_flight: int = gauge.in_flight + gauge.available + gauge.waiting
max_wait: float | None = gauge.max_wait
took: bool = gauge.try_acquire(2)
gauge.release(2)
held: bool = gauge.acquire_blocking(1, timeout=0.5)
gauge.release()
locked: bool = gauge.locked()
stats: GaugeStats = gauge.stats()
counts: int = stats.acquired + stats.waited + stats.rejected + stats.timed_out + stats.cancelled
state: int = stats.limit + stats.in_flight + stats.available + stats.waiting

with gauge:
    pass


@gauge
def handler(request: str) -> int:
    return len(request)


@gauge
async def async_handler(request: str) -> int:
    return len(request)


length: int = handler("x")


async def main() -> None:
    acquired: bool = await gauge.acquire(1, timeout=1.0)
    assert acquired
    gauge.release()
    async with gauge:
        pass
    n: int = await async_handler("abc")
    await asyncio.gather(gauge.acquire(), asyncio.create_task(gauge.acquire()))
    del n


try:
    asyncio.run(main())
except Overloaded as err:
    retry_after: float | None = err.retry_after
except (RateLimited, BrakesError):
    pass

public: list[str] = brakes.__all__
