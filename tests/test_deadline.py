"""A deadline (the one a block's timeout sets): read on the loop's clock, or from any thread."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import anyio.to_thread

from hother.cancelable import CancelationReason
from hother.cancelable._deadline import Deadline


async def test_a_deadline_counts_from_when_it_is_made_on_the_loops_clock() -> None:
    deadline = Deadline(30)
    assert 29 < deadline.when - anyio.current_time() <= 30
    assert not deadline.passed()
    assert 29 < deadline.remaining <= 30
    assert deadline.on_this_loop() == deadline.when


async def test_a_deadline_that_passed_says_so_and_leaves_nothing_remaining() -> None:
    deadline = Deadline(0.01)
    await anyio.sleep(0.05)
    assert deadline.passed()
    assert deadline.remaining == 0.0  # never negative


async def test_another_thread_reads_the_same_deadline_on_its_own_clock() -> None:
    soon, later = Deadline(0.01), Deadline(30)
    await anyio.sleep(0.05)
    passed = await anyio.to_thread.run_sync(lambda: (soon.passed(), later.passed()))
    remaining = await anyio.to_thread.run_sync(lambda: later.remaining)
    assert passed == (True, False)
    assert 29 < remaining <= 30


async def test_a_deadline_makes_the_timeout_request_naming_the_timeout() -> None:
    request = Deadline(2.5).request()
    assert request.reason is CancelationReason.TIMEOUT
    assert request.message == "operation timed out after 2.5 s"


# -- an operation's deadline: read, moved, and what remains (SPEC section 8) -------------------

import datetime as dt  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from hother.cancelable import (  # noqa: E402
    Cancelable,
    OperationStatus,
    TimeoutCancelation,
    current_operation,
)

PROMPT = 1.0  # far above what a cancellation needs, far below the sleeps it interrupts


async def test_the_deadline_is_inf_before_entry_and_the_scopes_inside() -> None:
    timed, plain = Cancelable.with_timeout(30), Cancelable()
    assert (timed.deadline, timed.remaining) == (math.inf, math.inf)
    async with timed, plain:
        assert 29 < timed.deadline - anyio.current_time() <= 30
        assert 29 < timed.remaining <= 30
        assert plain.deadline == math.inf
        assert 29 < plain.remaining <= 30  # the enclosing block's deadline can stop it too
    assert timed.context.status is OperationStatus.COMPLETED


async def test_moving_the_deadline_earlier_ends_the_block_as_its_timeout() -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable.with_timeout(30) as cancel:
            cancel.deadline = anyio.current_time() + 0.05
            await anyio.sleep(10)
    assert 0.04 <= time.monotonic() - start < 0.05 + PROMPT
    assert info.value.reason is CancelationReason.TIMEOUT
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT


async def test_moving_the_deadline_later_lets_the_block_run_past_its_timeout() -> None:
    async with Cancelable.with_timeout(0.05) as cancel:
        cancel.deadline += 0.3
        await anyio.sleep(0.15)  # past the first deadline
    assert cancel.context.status is OperationStatus.COMPLETED


async def test_an_infinite_deadline_removes_it() -> None:
    async with Cancelable.with_timeout(0.05) as cancel:
        cancel.deadline = math.inf
        await anyio.sleep(0.1)
        assert cancel.remaining == math.inf
    assert cancel.context.status is OperationStatus.COMPLETED


async def test_a_deadline_assigned_to_an_operation_without_one() -> None:
    with pytest.raises(TimeoutCancelation, match=r"^operation deadline passed$"):
        async with Cancelable() as cancel:
            cancel.deadline = anyio.current_time() + 0.03
            assert 0 < cancel.remaining <= 0.031  # uvloop's clock moves in milliseconds
            await anyio.sleep(10)


async def test_a_deadline_that_passed_already_came_first() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.02) as cancel:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.05)  # the deadline passes here
            assert cancel.remaining == 0.0  # never negative
            cancel.deadline += 10  # too late: the timeout is what ends the block
            await anyio.sleep(1)
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (math.nan, ValueError, r"^deadline must not be NaN, got nan$"),
        (
            "soon",
            TypeError,
            r"^deadline must be a number \(anyio's clock\) or math.inf, got 'soon'$",
        ),
        (True, TypeError, r"^deadline must be a number"),
    ],
)
async def test_a_bad_deadline_is_refused_and_changes_nothing(
    value: object, error: type[Exception], message: str
) -> None:
    async with Cancelable.with_timeout(30) as cancel:
        before = cancel.deadline
        with pytest.raises(error, match=message):
            cancel.deadline = value  # type: ignore[assignment]
        assert cancel.deadline == before


async def test_the_deadline_is_assigned_inside_the_block_on_its_loop() -> None:
    pending = Cancelable.with_timeout(1)
    with pytest.raises(RuntimeError, match=r"^deadline: .* is not running; assign it inside"):
        pending.deadline = 5.0
    async with pending as cancel:

        def from_a_thread() -> None:
            cancel.deadline = 5.0

        with pytest.raises(RuntimeError, match=r"^deadline: assign it on the loop running"):
            await anyio.to_thread.run_sync(from_a_thread)
    with pytest.raises(RuntimeError, match="is not running"):
        cancel.deadline = 5.0


async def test_remaining_sees_an_enclosing_scope_from_the_block() -> None:
    with anyio.move_on_after(0.5):
        async with Cancelable.with_timeout(30) as cancel:
            assert 0.3 < cancel.remaining <= 0.5
            # From a worker thread only its own deadline and its parents' can be read.
            seen = await cancel.run_in_thread(lambda: current_operation().remaining)  # type: ignore[union-attr]
            assert 29 < seen <= 30


async def test_remaining_counts_a_linked_parents_deadline_from_any_thread() -> None:
    async with Cancelable.with_timeout(0.5, name="job") as job:
        child = Cancelable(parent=job)
        async with anyio.create_task_group() as tasks:

            async def step() -> None:
                async with child:
                    assert 0.3 < child.remaining <= 0.5
                    seen = await child.run_in_thread(lambda: child.remaining)
                    assert 0.3 < seen <= 0.5

            tasks.start_soon(step)


async def test_a_child_linked_from_outside_keeps_a_deadline_its_parent_moved_later() -> None:
    parent = Cancelable.with_timeout(0.05, name="parent")
    child_status: list[OperationStatus] = []
    started = anyio.Event()

    async def child() -> None:
        async with Cancelable(name="child", parent=parent) as operation:
            started.set()
            await anyio.sleep(0.15)  # past the parent's first deadline
        child_status.append(operation.context.status)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(child)  # its block begins before the parent's, outside it
        await started.wait()
        async with parent:  # the child keeps the parent's deadline from here
            parent.deadline += 0.5
            await anyio.sleep(0.2)
    assert child_status == [OperationStatus.COMPLETED]


# -- with_deadline: a wall-clock instant -------------------------------------------------------


async def test_with_deadline_ends_the_block_at_the_instant() -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=50)
    start = time.monotonic()
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable.with_deadline(when, name="report") as cancel:
            assert 0 < cancel.remaining <= 0.05
            await anyio.sleep(10)
    assert 0.03 <= time.monotonic() - start < 0.05 + PROMPT
    assert info.value.message == f"operation deadline {when.isoformat()} passed"
    assert info.value.timeout_seconds is None


async def test_with_deadline_already_past_ends_at_the_first_checkpoint() -> None:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    steps: list[str] = []
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_deadline(when) as cancel:
            steps.append("entered")
            assert cancel.remaining == 0.0
            await anyio.lowlevel.checkpoint()
            steps.append("past the checkpoint")
    assert steps == ["entered"]


async def test_with_deadline_and_a_timeout_combined_the_earlier_wins() -> None:
    late = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    with pytest.raises(TimeoutCancelation, match=r"^operation timed out after 0.05 s$"):
        async with Cancelable.with_deadline(late).combine(Cancelable.with_timeout(0.05)):
            await anyio.sleep(10)


@pytest.mark.parametrize(
    ("when", "error", "message"),
    [
        (dt.datetime(2030, 1, 1), ValueError, r"^when must be an aware datetime .* got the naive "),
        ("2030-01-01", TypeError, r"^when must be an aware datetime, got '2030-01-01'$"),
        (5.0, TypeError, r"^when must be an aware datetime, got 5.0$"),
    ],
)
def test_with_deadline_refuses_what_is_not_an_aware_datetime(
    when: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Cancelable.with_deadline(when)  # type: ignore[arg-type]


# -- sources that know when they fire ------------------------------------------------------------


async def test_remaining_counts_a_source_that_says_when_it_fires() -> None:
    from hother.cancelable import CancelationSource, TimeoutSource

    class Lease(CancelationSource):
        def __init__(self, expires: float) -> None:
            super().__init__(name="lease")
            self.expires = expires

        async def watch(self) -> None:
            await anyio.sleep_until(self.expires)
            self.trigger_cancelation("lease expired")

        def fires_by(self) -> float:
            return self.expires

    lease = Lease(anyio.current_time() + 0.3)
    async with Cancelable.with_timeout(30).add_source(lease) as cancel:
        assert 0.2 < cancel.remaining <= 0.301  # uvloop's clock moves in milliseconds
        assert cancel.deadline > lease.expires + 29  # its own deadline is not the source's
    async with Cancelable().add_source(TimeoutSource(0.5)) as cancel:
        await anyio.wait_all_tasks_blocked()  # the source's task has started counting
        assert 0.4 < cancel.remaining <= 0.501
    async with Cancelable.with_condition(lambda: False, check_interval=1) as cancel:
        assert cancel.remaining == math.inf  # a condition cannot tell when it will hold
