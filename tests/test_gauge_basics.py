"""Gauge state, arguments, limit changes, repr and stats, seen from one thread."""

from __future__ import annotations

import asyncio
import doctest
import math
import threading
import types

import pytest

import brakes
from brakes import Gauge

from .conftest import wait_until


def test_acquisitions_move_in_flight_and_available() -> None:
    gauge = Gauge(3)
    assert (gauge.limit, gauge.in_flight, gauge.available, gauge.waiting) == (3, 0, 3, 0)
    assert gauge.try_acquire()
    assert gauge.try_acquire(2)
    assert (gauge.in_flight, gauge.available) == (3, 0)
    gauge.release(2)
    assert (gauge.in_flight, gauge.available) == (1, 2)


def test_default_gauge_is_a_single_permit_that_waits() -> None:
    gauge = Gauge()
    assert gauge.limit == 1
    assert gauge.max_wait is None


def test_try_acquire_refuses_when_full_and_counts_the_refusal() -> None:
    gauge = Gauge(1)
    assert gauge.try_acquire()
    assert not gauge.try_acquire()
    stats = gauge.stats()
    assert (stats.acquired, stats.rejected) == (1, 1)


def test_weighted_acquisition_needs_all_its_permits_free() -> None:
    gauge = Gauge(4)
    assert gauge.try_acquire(3)
    assert not gauge.try_acquire(2)
    assert gauge.try_acquire(1)


def test_release_of_more_than_is_held_raises_and_changes_nothing() -> None:
    gauge = Gauge(3)
    gauge.try_acquire(2)
    with pytest.raises(ValueError, match="release"):
        gauge.release(3)
    assert gauge.in_flight == 2
    with pytest.raises(ValueError):
        Gauge(1).release()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda g: g.try_acquire(4), "n=4"),
        (lambda g: g.acquire_blocking(4), "n=4"),
        (lambda g: g.acquire(4).send(None), "n=4"),
    ],
)
def test_n_above_the_limit_is_a_value_error_rather_than_a_hang(call, message) -> None:  # type: ignore[no-untyped-def]
    gauge = Gauge(3)
    with pytest.raises(ValueError, match=message):
        call(gauge)
    assert gauge.in_flight == 0 and gauge.waiting == 0


def test_zero_limit_is_a_closed_gauge_that_opens_when_raised() -> None:
    gauge = Gauge(0)
    assert gauge.locked()
    assert not gauge.try_acquire()
    got = threading.Event()

    def waiter() -> None:
        gauge.acquire_blocking()
        got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: gauge.waiting == 1)
    assert not got.is_set()
    gauge.limit = 1
    thread.join(timeout=5)
    assert got.is_set() and gauge.in_flight == 1


def test_raising_the_limit_admits_waiters_at_once() -> None:
    gauge = Gauge(2)
    gauge.try_acquire(2)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (gauge.acquire_blocking(2), done.set()))
    thread.start()
    wait_until(lambda: gauge.waiting == 1)
    gauge.limit = 4
    thread.join(timeout=5)
    assert done.is_set() and gauge.in_flight == 4


def test_lowering_the_limit_takes_effect_as_permits_come_back() -> None:
    gauge = Gauge(3)
    gauge.try_acquire(3)
    gauge.limit = 1
    assert gauge.in_flight == 3 and gauge.available == 0
    gauge.release(2)
    assert not gauge.try_acquire()
    gauge.release()
    assert gauge.try_acquire()


@pytest.mark.parametrize(
    ("make", "error", "names"),
    [
        (lambda: Gauge(-1), ValueError, "limit"),
        (lambda: Gauge("3"), TypeError, "limit"),  # type: ignore[arg-type]
        (lambda: Gauge(1.5), TypeError, "limit"),  # type: ignore[arg-type]
        (lambda: Gauge(1, max_wait=-0.1), ValueError, "max_wait"),
        (lambda: Gauge(1, max_wait=math.nan), ValueError, "max_wait"),
        (lambda: Gauge(1, max_wait="1"), TypeError, "max_wait"),  # type: ignore[arg-type]
        (lambda: Gauge(2).try_acquire(0), ValueError, "n"),
        (lambda: Gauge(2).try_acquire(-1), ValueError, "n"),
        (lambda: Gauge(2).try_acquire(1.0), TypeError, "n"),  # type: ignore[arg-type]
        (lambda: Gauge(2).acquire(0), ValueError, "n"),
        (lambda: Gauge(2).acquire(timeout=math.nan), ValueError, "timeout"),
        (lambda: Gauge(2).acquire(timeout=-1), ValueError, "timeout"),
        (lambda: Gauge(2).acquire_blocking(timeout=math.nan), ValueError, "timeout"),
        (lambda: Gauge(2).acquire_blocking(-3), ValueError, "n"),
        (lambda: Gauge(2).release(0), ValueError, "n"),
        (lambda: Gauge(2).release("1"), TypeError, "n"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_raise_an_error_naming_the_argument(make, error, names) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=rf"\b{names}\b"):
        make()


def test_bad_limit_assignment_is_refused_and_keeps_the_old_limit() -> None:
    gauge = Gauge(2)
    with pytest.raises(ValueError, match="limit"):
        gauge.limit = -1
    with pytest.raises(TypeError):
        gauge.limit = 2.5  # type: ignore[assignment]
    assert gauge.limit == 2


def test_arguments_are_checked_even_when_the_gauge_could_answer_at_once() -> None:
    gauge = Gauge(5)
    with pytest.raises(ValueError, match="timeout"):
        gauge.acquire_blocking(timeout=math.nan)
    assert gauge.in_flight == 0


def test_infinite_timeouts_mean_no_bound() -> None:
    gauge = Gauge(1, max_wait=math.inf)
    assert gauge.max_wait is None
    assert gauge.acquire_blocking(timeout=math.inf)


def test_locked_is_true_when_full_or_when_others_are_queued() -> None:
    gauge = Gauge(2)
    assert not gauge.locked()
    gauge.try_acquire(2)
    assert gauge.locked()
    gauge.release()
    assert not gauge.locked()


def test_repr_shows_the_live_state() -> None:
    gauge = Gauge(4, max_wait=0.2)
    gauge.try_acquire(3)
    assert repr(gauge) == "<brakes.Gauge limit=4 in_flight=3 waiting=0 max_wait=0.2>"


def test_stats_is_a_frozen_snapshot() -> None:
    gauge = Gauge(2)
    gauge.try_acquire()
    before = gauge.stats()
    gauge.try_acquire()
    assert (before.in_flight, before.available) == (1, 1)
    assert gauge.stats().in_flight == 2
    assert before != gauge.stats()
    with pytest.raises(AttributeError):
        before.in_flight = 5  # type: ignore[misc]
    assert "in_flight=1" in repr(before)
    assert hash(gauge.stats()) == hash(gauge.stats())


def test_the_gauge_docstring_example_runs() -> None:
    failures, tried = doctest.testmod(
        types.ModuleType("gauge_doc", Gauge.__doc__), extraglobs={"Gauge": Gauge}
    )
    assert tried > 0 and failures == 0


def test_exception_hierarchy() -> None:
    assert issubclass(brakes.Overloaded, brakes.BrakesError)
    assert issubclass(brakes.RateLimited, brakes.Overloaded)
    assert issubclass(brakes.BrakesError, Exception)
    assert brakes.Overloaded("x").retry_after is None
    assert brakes.Overloaded.__module__ == "brakes"


def test_a_caller_queued_for_more_than_a_lowered_limit_holds_up_nobody() -> None:
    """It keeps its place for when the limit rises again; meanwhile callers
    behind it, and new ones, take the permits it could never use."""
    gauge = Gauge(2)
    assert gauge.try_acquire(2)
    heavy_done = threading.Event()

    def heavy() -> None:
        gauge.acquire_blocking(2)
        heavy_done.set()

    thread = threading.Thread(target=heavy)
    thread.start()
    wait_until(lambda: gauge.waiting == 1)

    async def light() -> None:
        waiter = asyncio.ensure_future(gauge.acquire(timeout=30))
        await asyncio.sleep(0)
        gauge.limit = 1
        gauge.release(2)
        await waiter  # behind the heavy caller, yet granted
        assert (gauge.in_flight, gauge.waiting) == (1, 1)
        assert not gauge.try_acquire()
        gauge.release()
        assert gauge.try_acquire()  # nobody who fits is in line
        gauge.release()

    asyncio.run(light())
    assert not heavy_done.is_set()
    gauge.limit = 2
    thread.join(timeout=30)
    assert heavy_done.is_set() and gauge.in_flight == 2
    gauge.release(2)
