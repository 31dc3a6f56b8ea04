#!/usr/bin/env python3
"""The operation registry: list running operations from a monitor thread and cancel one by id.

Five operations run at once, each built with `register_globally=True`, so each is listed in
`OperationRegistry.get_instance()` while its block runs: three downloads, an index job, and a
shard of the index job (`parent=` the index job). Each carries a time budget in its metadata.
One download is stuck: it would sleep for 10 s.

A monitor runs in a plain `threading.Thread` and sees the registry through
`ThreadSafeRegistry` (no event loop, no `await`). Every 0.05 s it lists the running
operations; the first time, it prints them (id, name, parent, status, time running, budget)
and the children of the index job (`list_operations(parent_id=...)`). When an operation has
run longer than its budget, the monitor cancels it by id with
`cancel_operation(id, message=...)`: the stuck download's block ends with `ManualCancelation`
and that message, on its own event loop. The others complete.

Once every block has ended, the script prints the registry's statistics (`get_statistics()`)
and its history of finished operations (`get_history()`), oldest first. It takes about
0.6 s. Every outcome is checked, so the script exits non-zero if the library misbehaves.
Run it with `python examples/operation_registry.py --backend asyncio|trio [--uvloop]`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    ManualCancelation,
    OperationContext,
    OperationRegistry,
    OperationStatus,
    ThreadSafeRegistry,
)

# The helpers every script of the tour shares, from examples/_tour.py.
from _tour import exception_name, expect, parse_args, run

POLL = 0.05  # seconds between two looks of the monitor
_print_lock = threading.Lock()  # the monitor thread and the event loop both print


def say(line: str = "") -> None:
    with _print_lock:
        print(line, flush=True)


@dataclass
class Monitor:
    """What the monitor thread saw and did, read by the event loop once it has stopped."""

    stop: threading.Event = field(default_factory=threading.Event)
    first_look: list[OperationContext] = field(default_factory=list[OperationContext])
    children: list[str] = field(default_factory=list[str])
    cancelled: dict[str, bool] = field(default_factory=dict[str, bool])  # name: first request


def show(records: list[OperationContext]) -> None:
    names = {record.id: record.name for record in records}
    say(f"   monitor: {len(records)} operations running")
    say(f"     {'id':8}  {'name':12}  {'parent':10}  {'status':8}  {'running':>7}  budget")
    for record in sorted(records, key=lambda record: record.name or ""):
        parent = (names.get(record.parent_id) if record.parent_id else None) or "-"
        duration = record.duration_seconds or 0.0
        say(
            f"     {record.id[:8]}  {record.name or '':12}  {parent:10}  "
            f"{record.status.name:8}  {duration:6.2f}s  {record.metadata['budget']:g} s"
        )


def monitor(expected: int, seen: Monitor) -> None:
    """A plain thread: it knows only the registry, through ThreadSafeRegistry."""
    registry = ThreadSafeRegistry()
    while not seen.stop.wait(POLL):
        records = registry.list_operations(status=OperationStatus.RUNNING)
        if not seen.first_look and len(records) == expected:
            seen.first_look = records
            show(records)
            [index] = [record for record in records if record.name == "index"]
            children = registry.list_operations(parent_id=index.id)
            seen.children = sorted(record.name or "" for record in children)
            say(f"   monitor: children of 'index': {seen.children}")
        for record in records:
            budget = record.metadata["budget"]
            duration = record.duration_seconds or 0.0
            if record.name not in seen.cancelled and duration > budget:
                say(f"   monitor: {record.name} has run {duration:.3f} s; its budget: {budget:g} s")
                say(f"   monitor: cancel_operation({record.id[:8]}..., message=...)")
                message = f"over its {budget:g} s budget"
                first = registry.cancel_operation(record.id, message=message)
                again = registry.cancel_operation(record.id, message="asked twice")
                seen.cancelled[record.name or ""] = first and not again


@dataclass
class Outcome:
    """How each operation's block ended, by name."""

    errors: dict[str, CancelationError] = field(default_factory=dict[str, CancelationError])
    completed: list[str] = field(default_factory=list[str])


async def job(
    name: str,
    seconds: float,
    budget: float,
    outcome: Outcome,
    parent: Cancelable | None = None,
) -> None:
    try:
        metadata = {"budget": budget}
        async with Cancelable(name=name, parent=parent, metadata=metadata, register_globally=True):
            await anyio.sleep(seconds)  # stands for the work
        outcome.completed.append(name)
        say(f"   {name}: completed")
    except CancelationError as exc:
        outcome.errors[name] = exc
        say(f"   {name}: {exception_name(exc)}, {exc.message!r}")


async def index_job(outcome: Outcome) -> None:
    async with Cancelable(name="index", metadata={"budget": 1.0}, register_globally=True) as index:
        await job("index/shard", 0.2, 1.0, outcome, parent=index)
        await anyio.sleep(0.4)  # stands for merging the shards
    outcome.completed.append("index")
    say("   index: completed")


async def main() -> None:
    registry = OperationRegistry.get_instance()
    registry.clear_all_sync()  # a clean slate, should anything have run before
    seen = Monitor()
    outcome = Outcome()
    thread = threading.Thread(target=monitor, args=(5, seen), name="monitor")

    say("Five operations run, registered globally; a monitor thread watches them.")
    start = anyio.current_time()
    thread.start()
    async with anyio.create_task_group() as tg:
        tg.start_soon(job, "download-1", 0.15, 1.0, outcome)
        tg.start_soon(job, "download-2", 0.45, 1.0, outcome)
        tg.start_soon(job, "download-3", 10, 0.3, outcome)  # stuck
        tg.start_soon(index_job, outcome)
    elapsed = anyio.current_time() - start
    seen.stop.set()
    await anyio.to_thread.run_sync(thread.join)
    say(f"   Every block had ended {elapsed:.2f} s after the start.")

    first_names = sorted(record.name or "" for record in seen.first_look)
    expect(
        first_names == ["download-1", "download-2", "download-3", "index", "index/shard"],
        f"the monitor's first look listed {first_names}",
    )
    expect(seen.children == ["index/shard"], f"the children of 'index' were {seen.children}")
    expect(seen.cancelled == {"download-3": True}, f"the monitor cancelled {seen.cancelled}")
    stuck = outcome.errors.get("download-3")
    expect(isinstance(stuck, ManualCancelation), f"download-3 ended with {stuck!r}")
    assert stuck is not None
    expect(stuck.message == "over its 0.3 s budget", f"its message is {stuck.message!r}")
    expect(list(outcome.errors) == ["download-3"], f"errors: {list(outcome.errors)}")
    completed = sorted(outcome.completed)
    expect(
        completed == ["download-1", "download-2", "index", "index/shard"],
        f"completed: {completed}",
    )
    expect(elapsed < 2, f"the blocks took {elapsed:.2f} s, not about 0.6 s")

    say()
    say("Statistics, from `await registry.get_statistics()`:")
    stats = await registry.get_statistics()
    for key, value in stats.items():
        shown = f"{value:.3f} s" if key == "average_duration_seconds" and value else value
        say(f"   {key}: {shown}")
    expect(stats["active_operations"] == 0, "operations are still listed as running")
    expect(stats["history_size"] == 5, f"history_size is {stats['history_size']}")
    expect(stats["total_completed"] == 4, f"total_completed is {stats['total_completed']}")
    expect(stats["total_cancelled"] == 1, f"total_cancelled is {stats['total_cancelled']}")
    expect(stats["total_failed"] == 0, f"total_failed is {stats['total_failed']}")

    say()
    say("History, from `await registry.get_history()`, oldest first:")
    history = await registry.get_history()
    for record in history:
        duration = record.duration_seconds or 0.0
        line = f"   {record.name or '':12} {record.status.name:9} after {duration:.2f} s"
        if record.cancel_reason is not None:
            line += f", {record.cancel_reason.name}: {record.cancel_message!r}"
        say(line)
    by_name = {record.name: record for record in history}
    expect(len(history) == 5 and len(by_name) == 5, f"the history holds {len(history)} records")
    expect(history[-1].name == "index", "the index job, which ended last, is not last")
    cancelled = by_name.get("download-3")
    expect(
        cancelled is not None
        and cancelled.status is OperationStatus.CANCELLED
        and cancelled.cancel_reason is CancelationReason.MANUAL,
        "download-3 is not recorded as CANCELLED / MANUAL",
    )
    expect(
        all(r.status is OperationStatus.COMPLETED for n, r in by_name.items() if n != "download-3"),
        "an operation other than download-3 did not complete",
    )
    say()
    say("The monitor cancelled exactly the operation over its budget, by id, from its thread.")


if __name__ == "__main__":
    run(main, parse_args(__doc__))
