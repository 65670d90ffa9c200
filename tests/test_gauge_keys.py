"""Per-key concurrency: `Gauge(..., max_keys=)` and `key=` on every form, and
the keyed `with`/`async with`/decorator forms of gauges and buckets."""

from __future__ import annotations

import asyncio
import inspect
import random
import threading
from typing import Any

import pytest

import brakes
from brakes.testing import ManualClock
from tests.conftest import run_mixed, wait_until


def test_each_key_has_its_own_limit_beside_the_gauges_own_permits() -> None:
    gauge = brakes.Gauge(2)
    assert gauge.try_acquire(key="a") and gauge.try_acquire(key="a")
    assert not gauge.try_acquire(key="a")
    assert gauge.try_acquire(key="b")
    assert gauge.try_acquire() and gauge.try_acquire()  # the unkeyed permits
    assert not gauge.try_acquire()
    assert gauge.stats(key="a").in_flight == 2
    assert gauge.stats(key="b").in_flight == 1
    s = gauge.stats()
    assert (s.in_flight, s.keys, s.acquired, s.rejected) == (5, 2, 5, 2)
    assert gauge.in_flight == 5


def test_a_key_with_nothing_held_and_nobody_waiting_is_forgotten() -> None:
    gauge = brakes.Gauge(3)
    for i in range(1000):
        assert gauge.try_acquire(key=i)
    assert gauge.stats().keys == 1000
    for i in range(1000):
        gauge.release(key=i)
    s = gauge.stats()
    assert s.keys == 0 and s.in_flight == 0
    assert s.acquired == 1000, "counters of forgotten keys stay in the totals"
    # A forgotten key answers as a new one.
    fresh = gauge.stats(key=5)
    assert (fresh.in_flight, fresh.available, fresh.acquired) == (0, 3, 0)


def test_int_str_and_bytes_keys_are_distinct_and_bad_keys_are_type_errors() -> None:
    gauge = brakes.Gauge(1)
    assert gauge.try_acquire(key=1)
    assert gauge.try_acquire(key="1")
    assert gauge.try_acquire(key=b"1")
    assert gauge.try_acquire(key=2**80)
    assert gauge.stats().keys == 4
    with pytest.raises(TypeError, match="key must be str, bytes, int or None, got float"):
        gauge.try_acquire(key=1.5)
    with pytest.raises(TypeError, match="key must be"):
        gauge.acquire_blocking(key=[1])


def test_releasing_more_than_a_key_holds_names_the_key_and_changes_nothing() -> None:
    gauge = brakes.Gauge(2)
    gauge.acquire_blocking(key="alice")
    with pytest.raises(ValueError, match=r"release\(n=2, key='alice'\) is more than the 1"):
        gauge.release(2, key="alice")
    with pytest.raises(ValueError, match=r"key=.bob..* 0 permits"):
        gauge.release(key="bob")
    assert gauge.stats(key="alice").in_flight == 1


def test_a_refusal_names_the_key() -> None:
    gauge = brakes.Gauge(1, max_wait=0)
    with gauge(key="alice"):
        with pytest.raises(brakes.Overloaded, match="gauge is full for key 'alice'"):
            with gauge(key="alice"):
                pass
        with gauge(key="bob"):
            assert gauge.in_flight == 2
    assert gauge.stats().keys == 0


def test_max_keys_refuses_new_keys_while_that_many_are_in_use() -> None:
    gauge = brakes.Gauge(1, max_keys=2)
    assert gauge.max_keys == 2
    assert gauge.try_acquire(key="a") and gauge.try_acquire(key="b")
    assert not gauge.try_acquire(key="c")
    with pytest.raises(brakes.Overloaded, match="max_keys=2 keys in use: no permit for key 'c'"):
        gauge.acquire_blocking(key="c")
    assert gauge.try_acquire(), "the unkeyed permits are not a key"
    gauge.release(key="a")
    assert gauge.try_acquire(key="c")
    assert gauge.stats().rejected == 2
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_keys must be None or 1 or more"):
            brakes.Gauge(1, max_keys=bad)


def test_each_key_is_fifo_and_a_timeout_leaves_its_line() -> None:
    clock = ManualClock()
    gauge = brakes.Gauge(1, clock=clock)
    order: list[int] = []

    async def worker(i: int) -> None:
        await gauge.acquire(key="k")
        order.append(i)
        gauge.release(key="k")

    async def main() -> None:
        await gauge.acquire(key="k")
        tasks = [asyncio.create_task(worker(i)) for i in range(10)]
        late = asyncio.create_task(gauge.acquire(key="k", timeout=1.0))
        while gauge.stats(key="k").waiting < 11:
            await asyncio.sleep(0)
        clock.advance(1.0)
        with pytest.raises(brakes.Overloaded, match="for key 'k': no permit within 1 s"):
            await late
        assert gauge.stats(key="k").waiting == 10
        gauge.release(key="k")
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == list(range(10))
    s = gauge.stats()
    assert (s.keys, s.timed_out, s.in_flight) == (0, 1, 0)


def test_a_cancelled_waiter_on_a_key_leaks_nothing_even_when_granted_first() -> None:
    gauge = brakes.Gauge(1)

    async def main() -> None:
        await gauge.acquire(key="k")
        waiter = asyncio.create_task(gauge.acquire(key="k"))
        await asyncio.sleep(0)
        gauge.release(key="k")  # granted to the waiter, which has not resumed
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())
    s = gauge.stats()
    assert (s.keys, s.in_flight, s.cancelled) == (0, 0, 1)
    assert gauge.try_acquire(key="k")


def test_raising_the_limit_admits_waiters_on_every_key() -> None:
    gauge = brakes.Gauge(1)

    async def main() -> None:
        for key in ("a", "b"):
            await gauge.acquire(key=key)
        waiters = [asyncio.create_task(gauge.acquire(key=k)) for k in ("a", "b")]
        await asyncio.sleep(0)
        gauge.limit = 2
        assert await asyncio.gather(*waiters) == [True, True]
        assert gauge.try_acquire(key="c") and gauge.try_acquire(key="c")
        assert not gauge.try_acquire(key="c")

    asyncio.run(main())


def test_threads_and_loops_on_shared_keys_never_exceed_a_key_limit() -> None:
    limit, keys = 2, 3
    gauge = brakes.Gauge(limit)
    held = [0] * keys
    most = [0] * keys
    lock = threading.Lock()

    def enter(k: int) -> None:
        with lock:
            held[k] += 1
            most[k] = max(most[k], held[k])

    def leave(k: int) -> None:
        with lock:
            held[k] -= 1

    def thread_body(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(300):
            k = rng.randrange(keys)
            try:
                gauge.acquire_blocking(key=k, timeout=rng.choice([None, 0, 0.001]))
            except brakes.Overloaded:
                continue
            enter(k)
            leave(k)
            gauge.release(key=k)

    async def task_body(seed: int) -> None:
        rng = random.Random(seed)

        async def one(k: int) -> None:
            async with gauge(key=k):
                enter(k)
                try:
                    await asyncio.sleep(0)
                finally:
                    leave(k)

        for _ in range(30):
            tasks = [asyncio.create_task(one(rng.randrange(keys))) for _ in range(10)]
            await asyncio.sleep(0)
            for task in tasks[::3]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    run_mixed(thread_body, task_body)
    assert max(most) <= limit
    s = gauge.stats()
    assert (s.in_flight, s.waiting, s.keys) == (0, 0, 0), s
    for k in range(keys):
        assert gauge.try_acquire(limit, key=k)


def test_key_none_is_the_gauges_own_permits() -> None:
    gauge = brakes.Gauge(1)
    assert gauge.try_acquire(key=None), "key=None is the gauge's own permits"
    assert gauge.stats(key=None).in_flight == 1


# --- keyed decorators and context managers ----------------------------------


def test_a_key_function_gets_each_calls_arguments_and_the_signature_is_kept() -> None:
    gauge = brakes.Gauge(1, max_wait=0)
    seen: list[tuple[Any, ...]] = []

    def user_of(user: str, *args: Any, **kwargs: Any) -> str:
        seen.append((user, args, kwargs))
        return user

    @gauge(key=user_of)
    def export(user: str, fmt: str = "csv") -> str:
        """Exports a user's data."""
        assert gauge.stats(key=user).in_flight == 1
        return f"{user}.{fmt}"

    assert export("alice", fmt="json") == "alice.json"
    assert seen == [("alice", (), {"fmt": "json"})]
    assert export.__name__ == "export" and export.__doc__ == "Exports a user's data."
    assert inspect.signature(export) == inspect.signature(export.__wrapped__)  # type: ignore[attr-defined]
    assert list(inspect.signature(export).parameters) == ["user", "fmt"]
    assert gauge.stats().keys == 0


def test_a_keyed_async_decorator_holds_one_permit_per_key() -> None:
    gauge = brakes.Gauge(1, max_wait=0)

    @gauge(key=lambda user, *a, **kw: user)
    async def export(user: str, gate: asyncio.Event) -> str:
        await gate.wait()
        return user

    async def main() -> None:
        gate = asyncio.Event()
        first = asyncio.create_task(export("alice", gate))
        other = asyncio.create_task(export("bob", gate))
        await asyncio.sleep(0)
        with pytest.raises(brakes.Overloaded, match="key 'alice'"):
            await export("alice", gate)
        gate.set()
        assert await asyncio.gather(first, other) == ["alice", "bob"]

    asyncio.run(main())
    assert gauge.stats().keys == 0
    assert inspect.iscoroutinefunction(export)


def test_a_keyed_block_releases_when_its_body_raises() -> None:
    gauge = brakes.Gauge(1)

    async def main() -> None:
        with pytest.raises(KeyError):
            async with gauge(key="x"):
                raise KeyError("boom")

    asyncio.run(main())
    with pytest.raises(KeyError):
        with gauge(key="x"):
            raise KeyError("boom")
    assert gauge.stats().in_flight == 0 and gauge.stats().keys == 0


def test_a_key_function_is_only_for_decorating() -> None:
    gauge = brakes.Gauge(1)
    with pytest.raises(TypeError, match=r"Gauge\(key=<function>\) decorates a function"):
        with gauge(key=lambda *a, **kw: "k"):
            pass
    with pytest.raises(TypeError, match="key must be str, bytes, int or None, got float"):
        gauge(key=1.5)


def test_a_keyed_bucket_takes_from_its_keys_tokens() -> None:
    clock = ManualClock()
    bucket = brakes.TokenBucket(1, burst=2, max_wait=0, clock=clock)

    @bucket(key=lambda request, *a, **kw: request["client"])
    def handle(request: dict[str, str]) -> str:
        return "ok"

    assert handle({"client": "a"}) == handle({"client": "a"}) == "ok"
    with pytest.raises(brakes.RateLimited):
        handle({"client": "a"})
    assert handle({"client": "b"}) == "ok"
    with bucket(key="c"):
        pass
    assert bucket.tokens(key="c") == pytest.approx(1.0)
    clock.advance(1.0)
    assert handle({"client": "a"}) == "ok"


def test_a_wrong_keyword_names_the_public_class() -> None:
    for limiter in (brakes.Gauge(1), brakes.TokenBucket(1), brakes.LeakyBucket(1)):
        name = type(limiter).__name__
        wrong = rf"^{name}\(\) got an unexpected keyword argument 'kye'"
        with pytest.raises(TypeError, match=wrong):
            limiter(kye=1)  # type: ignore[call-overload]
        for method in ("try_acquire", "acquire", "acquire_blocking"):
            wrong = rf"^{name}\.{method}\(\) got an unexpected keyword argument 'kye'"
            with pytest.raises(TypeError, match=wrong):
                getattr(limiter, method)(kye=1)
        with pytest.raises(TypeError, match=rf"^{name}\.stats\(\)"):
            limiter.stats(kye=1)
        # No key is the limiter's own permits or tokens.
        with limiter():
            pass
        with limiter(key=None):
            pass


def test_decorator_order_bucket_outside_waits_for_a_token_without_holding_a_slot() -> None:
    clock = ManualClock()
    gauge = brakes.Gauge(1)
    bucket = brakes.TokenBucket(1, burst=1, clock=clock)
    inside = threading.Event()

    @bucket
    @gauge
    def call() -> None:
        inside.set()

    call()
    inside.clear()
    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: bucket.stats().waiting == 1)
    # Waiting for its token, the call holds no slot of the gauge.
    assert gauge.in_flight == 0 and gauge.try_acquire()
    gauge.release()
    clock.advance(1.0)
    caller.join(timeout=10)
    assert inside.is_set()


def test_odd_keys_are_refused_clearly_or_kept_apart() -> None:
    gauge = brakes.Gauge(1)

    class UserId(int):
        def __str__(self) -> str:
            return "user"

    assert gauge.try_acquire(key=UserId(2**70))
    assert gauge.try_acquire(key=UserId(2**71)), "a big int is keyed by its value"
    with pytest.raises(ValueError, match="key must be a str that encodes to UTF-8"):
        gauge.try_acquire(key="\ud800")
    with pytest.raises(ValueError, match="key is an int too large to use"):
        gauge.try_acquire(key=10**5000)
    assert gauge.try_acquire(key="x" * 10_000)
    with pytest.raises(brakes.Overloaded) as refused:
        gauge.acquire_blocking(key="x" * 10_000, timeout=0)
    assert len(str(refused.value)) < 300, "a long key is cut in messages"


def test_n_is_checked_even_when_max_keys_are_in_use() -> None:
    gauge = brakes.Gauge(1, max_keys=1)
    assert gauge.try_acquire(key="a")
    for call in (
        lambda: gauge.try_acquire(5, key="b"),
        lambda: gauge.acquire_blocking(5, key="b"),
    ):
        with pytest.raises(ValueError, match="n=5 is more than the gauge's limit of 1"):
            call()


def test_a_reference_cycle_through_a_keyed_block_is_collected() -> None:
    import gc
    import weakref

    class MyGauge(brakes.Gauge):
        pass

    class MyBucket(brakes.TokenBucket):
        pass

    class Key(str):
        pass

    def cycle(make: Any) -> weakref.ref[Any]:
        limiter = make(1)
        limiter.for_alice = limiter(key="alice")  # limiter -> view -> limiter
        key = Key("bob")
        key.view = limiter(key=key)  # key -> view -> key
        limiter.bob = key
        return weakref.ref(limiter)

    for make in (MyGauge, MyBucket):
        ref = cycle(make)
        gc.collect()
        assert ref() is None


def test_a_key_function_that_returns_a_function_is_a_type_error() -> None:
    gauge = brakes.Gauge(1)

    @gauge(key=lambda *a, **kw: print)
    def call() -> None:
        pass

    with pytest.raises(TypeError, match=r"the key function returned .*not a function"):
        call()


def test_the_last_limit_set_holds_for_every_key_when_two_threads_set_it() -> None:
    """Setting the limit wakes event loops' callers, which runs Python: a
    thread that sets another limit right then has the last word, for the
    gauge, every key in use and keys to come."""
    from .test_bucket_reshape import _LoopWithAHook

    gauge = brakes.Gauge(1)
    keys = range(200)  # over every part of the key table
    for key in keys:
        assert gauge.try_acquire(key=key)
    loop = _LoopWithAHook()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:

        async def wait_then_release() -> None:
            await gauge.acquire(key=0)
            gauge.release(key=0)

        done = asyncio.run_coroutine_threadsafe(wait_then_release(), loop)
        wait_until(lambda: gauge.stats().waiting == 1)

        def set_forty() -> None:
            other = threading.Thread(target=setattr, args=(gauge, "limit", 40))
            other.start()
            other.join()

        loop.hook, loop.in_thread = set_forty, "first-setter"
        setter = threading.Thread(target=setattr, args=(gauge, "limit", 3), name="first-setter")
        setter.start()
        setter.join()
        assert loop.hook is None, "the limit change woke no caller"
        done.result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
    assert gauge.limit == 40
    assert {gauge.stats(key=key).limit for key in keys} == {40}
    assert gauge.stats(key="new").limit == 40
    assert sum(gauge.try_acquire(key=5) for _ in range(50)) == 39
