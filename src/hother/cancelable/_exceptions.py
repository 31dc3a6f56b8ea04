"""The exceptions that leave a cancelled block, one per reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._context import CancelationReason

if TYPE_CHECKING:
    from ._context import OperationContext

__all__ = [
    "CancelationError",
    "ConditionCancelation",
    "ManualCancelation",
    "ParentCancelation",
    "SignalCancelation",
    "TimeoutCancelation",
]


class CancelationError(Exception):
    """Base of every exception that reports a cancellation requested by the operation's own sources.

    It is an ordinary `Exception`, so `except Exception:` handles it; the backend's own
    cancellation exception never leaves a block in its place.

    Attributes:
        reason: why the operation was cancelled.
        message: the message given with the cancellation, if any.
        context: the operation's `OperationContext` (with `partial_result`), or `None` when
            raised by a bare token's `check()`.
    """

    reason: CancelationReason = CancelationReason.MANUAL

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: CancelationReason | None = None,
        context: OperationContext | None = None,
    ) -> None:
        if reason is not None:
            self.reason = reason
        self.message = message
        self.context = context
        super().__init__(message if message is not None else f"cancelled ({self.reason.value})")


class TimeoutCancelation(CancelationError, TimeoutError):
    """The operation's own deadline passed. Also a builtin `TimeoutError`."""

    reason = CancelationReason.TIMEOUT


class ManualCancelation(CancelationError):
    """The operation was cancelled by `cancel()` or `cancel_sync()`, on itself or on a token."""

    reason = CancelationReason.MANUAL


class SignalCancelation(CancelationError):
    """An OS signal cancelled the operation.

    Attributes:
        signal_number: the signal that arrived, if known.
    """

    reason = CancelationReason.SIGNAL

    def __init__(
        self,
        message: str | None = None,
        *,
        signal_number: int | None = None,
        reason: CancelationReason | None = None,
        context: OperationContext | None = None,
    ) -> None:
        self.signal_number = signal_number
        super().__init__(message, reason=reason, context=context)


class ConditionCancelation(CancelationError):
    """A condition or resource source cancelled the operation.

    Attributes:
        condition_name: the name of the condition that held, if known.
    """

    reason = CancelationReason.CONDITION

    def __init__(
        self,
        message: str | None = None,
        *,
        condition_name: str | None = None,
        reason: CancelationReason | None = None,
        context: OperationContext | None = None,
    ) -> None:
        self.condition_name = condition_name
        super().__init__(message, reason=reason, context=context)


class ParentCancelation(CancelationError):
    """A linked parent that does not enclose the block was cancelled.

    Attributes:
        parent_id: the id of the parent operation, if known.
    """

    reason = CancelationReason.PARENT

    def __init__(
        self,
        message: str | None = None,
        *,
        parent_id: str | None = None,
        reason: CancelationReason | None = None,
        context: OperationContext | None = None,
    ) -> None:
        self.parent_id = parent_id
        super().__init__(message, reason=reason, context=context)


_BY_REASON: dict[CancelationReason, type[CancelationError]] = {
    CancelationReason.TIMEOUT: TimeoutCancelation,
    CancelationReason.MANUAL: ManualCancelation,
    CancelationReason.SIGNAL: SignalCancelation,
    CancelationReason.CONDITION: ConditionCancelation,
    CancelationReason.PARENT: ParentCancelation,
    CancelationReason.ERROR: CancelationError,
}


def error_for(
    reason: CancelationReason,
    message: str | None,
    context: OperationContext | None = None,
    **details: object,
) -> CancelationError:
    """The exception that reports a cancellation for `reason`."""
    cls = _BY_REASON[reason]
    err = (
        cls(message, context=context)
        if cls is not CancelationError
        else cls(message, reason=reason, context=context)
    )
    for key, value in details.items():
        setattr(err, key, value)
    return err
