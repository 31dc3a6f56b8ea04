"""Cancellation requests: one record per request, and the first-wins list that keeps the first."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ._exceptions import error_for

if TYPE_CHECKING:
    from ._context import CancelationReason, OperationContext
    from ._exceptions import CancelationError

__all__ = ["Request", "Requests"]


class Request:
    """One request to stop: why, with what message, and when it was made.

    A token's first request is also the request of every operation the token cancels: they
    were all asked at that moment, for that reason, so they share the record.
    """

    __slots__ = ("at", "details", "message", "reason", "wall")

    def __init__(
        self,
        reason: CancelationReason,
        message: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.reason = reason
        self.message = message
        self.details = details  # attributes of the exception it makes (`signal_number`, ...)
        self.at = time.monotonic()  # to tell which of two requests came first, in any thread
        self.wall = time.time()

    def error(self, context: OperationContext | None = None) -> CancelationError:
        """The `CancelationError` subclass that reports this request."""
        return error_for(self.reason, self.message, context, **(self.details or {}))


class Requests(list[Request]):
    """The requests made of one token or operation, of which the first one added wins.

    No lock: requests come from any thread and from signal handlers, which may interrupt
    this very code on the main thread. `add` is one atomic append, and a request that
    comes after the first is not kept, so repeated requests cost nothing; only requests
    racing for the first place are kept, and only the first of them counts.
    """

    __slots__ = ()

    def add(self, request: Request) -> bool:
        """Keep `request` if none came before it; True if it is the first."""
        if self:
            return False
        self.append(request)
        return self[0] is request

    @property
    def first(self) -> Request | None:
        """The request that won, or None."""
        return self[0] if self else None
