"""The API reference documents exactly the public API, and each public name has a docstring."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import hother.cancelable

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
ENTRY = re.compile(r"^:::[ \t]+hother\.cancelable\.(\w+)[ \t]*$", re.MULTILINE)
PUBLIC = sorted(hother.cancelable.__all__)


def _reference_entries() -> list[str]:
    return ENTRY.findall(REFERENCE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_is_in_the_reference(name: str) -> None:
    assert name in _reference_entries(), f"add `::: hother.cancelable.{name}` to {REFERENCE.name}"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_has_a_docstring(name: str) -> None:
    # The object's own docstring: inspect.getdoc() would fall back to a base class's.
    docstring = getattr(hother.cancelable, name).__doc__
    assert isinstance(docstring, str)
    assert inspect.cleandoc(docstring)


def test_reference_lists_only_public_names_once() -> None:
    entries = _reference_entries()
    assert sorted(entries) == PUBLIC
