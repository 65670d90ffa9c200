"""Uses every public name the way users do; `mypy --strict` must accept it."""

from __future__ import annotations

import asyncio

import brakes
from brakes import (
    BrakesError,
    BucketStats,
    Gauge,
    GaugeStats,
    LeakyBucket,
    Overloaded,
    RateLimited,
    TokenBucket,
)
from brakes.testing import ManualClock

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

clock = ManualClock(start=1.0)
bucket = TokenBucket(10, per=1.0, burst=5, max_wait=0.5, clock=clock, max_keys=1000)
leaky = LeakyBucket(2.5, per=0.5, capacity=3, max_wait=None, clock=None)
took_token: bool = bucket.try_acquire(2, key="client-1") and leaky.try_acquire(key=b"k")
wait: float = bucket.retry_after(1, key=7) + clock.now()
clock.advance(wait)
left: float = bucket.tokens("client-1")
burst: int = bucket.burst
capacity: int | None = leaky.capacity
bucket_stats: BucketStats = bucket.stats()
totals: int = bucket_stats.keys + bucket_stats.waiting + bucket_stats.acquired
totals += bucket_stats.waited + bucket_stats.rejected + bucket_stats.cancelled
rate: float = bucket.rate * bucket.per
bucket_wait: float | None = bucket.max_wait
bucket.acquire_blocking(1, timeout=1.0, key=None)
with bucket:
    pass


@leaky
async def paced(x: int) -> int:
    return x


async def use_buckets() -> None:
    got: bool = await bucket.acquire(1, timeout=None, key="k")
    assert got
    async with bucket:
        pass
    value: int = await paced(1)
    del value


public: list[str] = brakes.__all__

queue: brakes.Queue[int] = brakes.Queue(10, overflow="drop_old", on_drop=lambda item: None)
queue.put_nowait(1)
queue.put_blocking(2, timeout=0.5)
first: int = queue.get_nowait() + queue.get_blocking(timeout=None)
batch: list[int] = queue.get_batch_blocking(10, linger=0.01, timeout=0)
sizes: int = queue.qsize() + queue.maxsize
flags: bool = queue.empty() or queue.full() or queue.is_shut_down
queue_stats: brakes.QueueStats = queue.stats()
queue_counts: int = queue_stats.put + queue_stats.got + queue_stats.dropped + queue_stats.rejected
queue_counts += queue_stats.size + queue_stats.unfinished + queue_stats.maxsize
queue_counts += queue_stats.putters_waiting + queue_stats.getters_waiting
stopped: bool = queue_stats.shut_down
lifo: brakes.LifoQueue[str] = brakes.LifoQueue()
ranked: brakes.PriorityQueue[tuple[int, str]] = brakes.PriorityQueue(5, overflow="reject")
queue.task_done()
queue.join_blocking(timeout=1.0)
queue.shutdown(immediate=True)
errors: tuple[type[Exception], ...] = (brakes.QueueFull, brakes.QueueEmpty, brakes.QueueShutDown)
for item in queue:
    first += item


async def use_queues() -> None:
    await queue.put(3)
    got: int = await queue.get()
    items: list[int] = await queue.get_batch(5, linger=0.0, timeout=None)
    await queue.join()
    async for each in queue:
        got += each
    del got, items


def pipelines_and_pools() -> None:
    import asyncio as _asyncio

    from brakes import Pipeline, StageStats, WorkerPool

    async def fetch(n: int) -> str:
        return str(n)

    rows: list[list[str]] = Pipeline(range(3)).map(fetch, workers=2).batch(2, linger=0.1).to_list()
    flat: list[str] = Pipeline(rows).unbatch().to_list()
    stats: tuple[StageStats, ...] = Pipeline(flat).filter(str.isdigit).stats()
    with WorkerPool(2) as pool:
        doubled = list(pool.map(lambda x: x * 2, range(3)))
    _ = (stats, doubled, _asyncio)


def http_middleware() -> None:
    from collections.abc import Iterable
    from typing import Any

    from brakes.asgi import LoadShed as AsgiLoadShed
    from brakes.asgi import exception_handlers
    from brakes.http import KeyFunction, LoadShedStats, client_ip, header
    from brakes.wsgi import LoadShed as WsgiLoadShed

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        pass

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return [b"ok"]

    key: KeyFunction = client_ip(trusted_proxies=["10.0.0.0/8"])
    shed = AsgiLoadShed(
        asgi_app, gauge=Gauge(4, max_wait=0.2), bucket=TokenBucket(5), key=key, exempt=["/h"]
    )
    stats: LoadShedStats = shed.stats()
    wsgi = WsgiLoadShed(wsgi_app, bucket=TokenBucket(5, max_wait=0), key=header("x-api-key"))
    _ = (stats, wsgi, exception_handlers)
