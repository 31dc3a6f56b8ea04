"""Deadlines: when an operation must stop, readable from its loop and from any other thread."""

from __future__ import annotations

import time
from _thread import get_ident
from typing import TYPE_CHECKING

import anyio

from ._context import CancelationReason
from ._request import Request

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["Deadline", "NamedDeadline"]


class Deadline:
    """An instant on the clock of the event loop that set it, and the same on `time.monotonic()`.

    The loop's clock is what its cancel scopes use (trio's clock is its own; uvloop's moves
    in milliseconds); other threads cannot read it, so they use the monotonic twin. Made
    on the loop's thread, as a block begins; moved there too (`move_to`).
    """

    __slots__ = ("seconds", "thread_id", "when", "when_monotonic")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds  # from the start to the instant, for the message
        self.when = anyio.current_time() + seconds
        self.when_monotonic = time.monotonic() + seconds
        self.thread_id = get_ident()  # the loop's thread, where `when` can be read

    @staticmethod
    def until(when: datetime) -> Deadline:
        """The deadline at the wall-clock instant `when` (an aware datetime)."""
        import datetime as dt

        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
        return NamedDeadline(seconds, f"operation deadline {when.isoformat()} passed")

    def move_to(self, when: float) -> None:
        """Move the instant to `when`, on the clock of the loop that set it (its thread only)."""
        shift = when - self.when
        self.when = when
        self.when_monotonic += shift
        self.seconds += shift

    def passed(self) -> bool:
        """True once the instant has come, read on the right clock for the calling thread."""
        if get_ident() == self.thread_id:
            return anyio.current_time() >= self.when
        return time.monotonic() >= self.when_monotonic

    @property
    def remaining(self) -> float:
        """Seconds until the instant, 0.0 once it has passed."""
        if get_ident() == self.thread_id:
            left = self.when - anyio.current_time()
        else:
            left = self.when_monotonic - time.monotonic()
        return max(0.0, left)

    def on_this_loop(self) -> float:
        """The same instant on the clock of the event loop running in this thread."""
        if get_ident() == self.thread_id:
            return self.when
        return anyio.current_time() + (self.when_monotonic - time.monotonic())

    @property
    def message(self) -> str:
        """What the deadline's passing says, as a cancellation message."""
        return f"operation timed out after {self.seconds:g} s"

    def request(self) -> Request:
        """The TIMEOUT request that the deadline's passing makes."""
        return Request(CancelationReason.TIMEOUT, self.message, {"timeout_seconds": self.seconds})


class NamedDeadline(Deadline):
    """A deadline that is no timeout (a wall-clock instant, one assigned): it says its own
    message, and its passing has no `timeout_seconds`."""

    __slots__ = ("label",)

    def __init__(self, seconds: float, label: str) -> None:
        super().__init__(seconds)
        self.label = label

    @property
    def message(self) -> str:
        return self.label

    def request(self) -> Request:
        return Request(CancelationReason.TIMEOUT, self.label, {"timeout_seconds": None})
