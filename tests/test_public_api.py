"""The public surface: names, stubs and types."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import brakes
import brakes.asgi
import brakes.http
import brakes.redis
import brakes.retry
import brakes.testing
import brakes.wsgi

TESTS = pathlib.Path(__file__).parent


def test_public_names_are_pinned() -> None:
    assert sorted(brakes.__all__) == [
        "AdaptiveGauge",
        "AdaptiveGaugeStats",
        "BackendError",
        "BrakesError",
        "BucketKey",
        "BucketStats",
        "CircuitBreaker",
        "CircuitBreakerStats",
        "CircuitOpen",
        "Gauge",
        "GaugeKey",
        "GaugeStats",
        "Histogram",
        "LeakyBucket",
        "LifoQueue",
        "Overloaded",
        "Pacer",
        "PacerStats",
        "Pipeline",
        "PoolStats",
        "PriorityQueue",
        "Queue",
        "QueueEmpty",
        "QueueFull",
        "QueueShutDown",
        "QueueStats",
        "RateLimited",
        "RetryBudget",
        "RetryBudgetStats",
        "StageStats",
        "SyncQueue",
        "TokenBucket",
        "WorkerPool",
    ]
    for name in brakes.__all__:
        assert getattr(brakes, name).__module__ == "brakes", name
    assert brakes.testing.__all__ == ["ManualClock"]
    assert brakes.testing.ManualClock.__module__ == "brakes.testing"
    assert brakes.redis.__all__ == ["Backend", "BackendError"]
    assert brakes.retry.__all__ == [
        "RetryBudget",
        "RetryBudgetStats",
        "retry_after",
        "wait_retry_after",
    ]
    assert brakes.redis.Backend.__module__ == "brakes.redis"


def test_http_names_are_pinned_and_need_no_web_framework() -> None:
    assert brakes.asgi.__all__ == ["LoadShed", "exception_handlers"]
    assert brakes.wsgi.__all__ == ["LoadShed"]
    assert brakes.http.__all__ == [
        "Key",
        "KeyFunction",
        "LoadShedStats",
        "client_ip",
        "header",
        "path",
    ]
    # Importing the middleware imports no framework: they are not dependencies.
    code = (
        "import sys, brakes.asgi, brakes.wsgi, brakes.http; "
        "print(sorted(m for m in ('starlette', 'fastapi', 'httpx', 'uvicorn') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_package_ships_its_type_information() -> None:
    package = pathlib.Path(brakes.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_brakes.pyi").exists()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=TESTS.parent
    )


@pytest.mark.slow
def test_a_file_using_every_public_name_passes_mypy_strict() -> None:
    result = _run("mypy", "--strict", "--no-incremental", str(TESTS / "typing_usage.py"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_stubs_match_the_native_module() -> None:
    result = _run("mypy.stubtest", "brakes._brakes")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_version_is_cargos_and_the_metadata_carries_the_licence() -> None:
    import importlib.metadata
    import re
    import tomllib

    root = pathlib.Path(__file__).parent.parent
    cargo = tomllib.loads((root / "Cargo.toml").read_text())
    assert brakes.__version__ == cargo["package"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", brakes.__version__)
    meta = importlib.metadata.metadata("brakes")
    assert meta["License-Expression"] == "MIT" or meta["License"] == "MIT"
    assert "backpressure" in (meta["Keywords"] or "")
    assert (root / "LICENSE").read_text().startswith("MIT License")
