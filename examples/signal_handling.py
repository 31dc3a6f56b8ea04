#!/usr/bin/env python3
"""Signal handling: Ctrl-C (SIGINT) or SIGTERM stops a worker gracefully.

A worker "resizes" up to 200 photos, 0.05 s each, inside
`Cancelable.with_signal(signal.SIGINT, signal.SIGTERM)`, and keeps the names of the finished
ones in `cancel.context.partial_result`. When one of the two signals arrives, the worker is
cancelled at its next checkpoint and the block raises `SignalCancelation` (an ordinary
`Exception`, not a `KeyboardInterrupt`) with `signal_number`, reason SIGNAL and a message; the
script prints which signal it was and which photos were done, and exits 0. Once the block has
ended, the SIGINT and SIGTERM handlers that were there before it are back. A second Ctrl-C
while the cancelled block is still stopping would force the exit with a KeyboardInterrupt
(here the block stops at once; docs/sources.md, "A second Ctrl-C", shows one that hangs).

Who sends the signal:

- on a terminal, you: press Ctrl-C, or `kill -TERM <pid>` from another terminal;
- without a terminal on stdin (CI, `nox -s examples`), the script itself, 0.5 s into the block
  (`--send-after SECONDS` to choose the delay, also on a terminal);
- with `--wait`, somebody else (tests/test_examples.py): the script prints a line `ready` as
  soon as the block is entered and never signals itself.

The script prints `ready` right after entering the block in every mode. Every outcome is
checked, so the script exits non-zero if the library misbehaves.
Run it with `python examples/signal_handling.py --backend asyncio|trio [--uvloop]`.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import anyio

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    OperationStatus,
    SignalCancelation,
)

# The helpers every script of the tour shares, from examples/_tour.py.
from _tour import exception_name, expect, parse_args, run

PHOTOS = [f"photo-{number:03}.jpg" for number in range(1, 201)]
SECONDS_PER_PHOTO = 0.05
WATCHED = (signal.SIGINT, signal.SIGTERM)


def handler_name(handler: Any) -> str:
    """A readable name for what `signal.getsignal()` returned."""
    if handler is signal.SIG_DFL:
        return "SIG_DFL (the default action)"
    if handler is signal.SIG_IGN:
        return "SIG_IGN"
    if handler is None:
        return "a handler installed outside Python"
    function: Callable[..., Any] = getattr(handler, "func", handler)  # unwrap functools.partial
    module = getattr(function, "__module__", None) or "?"
    return f"{module}.{getattr(function, '__qualname__', repr(function))}"


def handlers() -> dict[signal.Signals, Any]:
    return {signum: signal.getsignal(signum) for signum in WATCHED}


def summary(names: list[str]) -> str:
    if not names:
        return "none"
    if len(names) <= 4:
        return ", ".join(names)
    return f"{names[0]}, {names[1]}, ..., {names[-1]}"


async def resize_photos(cancel: Cancelable) -> None:
    done: list[str] = []
    for photo in PHOTOS:
        await anyio.sleep(SECONDS_PER_PHOTO)  # the work on one photo; a checkpoint
        done.append(photo)
        # Saved after each photo, so whatever ends the block, the finished ones are known.
        cancel.context.partial_result = list(done)


async def send_sigint_to_myself(delay: float) -> None:
    await anyio.sleep(delay)
    print(f"Sending SIGINT to myself (pid {os.getpid()}), {delay:g} s into the block.", flush=True)
    os.kill(os.getpid(), signal.SIGINT)


async def main(send_after: float | None) -> None:
    before = handlers()
    total = len(PHOTOS) * SECONDS_PER_PHOTO
    print(f"A worker resizes {len(PHOTOS)} photos, {SECONDS_PER_PHOTO:g} s each, inside")
    print(
        f"Cancelable.with_signal(signal.SIGINT, signal.SIGTERM): {total:g} s if nothing stops it."
    )
    for signum, handler in before.items():
        print(f"Before the block, {signum.name} is handled by {handler_name(handler)}.")
    if send_after is not None:
        print(f"The script will send SIGINT to itself {send_after:g} s into the block")
        print("(--send-after; the default when stdin is not a terminal).")
    else:
        print(f"Press Ctrl-C, or run `kill -TERM {os.getpid()}`, to stop it gracefully")
        print("(Ctrl-C twice while it stops forces the exit).")
    print()

    cancel = Cancelable.with_signal(signal.SIGINT, signal.SIGTERM, name="photo resizer")
    error: CancelationError | None = None
    during: dict[signal.Signals, Any] = {}
    start = anyio.current_time()
    try:
        async with cancel:
            print("ready", flush=True)
            during = handlers()
            async with anyio.create_task_group() as task_group:
                if send_after is not None:
                    task_group.start_soon(send_sigint_to_myself, send_after)
                await resize_photos(cancel)
                task_group.cancel_scope.cancel()  # all photos done: no signal is needed any more
    except CancelationError as exc:  # SignalCancelation is one; anything else is a bug
        error = exc
    elapsed = anyio.current_time() - start
    after = handlers()
    print()  # after a `^C` echoed by the terminal

    done: list[str] = cancel.context.partial_result or []
    if error is None:
        print(f"No signal arrived: all {len(done)} photos were resized in {elapsed:.2f} s and")
        print(f"the block completed (status={cancel.context.status.name}).")
        expect(send_after is None, f"SIGINT was sent {send_after} s in, yet the block completed")
        expect(cancel.context.status is OperationStatus.COMPLETED, "the block was not COMPLETED")
    else:
        number = getattr(error, "signal_number", None)
        name = signal.Signals(number).name if number is not None else None
        reason = error.reason.name
        print(f"{name} arrived; the block ended {elapsed:.2f} s after it was entered. The worker")
        print("was cancelled at its next checkpoint and, instead of a KeyboardInterrupt, the block")
        print(f"raised {exception_name(error)}, an Exception ({isinstance(error, Exception)}):")
        print(f"  signal: {name} (number {number})")
        print(f"  reason: {reason}")
        print(f"  message: {error.message!r}")
        print(f"  status: {cancel.context.status.name}")
        print(f"{len(done)} of {len(PHOTOS)} photos were resized before the signal; their names")
        print(f"stay in context.partial_result: {summary(done)}.")
        print("The photo in progress when the signal came was abandoned, and not recorded.")
        expect(isinstance(error, SignalCancelation), f"{exception_name(error)} left the block")
        expect(number in WATCHED, f"signal_number is {number!r}, not SIGINT or SIGTERM")
        expect(error.reason is CancelationReason.SIGNAL, f"err.reason is {reason}, not SIGNAL")
        expect(error.context is cancel.context, "err.context is not the operation's context")
        expect(cancel.context.status is OperationStatus.CANCELLED, "the block was not CANCELLED")
        expect(
            cancel.context.cancel_reason is CancelationReason.SIGNAL,
            f"context.cancel_reason is {cancel.context.cancel_reason}",
        )
        expect(
            cancel.context.cancel_message == error.message,
            f"context.cancel_message is {cancel.context.cancel_message!r}",
        )
        expect(cancel.is_cancelled, "is_cancelled is False after a signal")
        expect(done == PHOTOS[: len(done)] and len(done) < len(PHOTOS), f"partial: {done!r}")
        cancelled = anyio.get_cancelled_exc_class()
        expect(
            not isinstance(error.__cause__, cancelled)
            and not isinstance(error.__context__, cancelled),
            "the SignalCancelation is chained to the backend's cancellation exception",
        )
        if send_after is not None:
            expect(number == signal.SIGINT, f"{name} arrived, but the script sent SIGINT")
            late = elapsed - send_after
            expect(late < 0.5, f"the block ended {late:.2f} s after SIGINT was sent")

    print()
    for signum in WATCHED:
        same = after[signum] is before[signum]
        print(f"After the block, {signum.name} is handled by {handler_name(after[signum])} again")
        print(f"  (the very handler from before the block: {same}).")
        expect(same, f"the {signum.name} handler was not restored: {after[signum]!r}")
        expect(
            during.get(signum) is not before[signum],
            f"the block did not install its own {signum.name} handler",
        )
    print("The worker finished." if error is None else "The worker stopped gracefully.")


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return seconds


def who_sends_the_signal(parser: argparse.ArgumentParser) -> None:
    """This script's own options, beside --backend and --uvloop: see "Who sends the signal"."""
    who = parser.add_mutually_exclusive_group()
    who.add_argument(
        "--send-after",
        type=positive_seconds,
        metavar="SECONDS",
        help="send SIGINT to this process SECONDS into the block "
        "(default: 0.5 when stdin is not a terminal, never when it is)",
    )
    who.add_argument(
        "--wait",
        action="store_true",
        help="never signal this process; wait for a signal from outside",
    )


def send_after(args: argparse.Namespace) -> float | None:
    """How long into the block the script signals itself, or None if it never does."""
    if args.send_after is None and not args.wait:
        on_terminal = sys.stdin is not None and sys.stdin.isatty()
        return None if on_terminal else 0.5
    return args.send_after


if __name__ == "__main__":
    args = parse_args(__doc__, add_arguments=who_sends_the_signal)
    run(main, args, send_after(args))
