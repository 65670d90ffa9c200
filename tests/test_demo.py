"""The demo: a real server under rising load, with and without LoadShed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from brakes.demo import run_demo


def test_loadshed_keeps_admitted_latency_bounded_where_the_bare_server_queues() -> None:
    work, max_wait = 0.02, 0.2
    bare, braked = run_demo(workers=2, work_seconds=work, step_seconds=0.6, steps=(0.5, 3.0))
    for run in (bare, braked):
        for step in run.steps:
            # Every request sent got an answer, counted once.
            assert sum(step.statuses.values()) == round(step.offered_rate * step.seconds)
            assert step.statuses["error"] == 0
    calm, overloaded = braked.steps
    assert calm.statuses[503] == 0
    assert overloaded.statuses[503] > 0 and overloaded.statuses[200] > 0
    # An admitted request waited at most max_wait for its slot, then did its work.
    assert overloaded.percentile_ms(0.99) < (max_wait + work) * 1000 + 250
    # The bare server admits everything, and its queue grows past that bound.
    assert sum(bare.steps[1].statuses.values()) == bare.steps[1].statuses[200]
    assert bare.steps[1].percentile_ms(0.99) > overloaded.percentile_ms(0.99)


def test_the_command_line_demo_prints_both_runs_and_draws_the_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "demo.png"
    result = subprocess.run(
        [sys.executable, "-m", "brakes", "demo", "--step-seconds", "0.3", "--plot", str(png)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for heading in ("offered/s", "good/s", "429", "503", "p50 ms", "p99 ms"):
        assert heading in result.stdout
    assert "without brakes" in result.stdout
    assert "LoadShed(gauge=Gauge(2, max_wait=0.2))" in result.stdout
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_bad_step_length_is_refused_by_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "brakes", "demo", "--step-seconds", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--step-seconds" in result.stderr
