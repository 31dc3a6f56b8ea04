"""Tokens: a cancellation that can be requested from anywhere and observed by many operations."""

from __future__ import annotations

import time
from _thread import get_ident
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

import anyio

if TYPE_CHECKING:  # at run time anyio imports its submodules on first use
    import threading
    from datetime import datetime

    import anyio.lowlevel

from ._callbacks import call_logged, call_logged_sync, logger
from ._checks import check_bool, check_message, check_reason, check_seconds
from ._context import CancelationReason, new_id, utc
from ._exceptions import error_for
from ._wakeup import LoopWaker, current_waker

__all__ = ["CallbackRegistration", "CancelationToken", "LinkedCancelationToken"]

TokenCallback = Callable[["CancelationToken"], Awaitable[object] | object]


def _await_awaitable(awaitable: Awaitable[Any]) -> Awaitable[Any]:
    return awaitable


class _Listener(Protocol):
    """What a token calls when it is cancelled.

    `direct` is True when the cancel happened in async code on some event loop (so code bound
    to that loop may act at once); False from `cancel_sync()`, which may run in any thread or
    in a signal handler, where only queuing work onto a loop is safe.
    """

    def _fire(self, token: CancelationToken, direct: bool) -> Awaitable[Any] | None: ...


class CallbackRegistration:
    """A callback registered on a token; `unregister()` removes it.

    Awaiting it does nothing more: that keeps code written for 0.11, where registering was
    a coroutine, working.
    """

    __slots__ = ("_listener", "_token")

    def __init__(self, token: CancelationToken, listener: _Listener) -> None:
        self._token = token
        self._listener = listener

    def unregister(self) -> bool:
        """Remove the callback; True if it was still registered."""
        return self._token._remove(self)  # pyright: ignore[reportPrivateUsage]

    def __await__(self) -> Generator[Any, Any, None]:
        return
        yield  # pragma: no cover


class _UserCallback:
    __slots__ = ("callback", "waker")

    def __init__(self, callback: TokenCallback, waker: LoopWaker | None) -> None:
        self.callback = callback
        self.waker = waker

    def _fire(self, token: CancelationToken, direct: bool) -> Awaitable[Any] | None:
        awaitable = call_logged_sync(self.callback, token)
        if awaitable is None or direct:
            return awaitable
        # From cancel_sync(): run the coroutine on the loop it was registered on, or this one.
        waker = self.waker or _waker_or_none()
        if waker is None or not waker.start_soon(_await_awaitable, awaitable):
            logger().warning(
                "hother.cancelable: async callback %r of token %s could not run: no event loop",
                self.callback,
                token.id,
            )
            if hasattr(awaitable, "close"):
                awaitable.close()  # type: ignore[attr-defined]
        return None


class _Forward:
    """Cancels another token when the observed one is cancelled."""

    __slots__ = ("preserve_reason", "target")

    def __init__(self, target: CancelationToken, preserve_reason: bool) -> None:
        self.target = target
        self.preserve_reason = preserve_reason

    def _fire(self, token: CancelationToken, direct: bool) -> Awaitable[Any] | None:
        if self.preserve_reason and token.reason is not None:
            reason, message = token.reason, token.message
        else:
            reason = CancelationReason.PARENT
            message = f"linked token {token.id} was cancelled"
        pending = self.target._request(reason, message, direct)  # pyright: ignore[reportPrivateUsage]
        return await_all_shielded(pending) if pending else None


class _EventSetter:
    __slots__ = ("event", "waker")

    def __init__(self, event: anyio.Event, waker: LoopWaker) -> None:
        self.event = event
        self.waker = waker

    def _fire(self, token: CancelationToken, direct: bool) -> None:
        if direct and get_ident() == self.waker.thread_id:
            self.event.set()
        else:
            self.waker.call_soon(self.event.set)


class _ThreadEventSetter:
    __slots__ = ("event",)

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def _fire(self, token: CancelationToken, direct: bool) -> None:
        self.event.set()


def _waker_or_none() -> LoopWaker | None:
    try:
        return current_waker()
    except RuntimeError:
        return None


class Request:
    """One cancellation request; the first one made is what an operation or a token reports."""

    __slots__ = ("at", "details", "message", "reason")

    def __init__(
        self, reason: CancelationReason, message: str | None, details: dict[str, Any] | None
    ) -> None:
        self.reason = reason
        self.message = message
        self.details = details
        self.at = time.monotonic()


class _Outcome(Request):
    """A request made to a token. The first one is also the request of every operation the
    token cancels: they were all asked at that moment, for that reason."""

    __slots__ = ("wall",)

    def __init__(self, reason: CancelationReason, message: str | None) -> None:
        super().__init__(reason, message, None)
        self.wall = time.time()


class CancelationToken:
    """A cancellation that anyone may request and any number of operations may observe.

    Build it anywhere, even at module level before any event loop runs, and share it between
    tasks, threads and event loops. The first `cancel()` or `cancel_sync()` wins: its reason
    and message stay, later calls return False and change nothing.

    ```python
    token = CancelationToken()

    async with Cancelable.with_token(token):
        ...  # ends with ManualCancelation once somebody calls token.cancel()
    ```
    """

    # No lock anywhere: cancel_sync() may run in a signal handler that interrupted this very
    # token's code on the main thread. Every shared step is one atomic list or dict operation.
    __slots__ = ("__weakref__", "_outcomes", "_registrations", "id")

    def __init__(self) -> None:
        self.id: str = new_id()
        """A unique id, for logs."""
        self._outcomes: list[_Outcome] = []  # the first one appended wins
        # Keyed by a handle, or by the listener itself for the library's own listeners.
        self._registrations: dict[object, _Listener] = {}

    # -- state -------------------------------------------------------------------------------

    @property
    def is_cancelled(self) -> bool:
        """True once a cancellation has been requested."""
        return bool(self._outcomes)

    @property
    def reason(self) -> CancelationReason | None:
        """The reason of the first request, or None."""
        return self._outcomes[0].reason if self._outcomes else None

    @property
    def message(self) -> str | None:
        """The message of the first request, or None."""
        return self._outcomes[0].message if self._outcomes else None

    @property
    def cancelled_at(self) -> datetime | None:
        """When the first request was made (UTC), or None."""
        return utc(self._outcomes[0].wall) if self._outcomes else None

    def __repr__(self) -> str:
        reason = self.reason
        state = "active" if reason is None else f"cancelled: {reason.value}"
        return f"<{type(self).__name__} {self.id} {state}>"

    # -- requesting ----------------------------------------------------------------------------

    async def cancel(
        self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None
    ) -> bool:
        """Request the cancellation; True if this call was the first.

        Operations running on this event loop have their scope cancelled before it returns
        (they end at their next checkpoint); those on other loops are woken at once. Async
        callbacks are awaited here, shielded. It is not itself a checkpoint.
        """
        pending = self._request(check_reason(reason), check_message(message), True)
        if pending is None:
            return False
        if pending:
            await await_all_shielded(pending)
        return True

    def cancel_sync(
        self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None
    ) -> bool:
        """Request the cancellation from any thread or a signal handler; True if the first.

        It never blocks: operations are woken on their own event loops at the loop's next
        turn, async callbacks are scheduled there, sync callbacks run here.
        """
        return self._request(check_reason(reason), check_message(message), False) is not None

    def _request(
        self, reason: CancelationReason, message: str | None, direct: bool
    ) -> list[Awaitable[Any]] | None:
        """Record the request and, if it is the first, fire the listeners; else None.

        With `direct`, returns what the listeners left for the caller to await.
        """
        outcome = _Outcome(reason, message)
        outcomes = self._outcomes
        outcomes.append(outcome)
        if outcomes[0] is not outcome:
            return None
        pending: list[Awaitable[Any]] = []
        registrations = self._registrations
        for registration in list(registrations):
            listener = registrations.pop(registration, None)  # whoever pops it, fires it
            if listener is not None:
                awaitable = listener._fire(self, direct)  # pyright: ignore[reportPrivateUsage]
                if awaitable is not None:
                    pending.append(awaitable)
        return pending

    # -- observing -----------------------------------------------------------------------------

    def check(self) -> None:
        """Raise the `CancelationError` subclass for the reason if cancelled; else nothing."""
        if self._outcomes:
            first = self._outcomes[0]
            raise error_for(first.reason, first.message)

    async def check_async(self) -> None:
        """A checkpoint that raises like `check()` when the token is cancelled."""
        self.check()
        await anyio.lowlevel.checkpoint()

    async def wait_for_cancel(self) -> None:
        """Wait until the token is cancelled (returns at once if it already is)."""
        if self._outcomes:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        registration = self._add(_EventSetter(event, current_waker()))
        try:
            await event.wait()
        finally:
            registration.unregister()

    def wait_sync(self, timeout: float | None = None) -> bool:
        """Block this thread until the token is cancelled or `timeout` seconds pass.

        For plain threads; never call it on an event loop's thread. Returns `is_cancelled`.
        """
        if timeout is not None:
            check_seconds("timeout", timeout)
        import threading  # plain threads only: not worth importing for everybody

        event = threading.Event()
        registration = self._add(_ThreadEventSetter(event))
        try:
            return event.wait(timeout)
        finally:
            registration.unregister()

    def register_callback(self, callback: TokenCallback) -> CallbackRegistration:
        """Call `callback(token)` once when the token is cancelled (now, if it already is).

        The callback may be sync or async. From `await cancel()` it is called, and awaited,
        in the cancelling task; from `cancel_sync()` a sync callback runs in the calling
        thread and an async one is scheduled on the event loop that registered it. An
        exception in a callback is logged, never raised. The returned handle unregisters it.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        return self._add(_UserCallback(callback, _waker_or_none()))

    def _add(self, listener: _Listener) -> CallbackRegistration:
        registration = CallbackRegistration(self, listener)
        self._listen(listener, registration)
        return registration

    def _listen(self, listener: _Listener, key: object) -> None:
        """Register `listener` under `key`; `_remove(key)` undoes it."""
        registrations = self._registrations
        registrations[key] = listener
        if self._outcomes and registrations.pop(key, None) is not None:
            listener._fire(self, False)  # pyright: ignore[reportPrivateUsage]  # cancelled already

    def _remove(self, key: object) -> bool:
        return self._registrations.pop(key, None) is not None

    @property
    def callback_count(self) -> int:
        """How many callbacks wait on this token (operations register one each while they run)."""
        return len(self._registrations)


class LinkedCancelationToken(CancelationToken):
    """A token that is also cancelled when any token it is linked to is cancelled."""

    __slots__ = ("_links",)

    def __init__(self) -> None:
        super().__init__()
        self._links: list[CallbackRegistration] = []

    def link(self, token: CancelationToken, preserve_reason: bool = False) -> CallbackRegistration:
        """Cancel this token when `token` is cancelled.

        With `preserve_reason`, this token takes `token`'s reason and message; otherwise its
        reason is `PARENT`. Returns the handle that undoes the link.
        """
        if not isinstance(token, CancelationToken):
            raise TypeError(f"token must be a CancelationToken, got {token!r}")
        if token is self:
            raise ValueError("token must be another token, got this token itself")
        check_bool("preserve_reason", preserve_reason)
        registration = token._add(_Forward(self, preserve_reason))  # pyright: ignore[reportPrivateUsage]
        self._links.append(registration)
        return registration


async def await_all_shielded(pending: list[Awaitable[Any]]) -> None:
    """Await callbacks' awaitables in order, shielded, logging failures."""
    with anyio.CancelScope(shield=True):
        for awaitable in pending:
            await call_logged(_await_awaitable, awaitable)
