"""Type stubs for the native module `brakes._brakes`."""

import asyncio
import queue
import sys
from collections.abc import Callable, Coroutine, Generator
from types import GenericAlias, TracebackType
from typing import Any, Generic, Literal, Self, TypeVar, final, type_check_only

from typing_extensions import disjoint_base

_F = TypeVar("_F", bound=Callable[..., Any])
_Key = str | bytes | int | None

class BrakesError(Exception):
    """Base class of every error that brakes raises on purpose."""

class Overloaded(BrakesError):
    """No capacity within the allowed wait."""

    retry_after: float | None

class RateLimited(Overloaded):
    """A rate limiter said no; `retry_after` is always known."""

class QueueFull(Overloaded, asyncio.QueueFull, queue.Full):
    """The queue has no room and the put may not wait (or its wait ran out)."""

class QueueEmpty(BrakesError, asyncio.QueueEmpty, queue.Empty):
    """The queue has no item and the get may not wait (or its wait ran out)."""

if sys.version_info >= (3, 13):
    class QueueShutDown(BrakesError, asyncio.QueueShutDown, queue.ShutDown):
        """The queue was shut down."""

else:
    class QueueShutDown(BrakesError):
        """The queue was shut down."""

_T_co = TypeVar("_T_co", covariant=True)
_T = TypeVar("_T")
_Overflow = Literal["block", "reject", "drop_new", "drop_old"]

@type_check_only
class _NativeCoroutine(Coroutine[Any, Any, _T_co]):
    """The coroutine protocol the native awaitables implement."""

    def __await__(self) -> Generator[Any, None, _T_co]: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Any: ...
    def close(self) -> None: ...

@final
class GaugeAcquire(_NativeCoroutine[Literal[True] | None]):
    """The awaitable of `Gauge.acquire()`."""

@final
class BucketAcquire(_NativeCoroutine[Literal[True] | None]):
    """The awaitable of `TokenBucket.acquire()` and `LeakyBucket.acquire()`."""

@final
class QueuePut(_NativeCoroutine[None]):
    """The awaitable of `Queue.put()`."""

@final
class QueueGet(_NativeCoroutine[Any]):
    """The awaitable of `Queue.get()`."""

@final
class QueueJoin(_NativeCoroutine[None]):
    """The awaitable of `Queue.join()`."""

@final
class QueueGetBatch(_NativeCoroutine[list[Any]]):
    """The awaitable of `Queue.get_batch()`."""

@final
class Ready(_NativeCoroutine[None]):
    """The finished awaitable `__aenter__`/`__aexit__` return on the fast path."""

@disjoint_base
class Gauge:
    """A concurrency limiter: at most `limit` permits held at once."""

    def __new__(cls, limit: int = 1, *, max_wait: float | None = None) -> Gauge: ...
    @property
    def limit(self) -> int: ...
    @limit.setter
    def limit(self, value: int) -> None: ...
    @property
    def max_wait(self) -> float | None: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def available(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    def try_acquire(self, n: int = 1) -> bool: ...
    def acquire(
        self, n: int = 1, *, timeout: float | None = None
    ) -> Coroutine[Any, Any, Literal[True]]: ...
    def acquire_blocking(self, n: int = 1, *, timeout: float | None = None) -> Literal[True]: ...
    def release(self, n: int = 1) -> None: ...
    def locked(self) -> bool: ...
    def stats(self) -> GaugeStats: ...
    def __enter__(self) -> Literal[True]: ...
    def __exit__(self, *_exc_info: object) -> None: ...
    def __aenter__(self) -> Coroutine[Any, Any, None]: ...
    def __aexit__(self, *_exc_info: object) -> Ready: ...
    def __call__(self, func: _F, /) -> _F: ...

@final
class GaugeStats:
    """A frozen snapshot of a gauge: its state and counters."""

    @property
    def limit(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def available(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def acquired(self) -> int: ...
    @property
    def waited(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def timed_out(self) -> int: ...
    @property
    def cancelled(self) -> int: ...

@disjoint_base
class _Bucket:
    """The limiter protocol both buckets share."""

    @property
    def rate(self) -> float: ...
    @property
    def per(self) -> float: ...
    @property
    def max_wait(self) -> float | None: ...
    def try_acquire(self, n: int = 1, *, key: _Key = None) -> bool: ...
    def acquire(
        self, n: int = 1, *, timeout: float | None = None, key: _Key = None
    ) -> Coroutine[Any, Any, Literal[True]]: ...
    def acquire_blocking(
        self, n: int = 1, *, timeout: float | None = None, key: _Key = None
    ) -> Literal[True]: ...
    def retry_after(self, n: int = 1, *, key: _Key = None) -> float: ...
    def stats(self) -> BucketStats: ...
    def __enter__(self) -> Literal[True]: ...
    def __exit__(self, *_exc_info: object) -> None: ...
    def __aenter__(self) -> Coroutine[Any, Any, None]: ...
    def __aexit__(self, *_exc_info: object) -> Ready: ...
    def __call__(self, func: _F, /) -> _F: ...

@disjoint_base
class TokenBucket(_Bucket):
    """Refills `rate` tokens every `per` seconds; holds at most `burst`."""

    def __new__(
        cls,
        rate: float,
        *,
        per: float = 1.0,
        burst: int | None = None,
        max_wait: float | None = None,
        clock: ManualClock | None = None,
        max_keys: int | None = None,
    ) -> TokenBucket: ...
    @property
    def burst(self) -> int: ...
    def tokens(self, key: _Key = None) -> float: ...

@disjoint_base
class LeakyBucket(_Bucket):
    """Grants exactly `per / rate` seconds apart; at most `capacity` wait."""

    def __new__(
        cls,
        rate: float,
        *,
        per: float = 1.0,
        capacity: int | None = None,
        max_wait: float | None = None,
        clock: ManualClock | None = None,
        max_keys: int | None = None,
    ) -> LeakyBucket: ...
    @property
    def capacity(self) -> int | None: ...

@final
class BucketStats:
    """A frozen snapshot of a bucket's counters."""

    @property
    def keys(self) -> int: ...
    @property
    def waiting(self) -> int: ...
    @property
    def acquired(self) -> int: ...
    @property
    def waited(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def cancelled(self) -> int: ...

@disjoint_base
class Queue(Generic[_T]):
    """A bounded queue for tasks and threads: a drop-in for asyncio.Queue."""

    def __new__(
        cls,
        maxsize: int = 0,
        *,
        overflow: _Overflow = "block",
        on_drop: Callable[[_T], object] | None = None,
    ) -> Self: ...
    def __class_getitem__(cls, item: Any) -> GenericAlias: ...
    @property
    def maxsize(self) -> int: ...
    @property
    def overflow(self) -> _Overflow: ...
    @property
    def is_shut_down(self) -> bool: ...
    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def full(self) -> bool: ...
    def put(self, item: _T) -> Coroutine[Any, Any, None]: ...
    def put_nowait(self, item: _T) -> None: ...
    def put_blocking(self, item: _T, *, timeout: float | None = None) -> None: ...
    def get(self) -> Coroutine[Any, Any, _T]: ...
    def get_nowait(self) -> _T: ...
    def get_blocking(self, *, timeout: float | None = None) -> _T: ...
    def get_batch(
        self, max_items: int, *, linger: float | None = 0.0, timeout: float | None = None
    ) -> Coroutine[Any, Any, list[_T]]: ...
    def get_batch_blocking(
        self, max_items: int, *, linger: float | None = 0.0, timeout: float | None = None
    ) -> list[_T]: ...
    def task_done(self) -> None: ...
    def join(self) -> Coroutine[Any, Any, None]: ...
    def join_blocking(self, *, timeout: float | None = None) -> None: ...
    def shutdown(self, immediate: bool = False) -> None: ...
    def stats(self) -> QueueStats: ...
    def __aiter__(self) -> Self: ...
    def __anext__(self) -> Coroutine[Any, Any, _T]: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> _T: ...

class LifoQueue(Queue[_T]):
    """A Queue that hands out the newest item first."""

class PriorityQueue(Queue[_T]):
    """A Queue that hands out the smallest item first."""

@final
class QueueStats:
    """A frozen snapshot of a queue: its state and counters."""

    @property
    def maxsize(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def unfinished(self) -> int: ...
    @property
    def putters_waiting(self) -> int: ...
    @property
    def getters_waiting(self) -> int: ...
    @property
    def put(self) -> int: ...
    @property
    def got(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def shut_down(self) -> bool: ...

@final
class ManualClock:
    """A clock that moves only when told to."""

    def __new__(cls, start: float = 0.0) -> ManualClock: ...
    def now(self) -> float: ...
    def advance(self, seconds: float) -> None: ...

__all__ = [
    "BrakesError",
    "BucketAcquire",
    "BucketStats",
    "Channel",
    "Gauge",
    "GaugeAcquire",
    "GaugeStats",
    "LeakyBucket",
    "LifoQueue",
    "ManualClock",
    "Overloaded",
    "PriorityQueue",
    "Queue",
    "QueueEmpty",
    "QueueFull",
    "QueueGet",
    "QueueGetBatch",
    "QueueJoin",
    "QueuePut",
    "QueueShutDown",
    "QueueStats",
    "RateLimited",
    "Ready",
    "Reorder",
    "Tally",
    "TokenBucket",
    "_Bucket",
]

@final
class Channel(Queue[_T]):
    """A FIFO queue between pipeline stages; `buffer=0` hands items over
    only to a consumer already waiting. Items are numbered as taken."""

    def __new__(cls, buffer: int) -> Self: ...
    def get_numbered(self) -> _NativeCoroutine[tuple[int, _T]]: ...
    def get_numbered_blocking(self, *, timeout: float | None = None) -> tuple[int, _T]: ...

@final
class Reorder:
    """Results of an ordered stage wait here for the ones before them."""

    def __new__(cls) -> Self: ...
    def push(self, number: int, result: object) -> bool: ...
    def pop(self, default: object) -> Any: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...

@final
class Tally:
    """A counter threads and tasks share without a lock."""

    def __new__(cls) -> Self: ...
    def add(self, n: int = 1) -> int: ...
    @property
    def value(self) -> int: ...
