"""The operation registry (SPEC section 5), on every backend and from threads."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import (
    Cancelable,
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
    assert await registry.cleanup_completed() == 5
    assert await registry.get_history() == []


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
        registry.list_operations_sync(status="running")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^limit must be >= 0, got -1$"):
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
