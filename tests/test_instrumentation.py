"""Instrumentation (SPEC section 10): hooks, and the logging, structlog and OpenTelemetry hooks.

Each built-in hook is tested against its real library: the standard `logging` module (caplog),
structlog's `capture_logs`, and the OpenTelemetry SDK's in-memory exporter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationContext,
    OperationStatus,
    TimeoutCancelation,
    cancelable_stream,
)
from hother.cancelable.instrumentation import (
    LoggingHook,
    OpenTelemetryHook,
    StructlogHook,
    get_hooks,
    set_hooks,
)

structlog = pytest.importorskip("structlog")
pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

LIBRARY = "hother.cancelable"


class Journal:
    """A hook that writes down what it is told: (event, name, status, reason, message, error)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, OperationStatus, Any, Any, Any]] = []

    def on_start(self, context: OperationContext) -> None:
        self.events.append(("start", context.name, context.status, None, None, None))

    def on_end(self, context: OperationContext, error: BaseException | None) -> None:
        reason = context.cancel_reason
        self.events.append(
            ("end", context.name, context.status, reason, context.cancel_message, error)
        )


class Broken:
    """A hook whose every call raises."""

    def on_start(self, context: OperationContext) -> None:
        raise RuntimeError("hook broke at start")

    def on_end(self, context: OperationContext, error: BaseException | None) -> None:
        raise RuntimeError("hook broke at end")


@pytest.fixture(autouse=True)
def no_hooks_after() -> Iterator[None]:
    """Each test starts and ends with no hooks set, whatever it did."""
    set_hooks([])
    yield
    set_hooks([])


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    yield spans
    spans.clear()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def otel_hook(provider: TracerProvider) -> OpenTelemetryHook:
    return OpenTelemetryHook(provider.get_tracer("tests"))


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    context = span.context
    assert context is not None
    return context.span_id


# -- set_hooks / get_hooks ---------------------------------------------------------------------


def test_no_hooks_are_set_by_default() -> None:
    assert get_hooks() == ()


def test_set_hooks_replaces_the_hooks_and_get_hooks_returns_them_in_order() -> None:
    first, second = Journal(), Journal()
    set_hooks([first])
    set_hooks(hook for hook in (first, second))  # any iterable, a generator too
    assert get_hooks() == (first, second)
    set_hooks([])
    assert get_hooks() == ()


@pytest.mark.parametrize("bad", [None, 3, LoggingHook(), "hooks"])
def test_set_hooks_refuses_what_is_not_an_iterable_of_hooks(bad: Any) -> None:
    kept = Journal()
    set_hooks([kept])
    with pytest.raises(TypeError, match="hooks must be an iterable of hooks") as caught:
        set_hooks(bad)
    assert repr(bad) in str(caught.value)
    assert get_hooks() == (kept,)  # nothing changed


def test_set_hooks_refuses_an_object_without_on_start_and_on_end_and_changes_nothing() -> None:
    kept = Journal()
    set_hooks([kept])
    with pytest.raises(TypeError, match=r"hooks\[1\] must have on_start") as caught:
        set_hooks([Journal(), object()])
    assert "object object" in str(caught.value)
    assert get_hooks() == (kept,)


def test_logging_hook_refuses_a_logger_that_is_not_a_logger() -> None:
    with pytest.raises(TypeError, match=r"logger must be a logging\.Logger or None, got 'app'"):
        LoggingHook("app")  # type: ignore[arg-type]


# -- what hooks see ----------------------------------------------------------------------------


async def test_hooks_see_the_start_running_and_the_end_with_its_record() -> None:
    journal = Journal()
    set_hooks([journal])
    async with Cancelable(name="done"):
        assert journal.events == [("start", "done", OperationStatus.RUNNING, None, None, None)]
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.01, name="slow"):
            await anyio.sleep(5)
    assert journal.events[1] == ("end", "done", OperationStatus.COMPLETED, None, None, None)
    assert journal.events[2][:2] == ("start", "slow")
    end = journal.events[3]
    assert end[:4] == ("end", "slow", OperationStatus.CANCELLED, CancelationReason.TIMEOUT)
    assert "timed out" in end[4]


async def test_on_end_gets_the_error_of_a_failure_only() -> None:
    journal = Journal()
    set_hooks([journal])
    boom = ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        async with Cancelable(name="fails"):
            raise boom
    with pytest.raises(ManualCancelation):
        async with Cancelable(name="cancelled") as cancel:
            await cancel.cancel(message="stop")
            await anyio.sleep(5)
    assert journal.events[1] == ("end", "fails", OperationStatus.FAILED, None, None, boom)
    assert journal.events[3] == (
        "end",
        "cancelled",
        OperationStatus.CANCELLED,
        CancelationReason.MANUAL,
        "stop",
        None,
    )


async def test_hooks_are_told_of_the_end_before_the_callbacks_run() -> None:
    journal = Journal()
    set_hooks([journal])
    seen: list[int] = []
    async with Cancelable(name="job").on_complete(lambda _: seen.append(len(journal.events))):
        pass
    assert seen == [2]


async def test_a_hook_that_raises_is_logged_and_the_block_ends_as_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()
    set_hooks([Broken(), journal])
    caplog.set_level(logging.ERROR, logger=LIBRARY)
    async with Cancelable(name="done") as done:
        pass
    with pytest.raises(ValueError, match="boom"):
        async with Cancelable(name="fails") as fails:
            raise ValueError("boom")
    with pytest.raises(TimeoutCancelation) as caught:
        async with Cancelable.with_timeout(0.01, name="slow") as slow:
            await anyio.sleep(5)
    assert done.context.status is OperationStatus.COMPLETED
    assert fails.context.status is OperationStatus.FAILED
    assert slow.context.status is OperationStatus.CANCELLED
    assert caught.value.context is slow.context
    assert [event[0] for event in journal.events] == ["start", "end"] * 3  # the next hook runs
    failures = [r for r in caplog.records if "instrumentation hook" in r.getMessage()]
    assert len(failures) == 6
    assert all(r.exc_info is not None and "hook broke" in str(r.exc_info[1]) for r in failures)


async def test_an_operation_started_before_its_hook_was_set_ends_quietly_for_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with Cancelable(name="before"):
        set_hooks([otel_hook(provider)])
    assert exporter.get_finished_spans() == ()


# -- LoggingHook -------------------------------------------------------------------------------


async def test_logging_hook_logs_a_completed_operation_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_hooks([LoggingHook()])
    caplog.set_level(logging.DEBUG, logger=LIBRARY)
    async with Cancelable(name="job") as cancel:
        pass
    records = [r for r in caplog.records if r.name == LIBRARY]
    assert [r.levelno for r in records] == [logging.DEBUG, logging.DEBUG]
    assert records[0].getMessage() == f"operation 'job' ({cancel.operation_id}) started"
    assert (
        records[1]
        .getMessage()
        .startswith(f"operation 'job' ({cancel.operation_id}) completed after 0.0")
    )
    assert records[1].__dict__["status"] == "completed"


async def test_logging_hook_logs_a_cancellation_at_info_with_reason_and_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_hooks([LoggingHook()])
    caplog.set_level(logging.INFO, logger=LIBRARY)
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05, name="GET /report") as cancel:
            await anyio.sleep(5)
    (record,) = [r for r in caplog.records if r.name == LIBRARY]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith(f"operation 'GET /report' ({cancel.operation_id}) cancelled after 0.")
    assert message.endswith(f": timeout, {cancel.context.cancel_message}")
    assert record.__dict__["cancel_reason"] == "timeout"
    assert record.__dict__["operation_id"] == cancel.operation_id


async def test_logging_hook_logs_a_failure_at_warning_with_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_hooks([LoggingHook()])
    caplog.set_level(logging.INFO, logger=LIBRARY)
    with pytest.raises(ValueError, match="bad row"):
        async with Cancelable() as cancel:
            raise ValueError("bad row 7")
    (record,) = [r for r in caplog.records if r.name == LIBRARY]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"operation ({cancel.operation_id}) failed after "
        f"{cancel.context.duration_seconds:.2f} s: bad row 7"
    )


async def test_logging_hook_logs_nothing_below_its_loggers_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_hooks([LoggingHook(logging.getLogger("app.ops"))])
    caplog.set_level(logging.WARNING, logger="app.ops")
    with pytest.raises(ManualCancelation):
        async with Cancelable(name="quiet") as cancel:
            await cancel.cancel(message="not logged")
            await anyio.sleep(5)
    assert [r for r in caplog.records if r.name == "app.ops"] == []
    assert repr(get_hooks()[0]) == "LoggingHook('app.ops')"


# -- StructlogHook -----------------------------------------------------------------------------


async def test_structlog_hook_emits_key_value_events_for_each_ending() -> None:
    set_hooks([StructlogHook()])
    with structlog.testing.capture_logs() as events:
        async with Cancelable(name="done") as done:
            pass
        with pytest.raises(ValueError, match="boom"):
            async with Cancelable(name="fails"):
                raise ValueError("boom")
        with pytest.raises(ManualCancelation):
            async with Cancelable(name="stopped") as stopped:
                await stopped.cancel(message="user pressed stop")
                await anyio.sleep(5)
    ends = [(e["event"], e["log_level"], e["operation_name"]) for e in events]
    assert ends == [
        ("operation started", "debug", "done"),
        ("operation completed", "debug", "done"),
        ("operation started", "debug", "fails"),
        ("operation failed", "warning", "fails"),
        ("operation started", "debug", "stopped"),
        ("operation cancelled", "info", "stopped"),
    ]
    assert events[1]["operation_id"] == done.operation_id
    assert events[3]["error"] == "boom"
    assert events[5]["cancel_reason"] == "manual"
    assert events[5]["cancel_message"] == "user pressed stop"
    assert events[5]["status"] == "cancelled"
    assert events[5]["duration_seconds"] >= 0


async def test_structlog_hook_uses_the_logger_it_is_given() -> None:
    logger = structlog.get_logger("app").bind(service="reports")
    set_hooks([StructlogHook(logger)])
    with structlog.testing.capture_logs() as events:
        async with Cancelable(name="job"):
            pass
    assert [e["service"] for e in events] == ["reports", "reports"]


# -- OpenTelemetryHook -------------------------------------------------------------------------


async def test_otel_span_per_operation_with_its_name_and_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    set_hooks([otel_hook(provider)])
    async with Cancelable(name="load") as load:
        pass
    async with Cancelable():
        pass
    spans = by_name(exporter)
    assert set(spans) == {"load", "operation"}
    span = spans["load"]
    assert span.attributes is not None
    assert span.attributes["cancelable.operation_id"] == load.operation_id
    assert span.attributes["cancelable.status"] == "completed"
    assert "cancelable.cancel_reason" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET


async def test_otel_failure_is_an_error_span_with_the_exception_recorded(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    set_hooks([otel_hook(provider)])
    with pytest.raises(ValueError, match="boom"):
        async with Cancelable(name="fails"):
            raise ValueError("boom")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "boom"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"


async def test_otel_cancellation_is_unset_with_the_reason_and_message(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    set_hooks([otel_hook(provider)])
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.01, name="slow") as slow:
            await anyio.sleep(5)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes is not None
    assert span.attributes["cancelable.status"] == "cancelled"
    assert span.attributes["cancelable.cancel_reason"] == "timeout"
    assert span.attributes["cancelable.cancel_message"] == slow.context.cancel_message
    assert span.events == ()


async def test_otel_nested_operations_nest_their_spans_and_user_spans_nest_inside(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    set_hooks([otel_hook(provider)])
    tracer = provider.get_tracer("app")
    async with Cancelable(name="outer") as outer:
        inner = Cancelable(name="inner", parent=outer)
        async with inner:
            with tracer.start_as_current_span("query"):
                pass
    spans = by_name(exporter)
    assert parent_of(spans["outer"]) is None
    assert parent_of(spans["inner"]) == span_id(spans["outer"])
    assert parent_of(spans["query"]) == span_id(spans["inner"])
    assert spans["inner"].attributes is not None
    assert spans["inner"].attributes["cancelable.parent_id"] == outer.operation_id
    assert inner.context.parent_id == outer.operation_id
    # the span is no longer current once the block is left
    from opentelemetry import trace

    assert not trace.get_current_span().get_span_context().is_valid


async def test_otel_operations_in_sibling_tasks_are_children_of_the_enclosing_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    set_hooks([otel_hook(provider)])

    async def step(name: str) -> None:
        async with Cancelable(name=name):
            await anyio.sleep(0.01)

    async with Cancelable(name="batch"), anyio.create_task_group() as tasks:
        tasks.start_soon(step, "a")
        tasks.start_soon(step, "b")
    spans = by_name(exporter)
    batch = span_id(spans["batch"])
    assert parent_of(spans["a"]) == batch
    assert parent_of(spans["b"]) == batch


async def test_otel_a_stream_run_operation_gets_a_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    set_hooks([otel_hook(provider)])
    from opentelemetry import trace

    async with Cancelable(name="consumer"):
        consumer = trace.get_current_span()
        async with cancelable_stream(range(3), name="rows") as rows:
            items = [item async for item in rows]
        assert trace.get_current_span() is consumer  # the stream's span is current no more
    assert items == [0, 1, 2]
    spans = by_name(exporter)
    assert parent_of(spans["rows"]) == span_id(spans["consumer"])
    assert spans["rows"].attributes is not None
    assert spans["rows"].attributes["cancelable.status"] == "completed"


async def test_otel_a_cancelled_stream_ends_its_span_with_the_reason(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    set_hooks([otel_hook(provider)])

    async def slow_rows() -> Any:
        yield 1
        await anyio.sleep(5)
        yield 2

    with pytest.raises(TimeoutCancelation):
        async with cancelable_stream(slow_rows(), timeout=0.05, name="rows") as rows:
            async for _ in rows:
                pass
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["cancelable.cancel_reason"] == "timeout"


async def test_otel_a_cancel_from_another_thread_still_ends_the_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    set_hooks([otel_hook(provider)])
    token = CancelationToken()
    started = threading.Event()

    def canceller() -> None:
        started.wait(5)
        token.cancel_sync(message="from a thread")

    thread = threading.Thread(target=canceller)
    thread.start()
    try:
        with pytest.raises(ManualCancelation):
            async with Cancelable.with_token(token, name="watched"):
                started.set()
                await anyio.sleep(5)
    finally:
        thread.join(5)
    (span,) = exporter.get_finished_spans()
    assert span.name == "watched"
    assert span.attributes is not None
    assert span.attributes["cancelable.cancel_message"] == "from a thread"


class Named:
    """A hook that appends `(its name, event)` to a shared list."""

    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        self.name, self.calls = name, calls

    def on_start(self, context: OperationContext) -> None:
        self.calls.append((self.name, "start"))

    def on_end(self, context: OperationContext, error: BaseException | None) -> None:
        self.calls.append((self.name, "end"))


async def test_hooks_start_in_order_and_end_in_reverse_order() -> None:
    calls: list[tuple[str, str]] = []
    set_hooks([Named("first", calls), Named("second", calls)])
    async with Cancelable(name="job"):
        pass
    assert calls == [("first", "start"), ("second", "start"), ("second", "end"), ("first", "end")]


async def test_all_three_hooks_together_each_see_the_cancellation(
    provider: TracerProvider, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    set_hooks([otel_hook(provider), LoggingHook(), StructlogHook()])
    caplog.set_level(logging.INFO, logger=LIBRARY)
    with structlog.testing.capture_logs() as events, pytest.raises(ManualCancelation):
        async with Cancelable(name="job") as cancel:
            await cancel.cancel(message="enough")
            await anyio.sleep(5)
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["cancelable.cancel_message"] == "enough"
    (record,) = [r for r in caplog.records if r.name == LIBRARY]
    assert record.getMessage().endswith(": manual, enough")
    assert events[-1]["cancel_message"] == "enough"
