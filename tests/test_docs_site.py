"""The documentation site builds with every warning an error, and its API
reference documents every public name."""

from __future__ import annotations

import importlib
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent
MODULES = [
    "brakes",
    "brakes.asgi",
    "brakes.wsgi",
    "brakes.django",
    "brakes.http",
    "brakes.redis",
    "brakes.retry",
    "brakes.testing",
    "brakes.metrics",
    "brakes.metrics.prometheus",
    "brakes.metrics.otel",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.slow
def test_every_public_name_is_in_the_api_reference(site: pathlib.Path) -> None:
    anchors: set[str] = set()
    for page in (site / "reference").rglob("*.html"):
        anchors |= set(re.findall(r'id="(brakes\.[\w.]+)"', page.read_text()))
    missing = []
    for name in MODULES:
        module = importlib.import_module(name)
        for public in module.__all__:
            obj = getattr(module, public)
            # A name re-exported from elsewhere is documented where it lives.
            home = getattr(obj, "__module__", name)
            candidates = {f"{name}.{public}", f"{home}.{public}", f"brakes.{public}"}
            if not (candidates & anchors) and name not in anchors:
                missing.append(f"{name}.{public}")
    assert not missing, missing


@pytest.mark.slow
def test_the_reference_carries_the_native_docstrings(site: pathlib.Path) -> None:
    """The Rust docstrings reach the page, and doctests render as code."""
    page = (site / "reference" / "limiters" / "index.html").read_text()
    assert "never waits" in page  # Gauge.try_acquire's docstring
    assert 'id="brakes.Gauge.acquire_blocking"' in page
    # TokenBucket's doctest is a highlighted block, its output text intact.
    start = page.index('id="brakes.TokenBucket"')
    block = page[page.index('<div class="highlight">', start) :]
    text = re.sub(r"<[^>]+>", "", block[: block.index("</div>")])
    assert "[True, True, False]" in text
