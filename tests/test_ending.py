"""The exit table on its own (SPEC section 2): what ended the body, in; how the block ends, out.

`ending()` is the pure function behind `Cancelable.__aexit__`, and behind a stream that runs
its operation; these tests read it row by row, without an event loop. The blocks themselves
are tested in test_cancelable.py and test_properties.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from hother.cancelable import CancelationReason, ConditionCancelation, OperationStatus
from hother.cancelable._deadline import Deadline
from hother.cancelable._ending import (
    CANCELLED_OUTSIDE,
    CAUGHT,
    FINISHED,
    PARENT_KEY,
    PASS,
    RAISE,
    RAISED,
    RAISED_OWN,
    SUPPRESS,
    ending,
)
from hother.cancelable._request import Request

if TYPE_CHECKING:
    from hother.cancelable._ending import Action

MANUAL = Request(CancelationReason.MANUAL, "stop")
FROM_PARENT = Request(CancelationReason.PARENT, "parent cancelled", {PARENT_KEY: "p"})


async def a_deadline() -> Deadline:
    return Deadline(30)  # made on a loop, as a block makes it


def test_a_body_that_finished_completes() -> None:
    assert ending(FINISHED, None) == (OperationStatus.COMPLETED, None, PASS, False)


def test_a_body_that_finished_after_a_request_still_completes() -> None:
    # No checkpoint saw it: like anyio's scope, the block did not get cancelled.
    assert ending(FINISHED, MANUAL) == (OperationStatus.COMPLETED, None, PASS, False)


def test_a_body_that_raised_fails_and_its_exception_goes_on() -> None:
    assert ending(RAISED, None) == (OperationStatus.FAILED, None, PASS, False)


@pytest.mark.parametrize(("quiet", "action"), [(False, RAISE), (True, SUPPRESS)])
def test_its_own_cancellation_caught_raises_or_ends_quietly(quiet: bool, action: Action) -> None:
    assert ending(CAUGHT, MANUAL, quiet) == (OperationStatus.CANCELLED, None, action, False)


def test_a_cancellation_caught_after_a_parents_request_lets_an_enclosing_one_go_first() -> None:
    status, record, action, from_parent = ending(CAUGHT, FROM_PARENT)
    assert (status, record, action, from_parent) == (
        OperationStatus.CANCELLED,
        None,
        RAISE,
        True,
    )


def test_an_enclosing_cancellation_goes_on_untouched_and_is_recorded_as_parent() -> None:
    status, record, action, from_parent = ending(CANCELLED_OUTSIDE, None)
    assert (status, action, from_parent) == (OperationStatus.CANCELLED, PASS, False)
    assert record is not None
    assert (record.reason, record.message) == (
        CancelationReason.PARENT,
        "cancelled by an enclosing scope",
    )


def test_an_enclosing_cancellation_after_a_request_keeps_the_request() -> None:
    assert ending(CANCELLED_OUTSIDE, MANUAL) == (
        OperationStatus.CANCELLED,
        None,
        PASS,
        False,
    )


@pytest.mark.parametrize(("quiet", "action"), [(False, PASS), (True, SUPPRESS)])
def test_its_own_error_raised_in_the_body_is_its_cancellation(quiet: bool, action: Action) -> None:
    raised = ConditionCancelation(message="quota reached")
    status, record, got, from_parent = ending(RAISED_OWN, None, quiet, raised)
    assert (status, got, from_parent) == (OperationStatus.CANCELLED, action, False)
    assert record is not None
    assert (record.reason, record.message) == (CancelationReason.CONDITION, "quota reached")


async def test_a_caught_cancellation_nothing_asked_for_is_the_timeout() -> None:
    deadline = await a_deadline()
    status, record, action, _ = ending(CAUGHT, None, deadline=deadline, deadline_passed=True)
    assert (status, action) == (OperationStatus.CANCELLED, RAISE)
    assert record is not None
    assert (record.reason, record.message) == (
        CancelationReason.TIMEOUT,
        "operation timed out after 30 s",
    )


async def test_a_caught_cancellation_before_its_own_deadline_is_the_parents_lent_one() -> None:
    deadline = await a_deadline()
    _, record, _, from_parent = ending(
        CAUGHT, None, deadline=deadline, deadline_passed=False, parent=FROM_PARENT
    )
    assert record is FROM_PARENT
    assert from_parent


async def test_a_body_that_finished_after_its_deadline_records_it_and_completes() -> None:
    deadline = await a_deadline()
    status, record, action, _ = ending(FINISHED, None, deadline=deadline, deadline_passed=True)
    assert (status, action) == (OperationStatus.COMPLETED, PASS)
    assert record is not None
    assert record.reason is CancelationReason.TIMEOUT


async def test_a_deadline_that_came_after_an_enclosing_cancellation_is_not_recorded() -> None:
    deadline = await a_deadline()
    status, record, _, _ = ending(
        CANCELLED_OUTSIDE, None, deadline=deadline, deadline_passed=True, enclosing_first=True
    )
    assert status is OperationStatus.CANCELLED
    assert record is not None
    assert record.reason is CancelationReason.PARENT


def test_a_body_that_failed_after_its_parents_deadline_records_the_parent() -> None:
    status, record, action, _ = ending(RAISED, None, parent=FROM_PARENT, parent_due=True)
    assert (status, record, action) == (OperationStatus.FAILED, FROM_PARENT, PASS)


def test_every_ending_gives_a_status_an_action_and_no_record_once_a_request_came() -> None:
    raised = ConditionCancelation(message="quota reached")
    for ended in (FINISHED, CAUGHT, RAISED_OWN, CANCELLED_OUTSIDE, RAISED):
        for quiet in (False, True):
            status, record, action, _ = ending(ended, MANUAL, quiet, raised)
            assert isinstance(status, OperationStatus)
            assert status is not OperationStatus.PENDING
            assert action in (PASS, RAISE, SUPPRESS)
            assert record is None
