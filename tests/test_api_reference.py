"""The API reference documents exactly the public API, and each public name has a docstring.

The public API is the `__all__` of `hother.cancelable`, of `hother.cancelable.testing` and of
`hother.cancelable.instrumentation`;
`hother.cancelable.streaming` only re-exports two names of the latter, documented there.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import hother.cancelable
from hother.cancelable import instrumentation, streaming, testing

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
ENTRY = re.compile(r"^:::[ \t]+(hother\.cancelable(?:\.\w+)*)\.(\w+)[ \t]*$", re.MULTILINE)
MODULES: dict[str, ModuleType] = {
    "hother.cancelable": hother.cancelable,
    "hother.cancelable.testing": testing,
    "hother.cancelable.instrumentation": instrumentation,
}
PUBLIC = [(module, name) for module in MODULES for name in sorted(MODULES[module].__all__)]


def _reference_entries(module: str) -> list[str]:
    return [
        name
        for path, name in ENTRY.findall(REFERENCE.read_text(encoding="utf-8"))
        if path == module
    ]


@pytest.mark.parametrize(("module", "name"), PUBLIC)
def test_public_name_is_in_the_reference(module: str, name: str) -> None:
    assert name in _reference_entries(module), f"add `::: {module}.{name}` to {REFERENCE.name}"


@pytest.mark.parametrize(("module", "name"), PUBLIC)
def test_public_name_has_a_docstring(module: str, name: str) -> None:
    # The object's own docstring: inspect.getdoc() would fall back to a base class's.
    docstring = getattr(MODULES[module], name).__doc__
    assert isinstance(docstring, str)
    assert inspect.cleandoc(docstring)


@pytest.mark.parametrize("module", MODULES)
def test_reference_lists_only_public_names_once(module: str) -> None:
    assert sorted(_reference_entries(module)) == sorted(MODULES[module].__all__)


def test_every_public_name_of_the_testing_package_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from hother.cancelable.testing import *", namespace)
    assert set(testing.__all__) <= namespace.keys()


def test_the_streaming_module_is_documented_with_the_testing_package() -> None:
    assert _reference_entries("hother.cancelable.streaming") == []
    assert set(streaming.__all__) <= set(testing.__all__)
