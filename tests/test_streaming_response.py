"""`cancelable_streaming_response` (integrations/fastapi.py), in process on every backend.

The response is called as a bare ASGI app; `Client` plays the server and records the messages
that were delivered. Each test bounds its wait with `anyio.fail_after`: nothing sleeps to decide.
"""

# No `from __future__ import annotations`: like the integration, kept readable by FastAPI.

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

pytest.importorskip("fastapi")

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationStatus,
)
from hother.cancelable.integrations.fastapi import cancelable_streaming_response

WAIT = 5.0  # how long a test waits for something that should happen at once

SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "path": "/stream",
    "headers": [],
}


class Client:
    """The server's side of a response: records each message once the client has it."""

    def __init__(self, stall_on_chunk: int | None = None) -> None:
        self.delivered: list[dict[str, Any]] = []
        self._stall_on_chunk = stall_on_chunk  # a client that stops reading at this chunk
        self._chunks = 0
        self.stalled = anyio.Event()

    async def receive(self) -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            self._chunks += 1
            if self._chunks == self._stall_on_chunk:
                self.stalled.set()
                await anyio.sleep_forever()
        self.delivered.append(message)

    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.delivered if m["type"] == "http.response.body")

    def finished(self) -> bool:
        last = self.delivered[-1]
        return last["type"] == "http.response.body" and not last.get("more_body", False)


async def test_a_stream_that_ends_is_sent_whole_and_the_operation_completes() -> None:
    closed: list[bool] = []

    async def lines() -> AsyncIterator[str | bytes]:
        try:
            yield "héllo\n"
            yield b"bytes\n"
        finally:
            closed.append(True)

    operation = Cancelable.with_timeout(60)
    client = Client()
    with anyio.fail_after(WAIT):
        await cancelable_streaming_response(lines(), operation)(SCOPE, client.receive, client.send)
    assert client.delivered[0]["status"] == 200
    assert client.body() == "héllo\nbytes\n".encode()
    assert client.finished()
    assert closed == [True]
    assert operation.context.status is OperationStatus.COMPLETED
    assert operation.context.partial_result["count"] == 2


async def test_a_plain_iterable_is_streamed_too() -> None:
    operation = Cancelable()
    client = Client()
    response = cancelable_streaming_response(["a", "b", "c"], operation, "text/csv")
    with anyio.fail_after(WAIT):
        await response(SCOPE, client.receive, client.send)
    assert client.body() == b"abc"
    assert client.finished()
    assert operation.is_completed


async def test_a_cancellation_while_a_chunk_is_sent_leaves_the_response_unfinished() -> None:
    async def ticks() -> AsyncIterator[str]:
        for number in range(1000):
            yield f"{number}\n"

    token = CancelationToken()
    operation = Cancelable.with_token(token)
    client = Client(stall_on_chunk=3)  # stops reading while the third chunk is sent

    async def cancel_once_stalled() -> None:
        await client.stalled.wait()
        await token.cancel(message="shutting down")

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(cancel_once_stalled)
            await cancelable_streaming_response(ticks(), operation)(
                SCOPE, client.receive, client.send
            )
    assert client.body() == b"0\n1\n"
    assert not client.finished()  # no end of body: the server drops the connection
    assert operation.context.status is OperationStatus.CANCELLED
    assert operation.context.cancel_reason is CancelationReason.MANUAL


async def test_a_cancelation_error_of_the_generators_own_is_not_taken_for_the_streams() -> None:
    other = CancelationToken()
    other.cancel_sync(message="another operation's")

    async def checked() -> AsyncIterator[str]:
        yield "first\n"
        other.check()  # not the stream's operation: an error of the generator
        yield "never\n"

    operation = Cancelable()
    client = Client()
    with anyio.fail_after(WAIT), pytest.raises(ManualCancelation, match="another operation's"):
        await cancelable_streaming_response(checked(), operation)(
            SCOPE, client.receive, client.send
        )
    assert client.body() == b"first\n"
    assert not client.finished()
    assert operation.context.status is OperationStatus.FAILED


def test_the_media_type_must_be_a_str() -> None:
    with pytest.raises(TypeError, match=r"^media_type must be a str, got b'text/plain'$"):
        cancelable_streaming_response([], Cancelable(), b"text/plain")  # type: ignore[arg-type]
