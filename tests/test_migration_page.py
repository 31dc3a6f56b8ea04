"""docs/migration.md's table, run: every 0.11 snippet does what its row says, on every backend.

How the page is read:

- the table is the one whose header is `| 0.11 code | now | new form |`; a row whose first cell
  holds no code (`| **Exceptions** | | |`) heads a group of rows;
- a row's first cell is its snippet: code spans separated by `<br>`, one per line, each
  preceded by one `&emsp;` per level of indentation (four spaces);
- its second cell states the outcome, and starts with one of four words in bold: **works**,
  **warns**, **raises** or **changed**. Each **warns** in the cell is followed by the start of
  a `DeprecationWarning`'s message in a code span; a **raises** by the exception's type and
  the start of its message: **raises** `TypeError`: `message start`;
- the snippet runs as the body of a coroutine (top-level `await` allowed), in a namespace made
  fresh by the page's python block that follows `<!-- migration: names -->`, after 0.11's
  import paths are forgotten so that importing one warns again.

A row passes when its snippet issues exactly the warnings the row quotes, in that order, each
pointing at the snippet's own code, and raises what the row says, or nothing when it says no
**raises**. A **changed** row without **raises** states its outcome with the snippet's own
`assert`s; any row may add some.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import linecache
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

PAGE = Path(__file__).resolve().parent.parent / "docs" / "migration.md"
HEADER = "| 0.11 code | now | new form |"
NAMES_MARKER = "<!-- migration: names -->"
OUTCOMES = ("works", "warns", "raises", "changed")

OUTCOME = re.compile(r"\*\*(\w+)\*\*")
WARNS = re.compile(r"\*\*warns\*\*\s*(`+)(?P<message>.+?)\1")
RAISES = re.compile(r"\*\*raises\*\*\s*`(?P<type>\w+)`:?\s*(`+)(?P<message>.+?)\2")
CODE_LINE = re.compile(r"^(?P<indent>(?:&emsp;)*)(?P<fence>`+) ?(?P<code>.+?) ?(?P=fence)$")
INDENT = "&emsp;"

# Warnings that point at anyio's task runner, not at the snippet: the loop calls
# `bridge.start()` when a task group starts it, so no line of the snippet is on its stack.
POINTS_AT_THE_TASK = ("await bridge.start() is deprecated",)


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the table: its snippet and the outcome it states."""

    line: int  # 1-based line of the page
    code: str
    now: str

    @property
    def outcome(self) -> str:
        match = OUTCOME.match(self.now)
        return match[1] if match else ""

    @property
    def warnings(self) -> list[str]:
        return [match["message"] for match in WARNS.finditer(self.now)]

    @property
    def raises(self) -> tuple[str, str] | None:
        found = [(match["type"], match["message"]) for match in RAISES.finditer(self.now)]
        assert len(found) <= 1, f"line {self.line}: one **raises** at most"
        return found[0] if found else None

    @property
    def id(self) -> str:
        return f"L{self.line}:{self.code.splitlines()[0][:40]}"


def snippet(cell: str, line: int) -> str:
    """The code of a first cell: one code span per line, indented by `&emsp;`s."""
    if "\\|" in cell:  # Python-Markdown shows the backslash of `\|` inside code
        raise ValueError(f"line {line}: a `|` in a cell shows as `\\|`: write code without one")
    lines: list[str] = []
    for part in cell.split("<br>"):
        match = CODE_LINE.match(part.strip())
        if match is None:
            raise ValueError(f"line {line}: not a code span and its indentation: {part!r}")
        depth = len(match["indent"]) // len(INDENT)
        lines.append("    " * depth + match["code"])
    return "\n".join(lines) + "\n"


def table_rows(text: str) -> list[Row]:
    """The rows of the page's table that hold a snippet."""
    lines = text.splitlines()
    start = lines.index(HEADER)
    rows: list[Row] = []
    for number, line in enumerate(lines[start + 2 :], start=start + 3):
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 3:
            raise ValueError(f"line {number}: {len(cells)} cells, not 3")
        if "`" in cells[0]:  # else a heading row
            rows.append(Row(number, snippet(cells[0], number), cells[1]))
    return rows


def names_block(text: str) -> tuple[int, str]:
    """The line of the names block's opening fence, and its code."""
    lines = text.splitlines()
    marker = lines.index(NAMES_MARKER)
    fence = next(n for n in range(marker + 1, len(lines)) if lines[n].strip())
    assert lines[fence] == "```python", f"a ```python block must follow {NAMES_MARKER}"
    end = lines.index("```", fence + 1)
    return fence + 1, "".join(f"{line}\n" for line in lines[fence + 1 : end])


TEXT = PAGE.read_text(encoding="utf-8")
ROWS = table_rows(TEXT)
NAMES_LINE, NAMES = names_block(TEXT)


def names() -> dict[str, Any]:
    """A fresh namespace for one snippet; tracebacks point at the page's lines."""
    namespace: dict[str, Any] = {"__name__": "migration_snippet"}
    exec(compile("\n" * NAMES_LINE + NAMES, str(PAGE), "exec"), namespace)
    return namespace


def forget_old_modules() -> None:
    """Make the next import of a 0.11 path a first import, which warns again."""
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if spec is not None and str(spec.origin).startswith("0.11's path"):
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent in sys.modules:  # or `from parent import child` would find it there
                vars(sys.modules[parent]).pop(child, None)


def check_statement(row: Row) -> None:
    """The outcome word agrees with what the cell quotes."""
    assert row.outcome in OUTCOMES, f"line {row.line}: start `now` with one of {OUTCOMES}"
    if row.outcome == "works":
        assert not row.warnings, f"line {row.line}: a **works** row quotes no warning"
    if row.outcome == "warns":
        assert row.warnings, f"line {row.line}: quote the warning after **warns**"
    if row.outcome == "raises":
        assert row.raises is not None, f"line {row.line}: say what **raises**"
    if row.outcome == "changed" and row.raises is None:
        assert "assert " in row.code, f"line {row.line}: state the change with an assert"


async def run_snippet(
    row: Row, filename: str, namespace: dict[str, Any]
) -> tuple[list[warnings.WarningMessage], Exception | None]:
    """Run the row's snippet; the warnings it issued, and what it raised (or None)."""
    linecache.cache[filename] = (len(row.code), None, row.code.splitlines(True), filename)
    code = compile(row.code, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    forget_old_modules()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with anyio.fail_after(5):
                result = eval(code, namespace)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            return caught, exc
    return caught, None


def check_warnings(row: Row, caught: list[warnings.WarningMessage], filename: str) -> None:
    issued = [(w.category, str(w.message), w.filename) for w in caught]
    assert [category for category, _, _ in issued] == [DeprecationWarning] * len(issued), issued
    messages = [message for _, message, _ in issued]
    assert len(messages) == len(row.warnings), (row.warnings, messages)
    for message, start in zip(messages, row.warnings, strict=True):
        assert message.startswith(start), (start, message)
    for _, message, where in issued:
        if not message.startswith(POINTS_AT_THE_TASK):
            assert where == filename, f"{message!r} points at {where}, not at the snippet"


def check_error(row: Row, error: Exception | None, namespace: dict[str, Any]) -> None:
    stated = row.raises
    if stated is None:
        if error is not None:
            raise AssertionError(f"line {row.line}: the row says no error: {error!r}") from error
        return
    name, start = stated
    assert error is not None, f"line {row.line}: raised nothing, the row says {name}"
    expected = namespace.get(name, getattr(builtins, name, None))
    assert type(error) is expected, f"line {row.line}: {error!r} is not a {name}"
    assert str(error).startswith(start), (start, str(error))


async def run_row(row: Row) -> None:
    """Run the row's snippet; fail unless it does what the row states."""
    check_statement(row)
    filename = f"<migration.md, the row at line {row.line}>"
    namespace = names()
    caught, error = await run_snippet(row, filename, namespace)
    check_warnings(row, caught, filename)
    check_error(row, error, namespace)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_a_011_snippet_does_what_its_row_says(row: Row, anyio_backend: Any) -> None:
    await run_row(row)


# -- the reading of the page, and rows that state a wrong outcome --------------------------------


def test_a_snippet_is_its_code_spans_one_per_line_indented_by_em_spaces() -> None:
    cell = "`async with cancel:`<br>&emsp;`for page in pages:`<br>&emsp;&emsp;``save(`x`)``"
    assert snippet(cell, 1) == "async with cancel:\n    for page in pages:\n        save(`x`)\n"
    with pytest.raises(ValueError, match="line 7: not a code span"):
        snippet("`x = 1` and some prose", 7)
    with pytest.raises(ValueError, match=r"line 8: a `\|` in a cell"):
        snippet("`a \\| b`", 8)


def test_heading_rows_are_skipped_and_every_other_row_is_read() -> None:
    text = "\n".join(
        [
            HEADER,
            "|---|---|---|",
            "| **Group** | | |",
            "| `x = 1` | **works** | the same |",
            "| `a = 2`<br>`a()` | **raises** `TypeError`: `'int' object` | `b` |",
            "",
            "| `not in the table` | **works** | |",
        ]
    )
    rows = table_rows(text)
    assert [(row.line, row.code, row.outcome) for row in rows] == [
        (4, "x = 1\n", "works"),
        (5, "a = 2\na()\n", "raises"),
    ]
    assert rows[1].raises == ("TypeError", "'int' object")


def test_the_page_has_every_outcome_and_names_for_its_snippets() -> None:
    assert {row.outcome for row in ROWS} == set(OUTCOMES)
    assert "token = CancelationToken()" in NAMES
    for start in POINTS_AT_THE_TASK:  # no exemption outlives its row
        assert any(warning.startswith(start) for row in ROWS for warning in row.warnings)


WRONG = [
    pytest.param(Row(1, "token.is_cancelation_requested()\n", "**works**"), id="works-but-warns"),
    pytest.param(
        Row(1, "token.is_cancelation_requested()\n", "**warns** `token.is_cancelled is`"),
        id="another-warning",
    ),
    pytest.param(Row(1, "x = 1\n", "**warns** `x is deprecated`"), id="warns-but-does-not"),
    pytest.param(Row(1, 'CancelationError("stopped")\n', "**works**"), id="works-but-raises"),
    pytest.param(
        Row(1, 'CancelationError("stopped")\n', "**raises** `ValueError`: `CancelationError`"),
        id="another-type",
    ),
    pytest.param(
        Row(1, 'CancelationError("stopped")\n', "**raises** `TypeError`: `reason must`"),
        id="another-message",
    ),
    pytest.param(Row(1, "x = 1\n", "**raises** `TypeError`: `x`"), id="raises-but-does-not"),
    pytest.param(Row(1, "assert token.is_cancelled\n", "**changed**"), id="its-assert-fails"),
    pytest.param(Row(1, "x = 1\n", "**changed**: says nothing"), id="changed-without-assert"),
    pytest.param(Row(1, "x = 1\n", "**fine**"), id="unknown-word"),
]


@pytest.mark.parametrize("row", WRONG)
async def test_a_row_that_states_a_wrong_outcome_fails(row: Row, anyio_backend: Any) -> None:
    with pytest.raises(AssertionError):
        await run_row(row)
