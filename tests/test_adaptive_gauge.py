"""AdaptiveGauge: the Gauge protocol with a limit that follows measured latency."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brakes import AdaptiveGauge, AdaptiveGaugeStats, Overloaded
from brakes.testing import ManualClock

from .conftest import wait_until
from .simulated_service import simulate


class Timeout(Exception):
    pass


def aimd(initial: int = 4, **kwargs: object) -> tuple[ManualClock, AdaptiveGauge]:
    clock = ManualClock()
    options: dict[str, object] = {"timeout": 1.0, **kwargs}
    gauge = AdaptiveGauge(algorithm="aimd", initial=initial, clock=clock, **options)  # type: ignore[arg-type]
    return clock, gauge


def test_defaults_and_the_read_only_limit() -> None:
    gauge = AdaptiveGauge()
    assert (gauge.algorithm, gauge.limit, gauge.min_limit, gauge.max_limit) == (
        "gradient2",
        20,
        1,
        1000,
    )
    assert gauge.max_wait is None and gauge.drop_on == ()
    with pytest.raises(AttributeError):
        gauge.limit = 5  # type: ignore[misc]
    assert "AdaptiveGauge" in repr(gauge) and "gradient2" in repr(gauge)


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"algorithm": "tcp"}, ValueError, "algorithm"),
        ({"algorithm": 3}, TypeError, "algorithm"),
        ({"initial": 0}, ValueError, "initial"),
        ({"initial": 2000}, ValueError, "initial"),
        ({"min_limit": 0}, ValueError, "min_limit"),
        ({"min_limit": 10, "max_limit": 5, "initial": 7}, ValueError, "max_limit"),
        ({"initial": 2.5}, TypeError, "initial"),
        ({"max_wait": -1}, ValueError, "max_wait"),
        ({"drop_on": 3}, TypeError, "drop_on"),
        ({"drop_on": (ValueError, "x")}, TypeError, "drop_on"),
        ({"algorithm": "aimd", "backoff": 1.5}, ValueError, "backoff"),
        ({"algorithm": "aimd", "timeout": 0}, ValueError, "timeout"),
        ({"algorithm": "aimd", "rtt_tolerance": 2}, TypeError, "rtt_tolerance"),
        ({"algorithm": "vegas", "smoothing": 0}, ValueError, "smoothing"),
        ({"rtt_tolerance": 0.5}, ValueError, "rtt_tolerance"),
        ({"long_window": 0}, ValueError, "long_window"),
        ({"probe_limit": 0}, ValueError, "probe_limit"),
        ({"colour": "red"}, TypeError, "colour"),
    ],
)
def test_bad_arguments_name_the_argument(
    kwargs: dict[str, object], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=names):
        AdaptiveGauge(**kwargs)  # type: ignore[arg-type]


def test_release_checks_its_arguments_and_over_release_changes_nothing() -> None:
    _, gauge = aimd()
    gauge.try_acquire()
    for rtt in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="rtt"):
            gauge.release(rtt=rtt)
    with pytest.raises(TypeError, match="rtt"):
        gauge.release(rtt="fast")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dropped"):
        gauge.release(dropped="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="release"):
        gauge.release(2)
    assert gauge.in_flight == 1
    assert gauge.stats().samples == 0


def test_samples_move_the_limit_and_a_bare_release_is_no_sample() -> None:
    clock, gauge = aimd()
    assert gauge.try_acquire(4)
    assert not gauge.try_acquire()
    clock.advance(0.1)
    gauge.release()  # neither rtt nor dropped: no sample
    stats = gauge.stats()
    assert (stats.samples, stats.drops, gauge.limit) == (0, 0, 4)
    gauge.release(rtt=0.1)  # fast while the gauge is busy: one more
    assert gauge.limit == 5
    clock.advance(0.1)
    gauge.release(dropped=True)
    assert gauge.limit == 4  # floor(5 x 0.9)
    stats = gauge.stats()
    assert isinstance(stats, AdaptiveGaugeStats)
    assert (stats.samples, stats.drops, stats.in_flight, stats.rtt) == (1, 1, 1, 0.1)
    assert stats.acquired == 1 and stats.rejected == 1  # one call of 4 permits
    assert "AdaptiveGaugeStats(limit=4" in repr(stats)


def test_a_drop_is_not_a_latency_sample() -> None:
    clock = ManualClock()
    gauge = AdaptiveGauge(algorithm="vegas", initial=10, clock=clock)
    assert gauge.try_acquire(2)
    gauge.release(rtt=0.2)
    gauge.release(rtt=0.001, dropped=True)  # a fast failure
    stats = gauge.stats()
    assert stats.rtt_noload == 0.2 and stats.rtt == 0.2
    assert (stats.samples, stats.drops) == (1, 1)


def test_with_measures_the_call_on_the_gauge_clock() -> None:
    clock, gauge = aimd(initial=2, drop_on=Timeout)
    assert gauge.drop_on == (Timeout,)
    with gauge:
        clock.advance(0.25)
    assert gauge.stats().rtt == 0.25 and gauge.stats().samples == 1
    with pytest.raises(ValueError), gauge:
        clock.advance(0.5)
        raise ValueError  # an error of the call's own: still a latency
    assert gauge.stats().rtt == 0.5 and gauge.stats().samples == 2
    gauge.try_acquire(2)
    limit = gauge.limit
    with pytest.raises(Timeout):
        gauge.release()
        with gauge:
            raise Timeout
    assert gauge.stats().drops == 1 and gauge.limit < limit
    gauge.release()
    with pytest.raises(KeyboardInterrupt), gauge:
        raise KeyboardInterrupt  # not the service's doing: nothing
    assert (gauge.stats().samples, gauge.stats().drops, gauge.in_flight) == (2, 1, 0)


def test_nested_with_blocks_time_each_call() -> None:
    clock, gauge = aimd(initial=3)
    with gauge:
        clock.advance(1.0)
        with gauge:
            clock.advance(0.5)
        assert gauge.stats().rtt == 0.5
    assert gauge.stats().rtt == 1.5


def test_threads_time_their_own_calls() -> None:
    clock, gauge = aimd(initial=2, timeout=100.0)
    inside = threading.Barrier(3)
    leave = threading.Event()
    seen: list[float | None] = []

    def call() -> None:
        with gauge:
            inside.wait()
            leave.wait()
        seen.append(gauge.stats().rtt)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()
    clock.advance(2.0)
    leave.set()
    for thread in threads:
        thread.join()
    assert gauge.stats().samples == 2 and gauge.stats().rtt == 2.0
    assert gauge.in_flight == 0


def test_async_with_and_the_decorator_time_each_task() -> None:
    clock, gauge = aimd(initial=2, timeout=100.0, drop_on=(Timeout,))

    @gauge
    async def slow(seconds: float) -> float:
        await asyncio.sleep(0)
        clock.advance(seconds)
        return seconds

    @gauge
    def failing() -> None:
        raise Timeout

    async def main() -> None:
        async with gauge:
            clock.advance(1.0)
            assert await slow(0.5) == 0.5
            assert gauge.stats().rtt == 0.5
        assert gauge.stats().rtt == 1.5
        a_inside, b_done = asyncio.Event(), asyncio.Event()
        rtts: dict[str, float | None] = {}

        async def a() -> None:
            async with gauge:
                a_inside.set()
                await b_done.wait()
                clock.advance(1.0)
            rtts["a"] = gauge.stats().rtt

        async def b() -> None:
            await a_inside.wait()
            clock.advance(1.0)
            async with gauge:
                clock.advance(0.5)
            rtts["b"] = gauge.stats().rtt
            b_done.set()

        await asyncio.gather(a(), b())
        # Interleaved in one loop, each task timed from its own start.
        assert rtts == {"b": 0.5, "a": 2.5}

    asyncio.run(main())
    stats = gauge.stats()
    assert stats.samples == 4 and stats.in_flight == 0
    with pytest.raises(Timeout):
        failing()
    assert gauge.stats().drops == 1


def test_the_protocol_waits_times_out_and_cancels_as_a_gauge_does() -> None:
    clock, gauge = aimd(initial=1, max_wait=0.0)
    assert gauge.acquire_blocking() is True
    assert gauge.locked() and not gauge.try_acquire()
    with pytest.raises(Overloaded), gauge:
        pass
    with pytest.raises(Overloaded, match="without waiting"):
        gauge.acquire_blocking(timeout=0.0)

    async def main() -> None:
        waiter = asyncio.ensure_future(gauge.acquire())
        await asyncio.sleep(0)
        assert gauge.waiting == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gauge.waiting == 0
        timed = asyncio.ensure_future(gauge.acquire(timeout=5.0))
        await asyncio.sleep(0)
        clock.advance(5.0)
        with pytest.raises(Overloaded, match="within 5"):
            await timed
        later = asyncio.ensure_future(gauge.acquire())
        await asyncio.sleep(0)
        gauge.release(rtt=0.1)
        assert await later is True

    asyncio.run(main())
    assert gauge.in_flight == 1
    stats = gauge.stats()
    assert (stats.cancelled, stats.timed_out) == (1, 1)


def test_waiters_on_threads_and_loops_never_lose_or_duplicate_a_permit() -> None:
    clock = ManualClock()
    gauge = AdaptiveGauge(algorithm="gradient2", initial=4, max_limit=8, clock=clock)
    rounds = 300
    done = threading.Event()
    held = [0]
    most = [0]
    lock = threading.Lock()

    def enter() -> None:
        with lock:
            held[0] += 1
            most[0] = max(most[0], held[0])

    def leave() -> None:
        with lock:
            held[0] -= 1

    def worker() -> None:
        for i in range(rounds):
            with gauge:
                enter()
                leave()
            if i % 7 == 0:
                try:
                    gauge.acquire_blocking(timeout=0.0)
                except Overloaded:
                    continue
                gauge.release(dropped=True)

    async def tasks() -> None:
        async def one(i: int) -> None:
            for j in range(rounds // 10):
                try:
                    async with asyncio.timeout(0.001 if (i + j) % 5 == 0 else None):
                        async with gauge:
                            enter()
                            try:
                                await asyncio.sleep(0)
                            finally:
                                leave()
                except TimeoutError:
                    pass

        await asyncio.gather(*(one(i) for i in range(10)))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    loops = [threading.Thread(target=asyncio.run, args=(tasks(),)) for _ in range(2)]
    for thread in threads + loops:
        thread.start()

    def tick() -> None:
        while not done.is_set():
            clock.advance(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    for thread in threads + loops:
        thread.join()
    done.set()
    ticker.join()
    assert gauge.in_flight == 0 and gauge.waiting == 0
    assert 1 <= gauge.limit <= 8 and most[0] <= 8
    stats = gauge.stats()
    # Every call counted once at most: a cancelled body is no sample.
    assert 0 < stats.samples + stats.drops <= stats.acquired


# --- convergence on the simulated service -----------------------------------

BASE = 0.1
PHASE = 150.0  # simulated seconds per capacity


@pytest.mark.parametrize("initial", [5, 500])
@pytest.mark.parametrize(
    ("algorithm", "options"),
    [("aimd", {"timeout": 2 * BASE}), ("vegas", {}), ("gradient2", {})],
)
def test_the_limit_converges_to_a_changing_capacity(
    algorithm: str, options: dict[str, float], initial: int
) -> None:
    clock = ManualClock()
    gauge = AdaptiveGauge(algorithm=algorithm, initial=initial, clock=clock, **options)  # type: ignore[arg-type]
    run = simulate(gauge, clock, phases=[(PHASE, 10), (PHASE, 5), (PHASE, 10)], base=BASE)
    for phase in range(3):
        # Within 60 simulated seconds of each change (and of the start).
        window = run.window(phase * PHASE + 60, (phase + 1) * PHASE)
        assert window.goodput >= 0.9, (phase, window.goodput)
        assert window.median_latency <= 2.5 * BASE, (phase, window.median_latency)
        assert window.rejected > 0  # the load is 3 x capacity: most is refused
    assert 1 <= run.lowest_limit <= run.highest_limit <= 1000
    assert run.highest_limit >= initial


def test_a_fixed_limit_of_the_wrong_size_fails_the_same_bounds() -> None:
    """The bounds above can fail: a limit far from the capacity misses them."""
    for limit, fails in ((4, "goodput"), (60, "latency")):
        clock = ManualClock()
        gauge = AdaptiveGauge(
            algorithm="aimd", initial=limit, min_limit=limit, max_limit=limit, clock=clock
        )
        run = simulate(gauge, clock, phases=[(100.0, 10)], base=BASE)
        window = run.window(60, 100)
        if fails == "goodput":
            assert window.goodput < 0.9
        else:
            assert window.median_latency > 2.5 * BASE


# --- no latencies can push the limit out of bounds --------------------------

samples = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=1e6, allow_nan=False),  # rtt
        st.booleans(),  # dropped
        st.integers(min_value=0, max_value=3),  # unmeasured releases mixed in
        st.floats(min_value=0.0, max_value=10.0),  # clock advance
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(
    algorithm=st.sampled_from(["aimd", "vegas", "gradient2"]),
    bounds=st.tuples(st.integers(1, 50), st.integers(0, 100)),
    steps=samples,
)
def test_no_latencies_move_the_limit_out_of_bounds(
    algorithm: str, bounds: tuple[int, int], steps: list[tuple[float, bool, int, float]]
) -> None:
    low, extra = bounds
    high = low + extra
    clock = ManualClock()
    gauge = AdaptiveGauge(
        algorithm=algorithm,
        initial=low,
        min_limit=low,
        max_limit=high,
        clock=clock,
        **({"probe_multiplier": 0.1} if algorithm != "aimd" else {}),  # type: ignore[arg-type]
    )
    for rtt, dropped, bare, advance in steps:
        while gauge.try_acquire():
            pass
        gauge.release(rtt=rtt, dropped=dropped)
        for _ in range(min(bare, gauge.in_flight)):
            gauge.release()
        clock.advance(advance)
        stats = gauge.stats()
        assert low <= gauge.limit <= high
        assert low <= stats.algorithm_limit <= high
        for value in (stats.rtt, stats.rtt_noload, stats.rtt_long):
            assert value is None or math.isfinite(value)
    if gauge.in_flight:
        gauge.release(gauge.in_flight)
    assert gauge.in_flight == 0 and gauge.available == gauge.limit


def test_while_probing_the_limit_stays_at_least_min_limit() -> None:
    clock = ManualClock()
    gauge = AdaptiveGauge(
        algorithm="vegas", initial=8, min_limit=6, clock=clock, probe_multiplier=0.1
    )
    probed = False
    for _ in range(50):
        gauge.try_acquire(gauge.available)
        clock.advance(0.1)
        gauge.release(gauge.in_flight, rtt=0.1)
        probed = probed or gauge.stats().probing
        assert gauge.limit >= 6
    assert probed and gauge.stats().probes >= 1


def test_a_release_with_a_sample_wakes_a_waiting_thread() -> None:
    _, gauge = aimd(initial=1)
    gauge.acquire_blocking()
    got = threading.Event()

    def waiter() -> None:
        gauge.acquire_blocking()
        got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: gauge.waiting == 1)
    gauge.release(rtt=0.5)
    thread.join()
    assert got.is_set() and gauge.in_flight == 1


def test_growth_in_the_meantime_never_hides_a_drop() -> None:
    clock, gauge = aimd(initial=4)
    clock.advance(1.0)
    assert gauge.try_acquire(4)
    clock.advance(0.1)
    gauge.release(rtt=0.1)  # busy and fast: one more
    assert gauge.limit == 5
    # A call that started before that growth, but after the last decrease,
    # times out: it still backs off.
    gauge.release(dropped=True, rtt=0.1)
    assert gauge.limit == 4
    # The next drop from before that decrease is the same overload: once.
    gauge.release(dropped=True, rtt=0.1)
    assert gauge.limit == 4


def test_a_limit_that_falls_below_a_queued_caller_stalls_nobody_else() -> None:
    """Drops lower the limit under a caller queued for 2: with nothing in
    flight, a caller for 1 is still served, its sample raises the limit
    again, and then the heavy caller has its turn."""
    _clock, gauge = aimd(initial=2, min_limit=1, backoff=0.5)
    assert gauge.try_acquire() and gauge.try_acquire()

    async def main() -> None:
        heavy = asyncio.ensure_future(gauge.acquire(2, timeout=5))
        await asyncio.sleep(0)
        assert gauge.waiting == 1
        gauge.release(dropped=True)
        gauge.release(dropped=True)
        assert (gauge.limit, gauge.in_flight, gauge.waiting) == (1, 0, 1)
        assert gauge.try_acquire()  # behind the heavy caller, yet served
        assert not heavy.done()
        gauge.release(rtt=0.001)  # a good sample: the limit grows to 2
        assert gauge.limit == 2
        await heavy
        assert gauge.in_flight == 2
        gauge.release(2)

    asyncio.run(main())
    stats = gauge.stats()
    assert (stats.in_flight, stats.waiting, stats.waited) == (0, 0, 1)
