"""A smoke test of an installed brakes: run it with the interpreter of the
environment brakes was installed into, from outside the repository.

It checks that the native module loads and that each kind of primitive does
its basic work from a thread and from asyncio. It needs nothing but brakes
and the standard library, so it runs against a wheel on any platform.
"""

from __future__ import annotations

import asyncio
import pathlib
import sys
import threading

import brakes
from brakes.testing import ManualClock


def main() -> None:
    location = pathlib.Path(brakes.__file__).resolve()
    print(f"brakes {brakes.__version__} from {location.parent}")
    if len(sys.argv) > 1:
        # The repository's root: brakes must not have been imported from it.
        root = pathlib.Path(sys.argv[1]).resolve()
        assert not location.is_relative_to(root), f"{location} is inside {root}"

    gauge = brakes.Gauge(2, max_wait=0)
    with gauge:
        assert gauge.in_flight == 1
    assert gauge.try_acquire(2) and not gauge.try_acquire()
    gauge.release(2)

    clock = ManualClock()
    bucket = brakes.TokenBucket(10, burst=2, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]
    clock.advance(0.1)
    assert bucket.try_acquire()

    queue: brakes.Queue[int] = brakes.Queue(4)

    def produce() -> None:
        for i in range(100):
            queue.put_blocking(i)

    producer = threading.Thread(target=produce)
    producer.start()

    async def consume() -> list[int]:
        return [await queue.get() for _ in range(100)]

    assert asyncio.run(consume()) == list(range(100))
    producer.join()

    with brakes.WorkerPool(2) as pool:
        assert list(pool.map(lambda x: x * x, range(5))) == [0, 1, 4, 9, 16]
    print("smoke test passed")


if __name__ == "__main__":
    main()
