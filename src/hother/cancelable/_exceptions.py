"""The exceptions that leave a cancelled block, one per reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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

    The constructors take 0.11's positional arguments: what is particular to the reason
    first (`reason` here, `timeout_seconds`, `signal_number`, `condition_name`, `parent_id`
    in the subclasses), then `message`, then `context`; everything may also be given by
    keyword. Raising one by hand with a `context` reports that operation's cancellation
    (see Concepts).

    Attributes:
        reason: why the operation was cancelled.
        message: the message given with the cancellation, if any.
        context: the operation's `OperationContext` (with `partial_result`), or `None` when
            raised by a bare token's `check()`.

    Raises:
        TypeError: an argument is of the wrong type, such as a message given where 0.11 put
            the reason (`CancelationError("text")`): give it as `message=`.
    """

    reason: CancelationReason = CancelationReason.MANUAL

    def __init__(
        self,
        reason: CancelationReason | None = None,
        message: str | None = None,
        context: OperationContext | None = None,
    ) -> None:
        self._init(message, context, reason)

    def _init(
        self,
        message: str | None,
        context: OperationContext | None,
        reason: CancelationReason | None = None,
    ) -> None:
        if reason is not None:
            self.reason = _checked_reason(type(self), reason)
        if message is not None and not isinstance(message, str):
            raise TypeError(f"message must be a str or None, got {message!r}")
        self.message = message
        self.context = context
        Exception.__init__(
            self, message if message is not None else f"cancelled ({self.reason.value})"
        )


class TimeoutCancelation(CancelationError, TimeoutError):
    """The operation's own deadline passed. Also a builtin `TimeoutError`.

    Attributes:
        timeout_seconds: the timeout that passed, in seconds, when known.
    """

    reason = CancelationReason.TIMEOUT

    def __init__(
        self,
        timeout_seconds: float | None = None,
        message: str | None = None,
        context: OperationContext | None = None,
        *,
        reason: CancelationReason | None = None,
    ) -> None:
        seconds = _checked_datum(type(self), "timeout_seconds", timeout_seconds, _is_seconds)
        self.timeout_seconds: float | None = seconds
        if message is None and seconds is not None:
            message = f"operation timed out after {seconds:g} s"
        self._init(message, context, reason)


class ManualCancelation(CancelationError):
    """The operation was cancelled by `cancel()` or `cancel_sync()`, on itself or on a token."""

    reason = CancelationReason.MANUAL

    def __init__(
        self,
        message: str | None = None,
        context: OperationContext | None = None,
        *,
        reason: CancelationReason | None = None,
    ) -> None:
        self._init(message, context, reason)


class SignalCancelation(CancelationError):
    """An OS signal cancelled the operation.

    Attributes:
        signal_number: the signal that arrived, if known.
    """

    reason = CancelationReason.SIGNAL

    def __init__(
        self,
        signal_number: int | None = None,
        message: str | None = None,
        context: OperationContext | None = None,
        *,
        reason: CancelationReason | None = None,
    ) -> None:
        number = _checked_datum(type(self), "signal_number", signal_number, _is_int)
        self.signal_number: int | None = number
        if message is None and number is not None:
            message = f"received {_signal_name(number)}"
        self._init(message, context, reason)


class ConditionCancelation(CancelationError):
    """A condition or resource source cancelled the operation.

    Attributes:
        condition_name: the name of the condition that held, if known.
    """

    reason = CancelationReason.CONDITION

    def __init__(
        self,
        condition_name: str | None = None,
        message: str | None = None,
        context: OperationContext | None = None,
        *,
        reason: CancelationReason | None = None,
    ) -> None:
        name = _checked_datum(type(self), "condition_name", condition_name, _is_str)
        self.condition_name: str | None = name
        if message is None and name is not None:
            message = f"condition {name!r} held"
        self._init(message, context, reason)


class ParentCancelation(CancelationError):
    """A linked parent that does not enclose the block was cancelled.

    Attributes:
        parent_id: the id of the parent operation, if known.
        parent_reason: why the parent was cancelled, if known.
    """

    reason = CancelationReason.PARENT

    def __init__(
        self,
        parent_id: str | None = None,
        parent_reason: CancelationReason | None = None,
        message: str | None = None,
        context: OperationContext | None = None,
        *,
        reason: CancelationReason | None = None,
    ) -> None:
        self.parent_id: str | None = _checked_datum(type(self), "parent_id", parent_id, _is_str)
        self.parent_reason: CancelationReason | None = (
            None
            if parent_reason is None
            else _checked_reason(type(self), parent_reason, "parent_reason")
        )
        if message is None and parent_id is not None:
            why = "" if parent_reason is None else f" ({parent_reason.value})"
            message = f"parent operation {parent_id} was cancelled{why}"
        self._init(message, context, reason)


def _is_seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _checked_datum(
    cls: type[CancelationError], name: str, value: Any, valid: Callable[[object], bool]
) -> Any:
    if value is None or valid(value):
        return value
    hint = " (0.11's order: give the message as message=...)" if isinstance(value, str) else ""
    raise TypeError(f"{cls.__name__}: {name} must be {_WANTED[name]}, got {value!r}{hint}")


_WANTED = {
    "timeout_seconds": "a number of seconds or None",
    "signal_number": "a signal number or None",
    "condition_name": "a str or None",
    "parent_id": "an operation id (str) or None",
}


def _checked_reason(
    cls: type[CancelationError], value: object, name: str = "reason"
) -> CancelationReason:
    if isinstance(value, CancelationReason):
        return value
    hint = " (0.11's order: give the message as message=...)" if isinstance(value, str) else ""
    raise TypeError(f"{cls.__name__}: {name} must be a CancelationReason, got {value!r}{hint}")


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


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
        cls(message=message, context=context)
        if cls is not CancelationError
        else cls(reason, message, context)
    )
    for key, value in details.items():
        setattr(err, key, value)
    return err
