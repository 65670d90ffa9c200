"""The artefacts `make dist` builds: the wheel installs and works where no
compiler is, its tags are what its symbols allow, and the sdist builds.

They test what is in `dist/`. Without it they are skipped, unless
BRAKES_REQUIRE_DIST is set, as `.ci/run` sets it after `make dist`: then a
missing artefact fails.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile

import pytest

ROOT = pathlib.Path(__file__).parent.parent
DIST = ROOT / "dist"
SMOKE_TEST = ROOT / "scripts" / "smoke_test.py"
VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
COMPILERS = ("cc", "gcc", "clang", "cargo", "rustc", "zig")


def _one(pattern: str) -> pathlib.Path:
    found = sorted(DIST.glob(pattern))
    if not found:
        if os.environ.get("BRAKES_REQUIRE_DIST"):
            pytest.fail(f"no {pattern} in {DIST}: run `make dist` first")
        pytest.skip(f"no {pattern} in {DIST} (`make dist` builds it)")
    assert len(found) == 1, f"more than one {pattern} in {DIST}: {found}"
    return found[0]


def _fresh_venv(folder: pathlib.Path, base: str = sys.executable) -> pathlib.Path:
    """A new virtualenv of the interpreter `base`, with pip and nothing else."""
    if base == sys.executable:
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    else:
        made = subprocess.run(
            [base, "-m", "venv", "--clear", str(folder)], capture_output=True, timeout=300
        )
        assert made.returncode == 0, made.stderr
    return folder / "bin" / "python"


def _cpython(minor: int) -> str | None:
    """An interpreter of CPython 3.minor on this machine, or None."""
    if sys.version_info[:2] == (3, minor):
        return sys.executable
    candidates = [shutil.which(f"python3.{minor}")]
    pyenv = pathlib.Path(os.environ.get("PYENV_ROOT", pathlib.Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv.glob(f"versions/3.{minor}.*/bin/python3"))]
    for candidate in filter(None, candidates):
        # A pyenv shim of a version not selected fails; so does a broken one.
        probe = subprocess.run(
            [
                candidate,
                "-c",
                "import sys, venv; print(sys.implementation.name, *sys.version_info[:2])",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode == 0 and probe.stdout.split() == ["cpython", "3", str(minor)]:
            return candidate
    return None


def _smoke(python: pathlib.Path, env: dict[str, str], cwd: pathlib.Path) -> str:
    """Runs the smoke test with `python`, isolated from the repository."""
    result = subprocess.run(
        [str(python), "-I", str(SMOKE_TEST), str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_wheel_is_one_abi3_manylinux2014_wheel_of_this_version() -> None:
    wheel = _one("brakes-*.whl")
    name, version, python_tag, abi_tag, platforms = wheel.stem.split("-")
    assert (name, version) == ("brakes", VERSION)
    # One wheel for every CPython from 3.11.
    assert (python_tag, abi_tag) == ("cp311", "abi3")
    assert "manylinux_2_17_x86_64" in platforms.split(".")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"brakes-{VERSION}.dist-info/METADATA").decode()
    assert {
        "brakes/__init__.py",
        "brakes/_brakes.abi3.so",
        "brakes/_brakes.pyi",
        "brakes/py.typed",
        f"brakes-{VERSION}.dist-info/licenses/LICENSE",
    } <= names
    assert not [n for n in names if n.startswith(("tests/", "src/", "docs/"))]
    assert "Requires-Python: >=3.11" in metadata
    assert "License-Expression: MIT" in metadata


def test_auditwheel_finds_the_wheel_consistent_with_its_tag() -> None:
    wheel = _one("brakes-*.whl")
    auditwheel = shutil.which("auditwheel") or shutil.which(
        "auditwheel", path=str(ROOT / "target" / "dist-venv" / "bin")
    )
    if auditwheel is None:
        pytest.fail("auditwheel is not installed (it is in the test extra)")
    result = subprocess.run(
        [auditwheel, "show", str(wheel)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    said = " ".join(result.stdout.split())
    match = re.search(r'consistent with the following platform tag: "([^"]+)"', said)
    assert match, said
    # The symbols the library needs allow glibc 2.17: RHEL 7 and 8, Debian 10 and 11, AL2.
    assert match.group(1) == "manylinux_2_17_x86_64", said


def _install_wheel(python: pathlib.Path, wheel: pathlib.Path, env: dict[str, str]) -> str:
    """pip's output; an assertion error if pip fails."""
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--only-binary=:all:", str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        cwd=python.parent,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return install.stdout


@pytest.mark.slow
@pytest.mark.parametrize("minor", [11, 12, 13, 14])
def test_the_wheel_installs_and_works_with_no_compiler_on_path(
    tmp_path: pathlib.Path, minor: int
) -> None:
    """The one abi3 wheel serves every CPython from 3.11 this machine has."""
    wheel = _one("brakes-*.whl")
    base = _cpython(minor)
    if base is None:
        pytest.skip(f"no CPython 3.{minor} on this machine")
    python = _fresh_venv(tmp_path / "venv", base)
    # Only the virtualenv's own programs: no compiler, no cargo.
    env = {"PATH": str(python.parent), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    assert not [c for c in COMPILERS if shutil.which(c, path=env["PATH"])]
    _install_wheel(python, wheel, env)
    out = _smoke(python, env, tmp_path)
    assert f"brakes {VERSION} from {tmp_path / 'venv'}" in out
    assert "smoke test passed" in out


@pytest.mark.slow
def test_the_wheel_refuses_cpython_before_3_11(tmp_path: pathlib.Path) -> None:
    wheel = _one("brakes-*.whl")
    base = _cpython(10)
    if base is None:
        pytest.skip("no CPython 3.10 on this machine")
    python = _fresh_venv(tmp_path / "venv", base)
    env = {"PATH": str(python.parent), "HOME": str(tmp_path)}
    with pytest.raises(AssertionError, match="is not a supported wheel on this platform"):
        _install_wheel(python, wheel, env)


def test_the_sdist_holds_what_a_build_needs_and_nothing_built() -> None:
    sdist = _one("brakes-*.tar.gz")
    assert sdist.name == f"brakes-{VERSION}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    assert {
        "Cargo.toml",
        "Cargo.lock",
        "pyproject.toml",
        "LICENSE",
        "README.md",
        "PKG-INFO",
        "src/lib.rs",
        "python/brakes/__init__.py",
        "python/brakes/_brakes.pyi",
    } <= names
    assert not [n for n in names if n.endswith(".so") or n.startswith(("target/", ".venv/"))]


@pytest.mark.slow
def test_the_sdist_builds_and_installs_in_a_clean_venv(tmp_path: pathlib.Path) -> None:
    """`pip install brakes-X.tar.gz`: pip fetches maturin and cargo compiles."""
    sdist = _one("brakes-*.tar.gz")
    python = _fresh_venv(tmp_path / "venv")
    env = dict(os.environ)
    # Compiled crates are kept between runs; the sdist's own files are what is built.
    env["CARGO_TARGET_DIR"] = str(ROOT / "target" / "sdist-check")
    env.pop("VIRTUAL_ENV", None)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-cache-dir", str(sdist)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=1200,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    out = _smoke(python, {"PATH": str(python.parent), "HOME": str(tmp_path)}, tmp_path)
    assert f"brakes {VERSION} from {tmp_path / 'venv'}" in out
