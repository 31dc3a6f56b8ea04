#!/usr/bin/env python3
"""Deadline propagation: a client's budget travels from service to service and shrinks.

Two FastAPI services run in this process, each on its own event loop in a thread:

- service A on uvicorn (asyncio), with `RequestCancelationMiddleware(default_timeout=5)`;
- service B on hypercorn (trio), with `RequestCancelationMiddleware(default_timeout=5)`,
  whose `/work` handler would need 2 s.

The client (this script's own event loop, on the backend chosen with `--backend`) calls A with
a budget of 600 ms in the `Request-Timeout-Ms` header. A's request operation reads it: its
`remaining` is about 600 ms, not A's own 5 s. A calls B through
`httpx.AsyncClient(transport=DeadlineTransport(reserve=0.1))`, which keeps 100 ms for A to
answer its client, so B receives what is left of the budget, less that margin. B's operation
ends with TIMEOUT at about that budget, far before B's own 5 s; B answers 504; A answers its
client 504 too, about 600 ms after the client sent the request.

Each hop prints the budget it received, so the script shows it shrinking hop by hop:

    client  -- 600 ms -->  A  -- ~500 ms -->  B  (needs 2 s: stops at the budget)

The script checks every step and exits 0 (non-zero, with an `unexpected: ...` line, if the
library misbehaved). It needs the `fastapi` and `httpx` extras, uvicorn, hypercorn and trio.
Run it with `python examples/deadline_propagation.py --backend asyncio|trio [--uvloop]`.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations below.

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any

import anyio
import anyio.from_thread
import httpx
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from hother.cancelable import Cancelable
from hother.cancelable.integrations.fastapi import (
    CancelableDependency,
    RequestCancelationMiddleware,
)
from hother.cancelable.integrations.httpx import DeadlineTransport

BUDGET_MS = 600  # what the client gives the whole call
MARGIN = 0.1  # seconds A keeps to answer its client
B_WORK = 2.0  # seconds B's handler would need
DEFAULT = 5.0  # each service's own limit

hops: dict[str, dict[str, Any]] = {}  # what each hop saw, written from the services' threads
hops_lock = threading.Lock()


def note(hop: str, **data: Any) -> None:
    with hops_lock:
        hops.setdefault(hop, {}).update(data)


def build_b() -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=DEFAULT)
    work = CancelableDependency(name="B /work")

    @app.get("/work")
    async def handle(cancel: Annotated[Cancelable, Depends(work)]) -> dict[str, str]:
        started = time.monotonic()
        try:
            async with cancel:
                note("B", received_ms=round(cancel.remaining * 1000))
                print(f"  B received a budget of {hops['B']['received_ms']} ms; its work needs 2 s")
                await anyio.sleep(B_WORK)
        finally:
            context = cancel.context
            reason = None if context.cancel_reason is None else context.cancel_reason.name
            note("B", reason=reason, message=context.cancel_message)
            note("B", stopped_after_ms=round((time.monotonic() - started) * 1000))
        return {"detail": "done"}

    return app


def build_a(b_url: str) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=DEFAULT)
    request_operation = CancelableDependency(name="A /report")

    @app.get("/report")
    async def handle(cancel: Annotated[Cancelable, Depends(request_operation)]) -> Any:
        async with cancel:
            received = cancel.remaining
            note("A", received_ms=round(received * 1000))
            print(f"  A received a budget of {hops['A']['received_ms']} ms; it calls B, keeping")
            print(f"    {MARGIN * 1000:.0f} ms to answer: DeadlineTransport(reserve={MARGIN})")
            transport = DeadlineTransport(reserve=MARGIN)
            async with httpx.AsyncClient(transport=transport) as client:
                reply = await client.get(f"{b_url}/work")
            note("A", b_answer=reply.status_code)
            return JSONResponse({"detail": f"B answered {reply.status_code}"}, status_code=504)

    return app


@contextlib.contextmanager
def uvicorn_on_asyncio(app: FastAPI) -> Iterator[str]:
    import uvicorn

    listener = socket.create_server(("127.0.0.1", 0))  # a free port, listening at once
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    host, port = listener.getsockname()
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        serving = portal.start_task_soon(server.serve, [listener])
        try:
            yield f"http://{host}:{port}"
        finally:
            server.should_exit = True
            serving.result(10)
            listener.close()


@contextlib.contextmanager
def hypercorn_on_trio(app: FastAPI) -> Iterator[str]:
    import hypercorn.config
    import hypercorn.trio

    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]  # a free port
    config.loglevel = "WARNING"
    config.graceful_timeout = 1
    with anyio.from_thread.start_blocking_portal("trio") as portal:
        shutdown = portal.call(anyio.Event)
        serve = partial(hypercorn.trio.serve, app, config, shutdown_trigger=shutdown.wait)
        serving, urls = portal.start_task(serve)
        try:
            yield urls[0]
        finally:
            portal.call(shutdown.set)
            serving.result(10)


async def call_a(a_url: str) -> None:
    from _tour import expect

    print(f"The client calls A with a budget of {BUDGET_MS} ms (Request-Timeout-Ms).")
    sent = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(f"{a_url}/report", headers={"Request-Timeout-Ms": str(BUDGET_MS)})
    elapsed_ms = round((time.monotonic() - sent) * 1000)
    await anyio.sleep(0.1)  # B notes how it ended as its request unwinds
    print(f"The client got {reply.status_code} from A after {elapsed_ms} ms.\n")
    a, b = hops.get("A", {}), hops.get("B", {})
    print(
        f"  hop by hop: client {BUDGET_MS} ms -> A {a.get('received_ms')} ms -> "
        f"B {b.get('received_ms')} ms"
    )
    print(
        f"  B stopped after {b.get('stopped_after_ms')} ms: {b.get('reason')}, {b.get('message')!r}"
    )

    expect(reply.status_code == 504, f"A answered {reply.status_code}, not 504")
    expect(a.get("received_ms", 0) <= BUDGET_MS, f"A received {a.get('received_ms')} ms")
    expect(
        b.get("received_ms", BUDGET_MS) < a.get("received_ms", 0) - MARGIN * 1000 + 20,
        f"B received {b.get('received_ms')} ms, not A's budget less its margin",
    )
    expect(b.get("reason") == "TIMEOUT", f"B ended with {b.get('reason')}, not TIMEOUT")
    expect(
        b.get("stopped_after_ms", 10**6) < BUDGET_MS,
        f"B stopped after {b.get('stopped_after_ms')} ms, not at its budget",
    )
    expect(a.get("b_answer") == 504, f"B answered A {a.get('b_answer')}, not 504")
    expect(elapsed_ms < BUDGET_MS + 500, f"A answered after {elapsed_ms} ms")


def main(backend: str, use_uvloop: bool) -> None:
    with hypercorn_on_trio(build_b()) as b_url, uvicorn_on_asyncio(build_a(b_url)) as a_url:
        print(
            f"Service A on uvicorn (asyncio) at {a_url}; service B on hypercorn (trio) at "
            f"{b_url}.\n"
        )
        options = {"use_uvloop": True} if use_uvloop else {}
        anyio.run(call_a, a_url, backend=backend, backend_options=options)
    print("Both services stopped; nothing was left running.")


if __name__ == "__main__":
    from _tour import parse_args

    arguments = parse_args(__doc__)
    print(f"Backend of the client: {arguments.backend}{' (uvloop)' if arguments.uvloop else ''}\n")
    main(arguments.backend, arguments.uvloop)
