"""The exceptions of `_exceptions.py`: 0.11's constructors, and what the library fills in.

Written as code from 0.11 raises and inspects them: custom sources and tests build these
errors themselves, positionally, the reason's own datum first ([3/6]).
"""

from __future__ import annotations

import signal

import anyio
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    ConditionCancelation,
    ManualCancelation,
    OperationStatus,
    ParentCancelation,
    SignalCancelation,
    TimeoutCancelation,
)

# -- built by hand, as 0.11 code does ----------------------------------------------------------


def test_011_positional_constructors_keep_their_meaning() -> None:
    timed_out = TimeoutCancelation(5.0)
    assert timed_out.timeout_seconds == 5.0
    assert timed_out.message == "operation timed out after 5 s"
    assert str(timed_out) == "operation timed out after 5 s"
    signalled = SignalCancelation(signal.SIGTERM)
    assert signalled.signal_number == signal.SIGTERM
    assert signalled.message == "received SIGTERM"
    condition = ConditionCancelation("disk", "disk almost full")
    assert (condition.condition_name, condition.message) == ("disk", "disk almost full")
    assert ConditionCancelation("disk").message == "condition 'disk' held"
    parent = ParentCancelation("job-1", CancelationReason.TIMEOUT)
    assert (parent.parent_id, parent.parent_reason) == ("job-1", CancelationReason.TIMEOUT)
    assert parent.message == "parent operation job-1 was cancelled (timeout)"
    base = CancelationError(CancelationReason.ERROR, "peer failed")
    assert (base.reason, base.message, base.context) == (
        CancelationReason.ERROR,
        "peer failed",
        None,
    )
    manual = ManualCancelation("stopped")
    assert (manual.reason, manual.message) == (CancelationReason.MANUAL, "stopped")


def test_keywords_name_everything() -> None:
    context = Cancelable(name="job").context
    error = SignalCancelation(message="bye", signal_number=2, context=context)
    assert (error.signal_number, error.message, error.context) == (2, "bye", context)
    error2 = TimeoutCancelation(message="too slow", timeout_seconds=1.5)
    assert (error2.timeout_seconds, str(error2)) == (1.5, "too slow")
    bare = ConditionCancelation()
    assert (bare.condition_name, bare.message, str(bare)) == (None, None, "cancelled (condition)")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: CancelationError("stopped"),
            r"^CancelationError: reason must be a CancelationReason, got 'stopped' "
            r"\(0\.11's order: give the message as message=\.\.\.\)$",
        ),
        (
            lambda: TimeoutCancelation("slow"),
            r"^TimeoutCancelation: timeout_seconds must be a number of seconds or None, got 'slow'",
        ),
        (
            lambda: TimeoutCancelation(True),
            r"^TimeoutCancelation: timeout_seconds must be a number of seconds or None, got True$",
        ),
        (
            lambda: SignalCancelation("SIGTERM"),
            r"^SignalCancelation: signal_number must be a signal number or None, got 'SIGTERM'",
        ),
        (
            lambda: ConditionCancelation(3),
            r"^ConditionCancelation: condition_name must be a str or None, got 3$",
        ),
        (
            lambda: ParentCancelation("job", "timeout"),
            r"^ParentCancelation: parent_reason must be a CancelationReason, got 'timeout'",
        ),
        (lambda: ManualCancelation(42), r"^message must be a str or None, got 42$"),
    ],
)
def test_a_message_where_the_datum_goes_is_refused_not_reinterpreted(
    build: object, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        build()  # type: ignore[operator]


# -- raised by hand inside a block, as 0.11 tests do -------------------------------------------


async def test_a_timeout_raised_by_hand_is_the_operations_cancellation() -> None:
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable(name="fetch") as cancel:
            raise TimeoutCancelation(2.5, context=cancel.context)
    assert info.value.timeout_seconds == 2.5
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT
    assert cancel.context.cancel_message == "operation timed out after 2.5 s"


# -- filled in by the library -------------------------------------------------------------------


async def test_an_own_timeout_says_how_long_it_was() -> None:
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable.with_timeout(0.05):
            await anyio.sleep(10)
    assert info.value.timeout_seconds == 0.05


@pytest.mark.parametrize("cancelled_by", ["timeout", "cancel"])
async def test_a_parent_cancellation_says_why_the_parent_stopped(cancelled_by: str) -> None:
    errors: list[ParentCancelation] = []
    parent = (
        Cancelable.with_timeout(0.05, name="parent")
        if cancelled_by == "timeout"
        else Cancelable(name="parent")
    )

    async def child() -> None:
        try:
            async with Cancelable(name="child", parent=parent):
                await anyio.sleep(10)
        except ParentCancelation as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tasks:  # opened outside the parent's block
        tasks.start_soon(child)
        with pytest.raises(CancelationError):
            async with parent:
                if cancelled_by == "cancel":
                    await anyio.sleep(0.02)
                    await parent.cancel(message="enough")
                await anyio.sleep(10)
    assert len(errors) == 1
    assert errors[0].parent_id == parent.operation_id
    expected = CancelationReason.TIMEOUT if cancelled_by == "timeout" else CancelationReason.MANUAL
    assert errors[0].parent_reason is expected
