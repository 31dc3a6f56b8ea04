"""`OperationRecorder`: records the life of operations and asserts how they ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from weakref import WeakSet

import anyio

from hother.cancelable import Cancelable, CancelationReason, OperationContext
from hother.cancelable._checks import check_reason

from ._checks import check_exception_types

__all__ = ["OperationEvent", "OperationRecorder"]

C = TypeVar("C", bound=Cancelable)

_EventKind = Literal["start", "progress", "complete", "cancel", "error"]


@dataclass(frozen=True, slots=True)
class OperationEvent:
    """One moment in the life of an operation, as recorded by `OperationRecorder`."""

    kind: Literal["start", "progress", "complete", "cancel", "error"]
    """`"start"`, `"progress"`, `"complete"`, `"cancel"` or `"error"`."""
    operation_id: str
    """The operation's id."""
    name: str | None
    """The operation's name."""
    time: float
    """When it happened, on the event loop's clock (`anyio.current_time()`)."""
    reason: CancelationReason | None = None
    """For `"cancel"`: why the operation was cancelled."""
    message: Any = None
    """For `"cancel"`: the cancel message; for `"progress"`: the progress message."""
    metadata: dict[str, Any] | None = None
    """For `"progress"`: the metadata reported with it."""
    error: BaseException | None = None
    """For `"error"`: the exception that left the block."""


class OperationRecorder:
    """Records the life of operations and asserts how they ended.

    `attach(cancel)` registers its callbacks (`on_start`, `on_progress`, `on_complete`,
    `on_cancel`, `on_error`) on an operation and returns it, so it fits in an `async with`:

    ```python
    recorder = OperationRecorder()
    with pytest.raises(TimeoutCancelation):
        async with recorder.attach(Cancelable.with_timeout(0.01, name="job")) as cancel:
            await anyio.sleep(1)
    recorder.assert_cancelled(cancel, CancelationReason.TIMEOUT)
    print([event.kind for event in recorder.events])  # ['start', 'cancel']
    ```

    One recorder can watch any number of operations; the assertions take an operation id
    or the `Cancelable` itself.
    """

    __slots__ = ("_attached", "_events")

    def __init__(self) -> None:
        self._events: list[OperationEvent] = []
        self._attached: WeakSet[Cancelable] = WeakSet()

    @property
    def events(self) -> list[OperationEvent]:
        """Every event recorded so far, oldest first (a copy)."""
        return list(self._events)

    def attach(self, cancelable: C) -> C:
        """Record the life of `cancelable` from now on; returns it.

        Attach before entering its block to see `"start"`.

        Raises:
            TypeError: `cancelable` is not a `Cancelable`.
            ValueError: this recorder is already attached to it.
        """
        if not isinstance(cancelable, Cancelable):
            raise TypeError(f"cancelable must be a Cancelable, got {cancelable!r}")
        if cancelable in self._attached:
            raise ValueError(f"cancelable {cancelable!r} is already attached to this recorder")
        self._attached.add(cancelable)
        record = self._events.append

        def event(kind: _EventKind, context: OperationContext, **fields: Any) -> OperationEvent:
            return OperationEvent(kind, context.id, context.name, anyio.current_time(), **fields)

        def started(context: OperationContext) -> None:
            record(event("start", context))

        def completed(context: OperationContext) -> None:
            record(event("complete", context))

        def cancelled(context: OperationContext) -> None:
            reason, message = context.cancel_reason, context.cancel_message
            record(event("cancel", context, reason=reason, message=message))

        def failed(context: OperationContext, error: BaseException) -> None:
            record(event("error", context, error=error))

        def progressed(operation_id: str, message: Any, metadata: dict[str, Any] | None) -> None:
            record(event("progress", cancelable.context, message=message, metadata=metadata))

        cancelable.on_start(started).on_progress(progressed).on_complete(completed)
        cancelable.on_cancel(cancelled).on_error(failed)
        return cancelable

    def events_for(self, operation: str | Cancelable) -> list[OperationEvent]:
        """The events of one operation (given by id or as the `Cancelable`), oldest first.

        Raises:
            TypeError: `operation` is neither a str nor a `Cancelable`.
        """
        operation_id = _operation_id(operation)
        return [event for event in self._events if event.operation_id == operation_id]

    def clear(self) -> None:
        """Forget the events recorded so far (attached operations stay attached)."""
        self._events.clear()

    def assert_completed(self, operation: str | Cancelable) -> None:
        """Assert that the operation's block finished normally.

        Raises:
            AssertionError: it did not end, or ended otherwise (the message lists its events).
        """
        self._ended(operation, "complete")

    def assert_cancelled(
        self, operation: str | Cancelable, reason: CancelationReason | None = None
    ) -> None:
        """Assert that the operation ended by cancellation, for `reason` if given.

        Raises:
            AssertionError: it did not end, ended otherwise, or for another reason.
        """
        if reason is not None:
            check_reason(reason)
        end = self._ended(operation, "cancel")
        if reason is not None and end.reason is not reason:
            raise AssertionError(
                f"{_describe(end)} was cancelled with reason "
                f"{end.reason.name if end.reason else None}, expected {reason.name}"
            )

    def assert_failed(
        self,
        operation: str | Cancelable,
        error: type[BaseException] | tuple[type[BaseException], ...] | None = None,
    ) -> None:
        """Assert that the operation's body raised (an instance of `error`, if given).

        Raises:
            AssertionError: it did not end, ended otherwise, or raised something else.
        """
        if error is not None:
            check_exception_types("error", error, BaseException)
        end = self._ended(operation, "error")
        if error is not None and not isinstance(end.error, error):
            raise AssertionError(f"{_describe(end)} raised {end.error!r}, expected {error!r}")

    def _ended(self, operation: str | Cancelable, kind: _EventKind) -> OperationEvent:
        events = self.events_for(operation)
        if not events:
            raise AssertionError(
                f"no events recorded for operation {_operation_id(operation)}: attach the "
                "recorder with recorder.attach(cancelable) before its block"
            )
        ends = [event for event in events if event.kind in ("complete", "cancel", "error")]
        if not ends or ends[-1].kind != kind:
            seen = ", ".join(_summary(event) for event in events)
            expected = {"complete": "completed", "cancel": "cancelled", "error": "failed"}[kind]
            raise AssertionError(f"{_describe(events[0])} was not {expected}; events: {seen}")
        return ends[-1]


def _operation_id(operation: object) -> str:
    if isinstance(operation, Cancelable):
        return operation.operation_id
    if isinstance(operation, str):
        return operation
    raise TypeError(f"operation must be an operation id or a Cancelable, got {operation!r}")


def _describe(event: OperationEvent) -> str:
    name = f" {event.name!r}" if event.name else ""
    return f"operation{name} ({event.operation_id})"


def _summary(event: OperationEvent) -> str:
    if event.kind == "cancel":
        return f"cancel ({event.reason.name if event.reason else None})"
    if event.kind == "error":
        return f"error ({event.error!r})"
    return event.kind
