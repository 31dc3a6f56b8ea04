#!/usr/bin/env python3
"""A FastAPI app whose requests stop when their client hangs up or their time is up.

The app, `app`, has `RequestCancelationMiddleware(default_timeout=0.5)` and four endpoints:

- `GET /report?rows=N` builds N rows in a few milliseconds and answers 200;
- `GET /slow-report` would need 5 s: the middleware cancels it after 0.5 s and answers
  504 Gateway Timeout;
- `GET /yearly-report` needs 0.8 s, and declares a limit of its own, `timeout=2`, with
  `@with_cancelation`: it may run longer than the middleware's default, and answers 200;
- `GET /export` would need 5 s too; it is meant for a client that gives up first.

Both slow handlers note in their `finally` that their cleanup ran, and what the request's
token said at that moment (`get_request_token(request)`).

Run as a script, it serves itself on a free port of 127.0.0.1 (uvicorn on asyncio, hypercorn
on trio), calls its own endpoints with httpx, and checks what happened:

1. `/report?rows=3`: 200 with three rows, answered inside the request's operation
   (`current_operation()` is named `GET /report`);
2. `/slow-report`: 504 after about 0.5 s; the handler's cleanup ran, and the token was not
   cancelled: the client was still there, the time was up;
3. `/yearly-report`: 200 after about 0.8 s, past the middleware's default, within its own limit;
4. `/export`, from a client that hangs up after 0.2 s: the handler is cancelled at once and
   its cleanup runs, with the token cancelled (reason MANUAL, "client disconnected"); the
   script prints how long after the hang-up.

Then it stops the server and exits 0 (non-zero, with an `unexpected: ...` line, if the library
misbehaved). It needs the `fastapi` extra, httpx, and uvicorn (asyncio) or hypercorn (trio).
Run it with `python examples/fastapi_app.py --backend asyncio|trio [--uvloop]`.

Importing it starts nothing, so it can be served as any app: from examples/,
`uvicorn fastapi_app:app` or `hypercorn fastapi_app:app --worker-class trio`.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import anyio.abc
from fastapi import FastAPI, Request

from hother.cancelable import CancelationReason, current_operation
from hother.cancelable.integrations.fastapi import (
    DISCONNECT_MESSAGE,
    RequestCancelationMiddleware,
    get_request_token,
    with_cancelation,
)

REQUEST_TIMEOUT = 0.5  # seconds any request may take, unless its route says otherwise
YEARLY_REPORT_TIME = 0.8  # seconds /yearly-report needs
YEARLY_REPORT_LIMIT = 2  # seconds /yearly-report may take: its own limit
HANG_UP_AFTER = 0.2  # seconds the impatient client waits for /export


class Cleanups:
    """Where the handlers note that their cleanup ran, for the tour to wait on."""

    def __init__(self) -> None:
        self.notes: dict[str, dict[str, Any]] = {}
        self._noted: dict[str, anyio.Event] = {}

    def note(self, name: str, **details: Any) -> None:
        self.notes[name] = {"at": anyio.current_time(), **details}
        if name in self._noted:
            self._noted[name].set()

    async def wait(self, name: str, timeout: float) -> dict[str, Any] | None:
        if name not in self.notes:
            noted = self._noted.setdefault(name, anyio.Event())
            with anyio.move_on_after(timeout):
                await noted.wait()
        return self.notes.get(name)


cleanups = Cleanups()
app = FastAPI(title="hother.cancelable: requests that stop")
app.add_middleware(RequestCancelationMiddleware, default_timeout=REQUEST_TIMEOUT)


@app.get("/report")
async def report(rows: int = 3) -> dict[str, Any]:
    built = []
    for row in range(rows):
        await anyio.sleep(0.005)  # the work on one row
        built.append({"row": row, "total": row * 10})
    operation = current_operation()
    return {"rows": built, "operation": operation.context.name if operation else None}


async def five_seconds_of_work(name: str, request: Request) -> dict[str, str]:
    token = get_request_token(request)
    try:
        await anyio.sleep(5)
        return {"status": "done"}
    finally:  # runs however the work ends: here, when the request is cancelled
        cleanups.note(
            name, token_cancelled=token.is_cancelled, reason=token.reason, message=token.message
        )


@app.get("/slow-report")
async def slow_report(request: Request) -> dict[str, str]:
    return await five_seconds_of_work("slow-report", request)


@app.get("/yearly-report")
@with_cancelation(timeout=YEARLY_REPORT_LIMIT)  # this route's own limit replaces the default
async def yearly_report() -> dict[str, str]:
    await anyio.sleep(YEARLY_REPORT_TIME)  # the work: longer than the middleware's default
    return {"status": "done"}


@app.get("/export")
async def export(request: Request) -> dict[str, str]:
    return await five_seconds_of_work("export", request)


# -- the tour: serve the app, call it, check ---------------------------------------------------


async def tour(base_url: str) -> None:
    import httpx

    from _tour import expect  # the tour's helpers, only when run as a script

    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        print("1. GET /report?rows=3, well within the time limit")
        response = await client.get("/report", params={"rows": 3})
        body = response.json()
        rows, operation = len(body["rows"]), body["operation"]
        print(f"   {response.status_code} with {rows} rows, answered inside the operation")
        print(f"   {operation!r}, which the middleware runs for each request.")
        expect(response.status_code == 200, f"/report answered {response.status_code}")
        expect(body["operation"] == "GET /report", f"the operation is {body['operation']!r}")
        print()

        print(f"2. GET /slow-report, which needs 5 s, with default_timeout={REQUEST_TIMEOUT}")
        start = anyio.current_time()
        response = await client.get("/slow-report")
        elapsed = anyio.current_time() - start
        note = await cleanups.wait("slow-report", timeout=2)
        print(f"   {response.status_code} after {elapsed:.2f} s: {response.json()}")
        print("   The handler's cleanup ran, and the request's token was not cancelled:")
        print("   the client was still waiting, the time was up.")
        expect(response.status_code == 504, f"/slow-report answered {response.status_code}")
        expect(
            REQUEST_TIMEOUT * 0.9 <= elapsed < REQUEST_TIMEOUT + 1.5, f"504 after {elapsed:.2f} s"
        )
        expect(note is not None and not note["token_cancelled"], f"the cleanup noted {note}")
        print()

        print(f"3. GET /yearly-report, which needs {YEARLY_REPORT_TIME} s and declares")
        print(f"   @with_cancelation(timeout={YEARLY_REPORT_LIMIT}), its own limit")
        start = anyio.current_time()
        response = await client.get("/yearly-report")
        elapsed = anyio.current_time() - start
        print(f"   {response.status_code} after {elapsed:.2f} s: {response.json()}")
        print("   The route's own limit replaced the middleware's default for this request.")
        expect(response.status_code == 200, f"/yearly-report answered {response.status_code}")
        expect(elapsed >= YEARLY_REPORT_TIME * 0.9, f"200 after {elapsed:.2f} s")
        print()

        print(f"4. GET /export, from a client that hangs up after {HANG_UP_AFTER} s")
        with anyio.move_on_after(HANG_UP_AFTER):
            await client.get("/export")  # cancelled: httpx closes the connection
        hung_up = anyio.current_time()
        note = await cleanups.wait("export", timeout=2)
        expect(note is not None, "the handler's cleanup did not run within 2 s of the hang-up")
        assert note is not None
        latency = note["at"] - hung_up
        reason, message, ms = note["reason"], note["message"], latency * 1000
        print(f"   The handler was cancelled: its cleanup ran {ms:.1f} ms after the hang-up,")
        print(f"   and the request's token said: reason={reason.name}, message={message!r}.")
        expect(note["token_cancelled"], "the token was not cancelled by the disconnect")
        expect(note["reason"] is CancelationReason.MANUAL, f"the reason is {note['reason']}")
        expect(note["message"] == DISCONNECT_MESSAGE, f"the message is {note['message']!r}")
        expect(latency < 0.5, f"the cleanup ran {latency:.2f} s after the hang-up")
        print()


async def serve_with_uvicorn(
    task_group: anyio.abc.TaskGroup,
) -> tuple[str, Callable[[], Awaitable[None]]]:
    import uvicorn

    listener = socket.create_server(("127.0.0.1", 0))  # a free port, listening at once
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task_group.start_soon(server.serve, [listener])
    host, port = listener.getsockname()

    async def stop() -> None:
        server.should_exit = True  # noticed within 0.1 s; the task group waits for it

    return f"http://{host}:{port}", stop


async def serve_with_hypercorn(
    task_group: anyio.abc.TaskGroup,
) -> tuple[str, Callable[[], Awaitable[None]]]:
    import hypercorn.config
    import hypercorn.trio

    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]  # a free port
    config.loglevel = "WARNING"
    config.graceful_timeout = 1
    shutdown = anyio.Event()
    serve = partial(hypercorn.trio.serve, app, config, shutdown_trigger=shutdown.wait)
    urls = await task_group.start(serve)

    async def stop() -> None:
        shutdown.set()

    return urls[0], stop


async def main(backend: str) -> None:
    serve = serve_with_hypercorn if backend == "trio" else serve_with_uvicorn
    async with anyio.create_task_group() as task_group:
        base_url, stop = await serve(task_group)
        print(f"Serving on {base_url} with {'hypercorn' if backend == 'trio' else 'uvicorn'}.\n")
        try:
            await tour(base_url)
        finally:
            await stop()
    print("The server stopped; every request ended as described.")


if __name__ == "__main__":
    from _tour import parse_args, run

    arguments = parse_args(__doc__)
    run(main, arguments, arguments.backend)
