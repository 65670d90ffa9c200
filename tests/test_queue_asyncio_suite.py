"""CPython's own asyncio queue tests, run against brakes' queues.

The tests come from the interpreter's `test.test_asyncio.test_queues` module,
with `asyncio.Queue`, `LifoQueue` and `PriorityQueue` replaced, for that
module only, by brakes' classes. `_getters` and `_putters` are mapped to the
number of waiting consumers and producers. Left out, on purpose:
- the repr and `_format` tests, which assert asyncio's own repr and private
  attributes, and `test_get_with_putters`, which appends to `_putters`;
- `test_float_maxsize`: asyncio accepts `maxsize=1.3`, brakes asks for an
  integer (a `TypeError` naming `maxsize`; see test_queue_basics).
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest

import brakes

test_queues = pytest.importorskip(
    "test.test_asyncio.test_queues", reason="this Python has no test suite installed"
)


class _Waiters:
    @property
    def _getters(self: Any) -> tuple[None, ...]:
        return (None,) * self.stats().getters_waiting

    @property
    def _putters(self: Any) -> tuple[None, ...]:
        return (None,) * self.stats().putters_waiting


class Queue(_Waiters, brakes.Queue[Any]):
    pass


class LifoQueue(_Waiters, brakes.LifoQueue[Any]):
    pass


class PriorityQueue(_Waiters, brakes.PriorityQueue[Any]):
    pass


def _asyncio_with_brakes_queues() -> types.ModuleType:
    patched = types.ModuleType("asyncio")
    patched.__dict__.update(asyncio.__dict__)
    patched.Queue = Queue  # type: ignore[attr-defined]
    patched.LifoQueue = LifoQueue  # type: ignore[attr-defined]
    patched.PriorityQueue = PriorityQueue  # type: ignore[attr-defined]
    return patched


class _OnBrakes:
    @classmethod
    def setUpClass(cls) -> None:
        cls._saved_asyncio = test_queues.asyncio  # type: ignore[attr-defined]
        test_queues.asyncio = _asyncio_with_brakes_queues()

    @classmethod
    def tearDownClass(cls) -> None:
        test_queues.asyncio = cls._saved_asyncio  # type: ignore[attr-defined]


class TestBasic(_OnBrakes, test_queues.QueueBasicTests):  # type: ignore[misc,name-defined]
    test_repr = None
    test_str = None


class TestGet(_OnBrakes, test_queues.QueueGetTests):  # type: ignore[misc,name-defined]
    test_get_with_putters = None


class TestPut(_OnBrakes, test_queues.QueuePutTests):  # type: ignore[misc,name-defined]
    test_float_maxsize = None


class TestLifo(_OnBrakes, test_queues.LifoQueueTests):  # type: ignore[misc,name-defined]
    pass


class TestPriority(_OnBrakes, test_queues.PriorityQueueTests):  # type: ignore[misc,name-defined]
    pass


class TestJoin(_OnBrakes, test_queues.QueueJoinTests):  # type: ignore[misc,name-defined]
    q_class = Queue
    test_format = None


class TestLifoJoin(_OnBrakes, test_queues.LifoQueueJoinTests):  # type: ignore[misc,name-defined]
    q_class = LifoQueue
    test_format = None


class TestPriorityJoin(_OnBrakes, test_queues.PriorityQueueJoinTests):  # type: ignore[misc,name-defined]
    q_class = PriorityQueue
    test_format = None


def test_the_suite_really_uses_brakes_queues() -> None:
    patched: Any = _asyncio_with_brakes_queues()
    for name in ("Queue", "LifoQueue", "PriorityQueue"):
        assert issubclass(getattr(patched, name), brakes.Queue)
    q = patched.Queue(1)
    q.put_nowait(1)
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait(2)
