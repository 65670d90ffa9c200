"""Type stubs for the native module `brakes._brakes`."""

from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, final, type_check_only

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

_T_co = TypeVar("_T_co", covariant=True)

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
class Acquiring(_NativeCoroutine[Literal[True] | None]):
    """The awaitable `acquire()` returns: a coroutine to asyncio."""

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

@final
class ManualClock:
    """A clock that moves only when told to."""

    def __new__(cls, start: float = 0.0) -> ManualClock: ...
    def now(self) -> float: ...
    def advance(self, seconds: float) -> None: ...

__all__ = [
    "Acquiring",
    "BrakesError",
    "BucketStats",
    "Gauge",
    "GaugeStats",
    "LeakyBucket",
    "ManualClock",
    "Overloaded",
    "RateLimited",
    "Ready",
    "TokenBucket",
    "_Bucket",
]
