#!/usr/bin/env python3
"""Cancellation across threads: a plain thread stops a worker, a blocking job sees its deadline.

a. A worker processes items inside `Cancelable.with_token(token)`. A plain `threading.Thread`
   stands for a keyboard listener: it "waits for a key" (sleeps `--key-after` seconds, 0.5 by
   default) and then calls `token.cancel_sync(message=...)`, which never blocks and needs no
   event loop. The worker's block ends a few milliseconds later with `ManualCancelation`,
   status CANCELLED, reason MANUAL, and the items it finished stay in `context.partial_result`.
b. A blocking job (no checkpoint anywhere, `time.sleep` for each chunk) runs with
   `cancel.run_in_thread(...)` inside `Cancelable.with_timeout(0.5)`. In the worker thread,
   `current_operation()` is that operation; between two chunks the job calls
   `current_operation().token.check()`, which raises the operation's `TimeoutCancelation` once
   the deadline has passed. The job stops at its next chunk, and the block raises that same
   error, with the operation's context.

Both scenes finish by themselves, in about a second in all. Every outcome is checked, so the
script exits non-zero if the library misbehaves.
Run it with `python examples/cancel_from_thread.py --backend asyncio|trio [--uvloop]`.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationStatus,
    TimeoutCancelation,
    current_operation,
)

# The helpers every script of the tour shares, from examples/_tour.py.
from _tour import describe, exception_name, expect, parse_args, run

CHUNK = 0.05  # seconds of blocking work per chunk in scene b


@dataclass
class Listener:
    """What the simulated keyboard listener did, read by the event loop once it is done."""

    pressed_at: float = 0.0  # time.perf_counter(), a clock every thread shares
    requests: list[bool] = field(default_factory=list[bool])


def keyboard_listener(token: CancelationToken, key_after: float, listener: Listener) -> None:
    """A plain thread: no event loop, no anyio. It only knows the token."""
    time.sleep(key_after)  # stands for blocking until a key is pressed
    listener.pressed_at = time.perf_counter()
    listener.requests.append(token.cancel_sync(message="key 'q' pressed"))
    listener.requests.append(token.cancel_sync(message="key 'q' pressed again"))


async def stop_worker_from_a_thread(key_after: float) -> None:
    print("a. A keyboard listener thread calls `token.cancel_sync()` while a worker runs")
    token = CancelationToken()
    listener = Listener()
    thread = threading.Thread(
        target=keyboard_listener, args=(token, key_after, listener), name="keyboard-listener"
    )
    cancel = Cancelable.with_token(token, name="worker")
    done: list[int] = []
    error: CancelationError | None = None
    start = anyio.current_time()
    try:
        async with cancel:
            thread.start()  # started inside the block: the key press surely finds it running
            for item in range(1, 1_001):  # 1000 items at 0.02 s each would need 20 s
                await anyio.sleep(0.02)  # the work on one item
                done.append(item)
                cancel.context.partial_result = list(done)
    except CancelationError as exc:
        error = exc
    ended_at = time.perf_counter()
    elapsed = anyio.current_time() - start
    await anyio.to_thread.run_sync(thread.join)  # it has one more call to make, at most

    latency = ended_at - listener.pressed_at
    print(f"   The listener 'pressed q' after {key_after:g} s. The worker's block ended")
    print(f"   {latency * 1000:.1f} ms after that call ({elapsed:.2f} s after entry), with")
    print(f"   {exception_name(error)}, message {getattr(error, 'message', None)!r}:")
    print(f"   {describe(cancel)}.")
    print(f"   Items finished before the key press: {len(done)} (kept in context.partial_result).")
    print(
        f"   cancel_sync() returned {listener.requests[0]} the first time and "
        f"{listener.requests[1]} the second: the first request wins."
    )
    expect(isinstance(error, ManualCancelation), f"{exception_name(error)} left the block")
    assert error is not None
    expect(error.message == "key 'q' pressed", f"the message is {error.message!r}")
    expect(error.context is cancel.context, "err.context is not the operation's context")
    expect(cancel.context.status is OperationStatus.CANCELLED, "the block was not CANCELLED")
    expect(cancel.context.cancel_reason is CancelationReason.MANUAL, "the reason is not MANUAL")
    expect(0 < len(done) < 1_000, f"{len(done)} items were done")
    expect(cancel.context.partial_result == done, "the partial result is not the items done")
    expect(listener.requests == [True, False], f"cancel_sync() returned {listener.requests}")
    expect(0 <= latency < 0.5, f"the block ended {latency:.3f} s after cancel_sync()")


def convert(chunks: int, seen: dict[str, object]) -> int:
    """Blocking work, run in a worker thread: it stops only because it looks."""
    operation = current_operation()
    assert operation is not None, "current_operation() is None in the worker thread"
    seen["operation"] = operation
    seen["thread"] = threading.get_ident()
    for chunk in range(1, chunks + 1):
        time.sleep(CHUNK)  # stands for one chunk of blocking work
        seen["chunks"] = chunk
        operation.token.check()  # raises the operation's CancelationError once it is cancelled
    seen["finished"] = True
    return chunks


async def blocking_job_sees_its_deadline() -> None:
    print("b. A blocking job in `run_in_thread` checks `current_operation().token` per chunk")
    seen: dict[str, object] = {}
    cancel = Cancelable.with_timeout(0.5, name="convert")
    error: CancelationError | None = None
    start = anyio.current_time()
    try:
        async with cancel:
            await cancel.run_in_thread(convert, 200, seen)  # 200 chunks would need 10 s
    except CancelationError as exc:
        error = exc
    elapsed = anyio.current_time() - start

    chunks = seen.get("chunks", 0)
    assert isinstance(chunks, int)
    in_another_thread = seen.get("thread") not in (None, threading.get_ident())
    own_error = getattr(error, "context", None) is cancel.context
    same_operation = seen.get("operation") is cancel
    message = getattr(error, "message", None)
    print(f"   The job ran in another thread ({in_another_thread}), where current_operation() was")
    print(f"   the operation ({same_operation}). It did {chunks} chunks of {CHUNK:g} s, then")
    print(f"   token.check() raised; the block ended {elapsed:.2f} s after entry with")
    print(f"   {exception_name(error)}, message {message!r},")
    print(f"   the operation's own error (err.context is cancel.context: {own_error}):")
    print(f"   {describe(cancel)}.")
    expect(seen.get("operation") is cancel, "current_operation() in the thread is not the block")
    expect(in_another_thread, "the job did not run in another thread")
    expect(isinstance(error, TimeoutCancelation), f"{exception_name(error)} left the block")
    assert error is not None
    expect(error.context is cancel.context, "err.context is not the operation's context")
    expect(cancel.context.cancel_reason is CancelationReason.TIMEOUT, "the reason is not TIMEOUT")
    expect("finished" not in seen, "the job ran to its end: it never saw the deadline")
    expect(5 <= chunks < 20, f"the job did {chunks} chunks, not about 10")
    expect(elapsed < 1.0, f"the block ended {elapsed:.2f} s after entry, not about 0.5 s")


async def main(key_after: float) -> None:
    await stop_worker_from_a_thread(key_after)
    print()
    await blocking_job_sees_its_deadline()
    print()
    print("Both blocks ended as described.")


def seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 10, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-after",
        type=seconds,
        default=0.5,
        metavar="SECONDS",
        help="when the simulated keyboard listener 'presses q' (default 0.5)",
    )


if __name__ == "__main__":
    args = parse_args(__doc__, add_arguments)
    run(main, args, args.key_after)
