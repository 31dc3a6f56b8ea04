#!/usr/bin/env python3
"""Instrumentation: every operation of a job as an OpenTelemetry span, printed as a tree.

A nightly job runs four steps, each a `Cancelable`, under `OpenTelemetryHook` and the
OpenTelemetry SDK's in-memory exporter:

1. `load rows` completes (its span holds one span the code made itself, `parse`);
2. `fetch prices` runs out of its 0.2 s timeout: its span says `cancelled`, reason `timeout`;
3. `send email` is cancelled by hand, from another task, with a message;
4. `render` fails with an exception: its span's status is ERROR, with the exception recorded.

The script prints the span tree (each span under its parent, with its status and why it
ended) and checks it: the names, the nesting, the statuses and the reasons. Needs the
OpenTelemetry SDK (`pip install opentelemetry-sdk`) besides the `opentelemetry` extra.

Run it with `python examples/instrumentation.py --backend asyncio|trio [--uvloop]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from hother.cancelable import Cancelable, CancelationError
from hother.cancelable.instrumentation import OpenTelemetryHook, set_hooks

# The helpers every script of the tour shares, from examples/_tour.py.
from _tour import expect, parse_args, run

STEPS = ("load rows", "fetch prices", "send email", "render")


async def job(tracer: Any) -> None:
    async with Cancelable(name="nightly job"):
        async with Cancelable(name="load rows"):
            with tracer.start_as_current_span("parse"):
                await anyio.sleep(0.05)
        try:
            async with Cancelable.with_timeout(0.2, name="fetch prices"):
                await anyio.sleep(5)  # the price service hangs
        except CancelationError as exc:
            print(f"fetch prices: {exc.reason.value}, {exc.message}")
        mail = Cancelable(name="send email")
        try:
            async with mail, anyio.create_task_group() as tasks:

                async def operator() -> None:
                    await anyio.sleep(0.1)
                    await mail.cancel(message="the operator stopped the mailing")

                tasks.start_soon(operator)
                await anyio.sleep(5)  # the mail server is slow
        except CancelationError as exc:
            print(f"send email: {exc.reason.value}, {exc.message}")
        try:
            async with Cancelable(name="render"):
                raise ValueError("template 'daily.html' not found")
        except ValueError as exc:
            print(f"render: failed, {exc}")


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def own_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def tree_lines(
    spans: Sequence[ReadableSpan], parent: int | None = None, depth: int = 0
) -> list[str]:
    """The spans under `parent`, indented by depth, in the order they started."""
    lines: list[str] = []
    for span in sorted(spans, key=lambda span: span.start_time or 0):
        if parent_id(span) != parent:
            continue
        attributes = span.attributes or {}
        status = attributes.get("cancelable.status", "")
        why = attributes.get("cancelable.cancel_reason")
        message = attributes.get("cancelable.cancel_message")
        ended = f"{status}" + (f" ({why}: {message})" if why else "")
        lines.append(f"{'  ' * depth}{span.name} [{span.status.status_code.name}] {ended}".rstrip())
        lines.extend(tree_lines(spans, own_id(span), depth + 1))
    return lines


def check(spans: Sequence[ReadableSpan]) -> None:
    by_name = {span.name: span for span in spans}
    expect(
        set(by_name)
        == {"nightly job", "load rows", "parse", "fetch prices", "send email", "render"},
        f"one span per operation, and the one made by the code; got {sorted(by_name)}",
    )
    root = own_id(by_name["nightly job"])
    expect(parent_id(by_name["nightly job"]) is None, "the job's span is a root")
    for step in STEPS:
        expect(parent_id(by_name[step]) == root, f"{step}'s span is not under the job's")
    expect(
        parent_id(by_name["parse"]) == own_id(by_name["load rows"]),
        "the span made inside 'load rows' is not its child",
    )
    fetch = by_name["fetch prices"].attributes or {}
    expect(fetch.get("cancelable.cancel_reason") == "timeout", "fetch prices: not a timeout")
    mail = by_name["send email"].attributes or {}
    expect(mail.get("cancelable.cancel_reason") == "manual", "send email: not a manual cancel")
    expect(
        mail.get("cancelable.cancel_message") == "the operator stopped the mailing",
        "send email: the message is lost",
    )
    for step in ("fetch prices", "send email"):
        expect(
            by_name[step].status.status_code is StatusCode.UNSET,
            f"{step}: a cancellation is no error",
        )
    render = by_name["render"]
    expect(render.status.status_code is StatusCode.ERROR, "render: the failure is not ERROR")
    expect(
        [event.name for event in render.events] == ["exception"],
        "render: the exception is not recorded",
    )


async def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_hooks([OpenTelemetryHook(provider.get_tracer("examples.instrumentation"))])
    try:
        await job(provider.get_tracer("nightly"))
    finally:
        set_hooks([])  # instrumentation is global: leave the process as we found it
    spans = exporter.get_finished_spans()
    print("\nThe span tree:")
    for line in tree_lines(spans):
        print(f"  {line}")
    check(spans)
    print("\nEvery span is where it belongs, with its status and reason.")


if __name__ == "__main__":
    run(main, parse_args(__doc__))
