"""The rate-limited server: a request waits up to 200 ms for a slot, then 503.

A port of the Go example that guards a handler with a weighted semaphore and
acquires it under a 200 ms context deadline: a request that gets a slot in
time is served, one that does not is answered "503 Service Unavailable".
Here the semaphore is `brakes.Gauge(limit, max_wait=0.2)`, on asyncio.

    python examples/semaphore_server.py             # then: curl localhost:8081/
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from brakes import Gauge, Overloaded


async def handle_work() -> str:
    await asyncio.sleep(0.5)
    return "done"


class RateLimitedServer:
    """A small HTTP/1.0 server: each request runs `work` inside the gauge."""

    def __init__(
        self,
        limit: int = 10,
        max_wait: float = 0.2,
        work: Callable[[], Awaitable[str]] = handle_work,
    ) -> None:
        self.gauge = Gauge(limit, max_wait=max_wait)
        self.work = work

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            try:
                async with self.gauge:
                    status, body = "200 OK", await self.work()
            except Overloaded:
                status, body = "503 Service Unavailable", "server busy"
            payload = body.encode()
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        finally:
            writer.close()

    async def serve(self, port: int = 8081) -> asyncio.Server:
        return await asyncio.start_server(self.handle, "127.0.0.1", port)


async def main() -> None:
    server = await RateLimitedServer().serve()
    port = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}/")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
