"""Every Python example in docs/ runs, on every backend, and prints what the page says.

How a page's code blocks are executed:

- every fenced ```python block in docs/**/*.md is one test case, with the id
  `<page>:L<line of its opening fence>` (for instance `getting_started.md:L42`);
- a block whose previous non-blank line is `<!-- fragment -->` is shown, not run;
- the block is exec'd in a fresh namespace whose `__name__` is "docs_block"; if that namespace
  then holds an async function `main`, the test awaits `main()` in the event loop of the
  backend under test (asyncio, uvloop, trio), so blocks never call `anyio.run` themselves;
- if the block is followed (blank lines aside) by a fenced ```text block, what the block
  printed must equal that block's content, trailing whitespace of each line ignored;
- a block that reads `REDIS_URL` from the environment finds there the URL of the suite's own
  Redis server (tests/redis_server.py), emptied before the block runs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FRAGMENT = "<!-- fragment -->"
OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})[ \t]*(?P<lang>[\w+-]*)(?P<attrs>.*)$")


@dataclass(frozen=True, slots=True)
class Fence:
    """One fenced code block of a page."""

    lang: str
    line: int  # 1-based line of the opening fence
    end: int  # 0-based index of the line after the closing fence
    source: str
    fragment: bool


@dataclass(frozen=True, slots=True)
class Example:
    """A ```python block to run, and the output its page shows for it, if any."""

    page: str
    path: Path
    line: int
    source: str
    expected_output: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:L{self.line}"


def _fences(lines: list[str]) -> list[Fence]:
    fences: list[Fence] = []
    index = 0
    previous = ""  # the last non-blank line before the current one
    while index < len(lines):
        match = OPENING.match(lines[index])
        if match is None:
            if lines[index].strip():
                previous = lines[index].strip()
            index += 1
            continue
        indent, fence = match["indent"], match["fence"]
        closing = re.compile(rf"^{re.escape(indent)}`{{{len(fence)},}}[ \t]*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if end == len(lines):
            raise ValueError(f"unclosed code fence at line {index + 1}")
        body = [line.removeprefix(indent) for line in lines[index + 1 : end]]
        fences.append(
            Fence(
                lang=match["lang"].lower(),
                line=index + 1,
                end=end + 1,
                source="".join(f"{line}\n" for line in body),
                fragment=previous == FRAGMENT,
            )
        )
        previous = lines[end].strip()
        index = end + 1
    return fences


def _followed_by_output(lines: list[str], fence: Fence, following: Fence | None) -> str | None:
    if following is None or following.lang != "text":
        return None
    between = lines[fence.end : following.line - 1]
    return following.source if not any(line.strip() for line in between) else None


def collect_examples(docs: Path = DOCS) -> list[Example]:
    examples: list[Example] = []
    for path in sorted(docs.rglob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        fences = _fences(lines)
        for position, fence in enumerate(fences):
            if fence.lang != "python" or fence.fragment:
                continue
            following = fences[position + 1] if position + 1 < len(fences) else None
            examples.append(
                Example(
                    page=path.relative_to(docs).as_posix(),
                    path=path,
                    line=fence.line,
                    source=fence.source,
                    expected_output=_followed_by_output(lines, fence, following),
                )
            )
    return examples


def _normalized(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


EXAMPLES = collect_examples()


@pytest.fixture(autouse=True)
def stamina_logs_on_stdlib_logging() -> Iterator[None]:
    """stamina logs retries with structlog, on stdout, when structlog is installed (a test
    dependency of the structlog hook): the pages show what a service without it prints."""
    try:
        from stamina import instrumentation
    except ImportError:
        yield
        return
    before = instrumentation.get_on_retry_hooks()
    instrumentation.set_on_retry_hooks([instrumentation.LoggingOnRetryHook])
    yield
    instrumentation.set_on_retry_hooks(before)


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
async def test_docs_example(
    example: Example,
    anyio_backend: Any,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "REDIS_URL" in example.source:
        server = request.getfixturevalue("redis_server")
        assert server.command("FLUSHALL") == b"+OK\r\n"  # nothing left by another block
        monkeypatch.setenv("REDIS_URL", server.url)
    # Pad with blank lines so that a traceback points at the page's own line numbers.
    code = compile("\n" * example.line + example.source, str(example.path), "exec")
    namespace: dict[str, Any] = {"__name__": "docs_block"}
    exec(code, namespace)
    main = namespace.get("main")
    if inspect.iscoroutinefunction(main):
        await main()
    if example.expected_output is not None:
        printed = capsys.readouterr().out
        assert _normalized(printed) == _normalized(example.expected_output)


def test_every_page_has_executed_examples() -> None:
    pages = {example.page for example in EXAMPLES}
    assert {"index.md", "getting_started.md", "concepts.md"} <= pages


def test_examples_leave_the_event_loop_to_the_test() -> None:
    offenders = [example.id for example in EXAMPLES if "anyio.run(" in example.source]
    assert offenders == []


def test_fragment_marker_skips_only_the_next_block() -> None:
    lines = [
        FRAGMENT,
        "```python",
        "async with Cancelable() as cancel: ...",
        "```",
        "",
        "```python",
        "print('hi')",
        "```",
        "",
        "```text",
        "hi",
        "```",
    ]
    fences = _fences(lines)
    assert [(f.lang, f.line, f.fragment) for f in fences] == [
        ("python", 2, True),
        ("python", 6, False),
        ("text", 10, False),
    ]
    assert _followed_by_output(lines, fences[1], fences[2]) == "hi\n"
    assert _followed_by_output(lines, fences[0], fences[1]) is None
