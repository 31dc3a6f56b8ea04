#!/usr/bin/env python3
"""Manual cancellation with a `CancelationToken`, from another task and from a plain thread.

The tokens are built at module level, before any event loop runs: a token belongs to no loop.

a. A worker processes items inside `Cancelable.with_token(token)`; another task calls
   `await token.cancel(message=...)`. The worker's block raises `ManualCancelation` (an ordinary
   `Exception`) with that message, status CANCELLED, reason MANUAL, and the items it finished
   are kept in `context.partial_result`. A second `cancel()` returns False: the first wins.
b. A plain `threading.Thread` (not an anyio worker thread) calls `token.cancel_sync(...)` while
   the block sleeps for 10 s. The block ends a few milliseconds after the call; the script
   prints that latency. Again, a second `cancel_sync()` returns False and changes nothing.

Every outcome is checked, so the script exits non-zero if the library misbehaves.
Run it with `python examples/manual_token.py --backend asyncio|trio [--uvloop]`.
"""

from __future__ import annotations

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
)

# The helpers every script of the tour shares, from examples/_tour.py.
from _tour import describe, exception_name, expect, parse_args, run

# Built at import time, before any event loop exists.
STOP_WORKER = CancelationToken()
STOP_FROM_THREAD = CancelationToken()


@dataclass
class Outcome:
    """What the worker saw, checked by `main` once every task is done."""

    error: CancelationError | None = None
    requested_at: float = 0.0  # time.perf_counter(), a clock every thread shares
    ended_at: float = 0.0
    requests: dict[str, bool] = field(default_factory=dict[str, bool])


async def worker(cancel: Cancelable, outcome: Outcome) -> None:
    done: list[str] = []
    try:
        async with cancel:
            for number in range(1, 101):  # 100 items at 0.05 s each would need 5 s
                await anyio.sleep(0.05)  # the work on one item
                done.append(f"item-{number}")
                cancel.context.partial_result = list(done)
    except CancelationError as exc:
        outcome.error = exc
    outcome.ended_at = time.perf_counter()


async def stop_worker(delay: float, outcome: Outcome) -> None:
    await anyio.sleep(delay)
    outcome.requests["first"] = await STOP_WORKER.cancel(message="operator pressed stop")
    outcome.requests["second"] = await STOP_WORKER.cancel(message="a second stop request")


async def cancel_from_another_task() -> None:
    print("a. Another task cancels the token with `await token.cancel(message=...)`")
    cancel = Cancelable.with_token(STOP_WORKER, name="worker")
    outcome = Outcome()
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, cancel, outcome)
        tg.start_soon(stop_worker, 0.3, outcome)
    elapsed = anyio.current_time() - start

    error = outcome.error
    partial: list[str] = cancel.context.partial_result or []
    print(f"   After {elapsed:.2f} s the other task called cancel(); the worker's block ended with")
    print(f"   {exception_name(error)}, message {getattr(error, 'message', None)!r};")
    print(f"   it is an Exception ({isinstance(error, Exception)}). {describe(cancel)}.")
    print(f"   The items finished before that stay in context.partial_result: {partial}")
    print(
        f"   The first cancel() returned {outcome.requests.get('first')}, the second "
        f"{outcome.requests.get('second')}: the first request wins, and the token keeps"
    )
    print(f"   its message {STOP_WORKER.message!r}.")
    expect(isinstance(error, ManualCancelation), f"{exception_name(error)} left the block")
    assert error is not None
    expect(error.message == "operator pressed stop", f"the message is {error.message!r}")
    expect(error.context is cancel.context, "err.context is not the operation's context")
    expect(cancel.context.status is OperationStatus.CANCELLED, "the block was not CANCELLED")
    expect(cancel.context.cancel_reason is CancelationReason.MANUAL, "the reason is not MANUAL")
    expect(
        cancel.context.cancel_message == "operator pressed stop",
        f"context.cancel_message is {cancel.context.cancel_message!r}",
    )
    expect(0 < len(partial) < 100, f"partial result: {partial!r}")
    expect(outcome.requests == {"first": True, "second": False}, f"{outcome.requests}")
    expect(STOP_WORKER.message == "operator pressed stop", "a later cancel() changed the token")
    expect(elapsed < 1.5, f"the block ended after {elapsed:.2f} s, not about 0.3 s")


def cancel_in_thread(delay: float, outcome: Outcome) -> None:
    """Runs in a plain threading.Thread: no event loop, no anyio, only the token."""
    time.sleep(delay)
    outcome.requested_at = time.perf_counter()
    outcome.requests["first"] = STOP_FROM_THREAD.cancel_sync(message="stopped from a thread")
    outcome.requests["second"] = STOP_FROM_THREAD.cancel_sync(message="a second request")


async def cancel_from_a_thread() -> None:
    print("b. A plain threading.Thread calls `token.cancel_sync(...)` during a 10 s sleep")
    cancel = Cancelable.with_token(STOP_FROM_THREAD, name="sleeper")
    outcome = Outcome()
    thread = threading.Thread(target=cancel_in_thread, args=(0.3, outcome), name="canceller")
    start = anyio.current_time()
    try:
        async with cancel:
            thread.start()  # started inside the block: the cancel surely finds it waiting
            await anyio.sleep(10)
    except CancelationError as exc:
        outcome.error = exc
    outcome.ended_at = time.perf_counter()
    elapsed = anyio.current_time() - start
    await anyio.to_thread.run_sync(thread.join)  # it has at most one more call to make

    error = outcome.error
    latency = outcome.ended_at - outcome.requested_at
    print("   The thread called cancel_sync() 0.3 s in. The block, asleep for 10 s,")
    print(f"   ended {latency * 1000:.1f} ms after that call ({elapsed:.2f} s after entry), with")
    print(f"   {exception_name(error)}, message {getattr(error, 'message', None)!r};")
    print(f"   it is an Exception ({isinstance(error, Exception)}). {describe(cancel)}.")
    print(
        f"   The thread's first cancel_sync() returned {outcome.requests.get('first')}, the "
        f"second {outcome.requests.get('second')}: the token keeps {STOP_FROM_THREAD.message!r}."
    )
    expect(isinstance(error, ManualCancelation), f"{exception_name(error)} left the block")
    assert error is not None
    expect(error.message == "stopped from a thread", f"the message is {error.message!r}")
    expect(cancel.context.status is OperationStatus.CANCELLED, "the block was not CANCELLED")
    expect(cancel.context.cancel_reason is CancelationReason.MANUAL, "the reason is not MANUAL")
    expect(outcome.requests.get("first") is True, "the first cancel_sync() did not return True")
    expect(outcome.requests.get("second") is False, "the second cancel_sync() did not return False")
    expect(STOP_FROM_THREAD.message == "stopped from a thread", "a later request changed the token")
    expect(0 <= latency < 0.5, f"the block ended {latency:.3f} s after cancel_sync()")


async def main() -> None:
    print("Both tokens were built at import time, before the event loop started:")
    print(f"{STOP_WORKER!r} and {STOP_FROM_THREAD!r}.\n")
    for scene in (cancel_from_another_task, cancel_from_a_thread):
        await scene()
        print()
    print("Every block ended as described.")


if __name__ == "__main__":
    run(main, parse_args(__doc__))
