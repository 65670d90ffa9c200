"""`python -m brakes demo`: a web server past its capacity, with and without brakes.

The server is uvicorn, started in this process, in a thread of its own. Its
one endpoint does 20 ms of work on a back end that serves `workers` requests
at a time (a database pool, say), so the server can answer at most
`workers / 0.02` requests per second. A load generator (httpx, async) sends
requests on a fixed schedule, whatever the answers (an open loop, as real
clients do), at a rate that rises step by step to 3 times that capacity. The
load generator runs in a child process, as clients run elsewhere, so that it
does not take the server's GIL.

It runs twice: once with nothing in front of the app, where requests queue
for the back end without end, and once behind
`brakes.asgi.LoadShed(gauge=Gauge(workers, max_wait=0.2))`, which lets
`workers` requests in at once, lets others wait up to 200 ms for a slot, and
answers the rest at once with 503. For each step it prints the offered rate,
the goodput (200 answers within a second, per second), the count of each
status, and the p50/p99 latency of the requests that got 200, measured from
the moment each was due to be sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import resource
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from brakes._brakes import Gauge

STEPS = (0.5, 1.0, 1.5, 2.0, 3.0)
"""Offered load of each step, as a multiple of the server's capacity."""

DEADLINE_MS = 1000.0
"""Answers later than this do not count towards goodput."""

CLIENTS = 32
"""How many httpx clients the load generator sends from, in turn."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class Step:
    """What one load step saw."""

    offered_rate: float
    seconds: float
    statuses: Counter[int | str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def goodput(self) -> float:
        """Requests answered 200 within `DEADLINE_MS` of being due, per second:
        a later answer finds a user gone or a client timed out."""
        return sum(1 for ms in self.latencies_ms if ms <= DEADLINE_MS) / self.seconds

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class Run:
    """One pass of the load over the server."""

    name: str
    steps: list[Step]


class _Backend:
    """The endpoint: `work_seconds` of work on a back end with `workers` slots."""

    def __init__(self, workers: int, work_seconds: float) -> None:
        self.workers = workers
        self.work_seconds = work_seconds
        self._slots: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        async with self._slots:
            await asyncio.sleep(self.work_seconds)
        body = b"done\n"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[str]:
    """Runs `app` under uvicorn in a thread; yields its base URL."""
    import uvicorn

    # With proto=IPPROTO_TCP (not 0) asyncio sets TCP_NODELAY on each connection;
    # without it every response split in two sends waits out a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    ready = threading.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            ready.set()

    server = Server(uvicorn.Config(app, log_level="warning", lifespan="off", backlog=4096))
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="uvicorn", daemon=True
    )
    thread.start()
    try:
        if not ready.wait(10):
            raise RuntimeError("uvicorn did not start")
        host, port = sock.getsockname()
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


async def _load(url: str, rates: list[float], step_seconds: float) -> list[Step]:
    """Sends requests on schedule, step by step, and waits for every answer."""
    import httpx

    loop = asyncio.get_running_loop()
    steps = [Step(rate, step_seconds) for rate in rates]
    async with contextlib.AsyncExitStack() as stack:
        # Many clients with small pools: one pool of hundreds of connections
        # spends more time choosing a connection than sending the request.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, limits=limits, timeout=60)
            )
            for _ in range(CLIENTS)
        ]
        # A request from each first, so that connections are open before the clock starts.
        await asyncio.gather(*(client.get("/") for client in clients))
        start = loop.time() + 0.05

        async def request(client: httpx.AsyncClient, step: Step, due: float) -> None:
            try:
                status: int | str = (await client.get("/")).status_code
            except httpx.HTTPError:
                status = "error"
            done = loop.time()
            step.statuses[status] += 1
            if status == 200:
                step.latencies_ms.append((done - due) * 1000)

        tasks: list[asyncio.Task[None]] = []
        for index, step in enumerate(steps):
            opens = start + index * step_seconds
            for n in range(round(step.offered_rate * step_seconds)):
                due = opens + n / step.offered_rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                client = clients[len(tasks) % CLIENTS]
                tasks.append(asyncio.create_task(request(client, step, due)))
        await asyncio.gather(*tasks)
    return steps


def _load_elsewhere(url: str, rates: list[float], step_seconds: float) -> list[Step]:
    """Runs `_load` in a child process, so that the load generator and the
    server each have a core and a GIL of their own, as clients would."""
    result = subprocess.run(
        [sys.executable, "-m", "brakes.demo", url, json.dumps(rates), repr(step_seconds)],
        capture_output=True,
        text=True,
        timeout=120 + 2 * len(rates) * step_seconds,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{result.stderr}")
    steps = []
    for seen in json.loads(result.stdout):
        step = Step(seen["offered_rate"], seen["seconds"], Counter(), seen["latencies_ms"])
        for status, count in seen["statuses"]:
            step.statuses[status] = count
        steps.append(step)
    return steps


def _load_main(argv: list[str]) -> None:
    """The child process of `_load_elsewhere`: prints what each step saw."""
    url, rates, step_seconds = argv[0], json.loads(argv[1]), float(argv[2])
    _more_open_files()
    steps = asyncio.run(_load(url, rates, step_seconds))
    print(
        json.dumps(
            [
                {
                    "offered_rate": step.offered_rate,
                    "seconds": step.seconds,
                    "statuses": list(step.statuses.items()),
                    "latencies_ms": step.latencies_ms,
                }
                for step in steps
            ]
        )
    )


def _more_open_files() -> None:
    """An overloaded server without brakes holds a connection per waiting
    request: lift the soft limit on open files to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard > 0 else soft, hard))


def run_demo(
    workers: int = 2,
    work_seconds: float = 0.02,
    step_seconds: float = 2.0,
    steps: tuple[float, ...] = STEPS,
    max_wait: float = 0.2,
) -> list[Run]:
    """Runs the load over the bare app, then over the app behind `LoadShed`."""
    from brakes.asgi import LoadShed

    _more_open_files()
    capacity = workers / work_seconds
    rates = [capacity * multiple for multiple in steps]
    runs = []
    for name, app in (
        ("without brakes", _Backend(workers, work_seconds)),
        (
            f"LoadShed(gauge=Gauge({workers}, max_wait={max_wait:g}))",
            LoadShed(_Backend(workers, work_seconds), gauge=Gauge(workers, max_wait=max_wait)),
        ),
    ):
        with _serving(app) as url:
            # The clients run in a child process: they do not take the server's GIL.
            runs.append(Run(name, _load_elsewhere(url, rates, step_seconds)))
    return runs


def format_run(run: Run) -> str:
    header = (
        f"{'offered/s':>10}{'good/s':>8}{'200':>7}{'429':>6}{'503':>6}{'failed':>7}"
        f"{'p50 ms':>9}{'p99 ms':>9}"
    )
    lines = [run.name, header, "-" * len(header)]
    for step in run.steps:
        s = step.statuses
        lines.append(
            f"{step.offered_rate:>10.0f}{step.goodput:>8.0f}{s[200]:>7}{s[429]:>6}"
            f"{s[503]:>6}{s['error']:>7}{step.percentile_ms(0.50):>9.0f}"
            f"{step.percentile_ms(0.99):>9.0f}"
        )
    return "\n".join(lines)


def plot(runs: list[Run], path: str) -> None:
    """Latency and goodput against offered load, both runs, as a PNG."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'brakes[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, goodput) = plt.subplots(1, 2, figsize=(11, 4.2))
    for run, colour in zip(runs, ("tab:red", "tab:blue"), strict=False):
        offered = [step.offered_rate for step in run.steps]
        latency.plot(
            offered,
            [s.percentile_ms(0.99) for s in run.steps],
            "o-",
            color=colour,
            label=f"p99, {run.name}",
        )
        latency.plot(
            offered,
            [s.percentile_ms(0.50) for s in run.steps],
            "o--",
            color=colour,
            alpha=0.6,
            label=f"p50, {run.name}",
        )
        goodput.plot(offered, [s.goodput for s in run.steps], "o-", color=colour, label=run.name)
    latency.set_yscale("log")
    latency.set_xlabel("offered load (requests/s)")
    latency.set_ylabel("latency of 200 answers (ms)")
    latency.set_title("Latency of admitted requests")
    latency.legend(fontsize=7)
    goodput.set_xlabel("offered load (requests/s)")
    goodput.set_ylabel(f"200 answers within {DEADLINE_MS / 1000:g} s, per second")
    goodput.set_title("Goodput")
    goodput.set_ylim(bottom=0)
    goodput.legend(fontsize=7)
    for axes in (latency, goodput):
        axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(step_seconds: float = 2.0, plot_path: str | None = None) -> None:
    try:
        import httpx  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise SystemExit("the demo needs uvicorn and httpx: pip install 'brakes[demo]'") from None
    workers, work_seconds = 2, 0.02
    capacity = workers / work_seconds
    print(
        f"brakes demo: uvicorn serves an endpoint that does {work_seconds * 1000:.0f} ms of "
        f"work on a back end\nwith {workers} slots: {capacity:.0f} requests/s at most. "
        f"The load rises in steps of {step_seconds:g} s\nto {STEPS[-1]:g}x that capacity; "
        "latency counts from when each request was due.\n"
        f"good/s counts the 200 answers that came within {DEADLINE_MS / 1000:g} s, per second.\n"
    )
    started = time.monotonic()
    runs = run_demo(workers, work_seconds, step_seconds)
    for run in runs:
        print(format_run(run))
        print()
    bare, braked = (run.steps[-1] for run in runs)
    print(
        f"At {STEPS[-1]:g}x capacity, p99 of 200 answers: {bare.percentile_ms(0.99):.0f} ms "
        f"without brakes, {braked.percentile_ms(0.99):.0f} ms with LoadShed.\n"
        "Without brakes every request waits behind the queue, which grows as long as the\n"
        "load exceeds capacity, until no answer comes in time (good/s falls to 0). With\n"
        "brakes a request waits at most 200 ms for a slot and is otherwise answered 503\n"
        "at once, so the ones admitted stay fast and goodput stays near capacity."
    )
    if plot_path is not None:
        plot(runs, plot_path)
        print(f"\nplot written to {plot_path}")
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    _load_main(sys.argv[1:])
