"""Limits shared by every process and host that points at one Redis.

A limit held in one process's memory limits that process: a service run as
8 worker processes gets 8 times the limit it asked for. Give a bucket or a
gauge a `Backend` and a `name`, and every process that builds the same
limiter with that name on the same Redis shares one limit::

    from brakes import Gauge, TokenBucket
    from brakes.redis import Backend

    backend = Backend("redis://127.0.0.1:6379/0", on_error="local")
    api = TokenBucket(100, burst=20, backend=backend, name="api")
    db = Gauge(10, max_wait=0.5, backend=backend, name="db", lease=30.0)

The limiters keep their whole protocol (`try_acquire`, `await acquire`,
`acquire_blocking`, `with`, `async with`, `@decorator`, `key=`, `max_wait`,
`stats()`), and their arithmetic: Redis keeps the same exact bucket state as
a local bucket, on Redis's own clock. The documentation's page "Several
worker processes" says what each `on_error` mode does, the order waiters are
served in, and what a lease is.
"""

from brakes._brakes import Backend, BackendError

__all__ = ["Backend", "BackendError"]
