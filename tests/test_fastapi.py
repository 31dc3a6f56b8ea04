"""The FastAPI integration (integrations/fastapi.py), in process and against real servers.

The server tests run one app on uvicorn (asyncio, and asyncio on uvloop) and on hypercorn
(trio), each in a thread of its own on a free port of 127.0.0.1, and drive it with real
clients: httpx, and raw sockets where a client must hang up in the middle of a request or
speak websocket (wsproto). The app records what its handlers did in a `Journal`, which the
tests wait on: no sleep decides a test.

The in-process tests call the app through `httpx.ASGITransport` or as a bare ASGI callable, on
every backend.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations below.

import ast
import contextlib
import importlib
import importlib.util
import inspect
import json
import math
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
import anyio.from_thread
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from fastapi import Depends, FastAPI, Request, WebSocket  # noqa: E402
from fastapi.responses import JSONResponse, StreamingResponse  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

from hother.cancelable import (  # noqa: E402
    Cancelable,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationContext,
    OperationStatus,
    ThreadSafeRegistry,
    TimeoutCancelation,
    current_operation,
)
from hother.cancelable.integrations.fastapi import (  # noqa: E402
    DEFAULT_DEADLINE_HEADER,
    DISCONNECT_MESSAGE,
    CancelableDependency,
    CancelableWebSocket,
    RequestCancelationMiddleware,
    cancelable_dependency,
    cancelable_streaming_response,
    get_request_token,
    with_cancelation,
)

# httpx 0.28's ASGITransport leaves its request body generator unfinished when the app answers
# before reading the whole body, which the middleware's watcher may do; trio then warns when
# the generator is collected (encode/httpx#3686). Not a leak of ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__"
    ":pytest.PytestUnraisableExceptionWarning"
)

REQUEST_TIMEOUT = 1.0  # the middleware's default_timeout in the app under test
LIMIT = 0.5  # the middleware's default_timeout in the app under /limits
LIMIT_MESSAGE = "request limit of 0.5 s (RequestCancelationMiddleware default_timeout) reached"
TICK = 0.1  # seconds between two events of the streams under /limits
WAIT = 5.0  # how long a test waits for something that should happen at once


# -- the app under test --------------------------------------------------------------------------


@dataclass
class Entry:
    what: str
    at: float = field(default_factory=time.monotonic)
    data: dict[str, Any] = field(default_factory=dict[str, Any])


class Journal:
    """What the handlers did, written from the server's thread, awaited from the test's."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._changed = threading.Condition()

    def write(self, what: str, **data: Any) -> None:
        with self._changed:
            self._entries.append(Entry(what, data=data))
            self._changed.notify_all()

    def wait_for(self, what: str, timeout: float = WAIT) -> Entry:
        def found() -> Entry | None:
            return next((entry for entry in self._entries if entry.what == what), None)

        with self._changed:
            if not self._changed.wait_for(lambda: found() is not None, timeout):
                pytest.fail(f"no {what!r} within {timeout} s; journal: {self._entries}")
            entry = found()
            assert entry is not None
            return entry

    def seen(self, what: str) -> bool:
        with self._changed:
            return any(entry.what == what for entry in self._entries)


class Boom(Exception):
    """Handled by its own exception handler."""


class Crash(Exception):
    """Handled only by the app's handler for every Exception."""


def build_app(journal: Journal) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=REQUEST_TIMEOUT)

    @app.exception_handler(Boom)
    async def on_boom(request: Request, exc: Exception) -> JSONResponse:
        journal.write("handled boom", type=type(exc).__name__)
        return JSONResponse({"type": type(exc).__name__}, status_code=418)

    @app.exception_handler(Exception)
    async def on_anything(request: Request, exc: Exception) -> JSONResponse:
        journal.write(f"handled {type(exc).__name__}")
        return JSONResponse({"type": type(exc).__name__}, status_code=500)

    @app.get("/hold")
    async def hold(request: Request, id: str) -> None:
        token = get_request_token(request)
        journal.write(f"started {id}")
        try:
            await anyio.sleep(30)
        finally:
            operation = current_operation()
            journal.write(
                f"cleanup {id}",
                token_message=token.message,
                operation_cancelled=operation is not None and operation.is_cancelled,
            )

    @app.get("/listen")
    async def listen(
        id: str, cancel: Annotated[Cancelable, Depends(cancelable_dependency)]
    ) -> None:
        try:
            async with cancel:
                journal.write(f"started {id}")
                await anyio.sleep(30)
        except ManualCancelation as exc:  # the operation's own: it listens to the token
            journal.write(f"cancelled {id}", message=exc.message, own=exc.context is cancel.context)
            raise

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        body = await request.body()
        return {"size": len(body), "checksum": sum(body) % 65521}

    @app.get("/decorated/{item}")
    @with_cancelation(timeout=0.2)
    async def decorated(item: str, delay: float = 0) -> dict[str, Any]:
        """Wait `delay` seconds, then answer."""
        await anyio.sleep(delay)
        return {"item": item, "delay": delay}

    @app.get("/dependency")
    async def dependency(
        cancel: Annotated[Cancelable, Depends(cancelable_dependency)],
        short: Annotated[Cancelable, Depends(CancelableDependency(timeout=0.1))],
    ) -> dict[str, Any]:
        async with cancel:
            pass
        try:
            async with short:
                await anyio.sleep(30)
        except TimeoutCancelation as exc:
            timed_out = exc.reason.value
        else:  # pragma: no cover - the test fails on the answer
            timed_out = None
        return {"status": cancel.context.status.value, "timed_out": timed_out}

    async def ticks(id: str) -> AsyncIterator[str]:
        try:
            for number in range(1000):
                yield f"data: {number}\n\n"
                await anyio.sleep(0.02)
        finally:
            journal.write(f"stream closed {id}")

    @app.get("/events")
    async def events(id: str, media_type: str = "text/event-stream") -> Any:
        return cancelable_streaming_response(
            ticks(id), Cancelable.with_timeout(0.3, name="events"), media_type=media_type
        )

    @app.get("/boom")
    async def boom() -> None:
        raise Boom("boom")

    @app.get("/crash")
    async def crash() -> None:
        raise Crash("crash")

    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async with CancelableWebSocket(websocket, Cancelable.with_timeout(0.3)) as ws:
            async for text in ws.iter_text():
                await ws.send_text(text.upper())
        journal.write("websocket ended", reason=ws.cancelable.context.cancel_reason)

    return app


def build_limits_app(journal: Journal) -> FastAPI:
    """Streams under a middleware limit of 0.5 s, with routes that declare their own, or not."""
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=LIMIT)
    longer = CancelableDependency(timeout=LIMIT * 10)
    shorter = CancelableDependency(timeout=LIMIT / 2)
    listed = CancelableDependency(timeout=30, name="listed stream", register_globally=True)

    async def ticks(count: int) -> AsyncIterator[str]:
        for number in range(count):
            yield f"data: {number}\n\n"
            await anyio.sleep(TICK)

    def stream(id: str, cancel: Cancelable, count: int) -> Any:
        def cancelled(context: OperationContext) -> None:
            journal.write(
                f"cancelled {id}", reason=context.cancel_reason, message=context.cancel_message
            )

        cancel.on_cancel(cancelled).on_complete(lambda _: journal.write(f"completed {id}"))
        return cancelable_streaming_response(ticks(count), cancel, media_type="text/event-stream")

    @app.get("/limits/longer")
    async def longer_route(cancel: Annotated[Cancelable, Depends(longer)]) -> Any:
        return stream("longer", cancel, 15)  # 1.5 s: three times the middleware's limit

    @app.get("/limits/inherited")
    async def inherited(cancel: Annotated[Cancelable, Depends(cancelable_dependency)]) -> Any:
        return stream("inherited", cancel, 100)

    @app.get("/limits/shorter")
    async def shorter_route(cancel: Annotated[Cancelable, Depends(shorter)]) -> Any:
        return stream("shorter", cancel, 100)

    @app.get("/limits/listed")
    async def listed_route(cancel: Annotated[Cancelable, Depends(listed)]) -> Any:
        return stream("listed", cancel, 300)

    @app.get("/limits/budget")
    async def budget_route(cancel: Annotated[Cancelable, Depends(cancelable_dependency)]) -> Any:
        return stream("budget", cancel, 100)

    return app


def build_header_app(journal: Journal, prefix: str, deadline_header: str | None) -> FastAPI:
    """Under `prefix`, an app whose middleware reads another header, or none."""
    app = FastAPI()
    app.add_middleware(
        RequestCancelationMiddleware,
        default_timeout=REQUEST_TIMEOUT,
        deadline_header=deadline_header,
    )

    @app.get(f"{prefix}/hold")
    async def hold(id: str) -> None:
        journal.write(f"started {id}")
        await anyio.sleep(30)

    @app.get(f"{prefix}/quick")
    async def quick() -> str:
        return "done"

    return app


def build_apps(journal: Journal) -> Any:
    """`build_app`; `build_limits_app` under /limits/; `build_header_app` under /custom/
    (header X-Budget-Ms) and /ignored/ (no header)."""
    main = build_app(journal)
    prefixed = {
        "/limits/": build_limits_app(journal),
        "/custom/": build_header_app(journal, "/custom", "X-Budget-Ms"),
        "/ignored/": build_header_app(journal, "/ignored", None),
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        target = next((app for prefix, app in prefixed.items() if path.startswith(prefix)), main)
        await target(scope, receive, send)

    return app


# -- servers, in threads -------------------------------------------------------------------------


@contextmanager
def uvicorn_on_asyncio(app: Any, use_uvloop: bool = False) -> Iterator[str]:
    import uvicorn

    listener = socket.create_server(("127.0.0.1", 0))  # listening: clients may connect at once
    config = uvicorn.Config(
        app, lifespan="off", log_level="critical", ws="wsproto", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    host, port = listener.getsockname()
    try:
        options = {"use_uvloop": use_uvloop}
        with anyio.from_thread.start_blocking_portal("asyncio", options) as portal:
            serving = portal.start_task_soon(server.serve, [listener])
            try:
                yield f"http://{host}:{port}"
            finally:
                server.should_exit = True
                serving.result(WAIT)
    finally:
        listener.close()


@contextmanager
def hypercorn_on_trio(app: Any) -> Iterator[str]:
    import hypercorn.config
    import hypercorn.trio

    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.graceful_timeout = 2
    config.loglevel = "CRITICAL"
    with anyio.from_thread.start_blocking_portal("trio") as portal:
        stop = portal.call(anyio.Event)
        serve = partial(hypercorn.trio.serve, app, config, shutdown_trigger=stop.wait)
        serving, urls = portal.start_task(serve)
        try:
            yield urls[0]
        finally:
            portal.call(stop.set)
            serving.result(WAIT)


SERVERS: dict[str, Callable[[Any], Any]] = {
    "uvicorn-asyncio": uvicorn_on_asyncio,
    "uvicorn-uvloop": partial(uvicorn_on_asyncio, use_uvloop=True),
    "hypercorn-trio": hypercorn_on_trio,
}


@dataclass
class Server:
    url: str
    journal: Journal

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert parts.hostname is not None
        assert parts.port is not None
        return parts.hostname, parts.port

    def client(self) -> Any:
        return httpx.Client(base_url=self.url, timeout=WAIT)


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    name: str = request.param
    for needed in name.split("-"):
        pytest.importorskip(needed.replace("asyncio", "uvicorn"))
    journal = Journal()
    with SERVERS[name](build_apps(journal)) as url:
        yield Server(url, journal)


# -- against real servers ------------------------------------------------------------------------


def test_a_client_that_disconnects_gets_its_handler_cancelled_and_cleaned_up(
    server: Server,
) -> None:
    with socket.create_connection(server.address, timeout=WAIT) as sock:
        sock.sendall(b"GET /hold?id=gone HTTP/1.1\r\nHost: test\r\n\r\n")
        server.journal.wait_for("started gone")
        hung_up = time.monotonic()
    cleanup = server.journal.wait_for("cleanup gone")
    assert cleanup.at - hung_up < 0.5
    assert cleanup.data == {"token_message": DISCONNECT_MESSAGE, "operation_cancelled": True}


def test_an_operation_linked_to_the_request_ends_with_its_own_cancelation(
    server: Server,
) -> None:
    with socket.create_connection(server.address, timeout=WAIT) as sock:
        sock.sendall(b"GET /listen?id=listener HTTP/1.1\r\nHost: test\r\n\r\n")
        server.journal.wait_for("started listener")
        hung_up = time.monotonic()
    cancelled = server.journal.wait_for("cancelled listener")
    assert cancelled.at - hung_up < 0.5
    assert cancelled.data == {"message": DISCONNECT_MESSAGE, "own": True}


def test_a_slow_handler_hits_the_middleware_timeout_and_gets_504(server: Server) -> None:
    with server.client() as client:
        start = time.monotonic()
        response = client.get("/hold", params={"id": "slow"})
        elapsed = time.monotonic() - start
    assert response.status_code == 504
    assert response.json() == {"detail": f"request timed out after {REQUEST_TIMEOUT:g} s"}
    assert REQUEST_TIMEOUT * 0.9 < elapsed < REQUEST_TIMEOUT + 2
    cleanup = server.journal.wait_for("cleanup slow")
    assert cleanup.data == {"token_message": None, "operation_cancelled": True}


def test_the_request_body_reaches_the_app_through_the_middleware(server: Server) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB: many messages
    with server.client() as client:
        response = client.post("/upload", content=body)
    assert response.status_code == 200
    assert response.json() == {"size": len(body), "checksum": sum(body) % 65521}


def test_with_cancelation_answers_504_on_its_own_timeout(server: Server) -> None:
    with server.client() as client:
        fast = client.get("/decorated/book", params={"delay": 0})
        slow = client.get("/decorated/book", params={"delay": 5})
    assert fast.status_code == 200
    assert fast.json() == {"item": "book", "delay": 0}
    assert slow.status_code == 504
    assert slow.json() == {"detail": "request timed out after 0.2 s"}


def test_cancelable_dependency_gives_the_endpoint_an_operation(server: Server) -> None:
    with server.client() as client:
        response = client.get("/dependency", params={"timeout": 100})  # ignored: not a parameter
    assert response.status_code == 200
    assert response.json() == {"status": "completed", "timed_out": "timeout"}


def test_a_cancelled_event_stream_ends_cleanly_with_a_cancelled_event(server: Server) -> None:
    with server.client() as client, client.stream("GET", "/events?id=sse") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())  # the whole body: the stream ended cleanly
    events = [block for block in text.split("\n\n") if block]
    assert len(events) > 3
    assert all(block.startswith("data: ") for block in events[:-1])
    assert events[-1].splitlines()[0] == "event: cancelled"
    data = json.loads(events[-1].splitlines()[1].removeprefix("data: "))
    assert data == {"reason": "timeout", "message": "operation timed out after 0.3 s"}
    server.journal.wait_for("stream closed sse")


def test_a_cancelled_text_stream_just_ends(server: Server) -> None:
    with server.client() as client:
        response = client.get("/events", params={"id": "text", "media_type": "text/plain"})
    assert response.status_code == 200
    assert response.text.startswith("data: 0\n\n")
    assert response.text.endswith("\n\n")
    assert "cancelled" not in response.text
    server.journal.wait_for("stream closed text")


def test_an_application_exception_reaches_its_handler_unwrapped(server: Server) -> None:
    with server.client() as client:
        handled = client.get("/boom")
        crashed = client.get("/crash")
    assert (handled.status_code, handled.json()) == (418, {"type": "Boom"})
    assert (crashed.status_code, crashed.json()) == (500, {"type": "Crash"})
    assert server.journal.wait_for("handled boom").data == {"type": "Boom"}
    server.journal.wait_for("handled Crash")


def test_the_server_closes_a_cancelled_websocket_with_1001(server: Server) -> None:
    with WebSocketClient(server.address, "/echo") as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "HELLO"
        start = time.monotonic()
        code, reason = ws.receive_close()
        elapsed = time.monotonic() - start
    assert code == 1001
    assert reason == "operation timed out after 0.3 s"
    assert elapsed < 0.3 + 2
    ended = server.journal.wait_for("websocket ended")
    assert ended.data == {"reason": CancelationReason.TIMEOUT}


def server_sent_events(text: str) -> list[str]:
    return [block for block in text.split("\n\n") if block]


def cancelled_event(block: str) -> dict[str, Any]:
    kind, data = block.splitlines()
    assert kind == "event: cancelled"
    return json.loads(data.removeprefix("data: "))


def test_a_route_with_a_longer_limit_of_its_own_streams_past_the_middleware_default(
    server: Server,
) -> None:
    with server.client() as client:
        start = time.monotonic()
        response = client.get("/limits/longer")  # httpx raises on a body cut off
        elapsed = time.monotonic() - start
    assert response.status_code == 200
    assert response.text == "".join(f"data: {number}\n\n" for number in range(15))
    assert elapsed > LIMIT * 2
    server.journal.wait_for("completed longer")


def test_the_middleware_limit_ends_another_routes_stream_cleanly(server: Server) -> None:
    with server.client() as client:
        start = time.monotonic()
        response = client.get("/limits/inherited")  # httpx raises on a body cut off
        elapsed = time.monotonic() - start
    assert response.status_code == 200
    *ticks, last = server_sent_events(response.text)
    assert ticks == [f"data: {number}" for number in range(len(ticks))]
    assert cancelled_event(last) == {"reason": "timeout", "message": LIMIT_MESSAGE}
    assert LIMIT * 0.9 < elapsed < LIMIT + 2
    cancelled = server.journal.wait_for("cancelled inherited")
    assert cancelled.data == {"reason": CancelationReason.TIMEOUT, "message": LIMIT_MESSAGE}


def test_a_route_limit_below_the_middleware_default_ends_the_stream_first(
    server: Server,
) -> None:
    with server.client() as client:
        start = time.monotonic()
        response = client.get("/limits/shorter")
        elapsed = time.monotonic() - start
    *_, last = server_sent_events(response.text)
    message = f"operation timed out after {LIMIT / 2:g} s"
    assert cancelled_event(last) == {"reason": "timeout", "message": message}  # not the limit's
    assert elapsed < LIMIT / 2 + 2
    cancelled = server.journal.wait_for("cancelled shorter")
    assert cancelled.data == {"reason": CancelationReason.TIMEOUT, "message": message}


def test_a_request_operation_is_listed_and_cancelled_by_id_through_the_registry(
    server: Server,
) -> None:
    registry = ThreadSafeRegistry()
    with server.client() as client, client.stream("GET", "/limits/listed") as response:
        chunks = response.iter_text()
        first = next(chunks)  # the operation runs
        [record] = registry.list_operations(name_pattern="listed stream")
        assert record.status is OperationStatus.RUNNING
        assert registry.cancel_operation(record.id, message="stopped by an admin")
        text = first + "".join(chunks)
    *_, last = server_sent_events(text)
    assert cancelled_event(last) == {"reason": "manual", "message": "stopped by an admin"}
    server.journal.wait_for("cancelled listed")
    assert registry.list_operations(name_pattern="listed stream") == []


def test_a_budget_below_the_default_ends_the_request_at_the_budget_on_a_server(
    server: Server,
) -> None:
    with server.client() as client:
        start = time.monotonic()
        response = client.get(
            "/hold", params={"id": "budget"}, headers={"Request-Timeout-Ms": "200"}
        )
        elapsed = time.monotonic() - start
    assert (response.status_code, response.json()) == (504, budget_answer(200))
    assert 0.2 * 0.9 < elapsed < REQUEST_TIMEOUT  # the default never came
    cleanup = server.journal.wait_for("cleanup budget")
    assert cleanup.data == {"token_message": None, "operation_cancelled": True}


def test_a_budget_above_the_default_leaves_the_default_on_a_server(server: Server) -> None:
    with server.client() as client:
        start = time.monotonic()
        response = client.get(
            "/hold", params={"id": "generous"}, headers={"Request-Timeout-Ms": "5000"}
        )
        elapsed = time.monotonic() - start
    assert (response.status_code, response.json()) == (
        504,
        {"detail": f"request timed out after {REQUEST_TIMEOUT:g} s"},
    )
    assert REQUEST_TIMEOUT * 0.9 < elapsed < 5
    server.journal.wait_for("cleanup generous")


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (
            [("Request-Timeout-Ms", "3s")],
            "Request-Timeout-Ms must be a whole number of milliseconds from 0 to 31536000000, "
            "got '3s'",
        ),
        (
            [("Request-Timeout-Ms", "300"), ("Request-Timeout-Ms", "400")],
            "Request-Timeout-Ms must be sent once, got 2 values: '300', '400'",
        ),
    ],
    ids=["not a number", "sent twice"],
)
def test_a_malformed_budget_gets_400_without_running_the_app_on_a_server(
    server: Server, headers: list[tuple[str, str]], detail: str
) -> None:
    request_id = f"malformed {len(headers)}"
    with server.client() as client:
        response = client.get("/hold", params={"id": request_id}, headers=headers)
    assert (response.status_code, response.json()) == (400, {"detail": detail})
    assert not server.journal.seen(f"started {request_id}")


def test_a_spent_budget_gets_504_at_once_on_a_server(server: Server) -> None:
    with server.client() as client:
        start = time.monotonic()
        response = client.get("/hold", params={"id": "spent"}, headers={"Request-Timeout-Ms": "0"})
        elapsed = time.monotonic() - start
    assert (response.status_code, response.json()) == (504, budget_answer(0))
    assert elapsed < REQUEST_TIMEOUT
    assert not server.journal.seen("started spent")


def test_a_custom_deadline_header_is_read_on_a_server(server: Server) -> None:
    with server.client() as client:
        ignored = client.get("/custom/quick", headers={"Request-Timeout-Ms": "0"})
        start = time.monotonic()
        response = client.get(
            "/custom/hold", params={"id": "custom"}, headers={"X-Budget-Ms": "200"}
        )
        elapsed = time.monotonic() - start
    assert (ignored.status_code, ignored.json()) == (200, "done")
    assert (response.status_code, response.json()) == (504, budget_answer(200, "X-Budget-Ms"))
    assert 0.2 * 0.9 < elapsed < REQUEST_TIMEOUT


def test_without_a_deadline_header_the_budget_is_ignored_on_a_server(server: Server) -> None:
    with server.client() as client:
        spent = client.get("/ignored/quick", headers={"Request-Timeout-Ms": "0"})
        malformed = client.get("/ignored/quick", headers={"Request-Timeout-Ms": "abc"})
    assert (spent.status_code, spent.json()) == (200, "done")
    assert (malformed.status_code, malformed.json()) == (200, "done")


def test_a_stream_ends_cleanly_at_the_callers_budget_on_a_server(server: Server) -> None:
    with server.client() as client:
        start = time.monotonic()
        response = client.get("/limits/budget", headers={"Request-Timeout-Ms": "200"})
        elapsed = time.monotonic() - start  # httpx raises on a body cut off
    assert response.status_code == 200
    *ticks, last = server_sent_events(response.text)
    assert ticks == [f"data: {number}" for number in range(len(ticks))]
    assert cancelled_event(last) == {"reason": "timeout", "message": budget_message(200)}
    assert 0.2 * 0.9 < elapsed < LIMIT  # before the middleware's limit
    cancelled = server.journal.wait_for("cancelled budget")
    assert cancelled.data == {"reason": CancelationReason.TIMEOUT, "message": budget_message(200)}


class WebSocketClient:
    """A blocking websocket client on a raw socket, with wsproto."""

    def __init__(self, address: tuple[str, int], path: str) -> None:
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import Request as Handshake

        self._connection = WSConnection(ConnectionType.CLIENT)
        self._sock = socket.create_connection(address, timeout=WAIT)
        self._sock.sendall(self._connection.send(Handshake(host=f"{address[0]}", target=path)))
        self._pending: list[Any] = []
        self._expect("AcceptConnection")

    def __enter__(self) -> "WebSocketClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sock.close()

    def _next_event(self) -> Any:
        while not self._pending:
            data = self._sock.recv(65536)
            self._connection.receive_data(data or None)
            self._pending.extend(self._connection.events())
            if not data and not self._pending:
                pytest.fail("the server closed the connection without a close frame")
        return self._pending.pop(0)

    def _expect(self, kind: str) -> Any:
        event = self._next_event()
        assert type(event).__name__ == kind, event
        return event

    def send_text(self, text: str) -> None:
        from wsproto.events import TextMessage

        self._sock.sendall(self._connection.send(TextMessage(data=text)))

    def receive_text(self) -> str:
        return self._expect("TextMessage").data

    def receive_close(self) -> tuple[int, str]:
        event = self._expect("CloseConnection")
        self._sock.sendall(self._connection.send(event.response()))
        return event.code, event.reason


# -- in process, on every backend -----------------------------------------------------------------


def asgi_client(app: Any) -> Any:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def http_scope(path: str = "/", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [(b"host", b"test")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


class RawClient:
    """Plays the server's side of one GET request to an ASGI app; `hang_up()` disconnects."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self._hung_up = anyio.Event()
        self._body_sent = False

    async def receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Any) -> None:
        self.sent.append(message)

    def hang_up(self) -> None:
        self._hung_up.set()


async def test_the_middleware_cancels_the_app_when_the_client_disconnects() -> None:
    started, cleaned = anyio.Event(), anyio.Event()
    seen: list[CancelationToken] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["state"]["hother.cancelable.token"])
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cleaned.set()

    client = RawClient()
    tasks_before = len(anyio.get_running_tasks())
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            middleware = RequestCancelationMiddleware(app)
            group.start_soon(middleware, http_scope(), client.receive, client.send)
            await started.wait()
            client.hang_up()
            await cleaned.wait()
    assert client.sent == []  # nobody is listening
    assert seen[0].reason is CancelationReason.MANUAL
    assert seen[0].message == DISCONNECT_MESSAGE
    assert len(anyio.get_running_tasks()) == tasks_before  # the watcher is gone too


async def test_with_cancelation_answers_499_when_the_client_disconnects() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware)
    started = anyio.Event()
    answers: list[tuple[int, str]] = []

    @app.exception_handler(StarletteHTTPException)
    async def record(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        answers.append((exc.status_code, exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/")
    @with_cancelation(timeout=30)
    async def index() -> None:
        started.set()
        await anyio.sleep(30)

    client = RawClient()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(app, http_scope(), client.receive, client.send)
            await started.wait()
            client.hang_up()
    assert answers == [(499, "client closed request")]


async def test_a_disconnect_let_out_by_an_endpoint_is_not_an_error_of_the_app() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware)
    started = anyio.Event()
    handled: list[str] = []

    @app.exception_handler(Exception)
    async def on_anything(request: Request, exc: Exception) -> JSONResponse:
        handled.append(type(exc).__name__)
        return JSONResponse({}, status_code=500)

    @app.get("/")
    async def index(cancel: Annotated[Cancelable, Depends(cancelable_dependency)]) -> None:
        async with cancel:  # its ManualCancelation is not caught
            started.set()
            await anyio.sleep(30)

    client = RawClient()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(app, http_scope(), client.receive, client.send)
            await started.wait()
            client.hang_up()
    assert handled == []
    assert client.sent == []


async def test_the_middleware_answers_503_when_the_token_is_cancelled_by_the_app() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware)

    @app.get("/")
    async def index(request: Request) -> None:
        await get_request_token(request).cancel(message="shutting down")
        await anyio.sleep(30)

    async with asgi_client(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.json()) == (
        503,
        {"detail": "request cancelled: shutting down"},
    )


async def test_a_request_expecting_100_continue_is_read_only_when_the_app_reads() -> None:
    reads: list[str] = []
    app_read = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await anyio.sleep(0.05)  # time for a watcher to read first, if it would
        reads.append("app")
        message = await receive()
        assert message["body"] == b"data"
        app_read.set()
        await JSONResponse({"ok": True})(scope, receive, send)

    async def receive() -> dict[str, Any]:
        reads.append("server")
        if not app_read.is_set():
            return {"type": "http.request", "body": b"data", "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    headers = [(b"host", b"test"), (b"expect", b"100-continue")]
    with anyio.fail_after(WAIT):
        await RequestCancelationMiddleware(app)(http_scope(headers=headers), receive, send)
    assert reads[:2] == ["app", "server"]
    assert sent[0]["status"] == 200


async def test_no_task_outlives_a_request() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=5)

    @app.get("/")
    async def index() -> dict[str, int]:
        return {"tasks": len(anyio.get_running_tasks())}

    async with asgi_client(app) as client:
        before = len(anyio.get_running_tasks())
        response = await client.get("/")
        assert response.status_code == 200
        assert len(anyio.get_running_tasks()) == before


async def test_with_cancelation_answers_503_or_returns_a_response() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware)

    @app.get("/raise")
    @with_cancelation()
    async def raising() -> None:
        operation = current_operation()
        assert operation is not None
        await operation.cancel(message="maintenance")
        await anyio.sleep(30)

    @app.get("/quiet")
    @with_cancelation(timeout=0.05, raise_on_cancel=False)
    async def quiet() -> None:
        await anyio.sleep(30)

    async with asgi_client(app) as client:
        raised = await client.get("/raise")
        quiet_response = await client.get("/quiet")
    assert (raised.status_code, raised.json()) == (
        503,
        {"detail": "request cancelled: maintenance"},
    )
    assert quiet_response.status_code == 504
    assert quiet_response.json() == {"detail": "request timed out after 0.05 s"}


async def test_with_cancelation_without_the_middleware_applies_its_timeout() -> None:
    app = FastAPI()

    @app.get("/")
    @with_cancelation(timeout=0.05)
    async def index(request: Request) -> str:
        await anyio.sleep(30)
        return "never"

    async with asgi_client(app) as client:
        response = await client.get("/")
    assert response.status_code == 504


async def test_the_middleware_answers_504_and_leaves_other_scopes_alone() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=0.05)

    @app.get("/slow")
    async def slow() -> None:
        await anyio.sleep(30)

    @app.get("/token")
    async def token(request: Request) -> dict[str, bool]:
        return {"cancelled": get_request_token(request).is_cancelled}

    async with asgi_client(app) as client:
        slow_response = await client.get("/slow")
        token_response = await client.get("/token")
    assert slow_response.status_code == 504
    assert token_response.json() == {"cancelled": False}


async def forever() -> AsyncIterator[str]:
    while True:
        yield "data: tick\n\n"
        await anyio.sleep(0.01)


async def test_the_request_limit_ends_any_cancelable_stream_cleanly() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=0.1)
    operations: list[Cancelable] = []

    @app.get("/")
    async def index() -> Any:  # an operation of its own, without a limit: the request's applies
        operations.append(Cancelable())
        return cancelable_streaming_response(
            forever(), operations[0], media_type="text/event-stream"
        )

    client = RawClient()
    with anyio.fail_after(WAIT):
        await app(http_scope(), client.receive, client.send)
    assert client.sent[0]["status"] == 200
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    last = client.sent[-2]["body"].decode()
    expected = {"reason": "timeout", "message": LIMIT_MESSAGE.replace("0.5", "0.1")}
    assert cancelled_event(last.strip()) == expected
    context = operations[0].context
    assert (context.cancel_reason, context.cancel_message) == (
        CancelationReason.TIMEOUT,
        expected["message"],
    )


async def test_a_plain_stream_is_cut_by_the_middleware_after_its_limit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=0.1)

    @app.get("/")
    async def index() -> Any:
        return StreamingResponse(forever(), media_type="text/event-stream")

    client = RawClient()
    with caplog.at_level("WARNING", logger="hother.cancelable"), anyio.fail_after(WAIT):
        start = anyio.current_time()
        await app(http_scope(), client.receive, client.send)
        elapsed = anyio.current_time() - start
    assert client.sent[0]["status"] == 200
    assert all(message.get("more_body") for message in client.sent[1:])  # never completed
    assert 0.1 + 0.1 * 0.9 < elapsed < 0.1 + 2  # the limit, then a grace of 0.1 s
    assert "the response to GET / was cut off" in caplog.text
    assert LIMIT_MESSAGE.replace("0.5", "0.1") in caplog.text


async def test_an_endpoint_that_lets_out_the_request_limit_gets_504() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=0.05)
    handled: list[str] = []
    seen: list[OperationContext] = []

    @app.exception_handler(Exception)
    async def on_anything(request: Request, exc: Exception) -> JSONResponse:
        handled.append(type(exc).__name__)
        return JSONResponse({}, status_code=500)

    @app.get("/")
    async def index(cancel: Annotated[Cancelable, Depends(cancelable_dependency)]) -> None:
        seen.append(cancel.context)
        async with cancel:  # its TimeoutCancelation is not caught
            await anyio.sleep(30)

    async with asgi_client(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.json()) == (
        504,
        {"detail": "request timed out after 0.05 s"},
    )
    assert handled == []
    message = LIMIT_MESSAGE.replace("0.5", "0.05")
    assert (seen[0].cancel_reason, seen[0].cancel_message) == (CancelationReason.TIMEOUT, message)


async def test_with_cancelation_without_a_timeout_answers_504_at_the_request_limit() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=0.05)
    operations: list[Cancelable | None] = []

    @app.get("/")
    @with_cancelation()
    async def index() -> None:
        operations.append(current_operation())
        await anyio.sleep(30)

    async with asgi_client(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.json()) == (
        504,
        {"detail": "request timed out after 0.05 s"},
    )
    operation = operations[0]
    assert operation is not None
    assert operation.context.cancel_reason is CancelationReason.TIMEOUT
    assert operation.context.cancel_message == LIMIT_MESSAGE.replace("0.5", "0.05")


async def test_with_cancelation_with_a_longer_timeout_outlasts_the_middleware_default() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=0.05)

    @app.get("/")
    @with_cancelation(timeout=5)
    async def index() -> str:
        await anyio.sleep(0.3)
        return "done"

    async with asgi_client(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.json()) == (200, "done")


async def test_a_shorter_route_limit_does_not_cut_the_rest_of_the_request() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=0.5)
    quick = CancelableDependency(timeout=0.05)

    @app.get("/")
    async def index(cancel: Annotated[Cancelable, Depends(quick)]) -> str:
        with contextlib.suppress(TimeoutCancelation):
            async with cancel:
                await anyio.sleep(30)
        await anyio.sleep(0.2)  # past the route's limit, within the middleware's
        return "partial"

    async with asgi_client(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.json()) == (200, "partial")


async def test_an_operation_without_a_timeout_follows_a_limit_moved_by_the_route() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=0.05)
    route_limit = CancelableDependency(timeout=0.3, name="route")
    contexts: list[OperationContext] = []

    @app.get("/")
    async def index(
        route: Annotated[Cancelable, Depends(route_limit)],
        inner: Annotated[Cancelable, Depends(cancelable_dependency)],
    ) -> str:
        async with route:  # moves the request's limit to 0.3 s from here
            pass
        with contextlib.suppress(TimeoutCancelation):
            async with inner:
                await anyio.sleep(30)
        contexts.append(inner.context)
        return "partial"

    async with asgi_client(app) as client:
        start = anyio.current_time()
        response = await client.get("/")
        elapsed = anyio.current_time() - start
    assert (response.status_code, response.json()) == (200, "partial")
    assert contexts[0].cancel_reason is CancelationReason.TIMEOUT
    assert contexts[0].cancel_message == "request limit of 0.3 s (timeout of route) reached"
    assert 0.3 * 0.9 < elapsed < 0.3 + 2


# -- the caller's budget (Request-Timeout-Ms), in process -----------------------------------------


def budget_message(milliseconds: int, header: str = DEFAULT_DEADLINE_HEADER) -> str:
    return f"caller's budget of {milliseconds} ms ({header}) reached"


def budget_answer(milliseconds: int, header: str = DEFAULT_DEADLINE_HEADER) -> dict[str, str]:
    return {"detail": f"request timed out: {budget_message(milliseconds, header)}"}


def budget_app(
    default_timeout: float | None = None, **options: Any
) -> tuple[FastAPI, list[OperationContext]]:
    """An app whose routes record how their operations ended, under the middleware."""
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=default_timeout, **options)
    ended: list[OperationContext] = []
    own_timeout = CancelableDependency(timeout=5, name="own timeout")

    @app.get("/work")
    async def work(cancel: Annotated[Cancelable, Depends(cancelable_dependency)]) -> str:
        ended.append(cancel.context)
        async with cancel:  # its TimeoutCancelation is let out: the middleware answers it
            await anyio.sleep(30)
        return "never"

    @app.get("/own-timeout")
    async def with_own_timeout(cancel: Annotated[Cancelable, Depends(own_timeout)]) -> str:
        ended.append(cancel.context)
        async with cancel:
            await anyio.sleep(30)
        return "never"

    @app.get("/decorated")
    @with_cancelation(timeout=5)
    async def decorated() -> str:
        operation = current_operation()
        assert operation is not None
        ended.append(operation.context)
        await anyio.sleep(30)
        return "never"

    @app.get("/quick")
    async def quick() -> str:
        return "done"

    return app, ended


async def timed_get(app: Any, path: str, headers: Any = None) -> tuple[Any, float]:
    async with asgi_client(app) as client:
        start = anyio.current_time()
        response = await client.get(path, headers=headers)
        return response, anyio.current_time() - start


async def test_a_budget_below_the_default_timeout_ends_the_request_at_the_budget() -> None:
    app, ended = budget_app(default_timeout=5)
    response, elapsed = await timed_get(app, "/work", {"Request-Timeout-Ms": "200"})
    assert (response.status_code, response.json()) == (504, budget_answer(200))
    assert 0.2 * 0.9 < elapsed < 0.2 + 2  # not the default's 5 s
    assert (ended[0].cancel_reason, ended[0].cancel_message) == (
        CancelationReason.TIMEOUT,
        budget_message(200),
    )


@pytest.mark.parametrize(
    "headers", [{}, {"Request-Timeout-Ms": "5000"}], ids=["no header", "a longer budget"]
)
async def test_the_default_timeout_applies_when_the_budget_is_longer_or_absent(
    headers: dict[str, str],
) -> None:
    app, ended = budget_app(default_timeout=0.2)
    response, elapsed = await timed_get(app, "/work", headers)
    assert (response.status_code, response.json()) == (
        504,
        {"detail": "request timed out after 0.2 s"},
    )
    assert 0.2 * 0.9 < elapsed < 0.2 + 2
    assert ended[0].cancel_message == LIMIT_MESSAGE.replace("0.5", "0.2")


async def test_the_budget_alone_sets_the_limit_without_a_default_timeout() -> None:
    app, ended = budget_app()
    response, elapsed = await timed_get(app, "/work", {"Request-Timeout-Ms": "150"})
    assert (response.status_code, response.json()) == (504, budget_answer(150))
    assert 0.15 * 0.9 < elapsed < 0.15 + 2
    assert ended[0].cancel_message == budget_message(150)


@pytest.mark.parametrize("path", ["/own-timeout", "/decorated"])
async def test_a_route_timeout_never_moves_the_limit_past_the_budget(path: str) -> None:
    # The route's 5 s would move the default's 0.1 s later; the caller gives up at 0.3 s.
    app, ended = budget_app(default_timeout=0.1)
    response, elapsed = await timed_get(app, path, {"Request-Timeout-Ms": "300"})
    assert (response.status_code, response.json()) == (504, budget_answer(300))
    assert 0.3 * 0.9 < elapsed < 0.3 + 2
    assert (ended[0].cancel_reason, ended[0].cancel_message) == (
        CancelationReason.TIMEOUT,
        budget_message(300),
    )


async def test_a_route_timeout_still_moves_the_default_later_within_the_budget() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=0.05)

    @app.get("/")
    @with_cancelation(timeout=5)
    async def index() -> str:
        await anyio.sleep(0.3)  # past the default, within the caller's budget
        return "done"

    response, _ = await timed_get(app, "/", {"Request-Timeout-Ms": "5000"})
    assert (response.status_code, response.json()) == (200, "done")


MALFORMED = ["abc", "-5", "+300", "1.5", "1e3", "1_000", "300ms", "300, 400", "", "31536000001"]


@pytest.mark.parametrize("value", MALFORMED)
async def test_a_malformed_budget_gets_400_naming_the_header_and_the_value(value: str) -> None:
    app, ended = budget_app(default_timeout=5)
    response, _ = await timed_get(app, "/work", {"Request-Timeout-Ms": value})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Request-Timeout-Ms must be a whole number of milliseconds from 0 to "
        f"31536000000, got {value!r}"
    }
    assert ended == []  # the app did not run


async def test_a_budget_sent_twice_gets_400_naming_both_values() -> None:
    app, ended = budget_app(default_timeout=5)
    headers = [("Request-Timeout-Ms", "300"), ("request-timeout-ms", "400")]
    response, _ = await timed_get(app, "/work", headers)
    assert (response.status_code, response.json()) == (
        400,
        {"detail": "Request-Timeout-Ms must be sent once, got 2 values: '300', '400'"},
    )
    assert ended == []


async def test_a_long_malformed_value_is_cut_in_the_answer() -> None:
    app, _ = budget_app()
    response, _ = await timed_get(app, "/work", {"Request-Timeout-Ms": "9" * 100})
    assert response.status_code == 400
    assert response.json()["detail"].endswith(f"got '{'9' * 40}...'")


@pytest.mark.parametrize("value", ["0", "000"])
async def test_a_spent_budget_gets_504_at_once_without_running_the_app(value: str) -> None:
    app, ended = budget_app(default_timeout=5)
    response, elapsed = await timed_get(app, "/work", {"Request-Timeout-Ms": value})
    assert (response.status_code, response.json()) == (504, budget_answer(0))
    assert elapsed < 1
    assert ended == []


async def test_a_budget_with_leading_zeros_is_read() -> None:
    app, ended = budget_app(default_timeout=5)
    response, _ = await timed_get(app, "/work", {"Request-Timeout-Ms": "00100"})
    assert (response.status_code, response.json()) == (504, budget_answer(100))
    assert ended[0].cancel_message == budget_message(100)


async def test_the_header_is_found_in_any_case_and_read_without_spaces_around() -> None:
    app, ended = budget_app(default_timeout=5)
    client = RawClient()
    headers = [(b"host", b"test"), (b"REQUEST-timeout-MS", b" 100\t")]
    with anyio.fail_after(WAIT):
        await app(http_scope("/work", headers), client.receive, client.send)
    assert client.sent[0]["status"] == 504
    assert json.loads(client.sent[1]["body"]) == budget_answer(100)
    assert ended[0].cancel_message == budget_message(100)


async def test_without_a_deadline_header_the_header_is_ignored() -> None:
    app, ended = budget_app(default_timeout=0.2, deadline_header=None)
    malformed, _ = await timed_get(app, "/quick", {"Request-Timeout-Ms": "abc"})
    assert (malformed.status_code, malformed.json()) == (200, "done")
    spent, _ = await timed_get(app, "/quick", {"Request-Timeout-Ms": "0"})
    assert (spent.status_code, spent.json()) == (200, "done")
    short, elapsed = await timed_get(app, "/work", {"Request-Timeout-Ms": "10"})
    assert (short.status_code, short.json()) == (504, {"detail": "request timed out after 0.2 s"})
    assert elapsed > 0.2 * 0.9
    assert ended[0].cancel_message == LIMIT_MESSAGE.replace("0.5", "0.2")


async def test_a_custom_deadline_header_is_read_instead_of_the_default() -> None:
    app, ended = budget_app(default_timeout=5, deadline_header="X-Budget-Ms")
    ignored, _ = await timed_get(app, "/quick", {"Request-Timeout-Ms": "abc"})
    assert (ignored.status_code, ignored.json()) == (200, "done")
    malformed, _ = await timed_get(app, "/quick", {"x-budget-ms": "soon"})
    assert malformed.status_code == 400
    assert malformed.json()["detail"].startswith("X-Budget-Ms must be a whole number")
    response, elapsed = await timed_get(app, "/work", {"X-Budget-Ms": "100"})
    assert (response.status_code, response.json()) == (504, budget_answer(100, "X-Budget-Ms"))
    assert 0.1 * 0.9 < elapsed < 0.1 + 2
    assert ended[0].cancel_message == budget_message(100, "X-Budget-Ms")


@pytest.mark.parametrize(
    "dependency",
    [cancelable_dependency, CancelableDependency(timeout=30)],
    ids=["no timeout", "a timeout of its own"],
)
async def test_a_stream_ends_cleanly_at_the_callers_budget(
    dependency: CancelableDependency,
) -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=5)

    @app.get("/")
    async def index(cancel: Annotated[Cancelable, Depends(dependency)]) -> Any:
        return cancelable_streaming_response(forever(), cancel, media_type="text/event-stream")

    response, elapsed = await timed_get(app, "/", {"Request-Timeout-Ms": "200"})  # whole body
    assert response.status_code == 200
    *ticks, last = server_sent_events(response.text)
    assert ticks
    assert set(ticks) == {"data: tick"}
    assert cancelled_event(last) == {"reason": "timeout", "message": budget_message(200)}
    assert 0.2 * 0.9 < elapsed < 0.2 + 2


async def test_remaining_inside_the_request_counts_down_to_the_budget() -> None:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=30)

    @app.get("/")
    @with_cancelation()
    async def index() -> dict[str, float | None]:
        operation = current_operation()
        assert operation is not None
        remaining = operation.remaining
        return {"remaining": None if math.isinf(remaining) else remaining}

    async with asgi_client(app) as client:
        budgeted = await client.get("/", headers={"Request-Timeout-Ms": "300"})
        default = await client.get("/")
    # The request's limit, where the operation ends itself (and a millisecond: uvloop's clock
    # moves in milliseconds); not the 0.1 s later at which the middleware cuts the request.
    assert 0.3 * 0.5 < budgeted.json()["remaining"] <= 0.3 + 0.001
    assert 15 < default.json()["remaining"] <= 30 + 0.001


# -- signatures, the schema, bad input -------------------------------------------------------------


def test_with_cancelation_keeps_what_fastapi_reads() -> None:
    async def search(q: str, page: int = 1) -> list[str]:
        """Search."""
        return [q] * page

    decorated = with_cancelation(timeout=1)(search)
    assert decorated.__name__ == "search"
    assert decorated.__doc__ == "Search."
    parameters = inspect.signature(decorated).parameters
    assert list(parameters)[:2] == ["q", "page"]
    assert parameters["page"].default == 1
    hidden = list(parameters.values())[2:]
    assert [(p.kind, p.annotation) for p in hidden] == [(inspect.Parameter.KEYWORD_ONLY, Request)]

    async def with_request(request: Request, q: str) -> str:
        return q

    assert inspect.signature(with_cancelation()(with_request)) == inspect.signature(with_request)


async def test_with_cancelation_can_be_called_directly() -> None:
    @with_cancelation(timeout=1)
    async def double(value: int) -> int:
        return value * 2

    assert await double(21) == 42


def test_the_schema_shows_the_endpoint_parameters_only() -> None:
    app = build_app(Journal())
    paths = app.openapi()["paths"]

    def names(path: str) -> list[str]:
        return [parameter["name"] for parameter in paths[path]["get"].get("parameters", [])]

    assert names("/decorated/{item}") == ["item", "delay"]
    assert names("/dependency") == []


def test_importing_without_fastapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # what a missing package looks like
    monkeypatch.delitem(sys.modules, "hother.cancelable.integrations.fastapi")
    with pytest.raises(ImportError, match=r"pip install 'hother-cancelable\[fastapi\]'"):
        importlib.import_module("hother.cancelable.integrations.fastapi")


def test_the_example_app_imports_without_starting_anything() -> None:
    path = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"
    spec = importlib.util.spec_from_file_location("fastapi_app_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    threads = threading.active_count()
    spec.loader.exec_module(module)  # examples/ is not on sys.path: not even _tour is needed
    assert isinstance(module.app, FastAPI)
    assert threading.active_count() == threads
    paths = module.app.openapi()["paths"]
    assert sorted(paths) == ["/export", "/report", "/slow-report", "/yearly-report"]


def test_the_integrations_package_imports_no_framework() -> None:
    source = inspect.getsource(importlib.import_module("hother.cancelable.integrations"))
    tree = ast.parse(source)
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: RequestCancelationMiddleware(FastAPI(), default_timeout=0),
            ValueError,
            "default_timeout",
        ),
        (
            lambda: RequestCancelationMiddleware(FastAPI(), default_timeout="1"),
            TypeError,
            "default_timeout",
        ),
        (
            lambda: RequestCancelationMiddleware(FastAPI(), default_timeout=10**400),
            ValueError,
            "default_timeout",
        ),
        (lambda: RequestCancelationMiddleware("app"), TypeError, "app must be"),
        (lambda: CancelableDependency(timeout=-1), ValueError, "timeout"),
        (lambda: CancelableDependency(timeout=10**400), ValueError, "timeout"),
        (lambda: CancelableDependency(name=3), TypeError, "name"),
        (
            lambda: CancelableDependency(register_globally=1),
            TypeError,
            "register_globally must be a bool, got 1",
        ),
        (lambda: with_cancelation(timeout=float("nan")), ValueError, "timeout"),
        (lambda: with_cancelation(timeout=10**400), ValueError, "timeout"),
        (lambda: with_cancelation(raise_on_cancel=1), TypeError, "raise_on_cancel"),
        (lambda: with_cancelation()(lambda: None), TypeError, "async def"),
        (lambda: cancelable_streaming_response(3, Cancelable()), TypeError, "generator"),
        (lambda: cancelable_streaming_response([], "op"), TypeError, "cancelable"),
        (lambda: get_request_token("request"), TypeError, "request must be"),
    ],
)
def test_bad_input_is_rejected_at_the_call(
    build: Callable[[], Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        build()


async def test_an_entered_cancelable_is_refused_by_streams_and_websockets() -> None:
    async with Cancelable() as cancel:
        with pytest.raises(RuntimeError, match="already entered"):
            cancelable_streaming_response([], cancel)
        websocket = WebSocket(
            {"type": "websocket", "path": "/", "headers": []}, _never_receive, _never_send
        )
        with pytest.raises(RuntimeError, match="already entered"):
            CancelableWebSocket(websocket, cancel)
        with pytest.raises(ValueError, match="close_code"):
            CancelableWebSocket(websocket, Cancelable(), close_code=999)


def test_get_request_token_needs_the_middleware() -> None:
    request = Request(http_scope())
    with pytest.raises(RuntimeError, match="add_middleware"):
        get_request_token(request)


async def _never_receive() -> Any:
    raise AssertionError("not called")


async def _never_send(message: Any) -> None:
    raise AssertionError("not called")


async def test_a_request_that_cannot_be_read_any_more_counts_as_a_disconnect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cleaned = anyio.Event()
    tokens: list[CancelationToken] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        tokens.append(get_request_token(Request(scope)))
        try:
            await anyio.sleep_forever()
        finally:
            cleaned.set()

    reads: list[str] = []

    async def receive() -> dict[str, Any]:
        if not reads:
            reads.append("body")
            return {"type": "http.request", "body": b"", "more_body": False}
        reads.append("failed")
        raise OSError("connection reset by peer")

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    with caplog.at_level("WARNING", logger="hother.cancelable"), anyio.fail_after(WAIT):
        await RequestCancelationMiddleware(app)(http_scope(), receive, send)
    assert cleaned.is_set()
    assert reads == ["body", "failed"]
    assert sent == []  # nobody is listening
    assert tokens[0].message == DISCONNECT_MESSAGE
    assert "reading the request failed" in caplog.text
