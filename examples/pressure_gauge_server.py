"""The pressure gauge server: at most 10 requests at once, the rest get 429.

A port of the classic Go backpressure example: a `PressureGauge` of 10 slots
guards an expensive handler; `Process` runs the work if a slot is free and
otherwise answers "no more capacity" at once, which the server turns into
"429 Too Many Requests". Here the gauge is `brakes.Gauge(10, max_wait=0)`.

    python examples/pressure_gauge_server.py        # then: curl localhost:8080/request
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from brakes import Gauge, Overloaded


def do_thing_that_should_be_limited() -> str:
    time.sleep(2)
    return "done"


def make_server(
    port: int = 8080,
    work: Callable[[], str] = do_thing_that_should_be_limited,
    gauge: Gauge | None = None,
) -> ThreadingHTTPServer:
    """A threaded HTTP server whose `/request` runs `work` through the gauge."""
    pressure = gauge if gauge is not None else Gauge(10, max_wait=0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/request":
                self.send_error(404)
                return
            try:
                with pressure:
                    status, body = 200, work()
            except Overloaded:
                status, body = 429, "Too many requests"
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


if __name__ == "__main__":
    with make_server() as server:
        print(f"listening on http://127.0.0.1:{server.server_address[1]}/request")
        server.serve_forever()
