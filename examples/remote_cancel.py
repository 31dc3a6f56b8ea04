#!/usr/bin/env python3
"""Remote cancel: stop a job that another process runs, by its id, through Redis.

Two processes meet through a Redis server, each with one `RedisRegistry`:

- the worker (this script, started again with the argument `worker`) runs a job of 250 rows,
  0.02 s each, under `Cancelable.with_timeout(5, operation_id=...)` with `registry.source()`,
  and prints its progress every 10 rows;
- this process starts the worker, waits until the job is listed, prints what
  `list_operations()` shows of it (id, name, status, and the `host` and `pid` in its
  metadata: the worker's), and cancels it by id with
  `cancel_operation(id, message=...)`.

The worker's block ends with `ManualCancelation`, the reason and message of this process's
request; the worker prints them and exits. This process then checks that the job is no longer
listed. The job's id is new at each run, so that runs never meet.

The script checks every step and exits 0 (non-zero, with an `unexpected: ...` line, if the
library misbehaved), in about a second. It needs the `redis` extra (coredis) and a Redis server
(6.2 or later): `REDIS_URL` (redis://localhost:6379/0 when unset); `nox -s examples` starts one.
Run it with `python examples/remote_cancel.py --backend asyncio|trio [--uvloop]`; the worker
runs on the same backend.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import uuid
from subprocess import PIPE, STDOUT

import anyio
import anyio.abc
from anyio.streams.text import TextReceiveStream

from hother.cancelable import Cancelable, CancelationError, OperationContext
from hother.cancelable.integrations.redis import DEFAULT_URL, RedisRegistry

# The helpers every script of the tour shares, from examples/_tour.py.
from _tour import exception_name, expect, parse_args, run

NAMESPACE = "remote-cancel-example"  # keeps these keys apart from any application's
ROWS = 250  # the whole job would take 5 s
ROW_TIME = 0.02  # seconds per row
LIMIT = 5.0  # seconds the worker's job may take: the request must come long before
MESSAGE = "stopped from the admin console"
LISTED_WITHIN = 5.0  # seconds the worker may take to start and be listed


# -- the worker process ----------------------------------------------------------------------


async def worker(url: str, job_id: str) -> None:
    """Run the job until another process cancels it; exit 0 only if that is how it ended."""
    async with RedisRegistry(url, namespace=NAMESPACE) as registry:
        job = Cancelable.with_timeout(LIMIT, operation_id=job_id, name="nightly export")
        print(f"pid {os.getpid()}: {job_id} starts, {ROWS} rows of {ROW_TIME} s", flush=True)
        rows = 0
        try:
            async with job.add_source(registry.source()):
                for rows in range(1, ROWS + 1):
                    await anyio.sleep(ROW_TIME)  # stands for exporting a row
                    if rows % 10 == 0:
                        print(f"row {rows} of {ROWS}", flush=True)
        except CancelationError as exc:
            print(
                f"stopped after {rows} rows: {exception_name(exc)}, "
                f"reason {exc.reason.name}, message {exc.message!r}",
                flush=True,
            )
            expect(exc.reason.name == "MANUAL", f"the job ended with {exc.reason.name}")
            return
    expect(False, f"{job_id} ran all its {ROWS} rows: nobody cancelled it")


# -- this process ----------------------------------------------------------------------------


async def echo(process: anyio.abc.Process, lines: list[str]) -> None:
    """Print the worker's output as it comes, and keep it for the checks."""
    assert process.stdout is not None
    pending = ""
    async for text in TextReceiveStream(process.stdout):
        pending += text
        *complete, pending = pending.split("\n")
        for line in complete:
            lines.append(line)
            print(f"  worker | {line}", flush=True)


async def listed(registry: RedisRegistry, job_id: str) -> OperationContext | None:
    """The job's snapshot once it is listed; None if it is not within LISTED_WITHIN seconds."""
    with anyio.move_on_after(LISTED_WITHIN):
        while (job := await registry.get_operation(job_id)) is None:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        return job
    return None


async def main(url: str, args: argparse.Namespace) -> None:
    job_id = f"export-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-u", __file__, "worker", "--job-id", job_id]
    command += ["--backend", args.backend, *(["--uvloop"] if args.uvloop else [])]
    lines: list[str] = []
    async with RedisRegistry(url, namespace=NAMESPACE) as registry:
        print(f"Redis at {url}; this process is pid {os.getpid()}; it starts the worker.")
        async with await anyio.open_process(command, stdout=PIPE, stderr=STDOUT) as process:
            async with anyio.create_task_group() as tg:
                tg.start_soon(echo, process, lines)
                job = await listed(registry, job_id)
                if job is not None:
                    await anyio.sleep(0.3)  # a few rows of progress first
                    everything = await registry.list_operations()  # of every process
                    listing = [entry for entry in everything if entry.id == job_id]
                    for entry in listing:
                        print(
                            f"  main   | listed: {entry.id} {entry.name!r} {entry.status.name}, "
                            f"on host {entry.metadata['host']}, pid {entry.metadata['pid']}"
                        )
                    found = await registry.cancel_operation(job_id, message=MESSAGE)
                    print(f"  main   | cancel_operation({job_id!r}, message=...) -> {found}")
                else:
                    process.kill()  # it never showed up: do not wait for it
                    listing, found = [], False
            code = await process.wait()
        gone = await registry.get_operation(job_id) is None
        print(f"The worker exited with code {code}; its job is no longer listed: {gone}.")

    expect(job is not None, f"{job_id} was not listed within {LISTED_WITHIN} s")
    assert job is not None
    expect(len(listing) == 1, f"list_operations() listed {job_id} {len(listing)} times")
    expect(job.status.name == "RUNNING", f"the job was listed as {job.status.name}")
    expect(job.name == "nightly export", f"the job was listed as {job.name!r}")
    expect(job.metadata.get("host") == socket.gethostname(), f"host: {job.metadata}")
    expect(job.metadata.get("pid") == process.pid, f"pid {job.metadata} is not the worker's")
    expect(found, "cancel_operation() did not find the live job")
    stopped = f"reason MANUAL, message {MESSAGE!r}"
    expect(any(stopped in line for line in lines), f"the worker did not stop with {stopped}")
    expect(code == 0, f"the worker exited with code {code}")
    expect(gone, f"{job_id} is still listed after its process ended")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("role", nargs="?", choices=["main", "worker"], default="main")
    parser.add_argument("--job-id", help="the worker's job id (given by the main process)")


if __name__ == "__main__":
    arguments = parse_args(__doc__, add_arguments)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_URL)
    if arguments.role == "worker":
        options = {"use_uvloop": True} if arguments.uvloop else {}
        anyio.run(
            worker, redis_url, arguments.job_id, backend=arguments.backend, backend_options=options
        )
    else:
        run(main, arguments, redis_url, arguments)
