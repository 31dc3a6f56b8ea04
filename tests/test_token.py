"""CancelationToken and LinkedCancelationToken (SPEC section 3), on every backend."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ConditionCancelation,
    LinkedCancelationToken,
    ManualCancelation,
    ParentCancelation,
    TimeoutCancelation,
)


def test_a_new_token_is_not_cancelled() -> None:
    token = CancelationToken()
    assert not token.is_cancelled
    assert token.reason is None
    assert token.message is None
    assert token.cancelled_at is None
    assert len(token.id) == 36
    assert "active" in repr(token)
    token.check()  # does not raise


def test_cancel_sync_records_the_first_request_only() -> None:
    token = CancelationToken()
    assert token.cancel_sync(CancelationReason.CONDITION, "disk full")
    assert not token.cancel_sync(CancelationReason.MANUAL, "later")
    assert token.is_cancelled
    assert token.reason is CancelationReason.CONDITION
    assert token.message == "disk full"
    assert token.cancelled_at is not None
    assert "cancelled: condition" in repr(token)
    with pytest.raises(ConditionCancelation, match="disk full"):
        token.check()


async def test_cancel_returns_true_the_first_time_only() -> None:
    token = CancelationToken()
    assert await token.cancel()
    assert not await token.cancel(CancelationReason.TIMEOUT)
    assert token.reason is CancelationReason.MANUAL
    with pytest.raises(ManualCancelation):
        token.check()


async def test_check_async_is_a_checkpoint_that_raises_once_cancelled() -> None:
    token = CancelationToken()
    await token.check_async()
    token.cancel_sync(CancelationReason.TIMEOUT)
    with pytest.raises(TimeoutCancelation):
        await token.check_async()


async def test_wait_for_cancel_wakes_on_cancel_from_a_task_and_a_thread() -> None:
    token = CancelationToken()

    async def cancel_soon() -> None:
        await anyio.sleep(0.02)
        await token.cancel(message="from a task")

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_soon)
        with anyio.fail_after(2):
            await token.wait_for_cancel()
        assert token.message == "from a task"  # it returned because the task cancelled it
    start = time.monotonic()
    await token.wait_for_cancel()  # already cancelled: returns at once
    assert time.monotonic() - start < 0.5

    other = CancelationToken()
    timer = threading.Timer(0.02, other.cancel_sync, kwargs={"message": "from a thread"})
    timer.start()
    with anyio.fail_after(2):
        await other.wait_for_cancel()
    assert other.message == "from a thread"  # it returned because the thread cancelled it
    assert other.callback_count == 0


async def test_wait_for_cancel_leaves_nothing_behind_when_itself_cancelled() -> None:
    token = CancelationToken()
    with anyio.move_on_after(0.02) as scope:
        await token.wait_for_cancel()
    assert scope.cancelled_caught  # the wait was cut short, the token was never cancelled
    assert not token.is_cancelled
    assert token.callback_count == 0


def test_wait_sync_blocks_a_plain_thread_until_cancelled() -> None:
    token = CancelationToken()
    assert not token.wait_sync(timeout=0.01)
    threading.Timer(0.05, token.cancel_sync).start()
    start = time.monotonic()
    assert token.wait_sync(timeout=5)
    assert time.monotonic() - start < 2
    assert token.wait_sync(timeout=0)
    assert token.callback_count == 0


@pytest.mark.parametrize("timeout", [1e30, 10**400], ids=["1e30", "10**400"])
def test_wait_sync_longer_than_threads_can_wait_simply_waits(timeout: float) -> None:
    assert timeout > threading.TIMEOUT_MAX
    token = CancelationToken()
    timer = threading.Timer(0.05, token.cancel_sync)
    timer.start()
    start = time.monotonic()
    try:
        assert token.wait_sync(timeout) is True
    finally:
        timer.cancel()
    assert time.monotonic() - start < 2
    assert token.callback_count == 0


async def test_callbacks_sync_and_async_run_once_on_cancel() -> None:
    token = CancelationToken()
    seen: list[str] = []

    async def async_cb(t: CancelationToken) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(f"async:{t.reason}")

    token.register_callback(lambda t: seen.append(f"sync:{t.reason}"))
    token.register_callback(async_cb)
    assert token.callback_count == 2
    await token.cancel()
    await token.cancel()
    assert seen == [f"sync:{CancelationReason.MANUAL}", f"async:{CancelationReason.MANUAL}"]
    assert token.callback_count == 0


async def test_callback_registered_after_cancel_runs_at_once() -> None:
    token = CancelationToken()
    token.cancel_sync()
    seen: list[CancelationToken] = []
    token.register_callback(seen.append)
    assert seen == [token]


async def test_async_callback_from_cancel_sync_runs_on_its_loop() -> None:
    token = CancelationToken()
    ran = anyio.Event()
    ran_on: list[int] = []

    async def async_cb(t: CancelationToken) -> None:
        ran_on.append(threading.get_ident())
        ran.set()

    token.register_callback(async_cb)
    thread = threading.Thread(target=token.cancel_sync)
    thread.start()
    thread.join()
    with anyio.fail_after(2):
        await ran.wait()
    assert ran_on == [threading.get_ident()]  # once, on this loop's thread, not the canceller's


async def test_awaiting_the_registration_on_a_cancelled_token_runs_the_callback_first() -> None:
    token = CancelationToken()
    await token.cancel()
    seen: list[str] = []

    async def async_cb(t: CancelationToken) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append("async")

    await token.register_callback(async_cb)
    assert seen == ["async"]  # "at once": it has run when the await returns
    await token.register_callback(lambda t: seen.append("sync"))
    assert seen == ["async", "sync"]
    await anyio.wait_all_tasks_blocked()  # anything queued meanwhile has run by now
    assert seen == ["async", "sync"]  # once each


async def test_unregistered_callback_does_not_run() -> None:
    token = CancelationToken()
    seen: list[Any] = []
    handle = token.register_callback(seen.append)
    assert handle.unregister()
    assert not handle.unregister()
    await token.cancel()
    assert seen == []


async def test_registration_can_be_awaited_for_code_written_for_0_11() -> None:
    token = CancelationToken()
    seen: list[Any] = []
    await token.register_callback(seen.append)
    await token.cancel()
    assert seen == [token]


async def test_failing_callback_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = CancelationToken()
    seen: list[str] = []

    def broken(t: CancelationToken) -> None:
        raise RuntimeError("callback bug")

    async def broken_async(t: CancelationToken) -> None:
        raise RuntimeError("async callback bug")

    token.register_callback(broken)
    token.register_callback(broken_async)
    token.register_callback(lambda t: seen.append("ran"))
    assert await token.cancel()
    assert seen == ["ran"]
    messages = [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert messages == ["callback bug", "async callback bug"]


async def test_cancel_from_inside_the_block_it_cancels_still_awaits_callbacks() -> None:
    token = CancelationToken()
    seen: list[str] = []

    async def slow(t: CancelationToken) -> None:
        await anyio.sleep(0.01)  # shielded: the block's own cancellation does not cut it
        seen.append("slow callback done")

    token.register_callback(slow)
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token):
            await token.cancel()
            seen.append("cancel returned")
            await anyio.sleep(10)
    assert seen == ["slow callback done", "cancel returned"]


async def test_linked_token_follows_its_source() -> None:
    source = CancelationToken()
    linked = LinkedCancelationToken()
    linked.link(source)
    await source.cancel(CancelationReason.TIMEOUT, "too slow")
    assert linked.reason is CancelationReason.PARENT
    assert linked.message == f"linked token {source.id} was cancelled"
    with pytest.raises(ParentCancelation):
        linked.check()


def test_linked_token_preserves_the_reason_when_asked() -> None:
    first, second = CancelationToken(), CancelationToken()
    linked = LinkedCancelationToken()
    linked.link(first, preserve_reason=True)
    linked.link(second, preserve_reason=True)
    second.cancel_sync(CancelationReason.CONDITION, "hot")
    first.cancel_sync(CancelationReason.MANUAL, "ignored")
    assert linked.reason is CancelationReason.CONDITION
    assert linked.message == "hot"


def test_linking_to_an_already_cancelled_token_cancels_at_once() -> None:
    source = CancelationToken()
    source.cancel_sync()
    linked = LinkedCancelationToken()
    linked.link(source, preserve_reason=True)
    assert linked.reason is CancelationReason.MANUAL


def test_link_can_be_undone() -> None:
    source = CancelationToken()
    linked = LinkedCancelationToken()
    linked.link(source).unregister()
    source.cancel_sync()
    assert not linked.is_cancelled


async def test_linked_token_cancels_an_operation() -> None:
    source = CancelationToken()
    linked = LinkedCancelationToken()
    linked.link(source, preserve_reason=True)
    with pytest.raises(ManualCancelation, match="stop"):
        async with Cancelable.with_token(linked):
            await source.cancel(message="stop")
            await anyio.sleep(10)


def test_cancel_sync_from_many_threads_has_one_winner() -> None:
    for _ in range(50):
        token = CancelationToken()
        barrier = threading.Barrier(8)
        wins: list[bool] = []

        def race(
            n: int,
            token: CancelationToken = token,
            barrier: threading.Barrier = barrier,
            wins: list[bool] = wins,
        ) -> None:
            barrier.wait()
            wins.append(token.cancel_sync(message=str(n)))

        threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wins.count(True) == 1
        assert token.message is not None


def test_registration_racing_a_cancel_fires_exactly_once() -> None:
    for _ in range(200):
        token = CancelationToken()
        calls: list[int] = []
        ready = threading.Barrier(2)

        def register(
            token: CancelationToken = token,
            ready: threading.Barrier = ready,
            calls: list[int] = calls,
        ) -> None:
            ready.wait()
            token.register_callback(lambda t: calls.append(1))

        thread = threading.Thread(target=register)
        thread.start()
        ready.wait()
        token.cancel_sync()
        thread.join()
        assert calls == [1]
