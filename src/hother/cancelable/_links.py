"""An operation's links: its own token, and the link to a parent that cancels it.

Neither reads the operation's private state: the token asks the operation to stop through
its public `cancel()` / `cancel_sync()`, and a link is handed, by the operation that makes it,
the two things it may do to it (ask it to stop; keep a deadline).
"""

from __future__ import annotations

import time
from _weakref import ref as weak_ref
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from ._checks import check_wait
from ._context import CancelationReason
from ._ending import PARENT_KEY
from ._request import Request
from ._token import CancelationToken

if TYPE_CHECKING:
    from ._cancelable import Cancelable
    from ._deadline import Deadline
    from ._wakeup import LoopWaker

__all__ = ["OperationToken", "ParentLink"]

_INF = float("inf")


class OperationToken(CancelationToken):
    """An operation's own token (`cancel.token`), for code that is given only a token.

    It is cancelled whenever its operation is asked to stop, with that request's reason and
    message (the operation hands it its first request: `settle`), and also once the
    operation's deadline, or a parent's, has passed: a deadline cancels the scope without
    any request, so a thread holding only the token would not see it otherwise. Cancelling it
    is cancelling the operation, by the operation's own `cancel()`: a call that returns True
    was acted on (SPEC section 7).
    """

    __slots__ = ("_operation", "deadline")

    def __init__(self, operation: Cancelable) -> None:
        super().__init__()
        self._operation = weak_ref(operation)  # a token handed around keeps no block alive
        self.deadline: Deadline | None = None
        """The operation's deadline while its block runs."""

    async def cancel(
        self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None
    ) -> bool:
        operation = self._operation()
        if operation is None:
            return await super().cancel(reason, message)
        return await operation.cancel(reason, message)

    def cancel_sync(
        self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None
    ) -> bool:
        operation = self._operation()
        if operation is None:
            return super().cancel_sync(reason, message)
        return operation.cancel_sync(reason, message)

    def settle(self, request: Request) -> None:
        """Take the operation's first request as this token's, and tell who listens.

        Not direct: children linked to the operation hear of it on their loop's next turn,
        after the operation's own scope.
        """
        self._take(request, False)

    # -- deadlines, which no request announces -------------------------------------------------

    def _catch_up(self) -> None:
        token: OperationToken | None = self
        while token is not None and not self._requests:
            deadline = token.deadline
            operation = token._operation()
            if deadline is not None and operation is not None and deadline.passed():
                # Asked through the operation's public door; a request after its deadline
                # is recorded as the timeout.
                operation.cancel_sync(CancelationReason.TIMEOUT, deadline.message)
            token = token._parent()

    def _parent(self) -> OperationToken | None:
        operation = self._operation()
        parent = None if operation is None else operation.parent
        return None if parent is None else cast("OperationToken", parent.token)

    def _next_deadline(self) -> float:
        """The nearest deadline, its own or a parent's, on `time.monotonic()`."""
        nearest = _INF
        token = self
        while token is not None:
            if token.deadline is not None:
                nearest = min(nearest, token.deadline.when_monotonic)
            token = token._parent()
        return nearest

    @property
    def is_cancelled(self) -> bool:
        self._catch_up()
        return bool(self._requests)

    def check(self) -> None:
        self._catch_up()
        first = self._requests.first
        if first is not None:
            operation = self._operation()
            raise first.error(None if operation is None else operation.context)

    def wait_sync(self, timeout: float | None = None) -> bool:
        # Like the base class, also woken by a deadline, which no request announces.
        limit = check_wait(timeout)
        end = _INF if limit is None else time.monotonic() + limit
        while True:
            if self.is_cancelled:
                return True
            now = time.monotonic()
            if now >= end:
                return False
            wake = min(end, self._next_deadline())
            super().wait_sync(None if wake == _INF else max(0.0, wake - now))

    # -- the children linked to the operation --------------------------------------------------

    def adopt(self, link: ParentLink) -> Request | None:
        """Let `link` hear of this operation's cancellation; if it came already, nothing is
        registered and its first request is returned (see `CancelationToken._listen`)."""
        return self._listen(link, ParentLink.fire)

    def release(self, link: ParentLink) -> None:
        self._remove(link)

    def lend(self, deadline: Deadline, waker: LoopWaker | None) -> None:
        """Children linked before the operation's block began keep its deadline too.

        They run outside its block (they were entered first), on its loop or another one.
        """
        for key in list(self._registrations):
            if isinstance(key, ParentLink):
                key.keep_deadline(deadline, waker)


class ParentLink:
    """Requests an operation's cancellation (reason `PARENT`) when its parent is cancelled.

    It listens on the parent's `OperationToken` while the child's block runs.
    """

    __slots__ = ("ask", "keep_deadline", "message", "parent_id", "token")

    def __init__(
        self,
        parent_id: str,
        token: OperationToken,
        ask: Callable[[Request, bool], bool],
        keep_deadline: Callable[[Deadline, LoopWaker | None], None],
    ) -> None:
        self.token = token
        self.ask = ask  # the child's way to be asked to stop
        self.keep_deadline = keep_deadline  # and to keep its parent's deadline
        self.message = f"parent operation {parent_id} was cancelled"
        self.parent_id = parent_id

    def request(self, cause: Request | None = None) -> Request:
        """The child's request, made when the parent's (`cause`) was; without a cause, the
        one its parent's passed deadline makes."""
        reason = CancelationReason.TIMEOUT if cause is None else cause.reason
        details = {PARENT_KEY: self.parent_id, "parent_reason": reason}
        request = Request(CancelationReason.PARENT, self.message, details)
        if cause is not None:
            request.at = cause.at
        return request

    def fire(self, request: Request, direct: bool) -> None:
        self.ask(self.request(request), direct)

    def arm(self) -> Request | None:
        """Listen to the parent; if it is cancelled already, the child's request to make."""
        first = self.token.adopt(self)
        return None if first is None else self.request(first)

    def disarm(self) -> None:
        self.token.release(self)
