"""Every Python example in the README and on the site passes `mypy --strict`, against the
real types of the frameworks it wires brakes into.

One mypy process checks every block, each as a module of its own, with the
project's mypy settings (so Django, which ships no types, is `Any`, as for
brakes' own code). Allowed, and only that: `[method-assign]`, which mypy
reports for any wrapper of Flask's `app.wsgi_app`. A block that imports a
module that is not installed is skipped, with its name; the test extra has
every one, so none is skipped in CI.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tomllib

import pytest

from .test_readme import BLOCKS, IDS, README

PYPROJECT = README.parent / "pyproject.toml"
ALLOWED_CODE = "method-assign"


def _imported(source: str) -> list[str]:
    """The top-level modules a block imports, in order."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return list(dict.fromkeys(name.partition(".")[0] for name in names))


def _missing(source: str) -> str | None:
    """What a block imports and this environment lacks, or None."""
    for top in _imported(source):
        if importlib.util.find_spec(top) is None:
            return top
    return None


def _module(index: int) -> str:
    return f"doc_block_{index:03d}"


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy's lines for each block it checked, by module name."""
    folder = tmp_path_factory.mktemp("readme_blocks")
    names = []
    for index, block in enumerate(BLOCKS):
        if _missing(block.source) is None:
            (folder / f"{_module(index)}.py").write_text(block.source)
            names.append(_module(index))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            f"--config-file={PYPROJECT}",
            "--strict",
            f"--disable-error-code={ALLOWED_CODE}",
            "--no-incremental",
            "--cache-dir",
            str(folder / ".mypy_cache"),
            "--no-color-output",
            "--no-error-summary",
            *(f"{name}.py" for name in names),
        ],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=300,
    )
    # 0: clean, 1: errors in the blocks; anything else is mypy failing.
    assert result.returncode in (0, 1), result.stdout + result.stderr
    errors: dict[str, list[str]] = {name: [] for name in names}
    for line in result.stdout.splitlines():
        module = line.partition(".py:")[0]
        if module in errors:
            errors[module].append(line)
        else:
            pytest.fail(f"mypy said something not about a block: {result.stdout}")
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=IDS)
def test_readme_example_passes_mypy_strict(index: int, mypy_errors: dict[str, list[str]]) -> None:
    missing = _missing(BLOCKS[index].source)
    if missing is not None:
        pytest.skip(f"{missing} is not installed")
    lines = mypy_errors[_module(index)]
    assert not lines, f"the block at {BLOCKS[index].name}:\n" + "\n".join(lines)


def test_what_the_blocks_import_is_in_the_test_extra() -> None:
    """So that no block is skipped in CI, where `.[test]` is installed."""
    pyproject = tomllib.loads(PYPROJECT.read_text())
    extra = {
        re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in pyproject["project"]["optional-dependencies"]["test"]
    }
    distributions = importlib.metadata.packages_distributions()
    for block in BLOCKS:
        for top in _imported(block.source):
            if top in sys.stdlib_module_names or top == "brakes":
                continue
            provided_by = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
            assert provided_by & extra, f"{top} ({', '.join(sorted(provided_by))})"
