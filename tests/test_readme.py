"""Every Python example in the README and on the documentation site runs as
written, and shows what it did."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
from typing import NamedTuple

import pytest

ROOT = pathlib.Path(__file__).parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]


class Block(NamedTuple):
    """A ```python block: the file it is in, the line its code starts on, the code."""

    path: pathlib.Path
    line: int
    source: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _blocks(path: pathlib.Path) -> list[Block]:
    text = path.read_text()
    return [
        Block(path, text.count("\n", 0, match.start(1)) + 1, match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    ]


BLOCKS = [block for page in PAGES for block in _blocks(page)]
IDS = [block.name for block in BLOCKS]


def test_the_readme_and_the_site_have_examples() -> None:
    assert len([b for b in BLOCKS if b.path == README]) >= 1
    assert len([b for b in BLOCKS if b.path != README]) >= 10


def test_no_block_is_missed() -> None:
    """A block fenced as `py` or `python3`, or indented in a list, would not run."""
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            fence = line.strip()
            if fence.startswith("```") and fence != "```" and line.startswith(" "):
                pytest.fail(f"{page.name}:{number}: an indented fence is not run")
            if fence in ("```py", "```python3", "```pycon", "``` python"):
                pytest.fail(f"{page.name}:{number}: fence it as ```python")


@pytest.mark.parametrize("block", BLOCKS, ids=IDS)
def test_example_runs(block: Block) -> None:
    result = subprocess.run(
        [sys.executable, "-c", block.source],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"{block.name}\n{result.stderr}"
    assert result.stdout, f"{block.name}: an example should show what it did"
