"""Instruction counts for the contended asyncio scenario, under callgrind.

Wall-clock ratios on a small, shared machine wobble by tens of percent from
round to round; instruction counts do not. This runs 100 tasks through a
limit of 10 (each holding it across an `await asyncio.sleep(0)`) with brakes,
with asyncio.Semaphore, and with a no-op limiter, each in its own process
under `valgrind --tool=callgrind`, and prints the ratios: the whole run, and
the limiter's own share (the run less the no-op baseline).

    python benchmarks/instructions.py          # needs valgrind on the PATH
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

SCENARIO = """
import asyncio, sys
import brakes

class NoLimit:
    async def __aenter__(self): pass
    async def __aexit__(self, *exc): pass

async def main(kind, rounds):
    limiter = {"brakes": lambda: brakes.Gauge(10), "asyncio": lambda: asyncio.Semaphore(10),
               "none": NoLimit}[kind]()
    async def worker():
        for _ in range(rounds):
            async with limiter:
                await asyncio.sleep(0)
    await asyncio.gather(*(worker() for _ in range(100)))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def instructions(kind: str, rounds: int, folder: str) -> int:
    out = os.path.join(folder, f"callgrind.{kind}")
    result = subprocess.run(
        [
            *("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"),
            *(sys.executable, "-c", SCENARIO, kind, str(rounds)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", result.stderr)
    if not match:
        raise RuntimeError(result.stderr)
    return int(match.group(1))


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(3) as pool:
        kinds = ["none", "brakes", "asyncio"]
        totals = pool.map(lambda k: instructions(k, rounds, folder), kinds)
        counts = dict(zip(kinds, totals, strict=True))
    whole = counts["brakes"] / counts["asyncio"]
    share = (counts["brakes"] - counts["none"]) / (counts["asyncio"] - counts["none"])
    print(f"100 tasks x {rounds} rounds, limit 10, instructions counted by callgrind")
    print(f"whole run, brakes / asyncio.Semaphore:     {whole:.2f}")
    print(f"limiter's share, brakes / asyncio.Semaphore: {share:.2f}")


if __name__ == "__main__":
    main()
