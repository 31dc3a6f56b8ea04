"""The other process of the remote cancel latency: it asks, through Redis, for cancellations.

Started by `_workloads.remote_latency` (in a worker of `bench.py`) as

    REDIS_URL=redis://... python benchmarks/_requester.py BACKEND NAMESPACE

It opens a `RedisRegistry` of its own on BACKEND (asyncio, uvloop or trio: the worker's), on
the server of $REDIS_URL, in NAMESPACE, and writes `ready`. Then, for each operation id read
from stdin (one a line, until stdin closes), it takes `time.monotonic()`, calls
`await registry.cancel_operation(id)`, takes the clock again and writes
`START RETURNED LIVE`: the two readings and whether the operation was listed (1 or 0).

The worker compares START with its own `time.monotonic()` at the exit of the cancelled block.
Both read the same system-wide clock (CLOCK_MONOTONIC on Linux); the worker checks that every
sample is ordered as it must be (its id sent, then START, then the block's exit) and fails if
not, so that clocks that are not comparable cannot pass unnoticed.
"""

from __future__ import annotations

import os
import sys
from time import monotonic
from typing import Any

import anyio
import anyio.to_thread

from hother.cancelable.integrations.redis import RedisRegistry

BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve(url: str, namespace: str) -> None:
    async with RedisRegistry(url, namespace=namespace) as registry:
        _write("ready")
        while True:
            # Read in a thread, before the clock starts: how the id arrives is not timed.
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                return
            start = monotonic()
            live = await registry.cancel_operation(line.strip(), message="bench")
            returned = monotonic()
            _write(f"{start!r} {returned!r} {int(live)}")


def main(argv: list[str]) -> None:
    backend, namespace = argv
    name, options = BACKENDS[backend]
    url = os.environ["REDIS_URL"]
    anyio.run(serve, url, namespace, backend=name, backend_options=options)


if __name__ == "__main__":
    main(sys.argv[1:])
