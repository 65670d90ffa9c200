"""A griffe extension: the docstrings of brakes' native classes, for the
documentation site's API reference, with their doctests shown as code.

The native module's types come from its stub, `brakes/_brakes.pyi`, which
holds the signatures but few docstrings; the docstrings are written once, in
the Rust source, and the built module carries them as `__doc__`. This
extension copies each one onto the object griffe read from the stub, so the
reference shows the stub's typed signatures with the Rust docstrings.

A doctest (`>>>` lines and the output under them) in any docstring is fenced
as Python code, so that Markdown does not read an output such as
`[True, False]` as a link.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import griffe

NATIVE = "brakes._brakes"


def _runtime_doc(owner: object, name: str) -> str | None:
    """The docstring of `owner.name` as the built module has it, or None."""
    try:
        value = inspect_static(owner, name)
    except AttributeError:
        return None
    doc = getattr(value, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return None
    # A descriptor without a docstring of its own reports its type's.
    if doc == getattr(type(value), "__doc__", None):
        return None
    return doc


def inspect_static(owner: object, name: str) -> object:
    """`owner.name` without running a descriptor (a property's own object)."""
    if isinstance(owner, type):
        for klass in owner.__mro__:
            if name in klass.__dict__:
                return klass.__dict__[name]
        raise AttributeError(name)
    return getattr(owner, name)


def fence_doctests(doc: str) -> str:
    """`doc` with each run of doctest lines fenced as a Python block."""
    out: list[str] = []
    in_doctest = False
    for line in inspect.cleandoc(doc).splitlines():
        if line.startswith(">>>") and not in_doctest:
            out.append("```python")
            in_doctest = True
        elif in_doctest and not line.strip():
            out.append("```")
            in_doctest = False
        out.append(line)
    if in_doctest:
        out.append("```")
    return "\n".join(out)


def _fill(obj: griffe.Object | griffe.Alias, doc: str | None) -> None:
    if doc is not None and not isinstance(obj, griffe.Alias):
        obj.docstring = griffe.Docstring(inspect.cleandoc(doc), parent=obj)


def _fence_all(obj: griffe.Object) -> None:
    if obj.docstring is not None and ">>>" in obj.docstring.value:
        obj.docstring = griffe.Docstring(fence_doctests(obj.docstring.value), parent=obj)
    for member in obj.members.values():
        if not isinstance(member, griffe.Alias):
            _fence_all(member)


class NativeDocstrings(griffe.Extension):
    """Fills the stub's objects with the built module's docstrings."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "brakes":
            return
        native = pkg.get_member("_brakes")
        if isinstance(native, griffe.Module):
            self._fill_native(native)
        _fence_all(pkg)

    def _fill_native(self, native: griffe.Module) -> None:
        module = importlib.import_module(NATIVE)
        for name, obj in native.members.items():
            if isinstance(obj, griffe.Alias) or not hasattr(module, name):
                continue
            _fill(obj, _runtime_doc(module, name))
            if isinstance(obj, griffe.Class):
                runtime = getattr(module, name)
                for member_name, member in obj.members.items():
                    if member_name.startswith("_") and member_name != "__init__":
                        continue
                    if isinstance(member, griffe.Alias):
                        continue
                    _fill(member, _runtime_doc(runtime, member_name))
