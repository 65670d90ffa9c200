"""Limits shared through a real Redis: buckets, gauges, failures."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import brakes
from brakes.redis import Backend
from brakes.testing import ManualClock
from tests.conftest import wait_until, wait_until_async
from tests.redis_server import RedisCluster, RedisServer, free_port, redis_cluster, redis_server


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    yield from redis_server()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    yield from redis_cluster(str(tmp_path_factory.mktemp("cluster")))


@pytest.fixture
def backend(server: RedisServer) -> Iterator[Backend]:
    server.cli("FLUSHALL")
    with Backend(server.url, timeout=5) as b:
        yield b


def test_two_backends_share_one_bucket(backend: Backend, server: RedisServer) -> None:
    other = Backend(server.url, timeout=5)
    a = brakes.TokenBucket(1, per=3600, burst=3, backend=backend, name="api")
    b = brakes.TokenBucket(1, per=3600, burst=3, backend=other, name="api")
    assert [a.try_acquire(), b.try_acquire(), a.try_acquire(), b.try_acquire()] == [
        True,
        True,
        True,
        False,
    ]
    assert 3590 < b.retry_after() <= 3600
    assert a.tokens() < 0.01


def test_a_refusal_is_answered_locally_until_it_expires(backend: Backend) -> None:
    bucket = brakes.TokenBucket(1, per=3600, burst=1, backend=backend, name="flood")
    assert bucket.try_acquire()
    before = backend.ping()
    assert before >= 0
    results = [bucket.try_acquire() for _ in range(100)]
    assert results == [False] * 100
    stats = bucket.stats()
    assert stats.rejected == 100
    assert stats.rejected_locally == 99
    # A smaller n is not covered by a refusal learned for a larger one.
    big = brakes.TokenBucket(1, per=3600, burst=5, backend=backend, name="weights")
    assert big.try_acquire(3)
    assert not big.try_acquire(3)
    assert big.try_acquire(2)
    assert big.stats().rejected_locally == 0


def test_keys_are_separate_and_expire_once_full(backend: Backend, server: RedisServer) -> None:
    bucket = brakes.TokenBucket(1, per=3600, burst=1, backend=backend, name="keys")
    assert bucket.try_acquire(key="a")
    assert bucket.try_acquire(key=b"b")
    assert bucket.try_acquire(key=7)
    assert not bucket.try_acquire(key="a")
    ttl = int(server.cli("PTTL", "brakes:{keys}:s:a"))
    # Gone once full again, an hour from now: nothing is left behind.
    assert 3_590_000 < ttl <= 3_600_001
    assert server.cli("EXISTS", "brakes:{keys}:i:7") == "1"


def test_blocking_and_async_waits_book_their_turn(backend: Backend) -> None:
    bucket = brakes.TokenBucket(20, burst=1, backend=backend, name="pace")
    assert bucket.acquire_blocking()
    assert bucket.acquire_blocking(timeout=5)
    with pytest.raises(brakes.RateLimited) as refused:
        bucket.acquire_blocking(timeout=0.001)
    assert 0 < refused.value.retry_after <= 0.05

    async def main() -> list[bool]:
        return list(await asyncio.gather(*(bucket.acquire() for _ in range(4))))

    assert asyncio.run(main()) == [True] * 4
    assert bucket.stats().waited >= 4


def test_a_cancelled_waiter_gives_its_booking_back(backend: Backend) -> None:
    bucket = brakes.LeakyBucket(1, per=1, backend=backend, name="cancel")

    async def main() -> bool:
        assert await bucket.acquire()
        waiter = asyncio.ensure_future(bucket.acquire())
        while bucket.stats().waiting == 0:
            await asyncio.sleep(0.001)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        for _ in range(200):
            if bucket.retry_after() < 0.999:
                break
            await asyncio.sleep(0.005)
        return bucket.retry_after() <= 1.0

    assert asyncio.run(main())
    assert bucket.stats().cancelled == 1


def test_a_leaky_capacity_counts_waiters_everywhere(backend: Backend, server: RedisServer) -> None:
    a = brakes.LeakyBucket(1, per=3600, capacity=1, backend=backend, name="leaky")
    b = brakes.LeakyBucket(
        1, per=3600, capacity=1, backend=Backend(server.url, timeout=5), name="leaky"
    )
    assert a.try_acquire()

    async def main() -> None:
        first = asyncio.ensure_future(a.acquire())
        while a.stats().waiting == 0:
            await asyncio.sleep(0.001)
        with pytest.raises(brakes.RateLimited):
            await b.acquire()
        first.cancel()

    asyncio.run(main())


Limiter = brakes.TokenBucket | brakes.LeakyBucket

SCHEDULES: dict[str, Callable[..., Limiter]] = {
    # Plain Lua numbers: few digits in the rate.
    "token bucket": lambda **kw: brakes.TokenBucket(2000, burst=3, **kw),
    # Bignums: a rate whose ticks need seven digits.
    "token bucket, exact arithmetic": lambda **kw: brakes.TokenBucket(1234.5678, burst=3, **kw),
    "leaky bucket": lambda **kw: brakes.LeakyBucket(2000, **kw),
}


def decide(bucket: Limiter, how: str, n: int, key: str) -> object:
    if how == "try":
        return bucket.try_acquire(n, key=key)
    try:
        return bucket.acquire_blocking(n, key=key, timeout=0)
    except brakes.RateLimited as refused:
        return ("refused", refused.retry_after)


@pytest.mark.parametrize("kind", SCHEDULES)
def test_a_shared_bucket_answers_as_a_local_one_at_the_same_times(
    backend: Backend, kind: str
) -> None:
    """Every decision Redis makes is replayed on a local bucket whose manual
    clock reads the decision's Redis time: the answers (granted, refused, and
    a refusal's retry_after) are the same, one by one."""
    make = SCHEDULES[kind]
    shared = make(backend=backend, name="replayed")
    clock = ManualClock(start=1000.0)
    local = make(clock=clock)
    local_ns = 1000 * 10**9
    first_ns: int | None = None
    chosen = random.Random(7)
    outcomes: list[object] = []
    for _ in range(600):
        how = chosen.choice(["try", "blocking"])
        n, key = chosen.choice([1, 1, 1, 2, 3]), chosen.choice(["a", "b", "c"])
        locally_before = shared.stats().rejected_locally
        answer = decide(shared, how, n, key)
        if shared.stats().rejected_locally > locally_before:
            # Answered here from a refusal Redis gave: no Redis time, and no
            # state changed, on either side.
            assert answer is False or (isinstance(answer, tuple) and answer[0] == "refused")
            continue
        at = getattr(shared, "_redis_time_ns")  # noqa: B009 (private, not in the stubs)
        assert isinstance(at, int)
        first_ns = at if first_ns is None else first_ns
        target = 1000 * 10**9 + (at - first_ns)
        clock.advance((target - local_ns) / 1e9)
        local_ns = target
        assert decide(local, how, n, key) == answer, (len(outcomes), how, n, key)
        outcomes.append(answer)
    granted = sum(1 for answer in outcomes if answer is True)
    assert 0 < granted < len(outcomes)  # both answers were given and compared


def test_other_settings_under_one_name_are_an_error(backend: Backend) -> None:
    assert brakes.TokenBucket(10, backend=backend, name="same").try_acquire()
    with pytest.raises(brakes.BackendError, match="other settings"):
        brakes.TokenBucket(20, backend=backend, name="same").try_acquire()
    assert brakes.Gauge(2, backend=backend, name="g").try_acquire()
    with pytest.raises(brakes.BackendError, match="other settings"):
        brakes.Gauge(3, backend=backend, name="g").try_acquire()


def test_a_redis_that_answers_errors_raises_them_clearly(
    backend: Backend, server: RedisServer
) -> None:
    # Something else stored a hash where the bucket keeps a key.
    server.cli("HSET", "brakes:{typed}:s:k", "field", "1")
    bucket = brakes.TokenBucket(10, backend=backend, name="typed")
    with pytest.raises(brakes.BackendError, match=r"Redis answered an error.*WRONGTYPE"):
        bucket.try_acquire(key="k")
    assert bucket.try_acquire(key="other")  # the other keys are not affected
    assert bucket.stats().backend_errors == 1


def test_scripts_are_loaded_again_after_a_flush(backend: Backend, server: RedisServer) -> None:
    bucket = brakes.TokenBucket(1000, backend=backend, name="flush")
    gauge = brakes.Gauge(1, backend=backend, name="flush-gauge")
    assert bucket.try_acquire()
    assert gauge.try_acquire()
    gauge.release()
    assert server.cli("SCRIPT", "FLUSH") == "OK"
    assert bucket.try_acquire()
    assert gauge.try_acquire()


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="url"):
        Backend("http://nowhere")
    with pytest.raises(ValueError, match="on_error"):
        Backend(on_error="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        Backend(timeout=0)
    backend = Backend()
    with pytest.raises(ValueError, match="name"):
        brakes.TokenBucket(1, backend=backend)
    with pytest.raises(ValueError, match="clock"):
        brakes.TokenBucket(1, backend=backend, name="x", clock=ManualClock())
    with pytest.raises(TypeError, match="backend"):
        brakes.Gauge(1, backend="redis://", name="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease"):
        brakes.Gauge(1, backend=backend, name="x", lease=0)
    # Kept exactly by a local bucket, but too fine for the script's arithmetic.
    assert brakes.TokenBucket(123456789.0123457).rate == 123456789.0123457
    with pytest.raises(ValueError, match=r"rate=.*shared through Redis"):
        brakes.TokenBucket(123456789.0123457, backend=backend, name="x")


def test_a_redis_that_cannot_be_reached_follows_on_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    raising = brakes.TokenBucket(1, backend=Backend(url), name="down")
    with pytest.raises(brakes.BackendError, match="could not be reached"):
        raising.try_acquire()
    with pytest.raises(brakes.BackendError):
        Backend(url).ping()
    allowing = brakes.TokenBucket(1, burst=1, backend=Backend(url, on_error="allow"), name="d")
    assert [allowing.try_acquire() for _ in range(3)] == [True] * 3
    denying = brakes.Gauge(1, backend=Backend(url, on_error="deny"), name="d")
    assert not denying.try_acquire()
    local = brakes.TokenBucket(
        1, per=3600, burst=2, backend=Backend(url, on_error="local"), name="d"
    )
    assert [local.try_acquire() for _ in range(3)] == [True, True, False]
    local_gauge = brakes.Gauge(1, backend=Backend(url, on_error="local"), name="d")
    assert local_gauge.try_acquire()
    assert not local_gauge.try_acquire()
    local_gauge.release()
    assert local_gauge.try_acquire()
    assert local.stats().backend_errors == 3
    # One line per backend, not one per failing call.
    lines = [r for r in caplog.records if r.name == "brakes.redis"]
    assert 1 <= len(lines) <= 6


def test_reads_while_redis_cannot_answer_follow_on_error() -> None:
    """`retry_after()` and `tokens()` answer as a decision would: LoadShed
    reads them for its headers, and must not fail where decisions do not."""
    url = f"redis://127.0.0.1:{free_port()}/0"

    def bucket(on_error: str) -> brakes.TokenBucket:
        backend = Backend(url, on_error=on_error)  # type: ignore[arg-type]
        return brakes.TokenBucket(2, per=10, backend=backend, name=f"reads-{on_error}")

    raising = bucket("raise")
    with pytest.raises(brakes.BackendError, match="could not be reached"):
        raising.retry_after()
    with pytest.raises(brakes.BackendError, match="could not be reached"):
        raising.tokens()
    allowing = bucket("allow")
    assert (allowing.retry_after(), allowing.tokens(key="k")) == (0.0, 2.0)
    denying = bucket("deny")
    # A refusal made without Redis hints at one refill interval.
    assert (denying.retry_after(), denying.tokens()) == (5.0, 0.0)
    local = bucket("local")
    assert (local.retry_after(key="k"), local.tokens(key="k")) == (0.0, 2.0)
    assert local.try_acquire(2, key="k")
    assert local.tokens(key="k") == pytest.approx(0.0, abs=0.01)
    assert 4.9 < local.retry_after(key="k") <= 5.0
    assert local.retry_after(key="other") == 0.0
    with pytest.raises(ValueError, match="n"):
        local.retry_after(3)
    # Each read that met the failure is counted, as a decision is.
    assert allowing.stats().backend_errors == 2
    assert local.stats().backend_errors == 6


@pytest.mark.parametrize("on_error", ["allow", "deny", "local"])
def test_loadshed_with_a_shared_bucket_answers_while_redis_is_down(on_error: str) -> None:
    """No 500: the headers come from the reads above, on the same rules."""
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from brakes.asgi import LoadShed

    from .http_servers import serve_asgi

    url = f"redis://127.0.0.1:{free_port()}/0"
    backend = Backend(url, on_error=on_error)  # type: ignore[arg-type]
    shared = brakes.TokenBucket(1, per=60, max_wait=0, backend=backend, name=f"shed-{on_error}")

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = LoadShed(Starlette(routes=[Route("/", hello)]), bucket=shared)
    with serve_asgi(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        statuses = [client.get("/").status_code for _ in range(3)]
    expected = {"allow": [200, 200, 200], "deny": [429, 429, 429], "local": [200, 429, 429]}
    assert statuses == expected[on_error]


def test_a_gauge_is_shared_and_a_release_wakes_a_waiter_elsewhere(
    backend: Backend, server: RedisServer
) -> None:
    here = brakes.Gauge(1, backend=backend, name="db")
    there = brakes.Gauge(1, backend=Backend(server.url, timeout=5), name="db")
    assert here.try_acquire()
    assert not there.try_acquire()
    got = threading.Event()

    def wait_there() -> None:
        there.acquire_blocking(timeout=30)
        got.set()

    thread = threading.Thread(target=wait_there)
    thread.start()
    while int(server.cli("ZCARD", "brakes:{db}:queue") or 0) == 0:
        pass
    assert not got.is_set()
    here.release()
    thread.join(30)
    assert got.is_set()
    assert there.stats().waited == 1
    there.release()
    with pytest.raises(ValueError, match="more than"):
        there.release()


def test_waiters_are_served_in_arrival_order(backend: Backend, server: RedisServer) -> None:
    gauge = brakes.Gauge(1, backend=backend, name="fifo")
    order: list[int] = []

    async def main() -> None:
        await gauge.acquire()

        async def waiter(i: int) -> None:
            async with gauge:
                order.append(i)

        tasks = []
        for i in range(5):
            tasks.append(asyncio.ensure_future(waiter(i)))
            while int(server.cli("ZCARD", "brakes:{fifo}:queue") or 0) <= i:
                await asyncio.sleep(0.001)
        gauge.release()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == [0, 1, 2, 3, 4]


def test_a_waiter_keeps_its_place_for_longer_than_a_lease(
    backend: Backend, server: RedisServer
) -> None:
    gauge = brakes.Gauge(1, backend=backend, name="patient", lease=0.5)
    assert gauge.try_acquire()
    got = threading.Event()

    def wait() -> None:
        gauge.acquire_blocking(timeout=30)
        got.set()

    thread = threading.Thread(target=wait)
    thread.start()
    key = "brakes:{patient}:queue"
    wait_until(lambda: server.cli("ZCARD", key) == "1", timeout=30)
    place = server.cli("ZRANGE", key, "0", "-1", "WITHSCORES")
    # Three leases pass: the place is renewed, not lost and taken again at the back.
    threading.Event().wait(1.5)
    assert server.cli("ZRANGE", key, "0", "-1", "WITHSCORES") == place
    assert not got.is_set()
    gauge.release()
    thread.join(30)
    assert got.is_set()
    gauge.release()


def test_a_waiter_whose_loop_closed_does_not_hold_the_shared_line(
    backend: Backend, server: RedisServer
) -> None:
    gauge = brakes.Gauge(1, backend=backend, name="dead-loop", lease=30)
    assert gauge.try_acquire()
    dead_loop = asyncio.new_event_loop()
    orphan = dead_loop.create_task(gauge.acquire())
    queued = lambda: server.cli("ZCARD", "brakes:{dead-loop}:queue") == "1"  # noqa: E731
    dead_loop.run_until_complete(wait_until_async(queued, timeout=30))
    dead_loop.close()  # its task is left waiting, first in the queue in Redis

    got = threading.Event()

    def wait_behind_it() -> None:
        # Less than the lease: only the dead waiter leaving can let it through.
        gauge.acquire_blocking(timeout=20)
        got.set()

    thread = threading.Thread(target=wait_behind_it)
    thread.start()
    wait_until(lambda: server.cli("ZCARD", "brakes:{dead-loop}:queue") == "2", timeout=30)
    gauge.release()
    thread.join(60)
    # The task that can never run left the queue at the release, long before
    # its place would have lapsed (30 s); the thread behind it got the permit.
    assert got.is_set()
    assert not orphan.done()
    assert gauge.stats().waiting == 0 and gauge.in_flight == 1
    gauge.release()


def test_cancelled_and_timed_out_waiters_lose_no_permit(
    backend: Backend, server: RedisServer
) -> None:
    gauge = brakes.Gauge(3, backend=backend, name="stress")
    running = 0
    most = 0

    async def worker(i: int) -> None:
        nonlocal running, most
        try:
            async with asyncio.timeout(0.05 if i % 3 == 0 else None):
                await gauge.acquire(timeout=0.02 if i % 4 == 0 else None)
        except (TimeoutError, brakes.Overloaded):
            return
        try:
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.002)
        finally:
            running -= 1
            gauge.release()

    async def main() -> None:
        await asyncio.gather(*(worker(i) for i in range(60)))

    asyncio.run(main())
    assert most <= 3
    assert gauge.in_flight == 0
    for _ in range(500):
        if server.cli("ZCARD", "brakes:{stress}:holders") == "0":
            break
        threading.Event().wait(0.01)
    assert server.cli("ZCARD", "brakes:{stress}:holders") == "0"
    assert gauge.try_acquire(3)
    gauge.release(3)


def test_a_killed_holders_permits_come_back_after_the_lease(
    backend: Backend, server: RedisServer
) -> None:
    holder = textwrap.dedent(
        f"""
        import sys, brakes
        from brakes.redis import Backend
        gauge = brakes.Gauge(2, backend=Backend({server.url!r}, timeout=5), name="crash", lease=1.0)
        gauge.acquire_blocking(2)
        print("held", flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        gauge = brakes.Gauge(2, backend=backend, name="crash", lease=1.0)
        assert not gauge.try_acquire()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert gauge.acquire_blocking(2, timeout=60)
        gauge.release(2)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize("on_error", ["raise", "allow", "deny", "local"])
def test_redis_restarted_mid_run(on_error: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="brakes.redis")
    servers = iter(redis_server())
    server = next(servers)
    try:
        backend = Backend(server.url, on_error=on_error, timeout=0.5)  # type: ignore[arg-type]
        bucket = brakes.TokenBucket(1000, backend=backend, name="restart")
        gauge = brakes.Gauge(2, backend=backend, name="restart-gauge", lease=2.0)
        assert bucket.try_acquire()
        assert gauge.try_acquire()
        gauge.release()
        server.stop()
        answers = []
        for _ in range(50):
            try:
                answers.append(bucket.try_acquire() and gauge.try_acquire())
            except brakes.BackendError:
                answers.append(None)
                continue
            if answers[-1]:
                gauge.release()
        expected = {"raise": {None}, "allow": {True}, "deny": {False}, "local": {True}}
        assert set(answers) == expected[on_error]
        lost = [r for r in caplog.records if r.name == "brakes.redis"]
        assert 1 <= len(lost) <= 3
        assert all(r.levelno == logging.WARNING for r in lost)
        server.start()
        for _ in range(200):
            try:
                if bucket.try_acquire():
                    break
            except brakes.BackendError:
                pass
            threading.Event().wait(0.05)
        # Scripts load again into the new server, and every permit is free.
        assert bucket.try_acquire()
        assert gauge.try_acquire(2)
        gauge.release(2)
        for _ in range(200):
            if server.cli("ZCARD", "brakes:{restart-gauge}:holders") == "0":
                break
            threading.Event().wait(0.01)
        assert server.cli("ZCARD", "brakes:{restart-gauge}:holders") == "0"
        assert bucket.stats().backend_errors > 0

        # Losing the server was logged, and so, once, is finding it again (told
        # by the next decision made in the foreground).
        def answers_again() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "Redis answers again" in r.getMessage()]

        for _ in range(200):
            if answers_again():
                break
            bucket.try_acquire()
            threading.Event().wait(0.01)
        for _ in range(20):
            bucket.try_acquire()
        assert len(answers_again()) == 1 and answers_again()[0].levelno == logging.INFO
    finally:
        for _ in servers:
            pass


def test_four_processes_share_one_rate(server: RedisServer) -> None:
    server.cli("FLUSHALL")
    seconds, burst = 2.0, 100
    child = textwrap.dedent(
        f"""
        import sys, time, brakes
        from brakes.redis import Backend
        bucket = brakes.TokenBucket(
            1000, burst={burst}, backend=Backend({server.url!r}, timeout=5), name="shared-rate"
        )
        start = float(sys.argv[1])
        while time.time() < start:
            time.sleep(0.001)
        taken = 0
        while time.time() < start + {seconds}:
            taken += bucket.try_acquire()
        print(taken, bucket.stats().rejected_locally)
        """
    )
    import time

    start = time.time() + 2.0
    children = [
        subprocess.Popen(
            [sys.executable, "-c", child, str(start)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [c.communicate(timeout=120)[0].split() for c in children]
    assert all(c.returncode == 0 for c in children)
    taken = sum(int(out[0]) for out in outputs)
    # 1000/s for the window, plus the burst the bucket starts with.
    expected = 1000 * seconds + burst
    assert abs(taken - expected) <= 0.02 * expected, taken
    # Most refusals were answered in each process, without Redis.
    assert all(int(out[1]) > 0 for out in outputs)


def test_a_cluster_shares_limits_across_slots_and_through_a_moved_slot(
    cluster: RedisCluster,
) -> None:
    def slot_of(name: str) -> int:
        return int(cluster.nodes[0].cli("CLUSTER", "KEYSLOT", "{" + name + "}"))

    names = [f"api-{i}" for i in range(12)]
    assert len({cluster.node_of(slot_of(name)).port for name in names}) == 3
    with Backend(cluster.url, timeout=5) as one, Backend(cluster.url, timeout=5) as other:
        assert one.cluster and one.ping() >= 0
        mine = {n: brakes.TokenBucket(1, per=3600, burst=2, backend=one, name=n) for n in names}
        theirs = {n: brakes.TokenBucket(1, per=3600, burst=2, backend=other, name=n) for n in names}
        for name in names:  # every master holds some of the limits, shared
            assert mine[name].try_acquire(key="k") and theirs[name].try_acquire(key="k")
            assert not theirs[name].try_acquire(key="k")
        gauge = brakes.Gauge(1, backend=one, name="db", lease=5)
        elsewhere = brakes.Gauge(1, backend=other, name="db", lease=5)
        assert gauge.try_acquire() and not elsewhere.try_acquire()

        # The slots of a bucket and of the gauge move to other masters, keys
        # and all: both backends are answered MOVED and follow.
        for name in (names[0], "db"):
            slot = slot_of(name)
            owner = cluster.node_of(slot)
            cluster.move_slot(slot, next(n for n in cluster.nodes if n is not owner))
            assert cluster.node_of(slot) is not owner
        for node in cluster.nodes:  # and every master forgets the scripts
            assert node.cli("SCRIPT", "FLUSH") == "OK"
        moved = brakes.TokenBucket(1, per=3600, burst=2, backend=one, name=names[0])
        assert not moved.try_acquire(key="k")  # its state moved with it
        assert moved.try_acquire(key="fresh") and theirs[names[0]].try_acquire(key="fresh")
        assert not moved.try_acquire(key="fresh")

        # A release on the moved gauge wakes a waiter in the other backend.
        got = threading.Event()

        def wait_elsewhere() -> None:
            elsewhere.acquire_blocking(timeout=30)
            got.set()

        waiter = threading.Thread(target=wait_elsewhere)
        waiter.start()
        wait_until(lambda: elsewhere.stats().waiting == 1)
        gauge.release()
        waiter.join(30)
        assert got.is_set()
        assert not gauge.try_acquire()
        elsewhere.release()  # sent to Redis in the background: it lands soon
        wait_until(gauge.try_acquire, timeout=30)
        gauge.release()


LOADSHED_APP = """
import os

from brakes import TokenBucket
from brakes.asgi import LoadShed
from brakes.redis import Backend


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


bucket = TokenBucket(
    1, per=3600, burst=20, max_wait=0, backend=Backend(os.environ["REDIS_URL"]), name="http"
)
shed = LoadShed(hello, bucket=bucket, exempt=["/pid"])


async def app(scope, receive, send):
    # Every response says which worker process gave it.
    async def tagged(message):
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"x-worker", b"%d" % os.getpid())]
        await send(message)

    await shed(scope, receive, tagged)
"""


def test_loadshed_in_four_uvicorn_workers_answers_429_where_the_shared_limit_says(
    server: RedisServer, tmp_path: Path
) -> None:
    import httpx

    server.cli("FLUSHALL")
    (tmp_path / "shed_app.py").write_text(LOADSHED_APP)
    port = free_port()
    uvicorn = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "shed_app:app", "--workers", "4"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            *("--app-dir", str(tmp_path), "--lifespan", "off"),
        ],
        env={**os.environ, "REDIS_URL": server.url},
    )
    base = f"http://127.0.0.1:{port}"

    def worker_of(path: str) -> tuple[int, str]:
        # A new connection each time, so that any worker may take it.
        response = httpx.get(base + path, timeout=30)
        return response.status_code, response.headers["x-worker"]

    try:
        workers: set[str] = set()

        def all_four_answer() -> bool:
            try:
                workers.add(worker_of("/pid")[1])  # exempt: takes no token
            except httpx.TransportError:
                pass  # not listening yet
            return len(workers) == 4

        wait_until(all_four_answer, timeout=120)
        answers: list[tuple[int, str]] = []
        while len(answers) < 40 or len({w for _, w in answers}) < 4:
            assert len(answers) < 4000
            answers.append(worker_of("/"))
        admitted = [w for status, w in answers if status == 200]
        refused = [w for status, w in answers if status == 429]
        # One limit of 20 for the four processes: with a limit of its own, each
        # would have admitted 20.
        assert len(admitted) == 20
        assert len(refused) == len(answers) - 20
        assert len(set(admitted) | set(refused)) == 4
        assert all(status == 429 for status, _ in answers[20:])
    finally:
        uvicorn.terminate()
        try:
            uvicorn.wait(30)
        except subprocess.TimeoutExpired:
            uvicorn.kill()
            uvicorn.wait()


def test_a_shared_gauge_has_no_per_key_permits(backend: Backend) -> None:
    gauge = brakes.Gauge(1, backend=backend, name="no-keys")
    for call in (
        lambda: gauge.try_acquire(key="a"),
        lambda: gauge.acquire_blocking(key="a"),
        lambda: gauge.release(key="a"),
        lambda: gauge.stats(key="a"),
    ):
        with pytest.raises(ValueError, match="key= is for a gauge of this process"):
            call()
    assert gauge.try_acquire(key=None)
    gauge.release()
