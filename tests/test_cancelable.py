"""The exit table of SPEC section 2, row by row, and the life of a Cancelable, on every backend."""

from __future__ import annotations

import gc
import math
import os
import signal
import threading
import time
import weakref
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    ConditionCancelation,
    ManualCancelation,
    OperationContext,
    OperationStatus,
    ParentCancelation,
    TimeoutCancelation,
    current_operation,
)

# A bound far above what any of these blocks needs, far below the 10 s they would take if the
# cancellation were lost.
PROMPT = 1.0


def assert_unchained(err: BaseException) -> None:
    """The error carries no backend cancellation exception with it."""
    assert err.__cause__ is None
    assert err.__context__ is None


# -- row 1: the body finished ----------------------------------------------------------------


async def test_completed_block_records_completed_and_raises_nothing() -> None:
    async with Cancelable(name="job") as cancel:
        assert cancel.is_running
        await anyio.lowlevel.checkpoint()
    assert cancel.context.status is OperationStatus.COMPLETED
    assert cancel.is_completed
    assert cancel.context.cancel_reason is None
    assert cancel.context.error is None
    assert not cancel.is_cancelled
    assert cancel.context.duration_seconds is not None
    assert cancel.context.duration_seconds >= 0


async def test_timeout_that_does_not_expire_completes() -> None:
    async with Cancelable.with_timeout(5) as cancel:
        await anyio.sleep(0.01)
    assert cancel.context.status is OperationStatus.COMPLETED


# -- row 2: the body raised ------------------------------------------------------------------


async def test_body_exception_arrives_bare_and_is_recorded() -> None:
    with pytest.raises(ValueError, match="boom") as info:
        async with Cancelable.with_timeout(5) as cancel:
            await anyio.lowlevel.checkpoint()
            raise ValueError("boom")
    assert type(info.value) is ValueError
    assert cancel.context.status is OperationStatus.FAILED
    assert cancel.context.error == "boom"
    assert cancel.context.cancel_reason is None


async def test_body_exception_wins_over_a_pending_cancel_request() -> None:
    token = CancelationToken()
    with pytest.raises(KeyError):
        async with Cancelable.with_token(token) as cancel:
            await token.cancel()
            raise KeyError("first")
    assert cancel.context.status is OperationStatus.FAILED


# -- row 3: own timeout ----------------------------------------------------------------------


async def test_own_timeout_raises_timeout_cancelation() -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable.with_timeout(0.05) as cancel:
            await anyio.sleep(10)
    elapsed = time.monotonic() - start
    assert 0.04 <= elapsed < PROMPT
    err = info.value
    assert isinstance(err, TimeoutError)
    assert isinstance(err, Exception)
    assert err.reason is CancelationReason.TIMEOUT
    assert err.context is cancel.context
    assert_unchained(err)
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT
    assert cancel.context.cancel_message == "operation timed out after 0.05 s"
    assert cancel.is_cancelled


async def test_timedelta_timeout() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(timedelta(milliseconds=50)):
            await anyio.sleep(10)


async def test_timeout_counts_from_entry_not_construction() -> None:
    cancel = Cancelable.with_timeout(0.2)
    await anyio.sleep(0.3)
    async with cancel:
        await anyio.sleep(0.05)
    assert cancel.context.status is OperationStatus.COMPLETED


async def test_partial_result_is_at_hand_after_a_timeout() -> None:
    done: list[int] = []
    try:
        async with Cancelable.with_timeout(0.1) as cancel:
            cancel.context.partial_result = done
            for i in range(1000):
                await anyio.sleep(0.01)
                done.append(i)
    except Exception as err:  # the seed's pattern: a cancellation is an Exception
        assert isinstance(err, TimeoutCancelation)
        assert err.context is not None
        assert err.context.partial_result is done
    assert 0 < len(done) < 1000


async def test_timeout_without_raising_ends_quietly() -> None:
    async with Cancelable.with_timeout(0.05, raise_on_cancel=False) as cancel:
        await anyio.sleep(10)
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT
    assert cancel.is_cancelled


# -- row 4: own token, cancel() and cancel_sync() -------------------------------------------


async def test_token_cancel_from_another_task() -> None:
    token = CancelationToken()

    async def cancel_later() -> None:
        await anyio.sleep(0.05)
        assert await token.cancel(message="stop now")

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_later)
        with pytest.raises(ManualCancelation) as info:
            async with Cancelable.with_token(token) as cancel:
                await anyio.sleep(10)
    assert_unchained(info.value)
    assert info.value.message == "stop now"
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.MANUAL
    assert cancel.context.cancel_message == "stop now"


@pytest.mark.parametrize(
    ("reason", "error_type"),
    [
        (CancelationReason.MANUAL, ManualCancelation),
        (CancelationReason.TIMEOUT, TimeoutCancelation),
        (CancelationReason.PARENT, ParentCancelation),
        (CancelationReason.ERROR, CancelationError),
    ],
)
async def test_token_reason_picks_the_exception(
    reason: CancelationReason, error_type: type[CancelationError]
) -> None:
    token = CancelationToken()
    with pytest.raises(error_type) as info:
        async with Cancelable.with_token(token) as cancel:
            await token.cancel(reason, "why")
            await anyio.sleep(10)
    assert info.value.reason is reason
    assert cancel.context.cancel_reason is reason


async def test_operation_cancel_inside_the_block() -> None:
    with pytest.raises(ManualCancelation):
        async with Cancelable() as cancel:
            assert await cancel.cancel(message="enough")
            assert cancel.is_cancelled
            await anyio.sleep(10)
    assert cancel.context.cancel_message == "enough"


async def test_cancel_sync_inside_the_block_takes_effect_at_a_checkpoint() -> None:
    start = time.monotonic()
    with pytest.raises(ManualCancelation):
        async with Cancelable() as cancel:
            assert cancel.cancel_sync()
            assert cancel.is_cancelled
            await anyio.sleep(10)
    assert time.monotonic() - start < PROMPT


async def test_cancel_sync_from_a_plain_thread_ends_the_block_promptly() -> None:
    token = CancelationToken()
    delay = 0.1
    timer = threading.Timer(delay, token.cancel_sync, kwargs={"message": "from thread"})
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(ManualCancelation, match="from thread"):
            async with Cancelable.with_token(token):
                await anyio.sleep(10)
    finally:
        timer.cancel()
    assert time.monotonic() - start < delay + PROMPT


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
async def test_cancel_sync_from_a_signal_handler_ends_the_block_promptly() -> None:
    token = CancelationToken()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: token.cancel_sync())
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(ManualCancelation):
            async with Cancelable.with_token(token):
                await anyio.sleep(10)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    assert time.monotonic() - start < 0.1 + PROMPT


async def test_cancel_before_entry_cancels_at_the_first_checkpoint() -> None:
    cancel = Cancelable()
    assert await cancel.cancel(message="early")
    with pytest.raises(ManualCancelation, match="early"):
        async with cancel:
            await anyio.sleep(10)


async def test_already_cancelled_token_cancels_at_the_first_checkpoint() -> None:
    token = CancelationToken()
    token.cancel_sync()
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token):
            await anyio.sleep(10)


async def test_token_without_raising_ends_quietly() -> None:
    token = CancelationToken()
    async with Cancelable.with_token(token, raise_on_cancel=False) as cancel:
        await token.cancel()
        await anyio.sleep(10)
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.MANUAL


async def test_check_cancelation_raises_the_operations_error() -> None:
    with pytest.raises(ManualCancelation) as info:
        async with Cancelable() as cancel:
            await cancel.check_cancelation()  # not cancelled: a plain checkpoint
            cancel.cancel_sync()
            await cancel.check_cancelation()
    assert info.value.context is cancel.context
    assert cancel.context.status is OperationStatus.CANCELLED


async def test_check_cancelation_without_raising_ends_quietly() -> None:
    async with Cancelable(raise_on_cancel=False) as cancel:
        await cancel.cancel()
        await cancel.check_cancelation()
        pytest.fail("check_cancelation() should have ended the block")
    assert cancel.context.cancel_reason is CancelationReason.MANUAL


# -- first request wins ----------------------------------------------------------------------


async def test_first_request_wins() -> None:
    token = CancelationToken()
    with pytest.raises(ManualCancelation, match="first"):
        async with Cancelable.with_token(token) as cancel:
            assert await token.cancel(message="first")
            assert not await cancel.cancel(CancelationReason.ERROR, "second")
            assert not await token.cancel(CancelationReason.TIMEOUT, "third")
            await anyio.sleep(10)
    assert cancel.context.cancel_message == "first"
    assert token.message == "first"


async def test_request_after_the_deadline_expired_reports_the_timeout() -> None:
    token = CancelationToken()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_token(token).combine(Cancelable.with_timeout(0.05)) as cancel:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.1)  # the deadline passes while shielded
            await token.cancel()  # later than the deadline
            await anyio.sleep(10)
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT


async def pause() -> None:
    """Let the clock move on, shielded, so two requests are apart on any clock (Windows' too)."""
    with anyio.CancelScope(shield=True):
        await anyio.sleep(0.02)


@pytest.mark.parametrize("entered", ["before the requests", "after the requests"])
async def test_the_first_token_cancelled_wins_whatever_the_order_of_the_members(
    entered: str,
) -> None:
    listed_first, listed_second = CancelationToken(), CancelationToken()
    combined = Cancelable.with_token(listed_first).combine(Cancelable.with_token(listed_second))

    async def request_second_then_first() -> None:
        assert await listed_second.cancel(CancelationReason.TIMEOUT, "asked first")
        await pause()
        assert await listed_first.cancel(CancelationReason.MANUAL, "asked second")

    if entered == "after the requests":
        await request_second_then_first()
    with pytest.raises(TimeoutCancelation, match="asked first"):
        async with combined:
            if entered == "before the requests":
                await request_second_then_first()
            await anyio.sleep(10)
    assert combined.context.cancel_reason is CancelationReason.TIMEOUT
    assert combined.context.cancel_message == "asked first"


async def test_a_request_to_the_pending_operation_itself_stays_its_first() -> None:
    first, second = CancelationToken(), CancelationToken()
    combined = Cancelable.with_token(first).combine(Cancelable.with_token(second))
    assert await combined.cancel(CancelationReason.CONDITION, "own request")
    await pause()
    await second.cancel(CancelationReason.TIMEOUT, "token, later")
    await first.cancel(CancelationReason.MANUAL, "token, later still")
    with pytest.raises(ConditionCancelation, match="own request"):
        async with combined:
            await anyio.sleep(10)
    assert combined.context.cancel_reason is CancelationReason.CONDITION


@pytest.mark.parametrize("first", ["the parent", "the token"])
async def test_a_parent_and_a_token_cancelled_before_entry_count_by_time(first: str) -> None:
    parent = Cancelable(name="job")
    token = CancelationToken()
    requests = [
        lambda: parent.cancel(message="job dropped"),
        lambda: token.cancel(CancelationReason.TIMEOUT, "token cancelled"),
    ]
    if first == "the token":
        requests.reverse()
    for index, request in enumerate(requests):
        if index:
            await pause()
        assert await request()
    expected = ParentCancelation if first == "the parent" else TimeoutCancelation
    with pytest.raises(expected):
        async with Cancelable.with_token(token, parent=parent) as child:
            await anyio.sleep(10)
    if first == "the parent":
        assert child.context.cancel_reason is CancelationReason.PARENT
    else:
        assert child.context.cancel_message == "token cancelled"


# -- rows 7 and 8: parents and enclosing scopes ---------------------------------------------


async def test_linked_parent_that_does_not_enclose_raises_parent_cancelation() -> None:
    parent = Cancelable(name="parent")
    child = Cancelable(name="child", parent=parent)
    assert child.context.parent_id == parent.operation_id
    assert child.parent is parent

    async def cancel_parent() -> None:
        await anyio.sleep(0.05)
        await parent.cancel(message="parent stops")

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_parent)
        with pytest.raises(ParentCancelation) as info:
            async with child:
                await anyio.sleep(10)
    assert info.value.parent_id == parent.operation_id
    assert_unchained(info.value)
    assert child.context.cancel_reason is CancelationReason.PARENT


async def test_enclosing_move_on_after_wins_untouched() -> None:
    start = time.monotonic()
    with anyio.move_on_after(0.05) as outer:
        async with Cancelable.with_timeout(10) as cancel:
            await anyio.sleep(10)
        pytest.fail("the outer scope's cancellation must leave the block")
    assert outer.cancelled_caught
    assert time.monotonic() - start < PROMPT
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.PARENT


async def test_enclosing_scope_cancellation_is_not_converted() -> None:
    cancelled = anyio.get_cancelled_exc_class()
    seen: list[BaseException] = []
    with anyio.CancelScope() as outer:
        try:
            async with Cancelable() as cancel:
                outer.cancel()
                await anyio.sleep(10)
        except BaseException as exc:
            seen.append(exc)
            raise
    assert outer.cancelled_caught
    assert len(seen) == 1
    assert isinstance(seen[0], cancelled)
    assert not isinstance(seen[0], CancelationError)
    assert cancel.context.cancel_reason is CancelationReason.PARENT


async def test_enclosing_cancelable_cancels_the_inner_one_with_the_backend_exception() -> None:
    cancelled = anyio.get_cancelled_exc_class()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as outer:
            with pytest.raises(cancelled):
                async with Cancelable.with_timeout(10, parent=outer) as inner:
                    await anyio.sleep(10)
            assert inner.is_cancelled
            await anyio.sleep(10)  # the outer cancellation lands again here
    assert inner.context.cancel_reason is CancelationReason.PARENT
    assert outer.context.cancel_reason is CancelationReason.TIMEOUT


async def test_inner_timeout_does_not_touch_the_outer_operation() -> None:
    async with Cancelable.with_timeout(5) as outer:
        with pytest.raises(TimeoutCancelation):
            async with Cancelable.with_timeout(0.05) as inner:
                await anyio.sleep(10)
        await anyio.lowlevel.checkpoint()
    assert inner.context.cancel_reason is CancelationReason.TIMEOUT
    assert outer.context.status is OperationStatus.COMPLETED


async def test_enclosing_task_group_cancellation_is_not_converted() -> None:
    cancelled = anyio.get_cancelled_exc_class()
    operations: list[Cancelable] = []
    seen: list[BaseException] = []

    async def worker() -> None:
        try:
            async with Cancelable() as cancel:
                operations.append(cancel)
                await anyio.sleep(10)
        except BaseException as exc:
            seen.append(exc)
            raise

    async def failing_sibling() -> None:
        await anyio.sleep(0.05)
        raise KeyError("sibling")

    with pytest.raises(BaseExceptionGroup) as info:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            tg.start_soon(failing_sibling)
    assert info.group_contains(KeyError)
    assert not info.group_contains(CancelationError)
    assert isinstance(seen[0], cancelled)
    assert operations[0].context.cancel_reason is CancelationReason.PARENT


async def test_timeout_in_one_task_propagates_through_its_task_group() -> None:
    sibling_finished = anyio.Event()

    async def timed() -> None:
        async with Cancelable.with_timeout(0.05):
            await anyio.sleep(10)

    async def sibling() -> None:
        await anyio.sleep(0.2)
        sibling_finished.set()

    with pytest.raises(BaseExceptionGroup) as info:
        async with anyio.create_task_group() as tg:
            tg.start_soon(timed)
            tg.start_soon(sibling)
    assert info.group_contains(TimeoutCancelation)
    assert not sibling_finished.is_set()  # the task group cancelled it, as for any error


async def test_quiet_timeout_in_one_task_leaves_its_sibling_running() -> None:
    results: list[str] = []

    async def timed() -> None:
        async with Cancelable.with_timeout(0.05, raise_on_cancel=False) as cancel:
            await anyio.sleep(10)
        results.append(f"timed: {cancel.context.cancel_reason}")

    async def sibling() -> None:
        await anyio.sleep(0.2)
        results.append("sibling done")

    async with anyio.create_task_group() as tg:
        tg.start_soon(timed)
        tg.start_soon(sibling)
    assert results == [f"timed: {CancelationReason.TIMEOUT}", "sibling done"]


# -- add_token -------------------------------------------------------------------------------


async def test_add_token_lets_a_token_end_a_timeout_early_as_one_operation() -> None:
    token = CancelationToken()
    operation = Cancelable.with_timeout(5, operation_id="fetch", name="fetch")
    assert operation.add_token(token) is operation  # chainable, like add_source
    start = time.monotonic()
    with pytest.raises(ManualCancelation, match=r"^user left$") as info:
        async with operation:
            assert token.callback_count == 1
            token.cancel_sync(message="user left")
            await anyio.sleep(10)
    assert time.monotonic() - start < PROMPT
    assert info.value.context is not None
    assert info.value.context.id == "fetch"
    assert operation.context.cancel_reason is CancelationReason.MANUAL
    assert token.callback_count == 0


async def test_add_token_keeps_the_timeout() -> None:
    token = CancelationToken()
    start = time.monotonic()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05).add_token(token):
            await anyio.sleep(10)
    assert time.monotonic() - start < PROMPT
    assert not token.is_cancelled


async def test_add_token_twice_or_a_token_cancelled_before_entry() -> None:
    first, second = CancelationToken(), CancelationToken()
    await second.cancel(CancelationReason.CONDITION, "already")
    operation = Cancelable().add_token(first).add_token(first).add_token(second)
    with pytest.raises(ConditionCancelation, match=r"^already$"):
        async with operation:
            assert first.callback_count == 1  # one token, heard once
            await anyio.sleep(10)
    assert first.callback_count == 0


async def test_add_token_after_entry_is_refused() -> None:
    token = CancelationToken()
    async with Cancelable() as cancel:
        with pytest.raises(RuntimeError, match=r"^add_token: "):
            cancel.add_token(token)
    assert token.callback_count == 0


# -- combine ---------------------------------------------------------------------------------


async def test_combine_earliest_timeout_wins() -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(5).combine(Cancelable.with_timeout(0.2)):
            await anyio.sleep(10)
    assert 0.18 <= time.monotonic() - start < 0.2 + PROMPT


async def test_combine_is_cancelled_by_any_member_with_its_reason() -> None:
    first, second = CancelationToken(), CancelationToken()
    with pytest.raises(ManualCancelation, match="second"):
        async with Cancelable.with_token(first).combine(Cancelable.with_token(second)) as cancel:
            await second.cancel(message="second")
            await anyio.sleep(10)
    assert cancel.context.cancel_reason is CancelationReason.MANUAL
    assert first.callback_count == 0
    assert second.callback_count == 0


async def test_combine_keeps_the_first_members_name_metadata_and_registration_under_a_new_id() -> (
    None
):
    from hother.cancelable import OperationRegistry

    parent = Cancelable(name="parent")
    ended: list[str] = []
    first = Cancelable.with_timeout(
        5,
        operation_id="first",
        name="first",
        parent=parent,
        metadata={"job": 1},
        register_globally=True,
        raise_on_cancel=False,
    ).on_complete(lambda context: ended.append("first's callback"))
    second = Cancelable(operation_id="second", name="second", metadata={"job": 2})
    combined = first.combine(second)
    assert combined.operation_id not in ("first", "second")
    assert combined.context.name == "first"
    assert combined.context.metadata == {"job": 1}
    assert combined.parent is parent
    async with combined:
        listed = OperationRegistry.get_instance().get_operation_sync(combined.operation_id)
        assert listed is combined  # registered as the first member asked
        assert OperationRegistry.get_instance().get_operation_sync("first") is None
        await second.cancel(message="second's cancel")
        await anyio.sleep(10)
    # Quiet, as the first member asked; the members' callbacks are not carried over.
    assert combined.context.cancel_message == "second's cancel"
    assert ended == []
    solo = Cancelable.with_timeout(5).combine(Cancelable(name="second", register_globally=True))
    assert solo.context.name is None  # the first member's, even when it has none
    named = first.combine(second, operation_id="batch-7")
    assert named.operation_id == "batch-7"


@pytest.mark.parametrize("cancelled", ["before the block", "inside the block"])
async def test_a_token_two_members_share_cancels_the_combination_once(cancelled: str) -> None:
    token = CancelationToken()
    combined = Cancelable.with_token(token).combine(Cancelable.with_token(token))
    if cancelled == "before the block":
        await token.cancel(message="stop")
    with pytest.raises(ManualCancelation, match="stop"):
        async with combined:
            assert token.callback_count == (0 if token.is_cancelled else 1)
            await token.cancel(message="stop")
            await anyio.sleep(10)
    assert combined.context.cancel_message == "stop"
    assert await combined.cancel() is False
    assert token.callback_count == 0


async def test_operations_cancelled_by_one_token_each_keep_their_own_record() -> None:
    token = CancelationToken()
    ended: list[Cancelable] = []
    both_in = anyio.Event()

    async def operation(name: str) -> None:
        async with Cancelable.with_token(token, name=name, raise_on_cancel=False) as cancel:
            ended.append(cancel)
            if len(ended) == 2:
                both_in.set()
            await anyio.sleep(10)

    async with anyio.create_task_group() as tg:
        tg.start_soon(operation, "first")
        tg.start_soon(operation, "second")
        await both_in.wait()
        await token.cancel(CancelationReason.SIGNAL, "shared")
    reports = [
        (op.context.name, op.context.cancel_reason, op.context.cancel_message) for op in ended
    ]
    assert sorted(reports, key=str) == [
        ("first", CancelationReason.SIGNAL, "shared"),
        ("second", CancelationReason.SIGNAL, "shared"),
    ]
    assert ended[0].context is not ended[1].context


async def test_combine_is_cancelled_when_an_original_is_cancelled() -> None:
    original = Cancelable.with_timeout(5)
    combined = original.combine(Cancelable())
    with pytest.raises(ManualCancelation):
        async with combined:
            await original.cancel()
            await anyio.sleep(10)


# -- current_operation() ---------------------------------------------------------------------


async def test_current_operation_is_restored_after_every_kind_of_exit() -> None:
    assert current_operation() is None
    async with Cancelable() as outer:
        assert current_operation() is outer
        async with Cancelable() as inner:
            assert current_operation() is inner
        assert current_operation() is outer
        with pytest.raises(ValueError, match="body"):
            async with Cancelable():
                raise ValueError("body")
        assert current_operation() is outer
        with pytest.raises(TimeoutCancelation):
            async with Cancelable.with_timeout(0.01):
                await anyio.sleep(10)
        assert current_operation() is outer
        async with Cancelable.with_timeout(0.01, raise_on_cancel=False):
            await anyio.sleep(10)
        assert current_operation() is outer
        with anyio.move_on_after(0.01):
            async with Cancelable():
                await anyio.sleep(10)
        assert current_operation() is outer
    assert current_operation() is None


async def test_current_operation_is_seen_by_tasks_started_in_the_block() -> None:
    seen: list[Cancelable | None] = []

    async def child() -> None:
        seen.append(current_operation())

    async with Cancelable() as cancel, anyio.create_task_group() as tg:
        tg.start_soon(child)
    assert seen == [cancel]


# -- callbacks and progress ------------------------------------------------------------------


async def test_callbacks_fire_once_in_order_of_life() -> None:
    events: list[str] = []

    async def on_cancel(context: OperationContext) -> None:
        await anyio.lowlevel.checkpoint()  # async callbacks run shielded
        events.append(f"cancel:{context.cancel_reason}")

    with pytest.raises(TimeoutCancelation):
        async with (
            Cancelable.with_timeout(0.05)
            .on_start(lambda ctx: events.append(f"start:{ctx.status}"))
            .on_complete(lambda ctx: events.append("complete"))
            .on_cancel(on_cancel)
            .on_error(lambda ctx, exc: events.append("error"))
        ):
            await anyio.sleep(10)
    assert events == [f"start:{OperationStatus.RUNNING}", f"cancel:{CancelationReason.TIMEOUT}"]


async def test_on_complete_and_on_error() -> None:
    events: list[Any] = []
    async with Cancelable().on_complete(lambda ctx: events.append(ctx.status)):
        pass
    with pytest.raises(ValueError, match="bad"):
        async with Cancelable().on_error(lambda ctx, exc: events.append((ctx.status, exc))):
            raise ValueError("bad")
    assert events[0] is OperationStatus.COMPLETED
    assert events[1][0] is OperationStatus.FAILED
    assert isinstance(events[1][1], ValueError)


async def test_failing_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(context: OperationContext) -> None:
        raise RuntimeError("callback bug")

    async with Cancelable().on_start(broken).on_complete(broken) as cancel:
        pass
    assert cancel.context.status is OperationStatus.COMPLETED
    failures = [r for r in caplog.records if r.exc_info and "callback bug" in str(r.exc_info[1])]
    assert len(failures) == 2


async def test_exit_callbacks_run_despite_an_outer_cancellation() -> None:
    ran: list[str] = []

    async def slow_on_cancel(context: OperationContext) -> None:
        await anyio.sleep(0.05)
        ran.append("on_cancel finished")

    with anyio.move_on_after(0.02):
        async with Cancelable().on_cancel(slow_on_cancel):
            await anyio.sleep(10)
    assert ran == ["on_cancel finished"]


async def test_report_progress_calls_sync_and_async_callbacks() -> None:
    seen: list[Any] = []

    async def async_cb(op_id: str, message: Any, meta: dict[str, Any] | None) -> None:
        seen.append(("async", op_id, message, meta))

    async with (
        Cancelable(operation_id="op-1")
        .on_progress(lambda op_id, msg, meta: seen.append(("sync", op_id, msg, meta)))
        .on_progress(async_cb) as cancel
    ):
        await cancel.report_progress("Processed 10 items", {"count": 10})
    assert seen == [
        ("sync", "op-1", "Processed 10 items", {"count": 10}),
        ("async", "op-1", "Processed 10 items", {"count": 10}),
    ]


async def test_a_parent_can_hear_the_progress_of_every_operation_below_it() -> None:
    heard: list[tuple[str, Any]] = []
    own: list[Any] = []
    async with Cancelable(operation_id="crawl") as crawl:
        crawl.on_progress(
            lambda op_id, message, meta: heard.append((op_id, message)), include_children=True
        )
        crawl.on_progress(lambda op_id, message, meta: own.append(message))

        async def fetch(url: str) -> None:
            async with Cancelable.with_timeout(5, operation_id=url) as request:
                await request.report_progress(f"{url} fetched")
                async with Cancelable(operation_id=f"{url}/parse") as parse:
                    await parse.report_progress("parsed", {"links": 2})

        async with anyio.create_task_group() as tasks:  # children in tasks it started
            tasks.start_soon(fetch, "a")
        linked = Cancelable(operation_id="linked", parent=crawl)  # a child by `parent=`
        await linked.report_progress("linked")
        await crawl.report_progress("crawl itself")
    assert heard == [
        ("a", "a fetched"),
        ("a/parse", "parsed"),
        ("linked", "linked"),
        ("crawl", "crawl itself"),
    ]
    assert own == ["crawl itself"]  # without include_children: its own progress only


async def test_children_progress_reaches_each_listening_ancestor_nearest_first() -> None:
    heard: list[str] = []
    async with (
        Cancelable(name="outer").on_progress(
            lambda op_id, message, meta: heard.append(f"outer: {message}"), include_children=True
        ),
        Cancelable(name="middle").on_progress(
            lambda op_id, message, meta: heard.append(f"middle: {message}"),
            include_children=True,
        ),
        Cancelable(name="inner").on_progress(
            lambda op_id, message, meta: heard.append(f"inner: {message}")
        ) as inner,
    ):
        async for _ in inner.stream([1, 2], report_interval=2):
            pass
    assert heard == [
        "inner: Processed 2 items",
        "middle: Processed 2 items",
        "outer: Processed 2 items",
    ]


async def test_a_parent_running_inside_its_child_hears_it_once() -> None:
    heard: list[str] = []
    parent = Cancelable(name="parent").on_progress(
        lambda op_id, message, meta: heard.append(message), include_children=True
    )
    child = Cancelable(name="child", parent=parent)
    async with child, parent:  # the parent's block runs inside the child's
        await child.report_progress("from the child")
        await parent.report_progress("from the parent")
    assert heard == ["from the child", "from the parent"]


# -- inside the block: shield, wrap, is_cancelled ------------------------------------------


@pytest.mark.parametrize("form", ["with", "async with"])
async def test_leaving_a_shield_raises_the_cancellation_requested_meanwhile(form: str) -> None:
    # SPEC 5 ([3/6]): a loop of shielded steps stops between two steps, as in 0.11.
    steps: list[int] = []
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as cancel:
            for page in range(5):
                if form == "with":
                    with cancel.shield():
                        await anyio.sleep(0.03)
                        steps.append(page)
                else:
                    async with cancel.shield():
                        await anyio.sleep(0.03)
                        steps.append(page)
    assert steps == [0, 1]  # page 1 finished shielded, past the deadline; page 2 never began
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT


@pytest.mark.parametrize("form", ["with", "async with"])
async def test_a_shielded_cleanup_in_finally_lets_the_cancellation_go_on(form: str) -> None:
    cleaned: list[str] = []

    async def worker(name: str, cancel: Cancelable) -> None:
        try:
            await anyio.sleep(10)
        finally:
            if form == "with":
                with cancel.shield():
                    await anyio.sleep(0.01)
                    cleaned.append(name)
            else:
                async with cancel.shield():
                    await anyio.sleep(0.01)
                    cleaned.append(name)

    with pytest.raises(TimeoutCancelation) as info:  # bare: no ExceptionGroup of workers
        async with Cancelable.with_timeout(0.03) as cancel, anyio.create_task_group() as tasks:
            tasks.start_soon(worker, "a", cancel)
            tasks.start_soon(worker, "b", cancel)
    assert sorted(cleaned) == ["a", "b"]
    assert info.value.context is cancel.context


async def test_leaving_a_shield_quietly_ends_a_quiet_block_there() -> None:
    after: list[str] = []
    async with Cancelable(raise_on_cancel=False) as cancel:
        with cancel.shield():
            await cancel.cancel(message="stop")
            await anyio.sleep(0.01)
            after.append("inside")
        after.append("after the shield")  # never: leaving it raised
    assert after == ["inside"]
    assert cancel.context.cancel_message == "stop"


async def test_a_shield_left_by_an_exception_raises_that_exception() -> None:
    with pytest.raises(KeyError):
        async with Cancelable() as cancel:
            with cancel.shield():
                await cancel.cancel()
                raise KeyError("work")
    assert cancel.context.status is OperationStatus.FAILED


async def test_leaving_async_with_shield_is_a_checkpoint_for_an_enclosing_scope() -> None:
    reached: list[str] = []
    with anyio.move_on_after(0.02) as outer:
        async with Cancelable() as cancel:
            async with cancel.shield():
                await anyio.sleep(0.05)
                reached.append("shield done")
            reached.append("after")  # never: the enclosing scope's cancellation lands
    assert outer.cancelled_caught
    assert reached == ["shield done"]


async def test_wrap_checks_cancelation_before_each_call() -> None:
    calls: list[int] = []

    async def attempt(n: int) -> int:
        calls.append(n)
        return n * 2

    with pytest.raises(ManualCancelation):
        async with Cancelable() as cancel:
            wrapped = cancel.wrap(attempt)
            assert wrapped.__name__ == "attempt"
            assert await wrapped(1) == 2
            async with cancel.wrapping() as call:
                assert await call(attempt, 2) == 4
                await cancel.cancel()
                await call(attempt, 3)
    assert calls == [1, 2]


async def test_is_cancelled_stops_a_polling_loop() -> None:
    token = CancelationToken()
    rounds = 0
    async with Cancelable.with_token(token, raise_on_cancel=False) as cancel:
        while not cancel.is_cancelled:
            rounds += 1
            if rounds == 3:
                token.cancel_sync()
    assert rounds == 3


async def test_is_cancelled_sees_an_expired_deadline_and_an_enclosing_cancel() -> None:
    async with Cancelable.with_timeout(0.05, raise_on_cancel=False) as cancel:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.1)
            assert cancel.is_cancelled
    async with Cancelable(raise_on_cancel=False) as outer, Cancelable() as inner:
        outer.cancel_sync()
        assert inner.is_cancelled


async def test_own_token_reflects_the_operation() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as cancel:
            token = cancel.token
            assert not token.is_cancelled
            await anyio.sleep(10)
    assert token.is_cancelled
    assert token.reason is CancelationReason.TIMEOUT
    with pytest.raises(TimeoutCancelation):
        token.check()


# -- the operation's own token (SPEC section 7) -----------------------------------------------

OWN_TOKEN_CANCELS = ["await cancel()", "cancel_sync() on the loop", "cancel_sync() from a thread"]


async def cancel_token(
    how: str,
    token: CancelationToken,
    reason: CancelationReason = CancelationReason.MANUAL,
    message: str | None = None,
) -> bool:
    """Cancel `token` the way `how` says; what the call returned."""
    if how == "await cancel()":
        return await token.cancel(reason, message)
    if how == "cancel_sync() on the loop":
        return token.cancel_sync(reason, message)
    returned: list[bool] = []
    thread = threading.Thread(target=lambda: returned.append(token.cancel_sync(reason, message)))
    thread.start()
    thread.join(5)
    [result] = returned
    return result


@pytest.mark.parametrize("how", OWN_TOKEN_CANCELS)
async def test_cancelling_the_operation_token_cancels_the_operation(how: str) -> None:
    start = time.monotonic()
    with pytest.raises(ManualCancelation) as info:
        async with Cancelable() as cancel:
            assert await cancel_token(how, cancel.token, message="via the token")
            assert cancel.is_cancelled
            await anyio.sleep(10)
    assert time.monotonic() - start < PROMPT
    assert_unchained(info.value)
    assert info.value.message == "via the token"
    assert info.value.context is cancel.context
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.MANUAL
    assert cancel.context.cancel_message == "via the token"


@pytest.mark.parametrize(
    ("reason", "error_type"),
    [
        (CancelationReason.TIMEOUT, TimeoutCancelation),
        (CancelationReason.CONDITION, ConditionCancelation),
        (CancelationReason.ERROR, CancelationError),
    ],
)
async def test_the_operation_token_cancels_with_the_exception_for_its_reason(
    reason: CancelationReason, error_type: type[CancelationError]
) -> None:
    with pytest.raises(error_type) as info:
        async with Cancelable() as cancel:
            assert await cancel.token.cancel(reason, "why")
            await anyio.sleep(10)
    assert info.value.reason is reason
    assert info.value.message == "why"
    assert (cancel.context.cancel_reason, cancel.context.cancel_message) == (reason, "why")


@pytest.mark.parametrize("how", OWN_TOKEN_CANCELS)
async def test_cancelling_the_operation_token_without_raising_ends_the_block_quietly(
    how: str,
) -> None:
    reached: list[str] = []
    async with Cancelable(raise_on_cancel=False) as cancel:
        assert await cancel_token(how, cancel.token, message="quietly")
        await anyio.sleep(10)
        reached.append("after the sleep")
    assert reached == []
    assert cancel.is_cancelled
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.MANUAL
    assert cancel.context.cancel_message == "quietly"


async def test_cancelling_the_operation_token_leaves_a_shared_token_and_its_operations_alone() -> (
    None
):
    shared = CancelationToken()
    operations: dict[str, Cancelable] = {}
    outcomes: list[BaseException] = []
    seen_meanwhile: list[tuple[bool, bool, bool]] = []
    other_entered, release = anyio.Event(), anyio.Event()

    async def other_operation() -> None:
        async with Cancelable.with_token(shared) as other:
            operations["other"] = other
            other_entered.set()
            await release.wait()

    async def this_operation() -> None:
        await other_entered.wait()
        try:
            async with Cancelable.with_token(shared) as cancel:
                operations["this"] = cancel
                assert cancel.token is not shared
                assert await cancel.token.cancel(message="this one only")
                await anyio.sleep(10)
        except ManualCancelation as err:
            outcomes.append(err)
        other = operations["other"]
        seen_meanwhile.append((shared.is_cancelled, other.is_running, other.is_cancelled))
        release.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_operation)
        tg.start_soon(this_operation)
    assert [(type(err), str(err)) for err in outcomes] == [(ManualCancelation, "this one only")]
    assert operations["this"].context.status is OperationStatus.CANCELLED
    # Meanwhile the shared token was not cancelled and the other operation ran on:
    assert seen_meanwhile == [(False, True, False)]
    assert operations["other"].context.status is OperationStatus.COMPLETED
    assert shared.callback_count == 0


@pytest.mark.parametrize("how", OWN_TOKEN_CANCELS)
async def test_cancelling_the_operation_token_before_entry_cancels_the_block_as_it_starts(
    how: str,
) -> None:
    cancel = Cancelable()
    assert await cancel_token(how, cancel.token, message="early")
    reached: list[str] = []
    with pytest.raises(ManualCancelation, match="early"):
        async with cancel:
            await anyio.lowlevel.checkpoint()
            reached.append("after the first checkpoint")
    assert reached == []
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_message == "early"


@pytest.mark.parametrize("taken", ["in the block", "after the block"])
@pytest.mark.parametrize("ending", [OperationStatus.COMPLETED, OperationStatus.FAILED])
async def test_cancelling_the_operation_token_after_the_block_ended_is_refused(
    ending: OperationStatus, taken: str
) -> None:
    failed = ending is OperationStatus.FAILED
    tokens: list[CancelationToken] = []
    with pytest.raises(ValueError, match="body failed") if failed else nullcontext():
        async with Cancelable() as cancel:
            if taken == "in the block":
                tokens.append(cancel.token)
            await anyio.lowlevel.checkpoint()
            if failed:
                raise ValueError("body failed")
    token = tokens[0] if tokens else cancel.token
    assert await token.cancel(message="too late") is False  # as cancel.cancel() is refused
    assert token.cancel_sync(message="too late") is False
    assert await cancel.cancel(message="too late") is False
    assert not token.is_cancelled
    assert token.reason is None
    assert not cancel.is_cancelled
    assert cancel.context.status is ending
    assert (cancel.context.cancel_reason, cancel.context.cancel_message) == (None, None)


async def test_a_child_is_cancelled_when_its_parents_token_is_cancelled() -> None:
    outcomes: list[BaseException] = []
    child_entered = anyio.Event()

    async def child(parent: Cancelable) -> None:
        try:
            async with Cancelable(parent=parent):
                child_entered.set()
                await anyio.sleep(10)
        except CancelationError as err:
            outcomes.append(err)

    start = time.monotonic()
    # The task group is entered first: it is outside the parent's block.
    async with anyio.create_task_group() as tg, Cancelable(raise_on_cancel=False) as job:
        tg.start_soon(child, job)
        await child_entered.wait()
        assert await job.token.cancel(message="job dropped")
        await anyio.sleep(10)
    assert job.context.status is OperationStatus.CANCELLED
    assert job.context.cancel_message == "job dropped"
    assert [type(err) for err in outcomes] == [ParentCancelation]
    outcome = outcomes[0]
    assert isinstance(outcome, ParentCancelation)
    assert outcome.parent_id == job.operation_id
    assert time.monotonic() - start < PROMPT


# -- tokens across loops and threads ---------------------------------------------------------

MODULE_TOKEN = CancelationToken()  # built at import time, before any event loop


def test_module_level_token_serves_asyncio_then_trio() -> None:
    results: list[str] = []

    async def run_once() -> None:
        async with Cancelable.with_token(MODULE_TOKEN) as cancel:
            await anyio.lowlevel.checkpoint()
        results.append(cancel.context.status.value)

    anyio.run(run_once, backend="asyncio")
    anyio.run(run_once, backend="trio")
    assert results == ["completed", "completed"]
    assert MODULE_TOKEN.callback_count == 0

    async def cancelled_once() -> None:
        async with Cancelable.with_token(MODULE_TOKEN, raise_on_cancel=False) as cancel:
            MODULE_TOKEN.cancel_sync()
            await anyio.sleep(10)
        results.append(str(cancel.context.cancel_reason))

    try:
        anyio.run(cancelled_once, backend="trio")
        anyio.run(cancelled_once, backend="asyncio")  # already cancelled: ends at once
    finally:
        MODULE_TOKEN.__init__()  # type: ignore[misc]  # leave a fresh token for reruns
    assert results[2:] == [str(CancelationReason.MANUAL)] * 2


def test_one_token_cancels_operations_on_two_loops_at_once() -> None:
    token = CancelationToken()
    ready = threading.Barrier(3)
    outcomes: list[str] = []

    def run(backend: str) -> None:
        async def main() -> None:
            async with Cancelable.with_token(token, raise_on_cancel=False) as cancel:
                ready.wait()
                await anyio.sleep(10)
            outcomes.append(f"{backend}:{cancel.context.cancel_reason}")

        anyio.run(main, backend=backend)

    threads = [threading.Thread(target=run, args=(b,)) for b in ("asyncio", "trio")]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    ready.wait()
    token.cancel_sync()
    for thread in threads:
        thread.join(5)
    assert time.monotonic() - start < 0.1 + PROMPT
    assert sorted(outcomes) == [
        f"asyncio:{CancelationReason.MANUAL}",
        f"trio:{CancelationReason.MANUAL}",
    ]


async def test_ten_thousand_operations_leave_a_long_lived_token_clean() -> None:
    token = CancelationToken()
    alive: weakref.WeakSet[Cancelable] = weakref.WeakSet()
    for _ in range(10_000):
        async with Cancelable.with_token(token) as cancel:
            alive.add(cancel)
    del cancel
    gc.collect()
    assert token.callback_count == 0
    assert len(alive) == 0


async def test_cancelled_operations_are_not_kept_alive() -> None:
    token = CancelationToken()
    alive: weakref.WeakSet[Cancelable] = weakref.WeakSet()
    for _ in range(100):
        async with Cancelable.with_token(token).combine(Cancelable.with_timeout(5)) as cancel:
            alive.add(cancel)
            cancel.cancel_sync()
            with pytest.raises(ManualCancelation):
                await cancel.check_cancelation()
            break
    del cancel
    await anyio.sleep(0.01)  # let the queued wake-up run
    gc.collect()
    assert len(alive) == 0


# -- one block only, one task only -------------------------------------------------------------


async def test_entering_twice_is_refused_and_harmless() -> None:
    cancel = Cancelable()
    async with cancel:
        with pytest.raises(RuntimeError, match="already entered"):
            async with cancel:
                pass
        assert cancel.is_running
        assert current_operation() is cancel
    assert cancel.is_completed
    with pytest.raises(RuntimeError, match="already entered"):
        await cancel.__aenter__()
    assert cancel.is_completed


async def test_exit_in_another_task_is_refused_and_corrupts_nothing() -> None:
    errors: list[BaseException] = []
    async with Cancelable() as cancel:

        async def intruder() -> None:
            try:
                await cancel.__aexit__(None, None, None)
            except RuntimeError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(intruder)
        assert cancel.is_running
        assert current_operation() is cancel
    assert "task that entered it" in str(errors[0])
    assert cancel.is_completed
    assert current_operation() is None


async def test_exit_out_of_order_is_refused() -> None:
    outer, inner = Cancelable(), Cancelable()
    await outer.__aenter__()
    await inner.__aenter__()
    with pytest.raises(RuntimeError, match="innermost"):
        await outer.__aexit__(None, None, None)
    await inner.__aexit__(None, None, None)
    await outer.__aexit__(None, None, None)
    assert outer.is_completed
    assert inner.is_completed


# -- OperationContext ------------------------------------------------------------------------


async def test_operation_context_fields() -> None:
    async with Cancelable(operation_id="op-7", name="load", metadata={"k": 1}) as cancel:
        context = cancel.context
        assert context.status is OperationStatus.RUNNING
        assert not context.is_terminal
    assert context.id == cancel.operation_id == "op-7"
    assert context.name == "load"
    assert context.metadata == {"k": 1}
    assert context.is_terminal
    assert context.is_success
    assert not context.is_cancelled
    assert context.start_time is not None
    assert context.end_time is not None
    assert context.end_time >= context.start_time
    log = context.log_context()
    assert log["operation_id"] == "op-7"
    assert log["status"] == "completed"
    assert math.isfinite(log["duration_seconds"])
    assert "op-7" in repr(cancel)


def test_pending_context_has_no_duration() -> None:
    cancel = Cancelable()
    assert cancel.context.status is OperationStatus.PENDING
    assert cancel.context.duration is None
    assert cancel.context.duration_seconds is None
    assert not cancel.is_cancelled
    assert len(cancel.operation_id) == 36  # a UUID


# -- deadlines that pass during blocking work ---------------------------------------------------


async def test_request_after_a_deadline_passed_in_blocking_code_ends_the_block() -> None:
    cancel = Cancelable.with_timeout(0.05)
    with pytest.raises(TimeoutCancelation):
        async with cancel:
            time.sleep(0.1)  # noqa: ASYNC251  # the deadline passes while the loop is blocked
            assert not await cancel.cancel(message="too late")
            await anyio.sleep(10)
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT


async def test_check_cancelation_sees_a_deadline_passed_in_blocking_code() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as cancel:
            time.sleep(0.1)  # noqa: ASYNC251  # blocking work
            await cancel.check_cancelation()


async def test_block_finishing_after_its_deadline_without_a_checkpoint_completes() -> None:
    async with Cancelable.with_timeout(0.05) as cancel:
        time.sleep(0.1)  # noqa: ASYNC251  # blocking work
    # Like anyio.fail_after: no checkpoint, no cancellation; but the deadline was due.
    assert cancel.context.status is OperationStatus.COMPLETED
    assert cancel.is_cancelled


async def test_trio_scope_exit_is_not_mistaken_for_a_timeout() -> None:
    async with Cancelable.with_timeout(1.0) as cancel:
        await anyio.sleep(0.01)
    assert cancel.context.status is OperationStatus.COMPLETED
    assert not cancel.is_cancelled


# -- parents in other tasks -------------------------------------------------------------------


async def test_child_in_a_task_group_outside_the_parent_block_gets_parent_cancelation() -> None:
    outcomes: list[BaseException] = []

    async def child(parent: Cancelable) -> None:
        try:
            async with Cancelable(parent=parent):
                await anyio.sleep(10)
        except CancelationError as err:
            outcomes.append(err)

    with anyio.fail_after(5):
        # The task group is entered first: it is outside the parent's block.
        async with anyio.create_task_group() as tg, Cancelable(raise_on_cancel=False) as job:
            tg.start_soon(child, job)
            await anyio.sleep(0.01)
            await job.cancel()
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], ParentCancelation)
    assert outcomes[0].parent_id == job.operation_id


async def test_child_in_a_task_group_inside_the_parent_block_gets_the_backend_exception() -> None:
    cancelled = anyio.get_cancelled_exc_class()
    seen: list[BaseException] = []
    children: list[Cancelable] = []

    async def child(parent: Cancelable) -> None:
        try:
            async with Cancelable(parent=parent) as cancel:
                children.append(cancel)
                await anyio.sleep(10)
        except BaseException as exc:
            seen.append(exc)
            raise

    with pytest.raises(ManualCancelation):
        async with Cancelable() as job, anyio.create_task_group() as tg:
            tg.start_soon(child, job)
            await anyio.sleep(0.01)
            await job.cancel()
            await anyio.sleep(10)
    assert len(seen) == 1
    assert isinstance(seen[0], cancelled)
    assert children[0].context.cancel_reason is CancelationReason.PARENT


async def test_nested_child_with_parent_gets_the_backend_exception() -> None:
    cancelled = anyio.get_cancelled_exc_class()
    with pytest.raises(ManualCancelation):
        async with Cancelable() as job:
            with pytest.raises(cancelled):
                async with Cancelable(parent=job) as inner:
                    await job.cancel()
                    await anyio.sleep(10)
            assert inner.context.cancel_reason is CancelationReason.PARENT
            await anyio.sleep(10)


async def test_a_token_check_in_the_block_reports_the_operations_context() -> None:
    token = CancelationToken()
    with pytest.raises(ManualCancelation) as info:
        async with Cancelable.with_token(token) as cancel:
            token.cancel_sync()
            token.check()
    assert info.value.context is cancel.context
    assert cancel.context.status is OperationStatus.CANCELLED


async def test_a_child_outside_its_parent_stops_at_the_parent_deadline() -> None:
    # The parent is shielded past its deadline, so its block (and the token its children
    # listen to) ends late; a child entered while it runs keeps its deadline all the same.
    job = Cancelable.with_timeout(0.05, name="job")
    job_started, child_done = anyio.Event(), anyio.Event()
    stopped: list[float] = []

    async def run_job() -> None:
        with pytest.raises(TimeoutCancelation):
            async with job:
                job_started.set()
                with job.shield():
                    await child_done.wait()
                await anyio.sleep(PROMPT)

    async def run_child() -> None:
        await job_started.wait()
        start = time.monotonic()
        try:
            with pytest.raises(ParentCancelation) as info:
                async with Cancelable(name="child", parent=job) as child:
                    await anyio.sleep(PROMPT)
            stopped.append(time.monotonic() - start)
            assert info.value.parent_id == job.operation_id
            assert child.context.cancel_reason is CancelationReason.PARENT
        finally:
            child_done.set()

    with anyio.fail_after(PROMPT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_job)
            tg.start_soon(run_child)
    [elapsed] = stopped
    assert elapsed < PROMPT / 2  # the parent's deadline, not the child's sleep
    assert job.context.cancel_reason is CancelationReason.TIMEOUT
