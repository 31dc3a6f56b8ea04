"""How a block ends: the exit table (docs/concepts.md) as one pure function.

`Cancelable.__aexit__`, and a stream that runs its operation, observe what happened (the
exception, whether the operation's own scope caught a cancellation, which deadlines have
passed) and hand it to `ending()`, which answers what to record, which status the operation
ends with, and what leaves the block. They only adapt that answer to the protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NoReturn, cast

from ._context import CANCELLED, COMPLETED, FAILED, CancelationReason, OperationStatus
from ._exceptions import CancelationError
from ._request import Request

if TYPE_CHECKING:  # types only: typing's forms cost import time
    from typing import Literal, TypeAlias

    from ._deadline import Deadline

    Ended: TypeAlias = Literal["finished", "caught", "raised own", "cancelled outside", "raised"]
    """What ended the body, as observed at the exit."""

    Action: TypeAlias = Literal["pass", "raise", "suppress"]
    """What the block does with what left the body."""

    # (status, request to record or None, action, let an enclosing cancellation go on instead)
    Ending: TypeAlias = tuple[OperationStatus, Request | None, Action, bool]

__all__ = [
    "CANCELLED_OUTSIDE",
    "CAUGHT",
    "ENCLOSING",
    "FINISHED",
    "PASS",
    "RAISE",
    "RAISED",
    "RAISED_OWN",
    "SUPPRESS",
    "ending",
    "is_cancellation",
    "raise_unchained",
    "sole",
]


FINISHED: Final = "finished"
"""The body returned (a cancellation met only by the sources' teardown does not count)."""
CAUGHT: Final = "caught"
"""The operation's own scope caught a cancellation: one of its requests or deadlines."""
RAISED_OWN: Final = "raised own"
"""A `CancelationError` of this operation left the body (a checkpoint of its own raised it, or
it was asked to stop too and an inner block's report of it came out)."""
CANCELLED_OUTSIDE: Final = "cancelled outside"
"""The backend's cancellation left the body and the operation's scope did not own it."""
RAISED: Final = "raised"
"""Any other exception left the body."""

PASS: Final = "pass"
"""Nothing is raised by the operation: what left the body (if anything) goes on."""
RAISE: Final = "raise"
"""Raise the `CancelationError` of the operation's first request."""
SUPPRESS: Final = "suppress"
"""End quietly (`raise_on_cancel=False`)."""

_COMPLETED: Final[Ending] = (COMPLETED, None, PASS, False)
_FAILED: Final[Ending] = (FAILED, None, PASS, False)
ENCLOSING: Final = "cancelled by an enclosing scope"
"""The message of a cancellation by an enclosing scope (reason `PARENT`)."""
PARENT_KEY = "parent_id"  # in a request's details: it came from the link to a parent


def ending(
    ended: Ended,
    first: Request | None,
    quiet: bool = False,
    raised: CancelationError | None = None,
    deadline: Deadline | None = None,
    deadline_passed: bool = False,
    enclosing_first: bool = False,
    parent: Request | None = None,
    parent_due: bool = False,
) -> Ending:
    """The exit table: how the operation ends, from what ended its body.

    Args:
        ended: what ended the body.
        first: the operation's first request so far, if any.
        quiet: `raise_on_cancel=False`.
        raised: the `CancelationError` that left the body, for `RAISED_OWN`.
        deadline: the operation's own deadline, if it has one.
        deadline_passed: that deadline has passed.
        enclosing_first: an enclosing operation was cancelled before that deadline passed.
        parent: the request the link to a parent makes, if the operation has one.
        parent_due: the linked parent's deadline has passed (its token hears of that only
            when its block ends).

    Returns:
        (the status, a request to record as the operation's first when it had none, what
        to do with what left the body, and whether an enclosing cancellation must be let
        through instead: the first request came from a parent whose scope may enclose the
        block, and the cancellation belongs to that scope).
    """
    if ended is CAUGHT:
        if first is None:
            # Nothing asked for it: a deadline did, its own or the one lent by its parent.
            lent = parent is not None and not deadline_passed
            first = cast("Request", parent) if lent else _timeout(deadline)
            record = first
        else:
            record = None
        from_parent = PARENT_KEY in (first.details or ())
        action = SUPPRESS if quiet else RAISE
        return CANCELLED, record, action, from_parent
    if ended is RAISED_OWN:
        assert raised is not None
        record = Request(raised.reason, raised.message) if first is None else None
        return CANCELLED, record, SUPPRESS if quiet else PASS, False
    if ended is CANCELLED_OUTSIDE:
        if first is not None:
            record = None
        elif deadline_passed and not enclosing_first:
            record = _timeout(deadline)  # its own deadline came first; the cancellation goes on
        else:
            record = Request(CancelationReason.PARENT, ENCLOSING)
        return CANCELLED, record, PASS, False
    # Finished or failed: a deadline that passed without a checkpoint is still recorded.
    done = _COMPLETED if ended is FINISHED else _FAILED
    if first is not None:
        return done
    if deadline_passed and not enclosing_first:
        return done[0], _timeout(deadline), PASS, False
    if parent_due:
        return done[0], parent, PASS, False
    return done


def _timeout(deadline: Deadline | None) -> Request:
    assert deadline is not None, "a scope caught a deadline the operation does not have"
    return deadline.request()


def is_cancellation(exc: BaseException, cancelled: type[BaseException]) -> bool:
    """`exc` is the backend's cancellation, or a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        inner = cast("BaseExceptionGroup[BaseException]", exc).exceptions
        return all(is_cancellation(one, cancelled) for one in inner)
    return isinstance(exc, cancelled)


def sole(exc: BaseException) -> BaseException:
    """The one exception of a group of one (a source's KeyboardInterrupt, bare as on asyncio)."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    inner = cast("BaseExceptionGroup[BaseException]", exc).exceptions
    return sole(inner[0]) if len(inner) == 1 else cast("BaseException", exc)


def raise_unchained(error: BaseException) -> NoReturn:
    """Raise `error` with no context: raised in `__aexit__`, it would be chained to the
    backend's cancellation, which must not leak out of a block."""
    try:
        raise error
    finally:
        error.__context__ = None
