"""`CircuitBreaker`: the Python half, around the native state machine."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from brakes._brakes import CircuitBreakerStats, CircuitOpen, _Breaker, _Permit
from brakes._checks import check_name
from brakes._log import Throttle, log

P = ParamSpec("P")
T = TypeVar("T")

State = Literal["closed", "open", "half_open", "disabled", "forced_open"]


class _StateChanges:
    """Counts a breaker's changes of state and logs them on `brakes.breaker`
    (WARNING on opening, INFO otherwise), throttled so that a flapping
    breaker writes a bounded number of lines."""

    __slots__ = ("counts", "label", "throttle")

    def __init__(self, name: str | None) -> None:
        self.label = repr(name) if name is not None else "(unnamed)"
        self.counts: dict[str, int] = {}
        self.throttle = Throttle()

    def __call__(self, old: str, new: str) -> None:
        self.counts[new] = self.counts.get(new, 0) + 1
        level = logging.WARNING if new in ("open", "forced_open") else logging.INFO
        log(
            "breaker",
            self.throttle,
            level,
            "circuit breaker %s: %s -> %s",
            self.label,
            old,
            new,
            what="changes of state",
        )


def _exception_types(name: str, value: object) -> tuple[type[BaseException], ...]:
    types = (value,) if isinstance(value, type) else value
    if not isinstance(types, tuple) or not all(
        isinstance(t, type) and issubclass(t, BaseException) for t in types
    ):
        raise TypeError(f"{name} must be an exception class or a tuple of them, got {value!r}")
    return types


class CircuitBreaker:
    """Stops calling what keeps failing, with resilience4j's semantics.

    Closed, it lets every call in and keeps their outcomes in a sliding
    window: the last `window_size` calls (`window="count"`), or the calls of
    the last `window_size` seconds in one-second buckets (`window="time"`).
    Once the window holds `minimum_calls` calls (for a count window, at most
    its size), a failure rate at or above `failure_rate`, or a rate of calls
    slower than `slow_call_duration` seconds (strictly) at or above
    `slow_call_rate`, opens it. Open, it refuses every call at once with
    `CircuitOpen`, whose `retry_after` is the time left open. After
    `open_for` seconds the next call moves it to half-open, which lets in
    exactly `half_open_calls` trial calls in all and refuses the others; once
    they have all ended it closes (a fresh window) or opens again, by the
    same rates over the trials.

    A call that raises an exception in `ignore` counts as neither; one that
    raises an exception not in `record` counts as a success, and so do calls
    that return. A cancelled or interrupted call (an exception that is not an
    `Exception`) counts as neither. A call that started while closed and ends
    while open is still recorded in the window. One breaker is shared by
    threads and by tasks on any number of event loops, with exact counts.

    Use it as `with` / `async with`, as a decorator on sync or async
    functions, or through `call(fn, ...)` / `await call_async(fn, ...)`.
    `on_state_change(callback)` has `callback(old, new)` called with the
    state names, in the thread that caused the change, once the breaker's
    lock is released. `force_open()`, `disable()` and `reset()` change the
    state by hand.

    >>> from brakes import CircuitBreaker, CircuitOpen
    >>> from brakes.testing import ManualClock
    >>> clock = ManualClock()
    >>> breaker = CircuitBreaker(window_size=4, minimum_calls=4, open_for=30, clock=clock)
    >>> changes = []
    >>> breaker.on_state_change(lambda old, new: changes.append((old, new)))
    >>> def fails():
    ...     raise ConnectionError("down")
    >>> for _ in range(4):
    ...     try:
    ...         breaker.call(fails)
    ...     except ConnectionError:
    ...         pass
    >>> breaker.state, changes
    ('open', [('closed', 'open')])
    >>> try:
    ...     breaker.call(fails)
    ... except CircuitOpen as refused:
    ...     refused.retry_after
    30.0
    """

    def __init__(
        self,
        *,
        failure_rate: float = 0.5,
        slow_call_rate: float = 1.0,
        slow_call_duration: float = 60.0,
        window: Literal["count", "time"] = "count",
        window_size: int = 100,
        minimum_calls: int = 100,
        open_for: float = 60.0,
        half_open_calls: int = 10,
        record: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        ignore: type[BaseException] | tuple[type[BaseException], ...] = (),
        clock: Any = None,
        name: str | None = None,
    ) -> None:
        self._name = check_name(name)
        if not isinstance(window, str):
            raise TypeError(f'window must be "count" or "time", got {window!r}')
        self._core = _Breaker(
            failure_rate,
            slow_call_rate,
            slow_call_duration,
            window,
            window_size,
            minimum_calls,
            open_for,
            half_open_calls,
            _exception_types("record", record),
            _exception_types("ignore", ignore),
            clock,
        )
        self._permits: ContextVar[tuple[_Permit, ...]] = ContextVar("permits", default=())
        self._changes = _StateChanges(self._name)
        self._core.on_state_change(self._changes)
        # The native method itself: no Python frame between the caller and fn.
        self.call = self._core.call  # type: ignore[method-assign]

    if TYPE_CHECKING:

        def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
            """Calls `fn(*args, **kwargs)` through the breaker."""
            ...

    @property
    def state(self) -> State:
        """The state: "closed", "open", "half_open", "disabled" or "forced_open"."""
        state: State = self._core.state
        return state

    def on_state_change(self, callback: Callable[[str, str], object]) -> None:
        """Calls `callback(old, new)` on every change of state. A callback
        that raises is reported as unraisable and does not fail the call."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        self._core.on_state_change(callback)

    def force_open(self) -> None:
        """Refuses every call until `reset()` or `disable()`."""
        self._core.force_open()

    def disable(self) -> None:
        """Lets every call in and records nothing until `reset()` or `force_open()`."""
        self._core.disable()

    def reset(self) -> None:
        """Closes it, with an empty window."""
        self._core.reset()

    def stats(self) -> CircuitBreakerStats:
        """The state, the window's rates and the counts since the start."""
        return self._core.stats()

    def transitions(self) -> dict[str, int]:
        """How many times the breaker entered each state since it was made."""
        return dict(self._changes.counts)

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Awaits `fn(*args, **kwargs)` through the breaker."""
        permit = self._core.enter()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as error:
            self._core.exit(permit, error)
            raise
        self._core.exit(permit, None)
        return result

    def __enter__(self) -> CircuitBreaker:
        permit = self._core.enter()
        self._permits.set((*self._permits.get(), permit))
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        permits = self._permits.get()
        self._permits.set(permits[:-1])
        self._core.exit(permits[-1], error)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        self.__exit__(kind, error, traceback)

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorates a function (sync or async) so that its calls go through the breaker."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                return await self.call_async(fn, *args, **kwargs)

            return run_async  # type: ignore[return-value]

        call = self._core.call

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            return call(fn, *args, **kwargs)  # type: ignore[no-any-return]

        return run

    @property
    def name(self) -> str | None:
        """The breaker's name (in reprs, logs and metrics), or None."""
        return self._name

    def __repr__(self) -> str:
        named = f" name={self._name!r}" if self._name is not None else ""
        return f"<brakes.CircuitBreaker{named} state={self.state}>"


CircuitBreaker.__module__ = "brakes"
__all__ = ["CircuitBreaker", "CircuitBreakerStats", "CircuitOpen"]
