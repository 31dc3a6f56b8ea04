#!/usr/bin/env python3
"""Stream processing: a stream of records under a timeout and Ctrl-C, with a progress bar.

A sensor feed (an async generator) delivers up to 500 readings, one every 0.01 s, 5 s in all.
The script processes them with `cancel.stream(feed(), report_interval=10, buffer_limit=5)`
inside `Cancelable.with_timeout(TIMEOUT).add_source(SignalSource())`, so whichever comes first
stops it: the timeout, or Ctrl-C (SIGINT) or SIGTERM. A tqdm progress bar follows the stream
through the operation's progress callback, which the stream calls every 10 readings.

When the stream is stopped, the block raises `TimeoutCancelation` or `SignalCancelation`. The
script prints the reason, how many readings were processed, the newest five (the stream's
buffer) and `completed` False, all from `cancel.context.partial_result`, shows that the feed
was closed (its `finally` ran) before the block was left, and exits 0.

By default the timeout is 1 s, so the script ends by itself when nobody is at the keyboard.
To stop it yourself, give it more time and press Ctrl-C: `--timeout 30`. Without a keyboard,
`--send-sigint-after SECONDS` makes the script send SIGINT to itself instead.

Needs tqdm, from the `examples` dependency group (`nox -s examples` installs it).
Every outcome is checked, so the script exits non-zero if the library misbehaves.
Run it with `python examples/stream_processing.py --backend asyncio|trio [--uvloop]`.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    OperationStatus,
    SignalCancelation,
    SignalSource,
    TimeoutCancelation,
)

# The helpers every script of the tour shares, from examples/_tour.py.
from _tour import describe, exception_name, expect, parse_args, run

try:
    from tqdm import tqdm
except ImportError:
    sys.exit("This example needs tqdm: pip install tqdm (it is in the `examples` group)")

READINGS = 500
INTERVAL = 0.01  # seconds between two readings
REPORT_EVERY = 10  # readings between two progress reports
NEWEST = 5  # readings kept in the stream's buffer

Reading = dict[str, Any]


class Feed:
    """The sensor feed: an async generator of readings that records whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    async def readings(self) -> AsyncIterator[Reading]:
        try:
            for seq in range(READINGS):
                await anyio.sleep(INTERVAL)  # waiting for the sensor; a checkpoint
                yield {"seq": seq, "celsius": round(21 + 4 * math.sin(seq / 25), 2)}
        finally:
            self.closed = True  # a real feed closes its connection here


async def send_sigint_to_myself(delay: float) -> None:
    await anyio.sleep(delay)
    os.kill(os.getpid(), signal.SIGINT)


async def main(timeout: float, send_sigint_after: float | None) -> None:
    print(f"A sensor feed delivers up to {READINGS} readings, one every {INTERVAL:g} s")
    print(f"({READINGS * INTERVAL:g} s in all). They are processed inside")
    print(f"Cancelable.with_timeout({timeout:g}).add_source(SignalSource()): the timeout, Ctrl-C")
    print("or SIGTERM stops the stream, whichever comes first.")
    if send_sigint_after is not None:
        print(f"The script will send SIGINT to itself {send_sigint_after:g} s into the block.")
    elif sys.stdin is not None and sys.stdin.isatty():
        print("Press Ctrl-C to stop it before the timeout (or run it with --timeout 30).")
    else:
        print("Nobody is at the keyboard (stdin is not a terminal): the timeout will end it.")
    print(flush=True)

    feed = Feed()
    cancel = Cancelable.with_timeout(timeout, name="ingest").add_source(SignalSource())
    bar = tqdm(total=READINGS, unit="reading", desc="ingest", mininterval=0.05)
    reports: list[int] = []

    def show_progress(operation_id: str, message: str, metadata: dict[str, Any]) -> None:
        # Called by the stream every REPORT_EVERY readings: "Processed N items".
        reports.append(metadata["count"])
        bar.update(metadata["count"] - bar.n)

    cancel.on_progress(show_progress)
    processed = 0
    total_celsius = 0.0
    error: CancelationError | None = None
    start = anyio.current_time()
    try:
        async with cancel, anyio.create_task_group() as task_group:
            if send_sigint_after is not None:
                task_group.start_soon(send_sigint_to_myself, send_sigint_after)
            stream = cancel.stream(
                feed.readings(), report_interval=REPORT_EVERY, buffer_limit=NEWEST
            )
            async for reading in stream:
                processed += 1  # the processing: a running mean
                total_celsius += reading["celsius"]
            task_group.cancel_scope.cancel()  # the feed ran dry: no signal is needed
    except CancelationError as exc:  # the timeout or a signal; anything else is a bug
        error = exc
    elapsed = anyio.current_time() - start
    bar.update(processed - bar.n)
    bar.close()
    print()  # after a `^C` echoed by the terminal

    partial = cancel.context.partial_result
    count, newest, completed = partial["count"], partial["buffer"], partial["completed"]
    mean = total_celsius / processed if processed else math.nan
    if error is None:
        print(f"The feed ran dry: all {count} readings were processed in {elapsed:.2f} s.")
        expect(send_sigint_after is None, "SIGINT was sent, yet the block completed")
        expect(cancel.context.status is OperationStatus.COMPLETED, "the block was not COMPLETED")
        expect(completed is True, f"completed is {completed!r} after the feed ran dry")
    else:
        print(f"After {elapsed:.2f} s the stream was stopped: {exception_name(error)} left")
        print(f"the block; {describe(cancel)}.")
        expect(
            isinstance(error, TimeoutCancelation | SignalCancelation),
            f"{exception_name(error)} left the block",
        )
        expect(error.context is cancel.context, "err.context is not the operation's context")
        expect(cancel.context.status is OperationStatus.CANCELLED, "the block was not CANCELLED")
        expect(completed is False, f"completed is {completed!r} after a cancellation")
        expect(count < READINGS, f"a cancelled stream gave all {count} readings")
        if isinstance(error, TimeoutCancelation):
            expect(error.reason is CancelationReason.TIMEOUT, "err.reason is not TIMEOUT")
            late = elapsed - timeout
            expect(-0.05 <= late < 0.5, f"the block ended {elapsed:.2f} s in, not after {timeout}")
        else:
            expect(error.reason is CancelationReason.SIGNAL, "err.reason is not SIGNAL")
            number = getattr(error, "signal_number", None)
            expect(number in (signal.SIGINT, signal.SIGTERM), f"signal_number is {number!r}")

    print("What the stream kept in cancel.context.partial_result:")
    print(f"  count: {count} readings processed (mean {mean:.2f} °C)")
    print(f"  buffer: the newest {len(newest)}:")
    for reading in newest:
        print(f"    {reading}")
    print(f"  completed: {completed}")
    print(f"The feed was closed before the block was left (its finally ran): {feed.closed}.")
    print(f"The progress bar was updated {len(reports)} times, every {REPORT_EVERY} readings.")

    expect(count == processed, f"partial_result counts {count}, the loop saw {processed}")
    expect(isinstance(newest, list), f"the buffer is a {type(newest).__name__} after the block")
    wanted = list(range(max(0, count - NEWEST), count))
    expect([reading["seq"] for reading in newest] == wanted, f"the buffer holds {newest!r}")
    expect(feed.closed, "the feed was not closed when the block ended")
    expect(reports == list(range(REPORT_EVERY, count + 1, REPORT_EVERY)), f"reports: {reports}")
    expect(count > 0, "no reading was processed")
    print("The stream stopped cleanly." if error is not None else "The stream finished.")


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return seconds


def options(parser: argparse.ArgumentParser) -> None:
    """This script's own options, beside --backend and --uvloop."""
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="the operation's timeout (default: 1; the feed needs 5 s)",
    )
    parser.add_argument(
        "--send-sigint-after",
        type=positive_seconds,
        metavar="SECONDS",
        help="send SIGINT to this process SECONDS into the block, as Ctrl-C would",
    )


if __name__ == "__main__":
    args = parse_args(__doc__, add_arguments=options)
    run(main, args, args.timeout, args.send_sigint_after)
