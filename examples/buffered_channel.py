"""A buffered channel of 3 with a slow consumer: the producer is held back.

A port of the classic buffered-channel example: a producer sends 10 items
into a channel with room for 3, and a consumer takes one every 100 ms. The
producer runs ahead only as far as the buffer lets it, then waits for the
consumer: `brakes.Queue(3)` between two threads.

    python examples/buffered_channel.py
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from brakes import Queue


def run(
    items: int = 10,
    buffer: int = 3,
    consume: Callable[[int], None] = lambda item: time.sleep(0.1),
    log: Callable[[str], None] = print,
) -> list[tuple[str, int]]:
    """Returns the events in order: ("sent", n) and ("received", n)."""
    channel: Queue[int] = Queue(buffer)
    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    def record(kind: str, n: int) -> None:
        with lock:
            events.append((kind, n))
        log(f"{kind} {n}")

    def produce() -> None:
        for n in range(items):
            channel.put_blocking(n)
            record("sent", n)
        channel.shutdown()  # Go's close(ch): the consumer's loop ends

    producer = threading.Thread(target=produce)
    producer.start()
    for item in channel:  # for item := range ch
        record("received", item)
        consume(item)
    producer.join()
    return events


if __name__ == "__main__":
    run()
