"""The httpx transport: requests sent inside an operation carry its remaining budget.

The client runs on every backend (asyncio, uvloop, trio); the server it calls is a real one,
uvicorn on asyncio in a thread of its own, serving a small ASGI app that answers with the
headers it received, or sleeps until the client leaves.
"""

from __future__ import annotations

import importlib
import json
import math
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from hother.cancelable import Cancelable, TimeoutCancelation  # noqa: E402
from hother.cancelable.integrations.httpx import (  # noqa: E402
    DEFAULT_DEADLINE_HEADER,
    DeadlineTransport,
)

WAIT = 5.0  # how long a test waits for something that should happen at once
BUDGET = 0.3  # seconds: the operation's timeout where a slow server outlasts it
SLOW = 30  # seconds the slow endpoint sleeps: longer than any timeout under test
HEADER = DEFAULT_DEADLINE_HEADER.lower()  # as an ASGI server hands header names to the app


# -- the server ------------------------------------------------------------------------------------


class Journal:
    """What the server saw, written from its thread and awaited from the test's loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def _event(self, what: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(what, threading.Event())

    def record(self, what: str) -> None:
        self._event(what).set()

    def saw(self, what: str) -> bool:
        return self._event(what).is_set()

    async def wait_for(self, what: str) -> bool:
        return await anyio.to_thread.run_sync(self._event(what).wait, WAIT)


def build_app(journal: Journal) -> Any:
    """`/headers` answers with the request's headers; `/sleep` waits for its client to leave."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = dict(parse_qsl(scope["query_string"].decode()))
        journal.record(f"received {query.get('id')}")
        if scope["path"] == "/sleep":
            await wait_for_the_client_to_leave(receive, float(query["seconds"]))
            journal.record(f"disconnected {query.get('id')}")
            return
        headers = [
            [name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]
        ]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(headers).encode()})

    return app


async def wait_for_the_client_to_leave(receive: Any, seconds: float) -> None:
    with anyio.fail_after(seconds):  # the test fails if the client never leaves
        while (await receive())["type"] != "http.disconnect":
            pass


@contextmanager
def uvicorn_on_asyncio(app: Any) -> Iterator[str]:
    import uvicorn

    listener = socket.create_server(("127.0.0.1", 0))  # listening: clients may connect at once
    config = uvicorn.Config(app, lifespan="off", log_level="critical", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    host, port = listener.getsockname()
    try:
        with anyio.from_thread.start_blocking_portal("asyncio") as portal:
            serving = portal.start_task_soon(server.serve, [listener])
            try:
                yield f"http://{host}:{port}"
            finally:
                server.should_exit = True
                serving.result(WAIT)
    finally:
        listener.close()


class Server:
    def __init__(self, url: str, journal: Journal) -> None:
        self.url = url
        self.journal = journal

    def client(self, transport: Any = None, **options: Any) -> Any:
        transport = DeadlineTransport(**options) if transport is None else transport
        return httpx.AsyncClient(transport=transport, base_url=self.url)

    async def headers(self, client: Any, **request: Any) -> dict[str, list[str]]:
        """The headers the server received for a GET /headers, by lowercase name."""
        response = await client.get("/headers", **request)
        response.raise_for_status()
        received: dict[str, list[str]] = {}
        for name, value in response.json():
            received.setdefault(name, []).append(value)
        return received


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    journal = Journal()
    with uvicorn_on_asyncio(build_app(journal)) as url:
        yield Server(url, journal)


def milliseconds(seconds: float) -> int:
    return math.ceil(seconds * 1000)


# -- the budget in the header ----------------------------------------------------------------------


async def test_a_request_inside_an_operation_carries_its_remaining_budget_in_milliseconds(
    server: Server,
) -> None:
    async with server.client() as client, Cancelable.with_timeout(2) as cancel:
        before = cancel.remaining
        received = await server.headers(client)
        after = cancel.remaining
    [sent] = received[HEADER]
    assert milliseconds(after) <= int(sent) <= milliseconds(before) <= 2000


async def test_a_request_outside_any_operation_goes_out_as_the_caller_built_it(
    server: Server,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as plain:
        expected = await server.headers(plain, headers={"X-Trace": "abc"})
    async with server.client() as client:
        received = await server.headers(client, headers={"X-Trace": "abc"})
    assert received == expected
    assert HEADER not in received


async def test_an_operation_without_a_deadline_sends_no_budget(server: Server) -> None:
    async with server.client() as client, Cancelable(name="unbounded"):
        received = await server.headers(client, headers={DEFAULT_DEADLINE_HEADER: "750"})
    assert received[HEADER] == ["750"]  # the caller's own header, untouched


async def test_a_budget_too_long_for_milliseconds_is_not_sent(server: Server) -> None:
    async with server.client() as client, Cancelable.with_timeout(1e306) as cancel:
        received = await server.headers(client)
        assert cancel.remaining * 1000 == math.inf
    assert HEADER not in received


async def test_an_enclosing_scope_deadline_is_part_of_the_budget(server: Server) -> None:
    async with server.client() as client:
        with anyio.move_on_after(1.5):
            async with Cancelable.with_timeout(30):
                received = await server.headers(client)
    [sent] = received[HEADER]
    assert 500 < int(sent) <= 1500


@pytest.mark.parametrize(
    ("callers", "kept"),
    [
        pytest.param(["50"], True, id="a smaller budget of the caller is kept"),
        pytest.param(["1000000"], False, id="a larger one gives way to the operation's"),
        pytest.param(["soon"], False, id="one that is not milliseconds is replaced"),
        pytest.param(["900000", "40"], True, id="of several, the smallest counts"),
    ],
)
async def test_the_caller_s_header_gives_way_only_to_a_smaller_budget(
    server: Server, callers: list[str], kept: bool
) -> None:
    headers = [(DEFAULT_DEADLINE_HEADER, value) for value in callers]
    async with server.client() as client, Cancelable.with_timeout(2) as cancel:
        received = await server.headers(client, headers=headers)
        left = cancel.remaining
    [sent] = received[HEADER]  # one value goes out
    if kept:
        assert sent == min(callers, key=int)
    else:
        assert milliseconds(left) <= int(sent) <= 2000


async def test_the_header_name_is_configurable(server: Server) -> None:
    async with server.client(header="X-Budget-Ms") as client, Cancelable.with_timeout(2):
        received = await server.headers(client)
    [sent] = received["x-budget-ms"]
    assert 1000 < int(sent) <= 2000
    assert HEADER not in received


async def test_a_reserve_is_kept_back_from_the_budget_sent_not_from_the_wait(
    server: Server,
) -> None:
    async with server.client(reserve=0.5) as client, Cancelable.with_timeout(2):
        received = await server.headers(client)
    assert 1000 < int(received[HEADER][0]) <= 1500
    async with server.client(reserve=5) as client, Cancelable.with_timeout(2):
        received = await server.headers(client)  # more than the budget: 0 goes out
    assert received[HEADER] == ["0"]


async def test_any_async_transport_can_be_wrapped(server: Server) -> None:
    app = httpx.ASGITransport(build_app(server.journal))  # the same app, in process
    async with server.client(DeadlineTransport(app)) as client, Cancelable.with_timeout(2):
        received = await server.headers(client)
    assert 1000 < int(received[HEADER][0]) <= 2000


async def test_the_caller_s_request_is_not_modified(server: Server) -> None:
    async with server.client() as client, Cancelable.with_timeout(2):
        request = client.build_request("GET", "/headers", timeout=10)
        response = await client.send(request)
    assert HEADER in [name for name, _ in response.json()]  # sent with the budget ...
    assert DEFAULT_DEADLINE_HEADER not in request.headers  # ... on a copy
    assert request.extensions["timeout"] == httpx.Timeout(10).as_dict()
    assert response.request is request


# -- the request's timeouts ------------------------------------------------------------------------


async def test_a_slow_server_is_left_at_the_budget_with_the_operation_s_timeout(
    server: Server,
) -> None:
    start = time.monotonic()
    async with server.client() as client:
        with pytest.raises(TimeoutCancelation):
            async with Cancelable.with_timeout(BUDGET):
                await client.get("/sleep", params={"seconds": SLOW, "id": "slow"})
        elapsed = time.monotonic() - start
        assert await server.journal.wait_for("disconnected slow")  # the connection is closed
    assert BUDGET - 0.05 < elapsed < 2  # not httpx's default of 5 s


async def test_a_shielded_request_still_gives_up_at_the_budget(server: Server) -> None:
    # The operation's cancellation cannot reach a shielded call: only the capped timeout can.
    async with server.client() as client:
        with pytest.raises(TimeoutCancelation):
            async with Cancelable.with_timeout(BUDGET):
                start = time.monotonic()
                with anyio.CancelScope(shield=True), pytest.raises(httpx.ReadTimeout):
                    await client.get("/sleep", params={"seconds": SLOW, "id": "shielded"})
                elapsed = time.monotonic() - start
                await anyio.sleep(WAIT)  # the operation's deadline has passed: it ends here
        assert await server.journal.wait_for("disconnected shielded")
    assert BUDGET - 0.05 < elapsed < 2  # not httpx's default of 5 s


async def test_a_shorter_httpx_timeout_of_the_caller_is_kept(server: Server) -> None:
    async with server.client() as client, Cancelable.with_timeout(30):
        start = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/sleep", params={"seconds": SLOW, "id": "short"}, timeout=0.2)
        elapsed = time.monotonic() - start
    assert 0.15 < elapsed < 2


# -- a spent budget --------------------------------------------------------------------------------


async def test_a_request_made_after_the_budget_is_spent_is_not_sent(server: Server) -> None:
    async with server.client() as client:
        with pytest.raises(TimeoutCancelation):
            async with Cancelable.with_timeout(0.05) as cancel:
                time.sleep(0.1)  # noqa: ASYNC251 - blocking work past the deadline, no checkpoint
                assert cancel.remaining == 0
                await client.get("/headers", params={"id": "late"})
        # The same client still reaches the server: what was not sent was never sent.
        await client.get("/headers", params={"id": "after"})
    assert server.journal.saw("received after")
    assert not server.journal.saw("received late")


async def test_a_shielded_cleanup_request_after_the_deadline_carries_the_shield_s_budget(
    server: Server,
) -> None:
    async with server.client() as client:
        with pytest.raises(TimeoutCancelation):
            async with Cancelable.with_timeout(0.05):
                time.sleep(0.1)  # noqa: ASYNC251 - past the deadline: only shields run on
                with anyio.CancelScope(shield=True):
                    unbounded = await server.headers(client)
                with anyio.CancelScope(shield=True, deadline=anyio.current_time() + 2):
                    bounded = await server.headers(client)
                await anyio.sleep(WAIT)  # the operation's deadline has passed: it ends here
    assert HEADER not in unbounded
    [sent] = bounded[HEADER]
    assert 1000 < int(sent) <= 2000


# -- closing ---------------------------------------------------------------------------------------


@contextmanager
def one_connection_server(journal: Journal) -> Iterator[str]:
    """A server that answers one request on one connection, then records when it is closed."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(WAIT)
            while b"\r\n\r\n" not in connection.recv(4096):
                pass
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            if connection.recv(4096) == b"":  # the client closed the connection
                journal.record("closed")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        host, port = listener.getsockname()
        yield f"http://{host}:{port}"
    finally:
        thread.join(WAIT)
        listener.close()


async def test_closing_the_client_closes_the_connections_of_the_wrapped_transport() -> None:
    journal = Journal()
    with one_connection_server(journal) as url:
        async with httpx.AsyncClient(transport=DeadlineTransport(), base_url=url) as client:
            response = await client.get("/")
            assert response.status_code == 200
            assert not journal.saw("closed")  # kept alive for the next request
        assert await journal.wait_for("closed")


# -- bad input and the extra -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"header": 5}, TypeError, id="header not a str"),
        pytest.param({"header": b"Request-Timeout-Ms"}, TypeError, id="header as bytes"),
        pytest.param({"header": ""}, ValueError, id="empty header"),
        pytest.param({"header": "Request Timeout"}, ValueError, id="header with a space"),
        pytest.param({"header": "Timeout:"}, ValueError, id="header with a colon"),
        pytest.param({"header": "Zeitüberschreitung"}, ValueError, id="header not ASCII"),
        pytest.param({"transport": "http://localhost"}, TypeError, id="transport a str"),
        pytest.param({"transport": httpx.HTTPTransport()}, TypeError, id="transport sync"),
        pytest.param({"reserve": -0.1}, ValueError, id="negative reserve"),
        pytest.param({"reserve": float("nan")}, ValueError, id="NaN reserve"),
        pytest.param({"reserve": "50ms"}, TypeError, id="reserve a str"),
    ],
)
def test_bad_arguments_are_refused_with_their_name_and_value(
    options: dict[str, Any], error: type[Exception]
) -> None:
    [(name, value)] = options.items()
    with pytest.raises(error) as caught:
        DeadlineTransport(**options)
    assert str(caught.value).startswith(f"{name} must be")
    assert repr(value) in str(caught.value)


def test_importing_without_httpx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # what a missing package looks like
    monkeypatch.delitem(sys.modules, "hother.cancelable.integrations.httpx")
    with pytest.raises(ImportError, match=r"pip install 'hother-cancelable\[httpx\]'"):
        importlib.import_module("hother.cancelable.integrations.httpx")
