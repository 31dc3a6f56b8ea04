"""The record of one operation: its status, why it was cancelled, and what it produced."""

from __future__ import annotations

import enum
import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # datetime is imported when a time is read, not at import
    from datetime import datetime, timedelta

__all__ = [
    "CANCELLED",
    "COMPLETED",
    "FAILED",
    "PENDING",
    "RUNNING",
    "CancelationReason",
    "OperationContext",
    "OperationStatus",
]


class OperationStatus(enum.Enum):
    """Where an operation is in its life."""

    PENDING = "pending"
    """Built, not entered yet."""
    RUNNING = "running"
    """Inside its `async with` block."""
    COMPLETED = "completed"
    """The block finished normally."""
    CANCELLED = "cancelled"
    """The block was cancelled; `cancel_reason` says by what."""
    FAILED = "failed"
    """The block raised an exception; `error` holds its text."""


class CancelationReason(enum.Enum):
    """Why an operation was cancelled."""

    TIMEOUT = "timeout"
    """Its own deadline passed."""
    MANUAL = "manual"
    """Somebody called `cancel()` (the default reason of a token)."""
    SIGNAL = "signal"
    """An OS signal arrived."""
    CONDITION = "condition"
    """A condition or resource source fired."""
    PARENT = "parent"
    """A parent or an enclosing scope was cancelled."""
    ERROR = "error"
    """Cancelled because of an error elsewhere."""


# Read through their class, enum members cost about 90 ns each on Python 3.11 (25 on 3.12):
# the library's hot paths read these module names instead.
PENDING, RUNNING, COMPLETED, CANCELLED, FAILED = OperationStatus

_TERMINAL = frozenset(
    {OperationStatus.COMPLETED, OperationStatus.CANCELLED, OperationStatus.FAILED}
)


def new_id() -> str:
    """A random (version 4) UUID as a string, without the cost of importing `uuid`."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utc(timestamp: float) -> datetime:
    """A `time.time()` timestamp as an aware UTC datetime."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)


def is_timedelta(value: object) -> bool:
    """True for a `datetime.timedelta`, without importing datetime for the answer."""
    module = sys.modules.get("datetime")  # no timedelta exists before datetime is imported
    return module is not None and isinstance(value, module.timedelta)


class OperationContext:
    """What is known about one operation, readable during and after its block.

    A `Cancelable` owns one and updates it as the block runs and ends; read it through
    `cancel.context`, or through `err.context` on a `CancelationError`.

    Attributes:
        name: a human-readable name, if one was given.
        status: where the operation is in its life.
        cancel_reason: why it was cancelled; `None` unless `status` is `CANCELLED`.
        cancel_message: the message that came with the cancellation.
        error: `str()` of the exception that ended the block, when `status` is `FAILED`.
        partial_result: whatever the operation saved before it ended (streams store their
            progress here).
        parent_id: the id of the parent operation, if any.
    """

    # A plain class with slots: the id and the metadata dict are made on first use, since
    # most operations never read them (the hot path allocates little).
    __slots__ = (
        "_ended",
        "_id",
        "_metadata",
        "_started",
        "cancel_message",
        "cancel_reason",
        "error",
        "name",
        "parent_id",
        "partial_result",
        "status",
    )

    def __init__(
        self,
        id: str | None = None,
        name: str | None = None,
        status: OperationStatus = OperationStatus.PENDING,
        cancel_reason: CancelationReason | None = None,
        cancel_message: str | None = None,
        error: str | None = None,
        partial_result: Any = None,
        metadata: dict[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> None:
        self._id: str | None = id
        self.name: str | None = name
        self.status: OperationStatus = status
        self._started: float | None = None  # time.time() when the block was entered
        self._ended: float | None = None  # and when it was left
        self.cancel_reason: CancelationReason | None = cancel_reason
        self.cancel_message: str | None = cancel_message
        self.error: str | None = error
        self.partial_result: Any = partial_result
        self._metadata: dict[str, Any] | None = metadata
        self.parent_id: str | None = parent_id

    @property
    def id(self) -> str:
        """The operation id (given, or a random UUID)."""
        if self._id is None:
            self._id = new_id()
        return self._id

    @property
    def metadata(self) -> dict[str, Any]:
        """Free-form data given at construction; add to it freely."""
        if self._metadata is None:
            self._metadata = {}
        return self._metadata

    def copy(self) -> OperationContext:
        """A copy of the record: later changes of status, times or metadata do not reach it.

        `partial_result` is the same object as the operation's, not a copy.
        """
        copy = OperationContext(
            self.id,
            self.name,
            self.status,
            self.cancel_reason,
            self.cancel_message,
            self.error,
            self.partial_result,
            dict(self.metadata),
            self.parent_id,
        )
        copy._started, copy._ended = self._started, self._ended
        return copy

    @property
    def start_time(self) -> datetime | None:
        """When the block was entered (UTC), or None before."""
        return None if self._started is None else utc(self._started)

    @property
    def end_time(self) -> datetime | None:
        """When the block was left (UTC), or None before."""
        return None if self._ended is None else utc(self._ended)

    def __repr__(self) -> str:
        reason = "" if self.cancel_reason is None else f" {self.cancel_reason.value}"
        name = "" if self.name is None else f" {self.name!r}"
        return f"<OperationContext {self.id}{name} {self.status.value}{reason}>"

    @property
    def duration(self) -> timedelta | None:
        """Time spent in the block so far, or in all once it ended; `None` before entry."""
        seconds = self.duration_seconds
        if seconds is None:
            return None
        from datetime import timedelta

        return timedelta(seconds=seconds)

    @property
    def duration_seconds(self) -> float | None:
        """`duration` in seconds."""
        if self._started is None:
            return None
        return (self._ended if self._ended is not None else time.time()) - self._started

    @property
    def is_terminal(self) -> bool:
        """True once the operation has ended, however it ended."""
        return self.status in _TERMINAL

    @property
    def is_success(self) -> bool:
        """True if the block finished normally."""
        return self.status is OperationStatus.COMPLETED

    @property
    def is_cancelled(self) -> bool:
        """True if the block ended by cancellation."""
        return self.status is OperationStatus.CANCELLED

    def log_context(self) -> dict[str, Any]:
        """A flat dict of plain values, for structured logging."""
        return {
            "operation_id": self.id,
            "operation_name": self.name,
            "status": self.status.value,
            "cancel_reason": None if self.cancel_reason is None else self.cancel_reason.value,
            "cancel_message": self.cancel_message,
            "error": self.error,
            "parent_id": self.parent_id,
            "duration_seconds": self.duration_seconds,
        }
