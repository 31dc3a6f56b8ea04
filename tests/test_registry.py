"""The operation registry (SPEC section 5), on every backend and from threads."""

from __future__ import annotations

import copy
import gc
import pickle
import threading
import weakref
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    ManualCancelation,
    OperationRegistry,
    OperationStatus,
    ThreadSafeRegistry,
)


@pytest.fixture
def registry() -> Iterator[OperationRegistry]:
    instance = OperationRegistry.get_instance()
    instance.clear_all_sync()
    yield instance
    instance.clear_all_sync()


async def test_register_globally_lists_the_operation_while_it_runs(
    registry: OperationRegistry,
) -> None:
    async with Cancelable(name="fetch-1", register_globally=True) as cancel:
        assert await registry.get_operation(cancel.operation_id) is cancel
        [record] = await registry.list_operations()
        assert record.id == cancel.operation_id
        assert record.status is OperationStatus.RUNNING
    assert await registry.get_operation(cancel.operation_id) is None
    [finished] = await registry.get_history()
    assert finished.status is OperationStatus.COMPLETED


async def test_unregistered_whatever_ended_the_block(registry: OperationRegistry) -> None:
    with pytest.raises(ValueError, match="x"):
        async with Cancelable(register_globally=True):
            raise ValueError("x")
    with anyio.move_on_after(0.01):
        async with Cancelable(register_globally=True):
            await anyio.sleep(10)
    async with Cancelable.with_timeout(0.01, register_globally=True, raise_on_cancel=False):
        await anyio.sleep(10)
    assert await registry.list_operations() == []
    assert [c.status for c in await registry.get_history()] == [
        OperationStatus.FAILED,
        OperationStatus.CANCELLED,
        OperationStatus.CANCELLED,
    ]


async def test_a_thread_cancels_an_operation_by_id(registry: OperationRegistry) -> None:
    async with Cancelable(name="worker", register_globally=True) as cancel:
        operation_id = cancel.operation_id

    with pytest.raises(ManualCancelation, match="from the monitor"):
        async with Cancelable(name="worker", register_globally=True) as cancel:
            operation_id = cancel.operation_id

            def monitor() -> None:
                face = ThreadSafeRegistry()
                [record] = face.list_operations(name_pattern="work*")
                assert record.id == operation_id
                assert face.cancel_operation(operation_id, message="from the monitor")

            thread = threading.Thread(target=monitor)
            thread.start()
            await anyio.sleep(10)
    thread.join()
    assert cancel.context.cancel_reason is CancelationReason.MANUAL


async def test_list_operations_filters(registry: OperationRegistry) -> None:
    async with (
        Cancelable(name="fetch-a", register_globally=True) as parent,
        Cancelable(name="fetch-b", parent=parent, register_globally=True) as child,
        Cancelable(name="parse", register_globally=True),
    ):
        names = sorted(r.name or "" for r in await registry.list_operations(name_pattern="fetch-*"))
        assert names == ["fetch-a", "fetch-b"]
        [record] = await registry.list_operations(parent_id=parent.operation_id)
        assert record.id == child.operation_id
        assert len(await registry.list_operations(status=OperationStatus.RUNNING)) == 3
        assert await registry.list_operations(status=OperationStatus.COMPLETED) == []


async def test_snapshots_do_not_change_with_the_operation(registry: OperationRegistry) -> None:
    async with Cancelable(register_globally=True, metadata={"n": 1}) as cancel:
        [snapshot] = await registry.list_operations()
        cancel.context.metadata["n"] = 2
    assert snapshot.status is OperationStatus.RUNNING
    assert snapshot.metadata == {"n": 1}


async def test_cancel_all(registry: OperationRegistry) -> None:
    outcomes: list[Any] = []

    async def worker() -> None:
        async with Cancelable(register_globally=True, raise_on_cancel=False) as cancel:
            await anyio.sleep(10)
        outcomes.append(cancel.context.cancel_message)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(worker)
        await anyio.sleep(0.02)
        assert await registry.cancel_all(message="shutdown") == 3
    assert outcomes == ["shutdown"] * 3
    assert await registry.cancel_operation("no-such-id") is False


async def test_statistics_and_history_after_a_mix(registry: OperationRegistry) -> None:
    async with Cancelable(register_globally=True):
        pass
    async with Cancelable(register_globally=True):
        pass
    with pytest.raises(KeyError):
        async with Cancelable(register_globally=True):
            raise KeyError("bad")
    async with Cancelable(register_globally=True, raise_on_cancel=False) as cancel:
        await cancel.cancel()
        await anyio.sleep(10)
    async with Cancelable(register_globally=True):
        stats = await registry.get_statistics()
    assert stats["active_operations"] == 1
    assert stats["active_by_status"]["running"] == 1
    assert stats["total_completed"] == 2
    assert stats["total_failed"] == 1
    assert stats["total_cancelled"] == 1
    assert stats["history_size"] == 4
    assert stats["average_duration_seconds"] >= 0

    history = await registry.get_history()
    assert [c.status for c in history] == [
        OperationStatus.COMPLETED,
        OperationStatus.COMPLETED,
        OperationStatus.FAILED,
        OperationStatus.CANCELLED,
        OperationStatus.COMPLETED,
    ]
    assert [c.status for c in await registry.get_history(limit=2)] == [
        OperationStatus.CANCELLED,
        OperationStatus.COMPLETED,
    ]
    assert len(await registry.get_history(status=OperationStatus.COMPLETED)) == 3
    assert await registry.get_history(since=datetime.now(UTC) + timedelta(seconds=1)) == []
    assert await registry.cleanup_completed(older_than=timedelta(hours=1)) == 0
    assert await registry.cleanup_completed() == 4  # the failure is kept
    [kept] = await registry.get_history()
    assert kept.status is OperationStatus.FAILED


async def test_history_is_bounded(registry: OperationRegistry) -> None:
    registry.history_limit = 3
    try:
        for index in range(5):
            async with Cancelable(name=str(index), register_globally=True):
                pass
        assert [c.name for c in await registry.get_history()] == ["2", "3", "4"]
    finally:
        registry.history_limit = 1000


async def test_the_registry_keeps_no_operation_alive(registry: OperationRegistry) -> None:
    cancel = Cancelable()
    await registry.register(cancel)
    alive = weakref.ref(cancel)
    del cancel
    gc.collect()
    assert alive() is None
    assert await registry.list_operations() == []


def test_the_registry_serves_asyncio_then_trio(registry: OperationRegistry) -> None:
    async def run() -> None:
        async with Cancelable(register_globally=True):
            await anyio.lowlevel.checkpoint()

    anyio.run(run, backend="asyncio")
    anyio.run(run, backend="trio")
    assert len(registry.get_history_sync()) == 2
    assert ThreadSafeRegistry().get_statistics()["total_completed"] == 2


async def test_unregister_and_clear_all(registry: OperationRegistry) -> None:
    cancel = Cancelable()
    await registry.register(cancel)
    await registry.unregister(cancel.operation_id)
    assert await registry.get_operation(cancel.operation_id) is None
    assert await registry.get_history() == []  # it never ran: no record to keep
    await registry.register(cancel)
    await registry.clear_all()
    assert await registry.list_operations() == []


def test_bad_registry_input(registry: OperationRegistry) -> None:
    with pytest.raises(TypeError, match=r"^operation must be a Cancelable, got 'x'$"):
        registry.register_sync("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^status must be an OperationStatus or None"):
        registry.list_operations_sync(status=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^limit must be >= 1, or None for no limit, got -1$"):
        registry.get_history_sync(limit=-1)
    with pytest.raises(TypeError, match=r"^since must be a datetime or None"):
        registry.get_history_sync(since="yesterday")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^older_than must be >= 0"):
        registry.cleanup_completed_sync(older_than=-5)
    with pytest.raises(TypeError, match=r"^reason must be a CancelationReason"):
        registry.cancel_operation_sync("id", reason="manual")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^history_limit must be >= 0"):
        registry.history_limit = -1


async def test_unregistering_by_id_moves_an_ended_operation_to_the_history(
    registry: OperationRegistry,
) -> None:
    done, other = Cancelable(name="done"), Cancelable(name="other")
    await registry.register(done)  # by hand: nothing unregisters it as its block ends
    await registry.register(other)
    async with done:
        pass
    assert [r.name for r in await registry.list_operations()] == ["done", "other"]
    await registry.unregister(done.operation_id)
    assert [r.name for r in await registry.list_operations()] == ["other"]
    [record] = await registry.get_history()
    assert (record.name, record.status) == ("done", OperationStatus.COMPLETED)


async def test_cleanup_completed_takes_seconds_too(registry: OperationRegistry) -> None:
    async with Cancelable(register_globally=True):
        pass
    assert await registry.cleanup_completed(older_than=3600) == 0  # ended just now: kept
    assert len(await registry.get_history()) == 1
    await anyio.sleep(0.01)  # so that it ended strictly before "now"
    assert await registry.cleanup_completed(older_than=0.0) == 1
    assert await registry.get_history() == []


@pytest.mark.parametrize(
    "older_than", [1e11, 10**400, timedelta.max], ids=["1e11 s", "10**400 s", "timedelta.max"]
)
async def test_cleanup_completed_with_an_age_no_record_can_have_removes_nothing(
    registry: OperationRegistry, older_than: float | timedelta
) -> None:
    async with Cancelable(register_globally=True):
        pass
    assert registry.cleanup_completed_sync(older_than) == 0  # nothing ended that long ago
    assert await registry.cleanup_completed(older_than) == 0
    [kept] = registry.get_history_sync()
    assert kept.status is OperationStatus.COMPLETED


async def test_a_stream_running_its_own_operation_is_listed_while_it_streams(
    registry: OperationRegistry,
) -> None:
    async def rows() -> Any:
        for row in range(3):
            await anyio.lowlevel.checkpoint()
            yield row

    operation = Cancelable(name="export", register_globally=True)
    listed = [
        [r.name for r in registry.list_operations_sync()] async for _ in operation.stream(rows())
    ]
    assert listed == [["export"]] * 3
    assert registry.list_operations_sync() == []
    [record] = registry.get_history_sync()
    assert (record.name, record.status) == ("export", OperationStatus.COMPLETED)


# -- code written for 0.11 -------------------------------------------------------------------
# As a user upgrading from 0.11 wrote it: `OperationRegistry()` for the process-wide registry,
# plain substrings for names, `ThreadSafeRegistry` calls without `_sync`, `keep_failed`.


async def test_operation_registry_called_like_a_class_is_the_process_wide_registry(
    registry: OperationRegistry,
) -> None:
    assert OperationRegistry() is OperationRegistry() is OperationRegistry.get_instance()
    async with Cancelable(name="fetch_user_42", register_globally=True) as cancel:
        [record] = await OperationRegistry().list_operations(name_pattern="fetch")
        assert record.id == cancel.operation_id
        assert await OperationRegistry().get_operation(record.id) is cancel
    [finished] = await OperationRegistry().get_history()
    assert finished.id == cancel.operation_id


def test_operation_registry_takes_no_arguments(registry: OperationRegistry) -> None:
    with pytest.raises(TypeError, match="history_limit"):
        OperationRegistry(history_limit=10)  # type: ignore[call-arg]
    assert registry.history_limit == 1000


async def test_an_isolated_registry_lists_only_what_is_registered_in_it(
    registry: OperationRegistry,
) -> None:
    mine = OperationRegistry.isolated(history_limit=2)
    assert mine is not registry
    assert mine is not OperationRegistry.isolated()
    assert mine.history_limit == 2
    by_hand = Cancelable(name="by hand")
    await mine.register(by_hand)
    async with Cancelable(name="global", register_globally=True):
        assert [r.name for r in await mine.list_operations()] == ["by hand"]
        assert [r.name for r in ThreadSafeRegistry(mine).list_operations()] == ["by hand"]
        assert [r.name for r in await registry.list_operations()] == ["global"]
    assert await mine.get_history() == []


def test_a_registry_cannot_be_copied(registry: OperationRegistry) -> None:
    # A copy would be rebuilt through OperationRegistry(), onto the process-wide registry.
    mine = OperationRegistry.isolated(history_limit=5)
    for copier in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match=r"^an OperationRegistry cannot be copied or pickled$"):
            copier(mine)
    assert registry.history_limit == 1000


NAMES = ["Fetch_User_42", "fetch-orders", "report", "sync [v2] users", None]


@pytest.mark.parametrize(
    ("name_pattern", "expected"),
    [
        ("user", ["Fetch_User_42", "sync [v2] users"]),  # 0.11: a substring, any case
        ("USER_4", ["Fetch_User_42"]),
        ("fetch", ["Fetch_User_42", "fetch-orders"]),
        ("^Fetch", []),  # not a regex, as in 0.11
        ("fetch_*", ["Fetch_User_42"]),  # a wildcard: a glob over the whole name, any case
        ("FETCH?ORDERS", ["fetch-orders"]),
        ("*s", ["fetch-orders", "sync [v2] users"]),
        ("[fr]e*", ["Fetch_User_42", "fetch-orders", "report"]),
        ("[v2]", ["sync [v2] users"]),  # still found where 0.11 found it, as a substring
        ("", NAMES),  # no filter, as in 0.11
        (None, NAMES),
    ],
)
async def test_name_pattern_is_a_substring_or_with_a_wildcard_a_glob(
    registry: OperationRegistry, name_pattern: str | None, expected: list[str | None]
) -> None:
    async with AsyncExitStack() as stack:
        for name in NAMES:
            await stack.enter_async_context(Cancelable(name=name, register_globally=True))
        listed = await OperationRegistry().list_operations(name_pattern=name_pattern)
        assert [record.name for record in listed] == expected
        listed = ThreadSafeRegistry().list_operations(name_pattern=name_pattern)
        assert [record.name for record in listed] == expected


async def test_an_empty_parent_id_selects_every_operation_as_in_0_11(
    registry: OperationRegistry,
) -> None:
    async with (
        Cancelable(name="crawl", register_globally=True) as crawl,
        Cancelable(name="page", parent=crawl, register_globally=True),
    ):
        assert len(await OperationRegistry().list_operations(parent_id="")) == 2
        [child] = await OperationRegistry().list_operations(parent_id=crawl.operation_id)
        assert child.name == "page"


async def test_a_status_given_as_its_0_11_string_is_refused_naming_the_member(
    registry: OperationRegistry,
) -> None:
    message = (
        r"^status must be an OperationStatus or None, got 'running'; "
        r"use OperationStatus\.RUNNING$"
    )
    with pytest.raises(TypeError, match=message):
        await OperationRegistry().list_operations(status="running")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=message):
        ThreadSafeRegistry().cancel_all(status="running")  # type: ignore[arg-type]


async def test_cancel_by_id_as_in_0_11(registry: OperationRegistry) -> None:
    entered = anyio.Event()
    ended: list[CancelationError] = []

    async def fetch_page() -> None:
        try:
            async with Cancelable(name="fetch_page", register_globally=True):
                entered.set()
                await anyio.sleep(10)
        except CancelationError as exc:
            ended.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(fetch_page)
        await entered.wait()
        [operation] = await OperationRegistry().list_operations(name_pattern="fetch")
        assert await OperationRegistry().cancel_operation(operation.id, message="user asked")
    [exc] = ended
    assert isinstance(exc, ManualCancelation)
    assert (exc.reason, exc.message) == (CancelationReason.MANUAL, "user asked")
    assert await OperationRegistry().cancel_operation(operation.id) is False  # ended


async def test_cancel_all_without_a_message_says_bulk_cancelation(
    registry: OperationRegistry,
) -> None:
    entered = [anyio.Event(), anyio.Event()]
    messages: list[str | None] = []

    async def worker(started: anyio.Event) -> None:
        async with Cancelable(register_globally=True, raise_on_cancel=False) as cancel:
            started.set()
            await anyio.sleep(10)
        messages.append(cancel.context.cancel_message)

    async with anyio.create_task_group() as tg:
        for started in entered:
            tg.start_soon(worker, started)
        for started in entered:
            await started.wait()
        assert await OperationRegistry().cancel_all() == 2
    assert messages == ["Bulk cancelation"] * 2


async def test_cleanup_completed_keeps_failed_operations_unless_asked(
    registry: OperationRegistry,
) -> None:
    async with Cancelable(name="ok", register_globally=True):
        pass
    with pytest.raises(ValueError, match="bad"):
        async with Cancelable(name="broken", register_globally=True):
            raise ValueError("bad")
    async with Cancelable(name="stopped", register_globally=True, raise_on_cancel=False) as op:
        await op.cancel()
        await anyio.sleep(10)

    assert await OperationRegistry().cleanup_completed(timedelta(hours=1), keep_failed=False) == 0
    assert await OperationRegistry().cleanup_completed() == 2
    [kept] = await OperationRegistry().get_history()
    assert (kept.name, kept.status) == ("broken", OperationStatus.FAILED)
    assert OperationRegistry().cleanup_completed_sync(keep_failed=False) == 1
    assert await OperationRegistry().get_history() == []


async def test_cleanup_completed_unlists_ended_operations_registered_by_hand(
    registry: OperationRegistry,
) -> None:
    # 0.11's use: an operation registered by hand stays listed after it ends, until cleaned up.
    names = ("done", "broken", "stopped", "running")
    operations = {name: Cancelable(name=name, raise_on_cancel=False) for name in names}
    for operation in operations.values():
        await OperationRegistry().register(operation)
    async with operations["done"]:
        pass
    with pytest.raises(KeyError):
        async with operations["broken"]:
            raise KeyError("bad")
    async with operations["stopped"] as stopped:
        await stopped.cancel()
        await anyio.sleep(10)

    async with operations["running"]:
        assert await OperationRegistry().cleanup_completed(keep_failed=True) == 2
        listed = await OperationRegistry().list_operations()
        assert [record.name for record in listed] == ["broken", "running"]
        assert await OperationRegistry().cleanup_completed(keep_failed=False) == 1
        listed = await OperationRegistry().list_operations()
        assert [record.name for record in listed] == ["running"]
    assert await OperationRegistry().get_history() == []  # forgotten, not moved there


async def test_thread_safe_registry_get_instance_is_deprecated_for_thread_safe_registry(
    registry: OperationRegistry,
) -> None:
    message = (
        r"^ThreadSafeRegistry\.get_instance\(\) is deprecated: use ThreadSafeRegistry\(\), "
        r"which wraps the same process-wide registry$"
    )
    with pytest.warns(DeprecationWarning, match=message) as caught:
        face = ThreadSafeRegistry.get_instance()
    with pytest.warns(DeprecationWarning, match=message):
        assert ThreadSafeRegistry.get_instance() is face  # one object, as in 0.11
    assert [warning.filename for warning in caught] == [__file__]
    async with Cancelable(name="listed", register_globally=True) as cancel:
        assert face.get_operation(cancel.operation_id) is cancel


async def test_a_thread_uses_the_0_11_calls_of_thread_safe_registry(
    registry: OperationRegistry,
) -> None:
    async with Cancelable(name="earlier", register_globally=True):
        pass

    with pytest.raises(ManualCancelation, match="from the monitor"):
        async with Cancelable(name="Fetch_Report", register_globally=True) as cancel:

            def monitor() -> None:  # a plain thread, as a Flask view in 0.11's examples
                face = ThreadSafeRegistry()
                [record] = face.list_operations(OperationStatus.RUNNING, None, "fetch")
                assert face.get_operation(record.id) is cancel
                stats = face.get_statistics()
                assert (stats["active_operations"], stats["history_size"]) == (1, 1)
                assert [r.name for r in face.get_history(limit=10)] == ["earlier"]
                face.cancel_operation(record.id, CancelationReason.MANUAL, "from the monitor")

            await anyio.to_thread.run_sync(monitor)
            await anyio.sleep(10)
    assert ThreadSafeRegistry().cancel_all() == 0  # nothing runs any more


async def test_get_statistics_has_the_0_11_keys_and_averages_completed_operations(
    registry: OperationRegistry,
) -> None:
    empty = OperationRegistry().get_statistics_sync()
    assert (empty["average_duration_seconds"], empty["total_completed"]) == (0.0, 0)
    assert f"{empty['average_duration_seconds']:.2f}" == "0.00"  # as 0.11 dashboards print it

    async with Cancelable(register_globally=True):
        await anyio.sleep(0.01)
    with pytest.raises(ValueError, match="late"):
        async with Cancelable(register_globally=True):
            await anyio.sleep(0.05)
            raise ValueError("late")
    stats = await OperationRegistry().get_statistics()
    assert {
        "active_operations",
        "active_by_status",
        "history_size",
        "history_by_status",
        "average_duration_seconds",
        "total_completed",
    } <= stats.keys()
    [completed] = await OperationRegistry().get_history(status=OperationStatus.COMPLETED)
    assert stats["average_duration_seconds"] == completed.duration_seconds
    assert (stats["total_completed"], stats["history_size"]) == (1, 2)


def test_get_history_limit_zero_is_refused_not_read_as_none(registry: OperationRegistry) -> None:
    # 0.11 read limit=0 as "no limit"; reading it as "none" would silently differ.
    message = r"^limit must be >= 1, or None for no limit, got 0$"
    with pytest.raises(ValueError, match=message):
        OperationRegistry().get_history_sync(limit=0)
    with pytest.raises(ValueError, match=message):
        ThreadSafeRegistry().get_history(limit=0)
