"""Every example in a docstring of brakes runs as written (doctest)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import brakes


def modules() -> list[ModuleType]:
    names = ["brakes"] + [
        info.name
        for info in pkgutil.walk_packages(brakes.__path__, "brakes.")
        # The command line runs the demo when imported as a program.
        if info.name != "brakes.__main__"
    ]
    found = []
    for name in names:
        try:
            found.append(importlib.import_module(name))
        except ImportError as missing:
            if missing.name not in {"prometheus_client", "opentelemetry", "django"}:
                raise
    return found


def examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder()
    found = {}
    for module in modules():
        for test in finder.find(module):
            # Native classes show up under every module that re-exports them.
            if test.examples and test.name not in found:
                found[test.name] = test
    return sorted(found.values(), key=lambda test: test.name)


EXAMPLES = examples()


def test_the_public_classes_have_examples() -> None:
    names = {test.name for test in EXAMPLES}
    for name in (
        "brakes.Gauge",
        "brakes.TokenBucket",
        "brakes.Queue",
        "brakes.Pipeline",
        "brakes.RetryBudget",
    ):
        assert name in names


@pytest.mark.parametrize("test", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_docstring_example_runs(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0, f"{test.name} failed its example"
