"""`@gauge` on def and async def."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from brakes import Gauge, Overloaded


def test_decorated_function_keeps_name_docstring_and_signature() -> None:
    gauge = Gauge(2)

    @gauge
    def handler(request: str, *, retries: int = 3) -> str:
        """Handles one request."""
        return request

    assert handler.__name__ == "handler"
    assert handler.__doc__ == "Handles one request."
    assert str(inspect.signature(handler)) == "(request: 'str', *, retries: 'int' = 3) -> 'str'"


def test_sync_call_holds_a_permit_only_while_it_runs() -> None:
    gauge = Gauge(2)

    @gauge
    def inside() -> int:
        return gauge.in_flight

    assert inside() == 1
    assert gauge.in_flight == 0


def test_async_call_holds_a_permit_and_stays_a_coroutine_function() -> None:
    gauge = Gauge(2)

    @gauge
    async def inside(x: int) -> tuple[int, int]:
        await asyncio.sleep(0)
        return x, gauge.in_flight

    assert inspect.iscoroutinefunction(inside)
    assert asyncio.run(inside(7)) == (7, 1)
    assert gauge.in_flight == 0


def test_exception_in_a_decorated_call_still_releases() -> None:
    gauge = Gauge(1)

    @gauge
    def fails() -> None:
        raise KeyError("sync")

    @gauge
    async def fails_async() -> None:
        raise KeyError("async")

    with pytest.raises(KeyError):
        fails()
    with pytest.raises(KeyError):
        asyncio.run(fails_async())
    assert gauge.in_flight == 0


def test_max_wait_zero_makes_a_decorated_call_fail_fast_when_full() -> None:
    gauge = Gauge(1, max_wait=0)

    @gauge
    async def handler() -> str:
        return "done"

    async def main() -> list[object]:
        await gauge.acquire()
        return await asyncio.gather(handler(), return_exceptions=True)

    [result] = asyncio.run(main())
    assert isinstance(result, Overloaded)


def test_decorated_methods_bind_self() -> None:
    gauge = Gauge(1)

    class Service:
        @gauge
        def call(self, x: int) -> int:
            return x + 1

    assert Service().call(1) == 2


def test_generator_functions_are_refused_with_a_type_error() -> None:
    gauge = Gauge(1)

    def numbers():  # type: ignore[no-untyped-def]
        yield 1

    async def stream():  # type: ignore[no-untyped-def]
        yield 1

    with pytest.raises(TypeError, match="generator"):
        gauge(numbers)
    with pytest.raises(TypeError, match="generator"):
        gauge(stream)


def test_non_callables_are_refused_with_a_type_error() -> None:
    with pytest.raises(TypeError, match="decorates a function"):
        Gauge(1)(42)  # type: ignore[type-var]
