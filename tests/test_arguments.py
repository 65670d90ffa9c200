"""One rule for every argument of every primitive: a bool is not a number, an
integer beyond 64 bits is a ValueError, and each error names its argument in
its message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import brakes
from brakes import Gauge, LeakyBucket, PriorityQueue, Queue, TokenBucket
from brakes.testing import ManualClock

BIG = 2**64

CALLS: list[tuple[str, Callable[[], Any]]] = [
    ("limit", lambda: Gauge(BIG)),
    ("limit", lambda: setattr(Gauge(1), "limit", BIG)),
    ("max_wait", lambda: Gauge(1, max_wait=10**400)),
    ("n", lambda: Gauge(1).try_acquire(BIG)),
    ("n", lambda: Gauge(1).acquire_blocking(BIG)),
    ("n", lambda: Gauge(1).acquire(BIG)),
    ("n", lambda: Gauge(1).release(BIG)),
    ("timeout", lambda: Gauge(1).acquire_blocking(timeout=10**400)),
    ("rate", lambda: TokenBucket(10**400)),
    ("per", lambda: TokenBucket(1, per=10**400)),
    ("burst", lambda: TokenBucket(1, burst=BIG)),
    ("max_keys", lambda: TokenBucket(1, max_keys=BIG)),
    ("n", lambda: TokenBucket(1).try_acquire(BIG)),
    ("n", lambda: TokenBucket(1).retry_after(BIG)),
    ("capacity", lambda: LeakyBucket(1, capacity=BIG)),
    ("max_keys", lambda: LeakyBucket(1, max_keys=BIG)),
    ("maxsize", lambda: Queue(BIG)),
    ("maxsize", lambda: PriorityQueue(BIG)),
    ("max_items", lambda: Queue(1).get_batch(BIG)),
    ("max_items", lambda: Queue(1).get_batch_blocking(BIG)),
    ("seconds", lambda: ManualClock().advance(10**400)),
    ("start", lambda: ManualClock(10**400)),
    ("buffer", lambda: brakes.Pipeline([], buffer=BIG)),
    ("workers", lambda: brakes.Pipeline([]).map(str, workers=BIG)),
    ("workers", lambda: brakes.WorkerPool(BIG)),
    ("queue_size", lambda: brakes.WorkerPool(1, queue_size=BIG)),
]

BOOLS: list[tuple[str, Callable[[], Any]]] = [
    ("limit", lambda: Gauge(True)),
    ("max_wait", lambda: Gauge(1, max_wait=False)),
    ("n", lambda: Gauge(1).try_acquire(True)),
    ("timeout", lambda: Gauge(1).acquire_blocking(timeout=True)),
    ("rate", lambda: TokenBucket(True)),
    ("burst", lambda: TokenBucket(1, burst=True)),
    ("n", lambda: TokenBucket(1).try_acquire(True)),
    ("capacity", lambda: LeakyBucket(1, capacity=True)),
    ("maxsize", lambda: Queue(True)),
    ("max_items", lambda: Queue(1).get_batch(True)),
    ("linger", lambda: Queue(1).get_batch_blocking(1, linger=True)),
    ("seconds", lambda: ManualClock().advance(True)),
    ("start", lambda: ManualClock(True)),
    ("buffer", lambda: brakes.Pipeline([], buffer=True)),
    ("workers", lambda: brakes.WorkerPool(True)),
]

WRONG_TYPES: list[tuple[str, Callable[[], Any]]] = [
    ("limit", lambda: Gauge("2")),  # type: ignore[arg-type]
    ("n", lambda: Gauge(1).try_acquire(1.5)),  # type: ignore[arg-type]
    ("max_wait", lambda: Gauge(1, max_wait="1")),  # type: ignore[arg-type]
    ("rate", lambda: TokenBucket("1")),  # type: ignore[arg-type]
    ("burst", lambda: TokenBucket(1, burst=2.0)),  # type: ignore[arg-type]
    ("maxsize", lambda: Queue(1.3)),  # type: ignore[arg-type]
    ("timeout", lambda: Queue(1).get_blocking(timeout="1")),  # type: ignore[arg-type]
]


def raised(call: Callable[[], Any]) -> BaseException:
    with pytest.raises(Exception) as info:
        result = call()
        if asyncio.iscoroutine(result) or hasattr(result, "close"):
            result.close()
    return info.value


@pytest.mark.parametrize(("name", "call"), CALLS)
def test_integers_beyond_64_bits_are_a_value_error_naming_the_argument(
    name: str, call: Callable[[], Any]
) -> None:
    error = raised(call)
    assert type(error) is ValueError
    assert str(error).startswith(name + " ")


@pytest.mark.parametrize(("name", "call"), BOOLS)
def test_a_bool_is_not_a_number_anywhere(name: str, call: Callable[[], Any]) -> None:
    error = raised(call)
    assert type(error) is TypeError
    assert str(error).startswith(name + " must be ")


@pytest.mark.parametrize(("name", "call"), WRONG_TYPES)
def test_type_errors_name_the_argument_in_the_message(name: str, call: Callable[[], Any]) -> None:
    error = raised(call)
    assert type(error) is TypeError
    assert str(error).startswith(name + " must be ")
