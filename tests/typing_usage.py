"""Uses every public name the way users do; `mypy --strict` must accept it."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, Literal, assert_type

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
view: brakes.SyncQueue[int] = queue.sync
view.put(4, block=True, timeout=0.5)
first += view.get(False) + view.get(timeout=None)
view.put_nowait(5)
first += view.get_nowait()
view.task_done(2)
view.join()
view_state: int = view.qsize() + view.maxsize + view.unfinished_tasks
view_flags: bool = view.empty() or view.full() or view.is_shutdown or view.is_shut_down
same: brakes.Queue[int] = brakes.SyncQueue(queue).brakes_queue
view.shutdown(immediate=False)
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

    from brakes import Pipeline, PoolStats, StageStats, WorkerPool

    async def fetch(n: int) -> str:
        return str(n)

    rows: list[list[str]] = Pipeline(range(3)).map(fetch, workers=2).batch(2, linger=0.1).to_list()
    flat: list[str] = Pipeline(rows).unbatch().to_list()
    stats: tuple[StageStats, ...] = Pipeline(flat).filter(str.isdigit).stats()
    with WorkerPool(2) as pool:
        doubled = list(pool.map(lambda x: x * 2, range(3)))
    _ = (stats, doubled, _asyncio)
    assert_type(doubled, list[int])

    def resize(image_id: int, *, size: int = 64) -> bytes:
        return bytes(size)

    # The mode is in the type: a thread pool's submit gives a Future (of what
    # an async function returns, awaited on the pool's loop) ...
    with WorkerPool(2, queue_size=4, overflow="reject", name="io") as threads:
        assert_type(threads, WorkerPool[Literal["thread"]])
        assert_type(threads.mode, Literal["thread"])
        assert_type(threads.submit(resize, 1, size=8), concurrent.futures.Future[bytes])
        assert_type(threads.submit(fetch, 1), concurrent.futures.Future[str])
        assert_type(threads.map(resize, range(3)), Iterator[bytes])
        assert_type(threads.map(fetch, range(3), ordered=False, window=8), Iterator[str])
        pool_stats: PoolStats = threads.stats()

    # ... an async pool's is awaited, and its map is an async iterator.
    async def numbers() -> AsyncIterator[int]:
        yield 1

    async def use_async_pool() -> None:
        async with WorkerPool(2, mode="async") as tasks:
            assert_type(tasks, WorkerPool[Literal["async"]])
            assert_type(await tasks.submit(fetch, 1), str)
            assert_type(await tasks.submit(resize, 1), bytes)  # in a thread
            assert_type(tasks.map(fetch, range(3)), AsyncIterator[str])
            thumbs = [thumb async for thumb in tasks.map(resize, numbers())]
            assert_type(thumbs, list[bytes])

    # A pool whose mode is not known where it is used gives Any, as before.
    def any_pool(pool: WorkerPool, mode: Literal["thread", "async"]) -> None:
        assert_type(pool.submit(resize, 1), Any)
        assert_type(pool.map(resize, range(3)), Any)
        assert_type(WorkerPool(1, mode=mode), WorkerPool[Any])

    _ = (pool_stats, use_async_pool, any_pool)


def http_middleware() -> None:
    from collections.abc import Iterable

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


def framework_wiring() -> None:
    """The wiring the README and the docstrings show, on the frameworks' own types."""
    from fastapi import FastAPI
    from flask import Flask
    from starlette.applications import Starlette

    import brakes.asgi
    import brakes.http
    import brakes.wsgi

    api = FastAPI(exception_handlers=brakes.asgi.exception_handlers)
    api.add_middleware(brakes.asgi.LoadShed, gauge=Gauge(4), bucket=TokenBucket(5))
    api.add_exception_handler(Overloaded, brakes.asgi.exception_handlers[Overloaded])
    site = Starlette(exception_handlers=brakes.asgi.exception_handlers)
    site.add_middleware(brakes.asgi.LoadShed, gauge=Gauge(4), key=brakes.http.client_ip())
    shed = brakes.asgi.LoadShed(site, gauge=Gauge(2))
    web = Flask(__name__)
    # mypy refuses any assignment to a method; Flask documents this one.
    web.wsgi_app = brakes.wsgi.LoadShed(web.wsgi_app, gauge=Gauge(4))  # type: ignore[method-assign]
    _ = (api, shed)


def refusals(error: RateLimited, overloaded: Overloaded) -> None:
    # A rate limiter always knows when to come back; other refusals may not.
    assert_type(error.retry_after, float)
    assert_type(overloaded.retry_after, float | None)


def per_key() -> None:
    hosts = Gauge(4, max_keys=10_000)
    assert_type(hosts.try_acquire(key="example.com"), bool)
    hosts.release(key="example.com")
    assert_type(hosts(key="example.com"), brakes.GaugeKey)
    with hosts(key=b"10.0.0.1"):
        pass
    keys: int = hosts.stats().keys + hosts.stats(key=7).in_flight
    bucket = TokenBucket(10)
    assert_type(bucket(key="alice"), brakes.BucketKey)

    @hosts(key=lambda host, *args, **kwargs: host)
    async def fetch(host: str, path: str = "/") -> bytes:
        async with hosts(key=host), bucket(key=host):
            return path.encode()

    @bucket(key="alice")
    def once(x: int) -> int:
        return x + keys

    fetched: Coroutine[Any, Any, bytes] = fetch("example.com")
    fetched.close()
    assert_type(once(1), int)
