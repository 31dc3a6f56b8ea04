"""`CancelableWebSocket` (integrations/fastapi.py), in process on every backend.

The app side is a real Starlette `WebSocket`; the client side is a `Peer` that plays the ASGI
server: it hands the app the messages the client sends and records what the app sends back.
Nothing waits on a timer to decide a test; the operations' timeouts are generous bounds.
"""

# No `from __future__ import annotations`: like the integration, kept readable by FastAPI.

from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

pytest.importorskip("fastapi")

from starlette.websockets import WebSocket, WebSocketDisconnect

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationStatus,
)
from hother.cancelable.integrations.fastapi import CancelableWebSocket

WAIT = 5.0  # how long a test waits for something that should happen at once


class Peer:
    """The server's side of one websocket: what the client sends, what the app sent."""

    def __init__(self) -> None:
        self._to_app, self._from_client = anyio.create_memory_object_stream[dict[str, Any]](100)
        self.sent: list[dict[str, Any]] = []
        self.websocket = WebSocket(
            {"type": "websocket", "path": "/ws", "headers": []}, self._receive, self._send
        )
        self.client_says({"type": "websocket.connect"})

    def close(self) -> None:
        self._to_app.close()
        self._from_client.close()

    def client_says(self, message: dict[str, Any]) -> None:
        self._to_app.send_nowait(message)

    def client_sends_text(self, *texts: str) -> None:
        for text in texts:
            self.client_says({"type": "websocket.receive", "text": text})

    def client_leaves(self) -> None:
        self.client_says({"type": "websocket.disconnect", "code": 1000})

    async def _receive(self) -> dict[str, Any]:
        return await self._from_client.receive()

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def kinds(self) -> list[str]:
        return [message["type"] for message in self.sent]

    def payloads(self) -> list[Any]:
        return [m.get("text", m.get("bytes")) for m in self.sent if m["type"] == "websocket.send"]


@pytest.fixture
def peer() -> Iterator[Peer]:
    peer = Peer()
    yield peer
    peer.close()


async def test_a_cancelled_session_is_closed_with_the_code_and_the_message(peer: Peer) -> None:
    token = CancelationToken()
    with anyio.fail_after(WAIT):
        async with CancelableWebSocket(
            peer.websocket, Cancelable.with_token(token), close_code=4000
        ) as ws:
            await ws.accept()
            peer.client_sends_text("hello")
            assert await ws.receive_text() == "hello"
            await token.cancel(message="server shutting down")
            await ws.receive_text()  # interrupted: the client sends nothing more
            pytest.fail("receive_text() returned after the cancellation")
    assert peer.kinds() == ["websocket.accept", "websocket.close"]
    assert peer.sent[-1] == {
        "type": "websocket.close",
        "code": 4000,
        "reason": "server shutting down",
    }
    assert ws.cancelable.context.status is OperationStatus.CANCELLED
    assert ws.cancelable.context.cancel_reason is CancelationReason.MANUAL


async def test_a_long_cancel_message_is_cut_to_what_a_close_frame_holds(peer: Peer) -> None:
    await peer.websocket.accept()
    async with CancelableWebSocket(peer.websocket, Cancelable()) as ws:
        await ws.cancelable.cancel(message="é" * 100)  # 200 bytes of UTF-8
        await ws.send_text("never sent")
    close = peer.sent[-1]
    assert (close["type"], close["code"]) == ("websocket.close", 1001)
    assert close["reason"] == "é" * 61  # 122 bytes: the 123rd would split a character
    assert peer.payloads() == []


async def test_a_session_that_ends_normally_leaves_the_socket_to_the_app(peer: Peer) -> None:
    peer.client_sends_text("a", "b")
    peer.client_leaves()
    with anyio.fail_after(WAIT):
        async with CancelableWebSocket(peer.websocket, Cancelable.with_timeout(60)) as ws:
            await ws.accept()
            async for text in ws.iter_text():
                await ws.send_text(text.upper())
    assert peer.kinds() == ["websocket.accept", "websocket.send", "websocket.send"]
    assert peer.payloads() == ["A", "B"]
    assert ws.cancelable.context.status is OperationStatus.COMPLETED


async def test_bytes_and_json_pass_both_ways_until_the_client_leaves(peer: Peer) -> None:
    peer.client_says({"type": "websocket.receive", "bytes": b"\x00\x01"})
    peer.client_says({"type": "websocket.receive", "text": '{"n": 1}'})
    peer.client_says({"type": "websocket.receive", "bytes": b"raw"})
    peer.client_leaves()
    received: list[Any] = []
    with anyio.fail_after(WAIT):
        async with CancelableWebSocket(peer.websocket, Cancelable()) as ws:
            assert ws.websocket is peer.websocket
            await ws.accept(subprotocol="chat")
            received.append(await ws.receive_bytes())
            received.append(await ws.receive_json())
            await ws.send_bytes(b"\xff")
            await ws.send_json({"ok": True})
            received.extend([chunk async for chunk in ws.iter_bytes()])
    assert received == [b"\x00\x01", {"n": 1}, b"raw"]
    assert peer.sent[0] == {"type": "websocket.accept", "subprotocol": "chat", "headers": []}
    assert peer.payloads() == [b"\xff", '{"ok":true}']
    assert ws.cancelable.context.status is OperationStatus.COMPLETED


async def test_iter_json_reads_json_messages_until_the_client_leaves(peer: Peer) -> None:
    await peer.websocket.accept()
    peer.client_sends_text("[1, 2]", '{"a": null}')
    peer.client_leaves()
    with anyio.fail_after(WAIT):
        async with CancelableWebSocket(peer.websocket, Cancelable()) as ws:
            messages = [message async for message in ws.iter_json()]
    assert messages == [[1, 2], {"a": None}]


async def test_the_app_may_close_the_socket_itself(peer: Peer) -> None:
    await peer.websocket.accept()
    async with CancelableWebSocket(peer.websocket, Cancelable()) as ws:
        await ws.close(4001, "bye")
    assert peer.sent[-1] == {"type": "websocket.close", "code": 4001, "reason": "bye"}
    assert ws.cancelable.context.status is OperationStatus.COMPLETED


async def test_a_cancellation_after_the_client_left_sends_no_close(peer: Peer) -> None:
    await peer.websocket.accept()
    peer.client_leaves()
    with anyio.fail_after(WAIT):
        async with CancelableWebSocket(peer.websocket, Cancelable()) as ws:
            assert [text async for text in ws.iter_text()] == []
            await ws.cancelable.cancel(message="cleanup")
            await anyio.sleep(WAIT)  # the next checkpoint ends the block
    assert peer.kinds() == ["websocket.accept"]  # nobody to close for
    assert ws.cancelable.context.status is OperationStatus.CANCELLED
    assert ws.cancelable.context.cancel_message == "cleanup"


async def test_the_client_leaving_reaches_the_app_as_websocket_disconnect(peer: Peer) -> None:
    await peer.websocket.accept()
    peer.client_says({"type": "websocket.disconnect", "code": 1006})
    with pytest.raises(WebSocketDisconnect) as info:
        async with CancelableWebSocket(peer.websocket, Cancelable()) as ws:
            await ws.receive_text()
    assert info.value.code == 1006
    assert ws.cancelable.context.status is OperationStatus.FAILED
    assert peer.kinds() == ["websocket.accept"]


async def test_another_operations_cancelation_leaves_the_block_unchanged(peer: Peer) -> None:
    await peer.websocket.accept()
    other = CancelationToken()
    other.cancel_sync(message="not this session's")
    with pytest.raises(ManualCancelation, match="not this session's") as info:
        async with CancelableWebSocket(peer.websocket, Cancelable()) as ws:
            other.check()
    assert info.value.context is None  # the bare token's, not the session's
    assert ws.cancelable.context.status is OperationStatus.FAILED
    assert peer.kinds() == ["websocket.accept"]  # the socket stays the app's


async def test_the_socket_is_used_inside_the_block_only(peer: Peer) -> None:
    ws = CancelableWebSocket(peer.websocket, Cancelable())
    with pytest.raises(RuntimeError, match=r"inside `async with CancelableWebSocket"):
        await ws.accept()
    async with ws:
        await ws.accept()
    with pytest.raises(RuntimeError, match=r"inside `async with CancelableWebSocket"):
        await ws.send_text("late")
    assert peer.kinds() == ["websocket.accept"]


async def test_an_outer_cancellation_goes_on_and_the_socket_stays_open(peer: Peer) -> None:
    await peer.websocket.accept()
    ran_on: list[str] = []
    with anyio.CancelScope() as outer:
        async with CancelableWebSocket(peer.websocket, Cancelable()) as ws:
            outer.cancel()
            await ws.receive_text()
        ran_on.append("the code after the block")  # no checkpoint here
        await anyio.lowlevel.checkpoint()
    assert outer.cancelled_caught
    assert ws.cancelable.context.cancel_reason is CancelationReason.PARENT
    assert ran_on == []  # the cancellation left the block untouched
    assert peer.kinds() == ["websocket.accept"]  # the socket is the enclosing code's affair


@pytest.mark.parametrize(
    ("websocket", "cancelable", "close_code", "error", "match"),
    [
        ("ws", Cancelable, 1001, TypeError, r"^websocket must be a WebSocket, got 'ws'$"),
        (None, lambda: "op", 1001, TypeError, r"^cancelable must be a Cancelable, got 'op'$"),
        (None, Cancelable, True, TypeError, r"^close_code must be an int, got True$"),
        (None, Cancelable, "1001", TypeError, r"^close_code must be an int, got '1001'$"),
        (None, Cancelable, 5000, ValueError, r"^close_code must be between 1000 and 4999"),
    ],
)
def test_bad_input_is_refused_at_construction(
    websocket: Any, cancelable: Any, close_code: Any, error: type[Exception], match: str
) -> None:
    socket = WebSocket({"type": "websocket"}, _never_receive, _never_send)
    if websocket is not None:
        socket = websocket
    with pytest.raises(error, match=match):
        CancelableWebSocket(socket, cancelable(), close_code=close_code)


async def _never_receive() -> Any:
    raise AssertionError("not called")


async def _never_send(message: Any) -> None:
    raise AssertionError("not called")
