"""A FastAPI service sees its requests end through the instrumentation hooks, on real servers.

A client hangs up in the middle of a request: the request's operation ends with reason MANUAL
and message "client disconnected", which the logging hook writes to the service's log and the
OpenTelemetry hook records on a span, the child of the server's request span made by the ASGI
instrumentation (`OpenTelemetryMiddleware`) wrapping the app. The servers run in threads of
their own (the helpers of tests/test_fastapi.py), so the hooks are called there.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations below.

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import anyio
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.instrumentation.asgi")

from fastapi import Depends, FastAPI
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from hother.cancelable import Cancelable, OperationContext, TimeoutCancelation
from hother.cancelable.instrumentation import (
    LoggingHook,
    OpenTelemetryHook,
    set_hooks,
)
from hother.cancelable.integrations.fastapi import (
    DISCONNECT_MESSAGE,
    SHUTDOWN_MESSAGE,
    CancelableDependency,
    RequestCancelationMiddleware,
)
from test_fastapi import SERVERS, WAIT, RawClient, http_scope

LIBRARY = "hother.cancelable"


class Ends:
    """A hook that lets the test thread wait for the end of the request's operation."""

    def __init__(self) -> None:
        self.ended = threading.Event()

    def on_start(self, context: OperationContext) -> None:
        pass

    def on_end(self, context: OperationContext, error: BaseException | None) -> None:
        if context.name == "GET /hold":
            self.ended.set()


def build_app(started: threading.Event) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware)

    @app.get("/hold")
    async def hold() -> dict[str, str]:
        started.set()
        await anyio.sleep(30)  # the client hangs up long before
        return {"never": "sent"}

    return app


def wait_for_span(exporter: InMemorySpanExporter, found: Callable[[ReadableSpan], bool]) -> Any:
    """The first finished span that `found` accepts, waiting for the server to end it."""
    give_up = time.monotonic() + WAIT
    while time.monotonic() < give_up:
        for span in exporter.get_finished_spans():
            if found(span):
                return span
        time.sleep(0.01)
    pytest.fail(f"no such span within {WAIT} s: {exporter.get_finished_spans()}")


@pytest.fixture
def restore_hooks() -> Iterator[None]:
    yield
    set_hooks([])


@pytest.mark.usefixtures("restore_hooks")
@pytest.mark.parametrize("server_name", sorted(SERVERS))
def test_a_client_disconnect_shows_in_the_log_and_as_a_span_under_the_request_span(
    server_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    for needed in server_name.split("-"):
        pytest.importorskip(needed.replace("asyncio", "uvicorn"))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ends = Ends()
    set_hooks([ends, OpenTelemetryHook(provider.get_tracer("tests")), LoggingHook()])
    caplog.set_level(logging.INFO, logger=LIBRARY)
    started = threading.Event()
    app = OpenTelemetryMiddleware(
        build_app(started), tracer_provider=provider, exclude_spans=["receive", "send"]
    )
    with SERVERS[server_name](app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
            sock.sendall(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
            assert started.wait(WAIT)
        assert ends.ended.wait(WAIT)
        server_span = wait_for_span(exporter, lambda span: span.kind is SpanKind.SERVER)
    # (a) the service's log says which request ended, and why
    (record,) = [r for r in caplog.records if r.name == LIBRARY and "GET /hold" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert record.getMessage().endswith(f": manual, {DISCONNECT_MESSAGE}")
    # (b) the operation's span, under the server's request span
    (span,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.INTERNAL]
    assert span.name == "GET /hold"
    assert span.attributes is not None
    assert span.attributes["cancelable.cancel_reason"] == "manual"
    assert span.attributes["cancelable.cancel_message"] == DISCONNECT_MESSAGE
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is not None
    assert server_span.context is not None
    assert span.parent.span_id == server_span.context.span_id


@pytest.mark.usefixtures("restore_hooks")
@pytest.mark.parametrize("server_name", sorted(SERVERS))
def test_a_server_shutting_down_with_a_request_running_shows_in_the_log(
    server_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    for needed in server_name.split("-"):
        pytest.importorskip(needed.replace("asyncio", "uvicorn"))
    ends = Ends()
    set_hooks([ends, LoggingHook()])
    caplog.set_level(logging.INFO, logger=LIBRARY)
    started = threading.Event()
    with socket.socket() as sock:
        # The server waits for the request (its graceful timeout, 2 s), then cancels it.
        with SERVERS[server_name](build_app(started)) as url:
            host, port = url.removeprefix("http://").split(":")
            sock.settimeout(WAIT)
            sock.connect((host, int(port)))
            sock.sendall(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
            assert started.wait(WAIT)
        assert ends.ended.wait(WAIT)
    (record,) = [r for r in caplog.records if r.name == LIBRARY and "GET /hold" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert record.getMessage().endswith(f": parent, {SHUTDOWN_MESSAGE}")


# -- why a request ended, in process, on every backend ----------------------------------------


class SleepingApp:
    """An ASGI app that says when it has started, then sleeps past any test."""

    def __init__(self) -> None:
        self.started = anyio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.started.set()
        await anyio.sleep(30)


@pytest.mark.usefixtures("restore_hooks")
async def test_the_log_says_a_request_ended_because_its_client_disconnected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_hooks([LoggingHook()])
    caplog.set_level(logging.INFO, logger=LIBRARY)
    client = RawClient()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            app = SleepingApp()
            middleware = RequestCancelationMiddleware(app)
            group.start_soon(middleware, http_scope("/report"), client.receive, client.send)
            await app.started.wait()
            client.hang_up()
    (record,) = [r for r in caplog.records if r.name == LIBRARY]
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith("operation 'GET /report' (")
    assert record.getMessage().endswith(f": manual, {DISCONNECT_MESSAGE}")


@pytest.mark.usefixtures("restore_hooks")
async def test_the_log_says_a_request_ended_at_its_time_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_hooks([LoggingHook()])
    caplog.set_level(logging.INFO, logger=LIBRARY)
    client = RawClient()
    with anyio.fail_after(WAIT):
        middleware = RequestCancelationMiddleware(SleepingApp(), default_timeout=0.05)
        await middleware(http_scope("/report"), client.receive, client.send)
    (record,) = [r for r in caplog.records if r.name == LIBRARY]
    assert record.levelno == logging.INFO
    assert record.getMessage().endswith(
        ": timeout, request limit of 0.05 s (RequestCancelationMiddleware default_timeout) reached"
    )
    assert client.sent[0]["status"] == 504


@pytest.mark.usefixtures("restore_hooks")
async def test_the_log_names_the_route_limit_that_moved_the_request_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=0.05)
    longer = CancelableDependency(timeout=0.2, name="report")

    @app.get("/report")
    async def report(cancel: Annotated[Cancelable, Depends(longer)]) -> None:
        try:
            async with cancel:
                await anyio.sleep(30)
        except TimeoutCancelation:
            await anyio.sleep(30)  # a stubborn endpoint: the request's limit ends it

    set_hooks([LoggingHook()])
    caplog.set_level(logging.INFO, logger=LIBRARY)
    client = RawClient()
    with anyio.fail_after(WAIT):
        await app(http_scope("/report"), client.receive, client.send)
    messages = [r.getMessage() for r in caplog.records if r.name == LIBRARY]
    assert len(messages) == 2
    assert messages[0].startswith("operation 'report' (")
    assert messages[0].endswith(": timeout, operation timed out after 0.2 s")
    assert messages[1].startswith("operation 'GET /report' (")
    assert messages[1].endswith(": timeout, request limit of 0.2 s (timeout of report) reached")
    assert client.sent[0]["status"] == 504


@pytest.mark.usefixtures("restore_hooks")
async def test_the_log_says_a_request_ended_when_the_server_cancelled_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_hooks([LoggingHook()])
    caplog.set_level(logging.INFO, logger=LIBRARY)
    client = RawClient()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as server:  # a server shutting down cancels it
            app = SleepingApp()
            middleware = RequestCancelationMiddleware(app)
            server.start_soon(middleware, http_scope("/report"), client.receive, client.send)
            await app.started.wait()
            server.cancel_scope.cancel()
    (record,) = [r for r in caplog.records if r.name == LIBRARY]
    assert record.levelno == logging.INFO
    assert record.getMessage().endswith(f": parent, {SHUTDOWN_MESSAGE}")
