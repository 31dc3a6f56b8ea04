#!/usr/bin/env python3
"""Timeouts: how a `Cancelable.with_timeout` block ends, and what it tells you afterwards.

Five short scenes, each checked, so the script exits non-zero if the library misbehaves:

1. a block that finishes within its timeout: status COMPLETED, nothing raised;
2. a block that runs out of time: `TimeoutCancelation` (also a builtin `TimeoutError`, and an
   ordinary `Exception`) leaves it, status CANCELLED, reason TIMEOUT, and the partial result the
   body saved in `cancel.context.partial_result` is still there;
3. the timeout given as a `datetime.timedelta`;
4. `raise_on_cancel=False`: the block ends quietly, like `anyio.move_on_after`, and the outcome
   is only recorded;
5. an outer `anyio.move_on_after` with a shorter deadline around a longer Cancelable timeout:
   the outer scope wins, its own cancellation exception passes through the Cancelable untouched
   and is caught by `move_on_after`; the Cancelable records CANCELLED / PARENT.

Run it with `python examples/timeouts.py --backend asyncio|trio [--uvloop]`.
"""

from __future__ import annotations

import sys
from datetime import timedelta

import anyio

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    OperationStatus,
    TimeoutCancelation,
)

# The helpers every script of the tour shares, from examples/_tour.py.
from _tour import describe, exception_name, expect, parse_args, run


async def finishes_in_time() -> None:
    print("1. A block that finishes within its timeout")
    cancel = Cancelable.with_timeout(1.0, name="quick lookup")
    start = anyio.current_time()
    try:
        async with cancel:
            await anyio.sleep(0.05)  # the work: well within the 1 s budget
    except CancelationError as exc:
        sys.exit(f"unexpected: {exc!r} left a block that finished in time")
    elapsed = anyio.current_time() - start
    print(f"   The body needed about 0.05 s of its 1 s budget and ended after {elapsed:.2f} s.")
    print(f"   Nothing left the block; {describe(cancel)}.")
    expect(cancel.context.status is OperationStatus.COMPLETED, "the block was not COMPLETED")
    expect(cancel.context.cancel_reason is None, "a completed block has a cancel reason")
    expect(not cancel.is_cancelled, "a completed block says it is cancelled")


async def times_out() -> None:
    print("2. A block that runs out of time")
    cancel = Cancelable.with_timeout(0.3, name="batch import")
    done: list[int] = []
    error: BaseException | None = None
    start = anyio.current_time()
    try:
        async with cancel:
            for record in range(100):  # 100 records at 0.05 s each would need 5 s
                await anyio.sleep(0.05)
                done.append(record)
                # Saved after each step, so whatever ends the block, the progress survives it.
                cancel.context.partial_result = {"imported": len(done), "last": record}
    except TimeoutError as exc:  # TimeoutCancelation is a builtin TimeoutError too
        error = exc
    elapsed = anyio.current_time() - start

    expect(error is not None, "nothing left a block whose 0.3 s timeout passed")
    assert error is not None
    print(f"   The 0.3 s deadline passed while the body was sleeping; after {elapsed:.2f} s,")
    print(f"   `except TimeoutError:` caught {exception_name(error)}: the library's")
    print("   exception is also a builtin TimeoutError, and it is an Exception")
    print(f"   ({isinstance(error, Exception)}), so `except Exception:` would catch it as well.")
    print(f"   {describe(cancel)}.")
    print("   The body saved its progress in context.partial_result before it was cancelled:")
    print(f"   {cancel.context.partial_result}; err.context is cancel.context, so the handler")
    print("   of the exception sees it too.")
    expect(isinstance(error, TimeoutCancelation), "the exception is not a TimeoutCancelation")
    assert isinstance(error, TimeoutCancelation)
    expect(error.context is cancel.context, "err.context is not the operation's context")
    expect(error.reason is CancelationReason.TIMEOUT, "err.reason is not TIMEOUT")
    expect(cancel.context.status is OperationStatus.CANCELLED, "the block was not CANCELLED")
    expect(cancel.context.cancel_reason is CancelationReason.TIMEOUT, "the reason is not TIMEOUT")
    expect(cancel.is_cancelled, "is_cancelled is False after a timeout")
    expect(
        0 < len(done) < 100
        and cancel.context.partial_result == {"imported": len(done), "last": done[-1]},
        f"the partial result was not kept: {cancel.context.partial_result!r}",
    )
    cancelled = anyio.get_cancelled_exc_class()
    expect(
        not isinstance(error.__cause__, cancelled) and not isinstance(error.__context__, cancelled),
        "the TimeoutCancelation is chained to the backend's cancellation exception",
    )
    expect(0.25 <= elapsed < 1.5, f"the block ended after {elapsed:.2f} s, not about 0.3 s")


async def timedelta_timeout() -> None:
    print("3. A timeout given as a datetime.timedelta")
    budget = timedelta(milliseconds=200)
    cancel = Cancelable.with_timeout(budget, name="timedelta budget")
    error: CancelationError | None = None
    start = anyio.current_time()
    try:
        async with cancel:
            await anyio.sleep(5)
    except CancelationError as exc:
        error = exc
    elapsed = anyio.current_time() - start
    print(f"   timedelta(milliseconds=200) counts as {budget.total_seconds()} s from entry;")
    print(f"   the block ended after {elapsed:.2f} s with {exception_name(error)}: {error}.")
    print(f"   {describe(cancel)}.")
    expect(isinstance(error, TimeoutCancelation), "a timedelta timeout did not raise it")
    expect(cancel.context.cancel_reason is CancelationReason.TIMEOUT, "the reason is not TIMEOUT")
    expect(0.15 <= elapsed < 1.5, f"the block ended after {elapsed:.2f} s, not about 0.2 s")


async def quiet_timeout() -> None:
    print("4. raise_on_cancel=False: the block ends quietly")
    cancel = Cancelable.with_timeout(0.1, name="best effort", raise_on_cancel=False)
    raised: BaseException | None = None
    start = anyio.current_time()
    try:
        async with cancel:
            await anyio.sleep(5)
            print("   (never printed: the sleep was cancelled)")
    except Exception as exc:
        raised = exc
    elapsed = anyio.current_time() - start
    print(
        f"   Like anyio.move_on_after, the block ended after {elapsed:.2f} s and nothing left it:"
    )
    print("   the code after the block runs on, and the outcome is only recorded,")
    print(f"   is_cancelled={cancel.is_cancelled}, {describe(cancel)}.")
    expect(raised is None, f"{raised!r} left a block with raise_on_cancel=False")
    expect(cancel.is_cancelled, "is_cancelled is False after a quiet timeout")
    expect(cancel.context.status is OperationStatus.CANCELLED, "the block was not CANCELLED")
    expect(cancel.context.cancel_reason is CancelationReason.TIMEOUT, "the reason is not TIMEOUT")


async def outer_scope_wins() -> None:
    print("5. An outer anyio.move_on_after(0.2) around a Cancelable with a 5 s timeout")
    cancelled = anyio.get_cancelled_exc_class()
    cancel = Cancelable.with_timeout(5, name="inner work")
    raised_in_body: BaseException | None = None
    left_block: BaseException | None = None
    start = anyio.current_time()
    with anyio.move_on_after(0.2) as outer:
        try:
            async with cancel:
                try:
                    await anyio.sleep(5)
                except cancelled as exc:  # observed and re-raised, never swallowed
                    raised_in_body = exc
                    raise
        except BaseException as exc:  # the same: only to show what left the block
            left_block = exc
            raise
    elapsed = anyio.current_time() - start

    expect(left_block is not None, "nothing left the Cancelable block")
    assert left_block is not None
    print(f"   The outer deadline came first; after {elapsed:.2f} s the backend's own")
    print(f"   {exception_name(left_block)} left the Cancelable block,")
    print(
        f"   untouched (the very object raised in the body: {left_block is raised_in_body}); "
        f"it is not an Exception ({isinstance(left_block, Exception)}),"
    )
    print("   so `except Exception:` lets it through to the scope that owns it:")
    print(
        f"   move_on_after caught its own cancellation (cancelled_caught={outer.cancelled_caught})."
    )
    print(f"   The Cancelable records who ended it: {describe(cancel)}.")
    expect(isinstance(left_block, cancelled), "the outer cancellation was converted")
    expect(left_block is raised_in_body, "the outer cancellation was replaced on its way out")
    expect(not isinstance(left_block, CancelationError), "a CancelationError left the block")
    expect(outer.cancelled_caught, "move_on_after did not catch its own cancellation")
    expect(cancel.context.status is OperationStatus.CANCELLED, "the block was not CANCELLED")
    expect(cancel.context.cancel_reason is CancelationReason.PARENT, "the reason is not PARENT")
    expect(elapsed < 1.5, f"the block ended after {elapsed:.2f} s, not about 0.2 s")


async def main() -> None:
    for scene in (finishes_in_time, times_out, timedelta_timeout, quiet_timeout, outer_scope_wins):
        await scene()
        print()
    print("Every block ended as described.")


if __name__ == "__main__":
    run(main, parse_args(__doc__))
