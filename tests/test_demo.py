"""The demo: every caller is accounted for, and each mode behaves as it says."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from brakes.demo import run_demo


def test_each_mode_accounts_for_every_caller_and_keeps_its_promise() -> None:
    rows = asyncio.run(run_demo(callers=60, limit=5, burst_seconds=0.03, work_seconds=0.01))
    unbounded, fail_fast, bounded = rows
    for row in rows:
        assert row.admitted + row.rejected == row.callers == 60
        assert row.waited <= row.admitted
    assert unbounded.rejected == 0 and unbounded.waited > 0
    assert fail_fast.waited == 0 and fail_fast.rejected > 0
    # Admitted fail-fast callers never queued: their latency is the work alone.
    assert fail_fast.p99_ms < unbounded.p99_ms
    # Waiting up to 200 ms turns away fewer callers than not waiting at all.
    assert bounded.rejected < fail_fast.rejected


def test_the_command_line_demo_runs_and_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "brakes", "demo", "--callers", "40"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for heading in ("admitted", "waited", "rejected", "p50 ms", "p99 ms"):
        assert heading in result.stdout
    for mode in ("max_wait=None", "max_wait=0)", "max_wait=0.2"):
        assert mode in result.stdout
