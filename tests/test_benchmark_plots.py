"""benchmarks/plot_tables.py draws every ratio table of docs/benchmarks.md, and
the page shows each chart: a table added without its chart fails here."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).parent.parent
PAGE = ROOT / "docs" / "benchmarks.md"
SCRIPT = ROOT / "benchmarks" / "plot_tables.py"


def ratio_tables(page: str) -> int:
    """Tables whose header has a median-ratio column and a spread (IQR) column,
    counted here without the script's parser."""
    lines = page.splitlines()
    return sum(
        1
        for line, below in itertools.pairwise(lines)
        if line.startswith("|") and below.startswith("|-") and "(median)" in line and "IQR" in line
    )


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("plots")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return sorted(out.iterdir())


def test_one_chart_is_drawn_per_ratio_table(drawn: list[Path]) -> None:
    assert ratio_tables(PAGE.read_text()) >= 10
    assert len(drawn) == ratio_tables(PAGE.read_text())
    for path in drawn:
        assert re.fullmatch(r"bench-[a-z0-9-]+\.png", path.name), path.name
        assert path.read_bytes().startswith(b"\x89PNG"), path.name


def test_the_page_embeds_every_chart_and_the_charts_are_in_the_docs(drawn: list[Path]) -> None:
    page = PAGE.read_text()
    embedded = set(re.findall(r"!\[[^\]]*\]\(img/(bench-[^)]+\.png)\)", page))
    assert embedded == {path.name for path in drawn}
    for path in drawn:
        assert (ROOT / "docs" / "img" / path.name).is_file(), f"run {SCRIPT.name}: {path.name}"


def test_each_chart_sits_under_its_table() -> None:
    lines = PAGE.read_text().splitlines()
    for at, line in enumerate(lines):
        if line.startswith("!") and "(img/bench-" in line:
            above = [row for row in lines[at - 2 : at] if row.strip()]
            assert above and above[-1].startswith("|"), f"line {at + 1}: not under a table"
