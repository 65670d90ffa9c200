"""The demo: a real server under rising load, with and without LoadShed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from brakes import demo
from brakes.demo import run_demo


def test_every_request_of_the_demo_is_answered_once_and_only_loadshed_refuses() -> None:
    # How fast the answers come depends on the machine: the latencies the demo
    # shows are measured in benchmarks/bench_http.py, not asserted here.
    bare, braked = run_demo(workers=2, work_seconds=0.02, step_seconds=0.6, steps=(0.5, 3.0))
    for run in (bare, braked):
        for step in run.steps:
            assert sum(step.statuses.values()) == round(step.offered_rate * step.seconds)
            assert len(step.latencies_ms) == step.statuses[200]
    for step in bare.steps:
        assert set(step.statuses) == {200}, "nothing in front of the app refuses"
    for step in braked.steps:
        assert set(step.statuses) <= {200, 503}


def test_the_load_runs_in_a_child_process_not_beside_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def in_the_server(*args: object) -> None:
        raise AssertionError("the load generator ran in the server's process")

    monkeypatch.setattr(demo, "_load", in_the_server)
    bare, braked = demo.run_demo(workers=2, work_seconds=0.02, step_seconds=0.3, steps=(0.5,))
    for run in (bare, braked):
        assert sum(run.steps[0].statuses.values()) == round(run.steps[0].offered_rate * 0.3)


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


def test_no_command_prints_the_help_and_succeeds() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "brakes"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m brakes")
    assert "demo" in result.stdout and result.stderr == ""
