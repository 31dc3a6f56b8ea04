#!/usr/bin/env python3
"""Resource monitoring: stop a job when this process has taken too much memory.

A job allocates memory step by step (5 MB every 0.05 s) inside a Cancelable watched by a
`ResourceConditionSource` with two thresholds, checked every 0.05 s:

- `process_memory_growth`: 40 MB over this process's resident memory (RSS) as the block is
  entered, measured by the source itself; the one that fires, after about eight steps;
- `memory_threshold`: a share of the machine's memory well above what is in use now; it is
  there to show several thresholds at once, and does not fire.

The block raises `ConditionCancelation`, reason CONDITION, with a message saying which threshold
was crossed and by how much; the job's progress stays in `context.partial_result`. The
Cancelable also has a 3 s timeout: if the source never fired, the block would end with
`TimeoutCancelation` instead, and the script would exit non-zero.

Beside the job, a ticker task wakes every 5 ms and records the largest gap between two ticks:
the psutil samples are taken in worker threads, so they never hold up the event loop (only the
baseline, one read of this process's RSS as the block is entered, is taken on the loop).

Needs psutil, which comes with the `resources` extra: pip install 'hother-cancelable[resources]'.
Every outcome is checked, so the script exits non-zero if the library misbehaves.
Run it with `python examples/resource_monitoring.py --backend asyncio|trio [--uvloop]`.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import anyio

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    ConditionCancelation,
    OperationStatus,
    ResourceConditionSource,
)

# The helpers every script of the tour shares, from examples/_tour.py.
from _tour import exception_name, expect, parse_args, run

try:
    import psutil
except ImportError:
    sys.exit("This example needs psutil: pip install 'hother-cancelable[resources]'")

MB = 1024 * 1024
STEP = 5 * MB  # allocated per step
STEP_INTERVAL = 0.05
GROWTH = 40 * MB  # how much the job may take on top of the RSS at the block's entry
CHECK_INTERVAL = 0.05
MAX_STEPS = 30  # 150 MB: the job stops allocating there, whatever happens
BUDGET = 3.0  # the Cancelable's timeout: the source must fire well before it
TICK = 0.005


def rss() -> int:
    return psutil.Process().memory_info().rss


def megabytes(size: float) -> str:
    return f"{size / MB:.1f} MB"


class CountedResources(ResourceConditionSource):
    """The library's source, counting its checks and the threads they ran in."""

    def __init__(self, **thresholds: Any) -> None:
        super().__init__(**thresholds)
        self.checks = 0
        self.checks_on_main_thread = 0

    def check(self) -> str | None:
        self.checks += 1
        if threading.current_thread() is threading.main_thread():
            self.checks_on_main_thread += 1
        return super().check()


@dataclass
class Ticks:
    count: int = 0
    largest_gap: float = 0.0


async def ticker(ticks: Ticks) -> None:
    last = anyio.current_time()
    while True:
        await anyio.sleep(TICK)
        now = anyio.current_time()
        ticks.count += 1
        ticks.largest_gap = max(ticks.largest_gap, now - last)
        last = now


async def hungry_job(cancel: Cancelable, buffers: list[bytearray]) -> None:
    for step in range(1, MAX_STEPS + 1):
        buffers.append(bytearray(STEP))  # zero-filled, so the pages are really resident
        cancel.context.partial_result = {"steps": step, "allocated_mb": step * STEP // MB}
        await anyio.sleep(STEP_INTERVAL)
    await anyio.sleep_forever()  # past the cap: only a cancellation ends the block


async def main() -> None:
    start_rss = rss()
    in_use = psutil.virtual_memory().percent
    system_limit = min(100.0, max(95.0, in_use + 20.0))
    resources = CountedResources(
        process_memory_growth=GROWTH,
        memory_threshold=system_limit,
        check_interval=CHECK_INTERVAL,
    )
    before = time.perf_counter()
    resources.check()  # one sample here, on the loop, only to time it; entry reads its own baseline
    sample = time.perf_counter() - before
    resources.checks = resources.checks_on_main_thread = 0

    print(f"This process uses {megabytes(start_rss)} of resident memory (RSS) before the job.")
    print(f"A job allocates {STEP // MB} MB every {STEP_INTERVAL:g} s inside a Cancelable with a")
    print(f"{BUDGET:g} s timeout and a ResourceConditionSource checked every {CHECK_INTERVAL:g} s:")
    print(f"  process_memory_growth: {GROWTH} B, that is 40 MB over the RSS at the block's entry")
    print(f"  memory_threshold: {system_limit:g}% of the machine's memory, {in_use:g}% in use now")
    print(f"One sample with psutil takes {sample * 1000:.2f} ms; the source takes its samples in")
    print("worker threads (all but the baseline, read as the block is entered), while a")
    print("ticker task beside the job wakes every 5 ms.")
    print()

    cancel = Cancelable.with_timeout(BUDGET, name="memory-hungry job").add_source(resources)
    buffers: list[bytearray] = []
    ticks = Ticks()
    error: CancelationError | None = None
    start = anyio.current_time()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(ticker, ticks)
        try:
            async with cancel:
                await hungry_job(cancel, buffers)
        except CancelationError as exc:  # ConditionCancelation, or TimeoutCancelation if not
            error = exc
        elapsed = anyio.current_time() - start
        task_group.cancel_scope.cancel()
    end_rss = rss()
    steps = len(buffers)
    buffers.clear()  # give the memory back

    expect(
        isinstance(error, ConditionCancelation),
        f"{exception_name(error)} left the block after {elapsed:.2f} s: {error}",
    )
    assert isinstance(error, ConditionCancelation)
    baseline = resources.baseline_rss
    expect(baseline is not None, "the source measured no baseline")
    assert baseline is not None
    gap_ms = ticks.largest_gap * 1000
    in_use_now = psutil.virtual_memory().percent
    print(f"After {elapsed:.2f} s and {steps} steps ({steps * STEP // MB} MB allocated), the block")
    print(f"raised {exception_name(error)}:")
    print(f"  condition_name: {error.condition_name!r}")
    print(f"  reason: {error.reason.name}")
    print(f"  message: {error.message!r}")
    grown = megabytes(end_rss - baseline)
    print(f"The process memory budget was exceeded: the RSS grew by {grown}, from")
    print(f"{megabytes(baseline)} at the block's entry to {megabytes(end_rss)}, more than the")
    print(f"{megabytes(GROWTH)} allowed. The machine's memory ({in_use_now:g}% in use) stayed")
    print(f"under its {system_limit:g}% threshold.")
    print(f"The job's progress stays in context.partial_result: {cancel.context.partial_result}.")
    print()
    print(f"Meanwhile the ticker ticked {ticks.count} times; the largest gap between two of its")
    print(f"5 ms ticks was {gap_ms:.1f} ms. The source's {resources.checks} checks ran in worker")
    print(
        f"threads ({resources.checks_on_main_thread} in the event loop's thread): they never held"
    )
    print("the loop up.")

    expect(error.reason is CancelationReason.CONDITION, f"err.reason is {error.reason.name}")
    expect(error.condition_name == resources.name, f"condition_name is {error.condition_name!r}")
    expect(
        error.message is not None and error.message.startswith("process memory grew by "),
        f"the message does not name the process memory growth: {error.message!r}",
    )
    expect(error.context is cancel.context, "err.context is not the operation's context")
    expect(cancel.context.status is OperationStatus.CANCELLED, "the block was not CANCELLED")
    expect(
        cancel.context.cancel_reason is CancelationReason.CONDITION,
        f"context.cancel_reason is {cancel.context.cancel_reason}",
    )
    expect(
        end_rss - baseline > GROWTH,
        f"cancelled after {megabytes(end_rss - baseline)} of growth, within {megabytes(GROWTH)}",
    )
    expect(
        abs(baseline - start_rss) < 10 * MB,
        f"baseline {megabytes(baseline)} is not the RSS before the job, {megabytes(start_rss)}",
    )
    expect(
        0 < steps < MAX_STEPS
        and cancel.context.partial_result == {"steps": steps, "allocated_mb": steps * STEP // MB},
        f"partial result: {cancel.context.partial_result!r}",
    )
    expect(resources.checks > 0, "the source never checked")
    expect(resources.checks_on_main_thread == 0, "a check ran on the event loop's thread")
    expect(ticks.count > 0, "the ticker never ticked")


if __name__ == "__main__":
    run(main, parse_args(__doc__))
