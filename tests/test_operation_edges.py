"""Edges of an operation's life (SPEC sections 2, 3, 5): requests made before the token is
first asked for, after the block ended, or while the body waits at a checkpoint; the
operation's token seen from worker threads; and the record's duration."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import anyio
import anyio.to_thread
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ConditionCancelation,
    ManualCancelation,
    OperationStatus,
    ParentCancelation,
)


async def test_the_token_asked_for_after_a_request_already_reports_it() -> None:
    cancel = Cancelable()
    assert await cancel.cancel(CancelationReason.CONDITION, "disk full") is True
    token = cancel.token  # first asked for now
    assert token.is_cancelled
    assert (token.reason, token.message) == (CancelationReason.CONDITION, "disk full")
    with pytest.raises(ConditionCancelation, match="disk full"):
        async with Cancelable.with_token(token):  # a listener of the token sees it too
            await anyio.sleep(5)


async def test_a_request_after_the_block_ended_is_refused_and_changes_nothing() -> None:
    async with Cancelable() as cancel:
        await anyio.lowlevel.checkpoint()
    assert await cancel.cancel(message="too late") is False
    assert cancel.cancel_sync(message="too late") is False
    assert not cancel.is_cancelled
    assert not cancel.token.is_cancelled
    assert cancel.context.status is OperationStatus.COMPLETED
    assert (cancel.context.cancel_reason, cancel.context.cancel_message) == (None, None)


async def test_a_child_entered_after_its_parent_was_cancelled_is_cancelled_at_once() -> None:
    parent = Cancelable(name="job")
    await parent.cancel(message="job dropped")  # before its block, and the child's
    reached: list[str] = []
    with pytest.raises(ParentCancelation) as info:
        async with Cancelable(name="step", parent=parent) as child:
            await anyio.lowlevel.checkpoint()
            reached.append("after the first checkpoint")
    assert reached == []
    assert info.value.parent_id == parent.operation_id
    assert child.context.cancel_reason is CancelationReason.PARENT
    assert parent.token.callback_count == 0  # the child left nothing behind on it


async def test_check_cancelation_raises_for_a_cancel_sync_made_while_it_waited() -> None:
    # cancel_sync() records the request at once and trips the scope at the loop's next turn:
    # the body, woken first, passes one more check at most (docs/concepts.md, Decisions).
    async def request(cancel: Cancelable) -> None:
        cancel.cancel_sync(message="from a sibling")

    passed: list[int] = []
    async with anyio.create_task_group() as group:
        with pytest.raises(ManualCancelation, match="from a sibling") as info:
            async with Cancelable() as cancel:
                group.start_soon(request, cancel)
                for attempt in range(100):
                    await cancel.check_cancelation()
                    passed.append(attempt)
    assert passed in ([], [0])
    assert info.value.context is cancel.context
    assert cancel.context.cancel_message == "from a sibling"


async def test_a_worker_waiting_on_the_operations_token_gives_up_after_its_timeout() -> None:
    async with Cancelable.with_timeout(60) as cancel:
        start = time.monotonic()
        assert await anyio.to_thread.run_sync(cancel.token.wait_sync, 0.05) is False
        assert 0.04 <= time.monotonic() - start < 5
    assert cancel.context.status is OperationStatus.COMPLETED


async def test_a_worker_waiting_without_a_timeout_is_woken_by_cancel() -> None:
    waiting = threading.Event()
    woken: list[bool] = []

    def wait_for_the_operation(token: CancelationToken) -> None:
        waiting.set()
        woken.append(token.wait_sync())

    async with Cancelable(raise_on_cancel=False) as cancel, anyio.create_task_group() as group:
        group.start_soon(anyio.to_thread.run_sync, wait_for_the_operation, cancel.token)
        with anyio.fail_after(5):
            await anyio.to_thread.run_sync(waiting.wait)
        await cancel.cancel(message="stop waiting")
    assert woken == [True]
    assert cancel.is_cancelled
    assert cancel.token.message == "stop waiting"


def test_a_plain_thread_waits_on_a_token_without_a_timeout() -> None:
    token = CancelationToken()
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(token.wait_sync()))
    thread.start()
    token.cancel_sync(message="go")
    thread.join(5)
    assert results == [True]


async def test_duration_is_the_time_the_block_took() -> None:
    cancel = Cancelable()
    assert cancel.context.duration is None  # not entered yet
    async with cancel:
        await anyio.sleep(0.02)
        running = cancel.context.duration
    assert isinstance(running, timedelta)
    ended = cancel.context.duration
    assert ended is not None
    assert ended == timedelta(seconds=cancel.context.duration_seconds or 0)
    assert timedelta(seconds=0.015) <= running <= ended < timedelta(seconds=5)


async def test_a_cancelation_error_raised_by_the_body_itself_leaves_the_block() -> None:
    error: Exception | None = None
    cancel = Cancelable()
    try:
        async with cancel:
            raise ManualCancelation("stopped by hand", context=cancel.context)
    except Exception as exc:  # what leaves the block, whatever it is
        error = exc
    assert isinstance(error, ManualCancelation)
    assert error.message == "stopped by hand"
    assert cancel.context.is_terminal
    # It is the operation's cancellation: recorded as the request it stands for.
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.MANUAL
    assert cancel.context.cancel_message == "stopped by hand"
    assert cancel.is_cancelled
