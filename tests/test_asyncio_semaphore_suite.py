"""CPython's own asyncio Semaphore tests, run against a Gauge.

The tests come from the interpreter's `test.test_asyncio.test_locks` module;
`asyncio.Semaphore` and `asyncio.BoundedSemaphore` are replaced, for that
module only, by thin Gauge subclasses. A Gauge behaves as a BoundedSemaphore:
`Semaphore(value)` is modelled as a gauge with `value` free permits plus a
reserve already held, so that `release()` without a matching `acquire()`
works as an unbounded Semaphore's does. `_value` and `_waiters` are mapped to
`available` and `waiting`; only `test_repr`, which asserts asyncio's own repr
format and writes to `_waiters`, is left out.
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest

from brakes import Gauge

test_locks = pytest.importorskip(
    "test.test_asyncio.test_locks", reason="this Python has no test suite installed"
)

RESERVE = 16


class BoundedSemaphore(Gauge):
    @property
    def _value(self) -> int:
        return self.available

    @property
    def _waiters(self) -> tuple[None, ...]:
        return (None,) * self.waiting


class Semaphore(BoundedSemaphore):
    def __new__(cls, value: int = 1) -> Semaphore:
        if value < 0:
            return super().__new__(cls, value)  # type: ignore[return-value]
        gauge = super().__new__(cls, value + RESERVE)
        gauge.try_acquire(RESERVE)
        return gauge  # type: ignore[return-value]


def _asyncio_with_gauges() -> types.ModuleType:
    patched = types.ModuleType("asyncio")
    patched.__dict__.update(asyncio.__dict__)
    patched.Semaphore = Semaphore  # type: ignore[attr-defined]
    patched.BoundedSemaphore = BoundedSemaphore  # type: ignore[attr-defined]
    return patched


class TestCPythonSemaphoreSuiteOnGauge(test_locks.SemaphoreTests):  # type: ignore[misc,name-defined]
    test_repr = None  # asserts asyncio's repr format and mutates _waiters

    @classmethod
    def setUpClass(cls) -> None:
        cls._saved_asyncio = test_locks.asyncio
        test_locks.asyncio = _asyncio_with_gauges()

    @classmethod
    def tearDownClass(cls) -> None:
        test_locks.asyncio = cls._saved_asyncio


def test_the_suite_really_uses_gauges() -> None:
    patched: Any = _asyncio_with_gauges()
    sem = patched.Semaphore(0)
    assert isinstance(sem, Gauge) and sem.locked()
    sem.release()
    assert not sem.locked()
    with pytest.raises(ValueError):
        patched.BoundedSemaphore().release()
