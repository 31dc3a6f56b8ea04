"""A deadline travelling between services (SPEC section 8, issue [4/6] item 4).

A client calls service A (uvicorn, asyncio) with a budget of 300 ms in `Request-Timeout-Ms`;
A calls service B (hypercorn, trio) through `DeadlineTransport(reserve=0.05)`, keeping 50 ms
to answer its client; B's handler would sleep for 10 s. B's operation must end with TIMEOUT
at about A's remaining budget, not at B's own default, and A must answer its client with a
timeout well before B's default would have fired; then nothing is left running in either
server.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations below.

import time
from typing import Annotated, Any

import anyio
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("hypercorn")
pytest.importorskip("trio")
httpx = pytest.importorskip("httpx")

from fastapi import Depends, FastAPI  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from hother.cancelable import Cancelable, ThreadSafeRegistry  # noqa: E402
from hother.cancelable.integrations.fastapi import (  # noqa: E402
    CancelableDependency,
    RequestCancelationMiddleware,
)
from hother.cancelable.integrations.httpx import DeadlineTransport  # noqa: E402
from test_fastapi import Journal, hypercorn_on_trio, uvicorn_on_asyncio  # noqa: E402

B_DEFAULT = 1.0  # service B's own limit, far above the client's budget
BUDGET_MS = 300
MARGIN = 0.05  # what A keeps to answer its client


def build_b(journal: Journal) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=B_DEFAULT)
    work = CancelableDependency(name="B work", register_globally=True)

    @app.get("/work")
    async def handle(cancel: Annotated[Cancelable, Depends(work)]) -> dict[str, Any]:
        started = time.monotonic()
        try:
            async with cancel:
                journal.write("b started", remaining=cancel.remaining)
                await anyio.sleep(10)
        finally:
            context = cancel.context
            journal.write(
                "b ended",
                status=context.status.value,
                reason=None if context.cancel_reason is None else context.cancel_reason.value,
                message=context.cancel_message,
                elapsed=time.monotonic() - started,
            )
        return {}

    return app


def build_a(journal: Journal, b_url: str) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=5)
    request_operation = CancelableDependency(name="A request", register_globally=True)

    @app.get("/a")
    async def handle(cancel: Annotated[Cancelable, Depends(request_operation)]) -> Any:
        async with cancel:
            journal.write("a started", remaining=cancel.remaining)
            # B gets the budget less what A keeps to answer its client; A waits for all of it.
            transport = DeadlineTransport(reserve=MARGIN)
            async with httpx.AsyncClient(transport=transport) as client:
                reply = await client.get(f"{b_url}/work")
            journal.write("a's call answered", status=reply.status_code)
            return JSONResponse({"detail": f"B answered {reply.status_code}"}, status_code=504)

    return app


def test_a_budget_travels_from_a_to_b_and_b_stops_at_it() -> None:
    journal = Journal()
    with (
        hypercorn_on_trio(build_b(journal)) as b_url,
        uvicorn_on_asyncio(build_a(journal, b_url)) as a_url,
    ):
        sent = time.monotonic()
        reply = httpx.get(f"{a_url}/a", headers={"Request-Timeout-Ms": str(BUDGET_MS)}, timeout=10)
        answered = time.monotonic() - sent
        b_ended = journal.wait_for("b ended")
        a_started = journal.wait_for("a started")
        b_started = journal.wait_for("b started")
    assert reply.status_code == 504
    assert reply.json() == {"detail": "B answered 504"}  # B said it timed out
    assert answered < BUDGET_MS / 1000 + 0.5 < B_DEFAULT  # well before B's default
    assert a_started.data["remaining"] <= BUDGET_MS / 1000
    # B heard A's remaining budget, less the margin A kept: not its own default.
    assert b_started.data["remaining"] < BUDGET_MS / 1000 - MARGIN + 0.01
    assert b_ended.data["status"] == "cancelled"
    assert b_ended.data["reason"] == "timeout"
    assert "Request-Timeout-Ms" in b_ended.data["message"]
    assert b_ended.data["elapsed"] < BUDGET_MS / 1000  # about A's remaining budget
    # Nothing is left running in either server.
    assert ThreadSafeRegistry().list_operations(name_pattern="B work") == []
    assert ThreadSafeRegistry().list_operations(name_pattern="A request") == []


def test_without_the_header_b_keeps_its_own_default() -> None:
    journal = Journal()
    with hypercorn_on_trio(build_b(journal)) as b_url:
        sent = time.monotonic()
        reply = httpx.get(f"{b_url}/work", timeout=10)
        answered = time.monotonic() - sent
        b_ended = journal.wait_for("b ended")
    assert reply.status_code == 504
    assert B_DEFAULT - 0.05 <= answered < B_DEFAULT + 1.0
    assert b_ended.data["reason"] == "timeout"
    assert b_ended.data["elapsed"] >= B_DEFAULT - 0.05
