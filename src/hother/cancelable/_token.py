"""Tokens: a cancellation that can be requested from anywhere and observed by many operations."""

from __future__ import annotations

from _thread import get_ident
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:  # at run time anyio imports its submodules on first use
    import threading
    from datetime import datetime

    import anyio.lowlevel

from ._callbacks import call_logged, call_logged_sync, logger
from ._checks import check_bool, check_message, check_reason, check_wait
from ._context import CancelationReason, new_id, utc
from ._request import Request, Requests
from ._wakeup import LoopWaker, current_waker

__all__ = [
    "CallbackRegistration",
    "CancelationToken",
    "Fire",
    "LinkedCancelationToken",
    "request_sync",
]

TokenCallback = Callable[["CancelationToken"], Awaitable[object] | object]

Fire = Callable[[Any, Request, bool], "Awaitable[Any] | bool | None"]
"""What a token calls, once, when it is cancelled: `fire(key, first_request, direct)`.

The key it was registered under comes first, so an operation can listen with a method of its
class (`Cancelable._ask`) and no object per registration. `direct` is True when the cancel
happened in async code on some event loop (code bound to that loop may act at once); False
from `cancel_sync()`, which may run in any thread or in a signal handler, where only queuing
work onto a loop is safe. What it returns, the canceller awaits (when `direct`), unless it is
None or a bool (what `Cancelable._ask` says of the request).
"""


def _await_awaitable(awaitable: Awaitable[Any]) -> Awaitable[Any]:
    return awaitable


class CallbackRegistration:
    """A callback registered on a token; `unregister()` removes it.

    Awaiting it returns once the callback has run, if the token was already cancelled when
    it was registered (an async callback is awaited there); otherwise at once. That keeps
    code written for 0.11, where registering was a coroutine, working.
    """

    __slots__ = ("_key", "_ran", "_remove")

    def __init__(
        self, remove: Callable[[object], bool], key: object, ran: _Once | None = None
    ) -> None:
        self._remove = remove
        self._key = key
        self._ran = ran

    def unregister(self) -> bool:
        """Remove the callback; True if it was still registered."""
        return self._remove(self._key)

    def __await__(self) -> Generator[Any, Any, None]:
        if self._ran is not None:
            yield from self._ran.run().__await__()


class _Once:
    """An async callback's awaitable, awaited once by whoever comes first: the task it was
    scheduled as, or the code awaiting its registration."""

    __slots__ = ("_awaitable", "_done")

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self._awaitable: Awaitable[Any] | None = awaitable
        self._done: anyio.Event | None = None

    async def run(self) -> None:
        awaitable = self._awaitable
        if awaitable is None:  # taken by the other party: wait until it is through
            if self._done is not None:
                await self._done.wait()
            return
        self._awaitable = None
        self._done = anyio.Event()
        try:
            await await_all_shielded([awaitable])
        finally:
            self._done.set()


class _UserCallback:
    __slots__ = ("callback", "ran", "token", "waker")

    def __init__(
        self, token: CancelationToken, callback: TokenCallback, waker: LoopWaker | None
    ) -> None:
        self.token = token
        self.callback = callback
        self.waker = waker
        self.ran: _Once | None = None  # an async one, scheduled by cancel_sync()

    def fire(self, request: Request, direct: bool) -> Awaitable[Any] | None:
        token = self.token
        awaitable = call_logged_sync(self.callback, token)
        if awaitable is None or direct:
            return awaitable
        # From cancel_sync(): run the coroutine on the loop it was registered on, or this one.
        self.ran = ran = _Once(awaitable)
        waker = self.waker or _waker_or_none()
        if waker is None or not waker.start_soon(ran.run):
            logger().warning(
                "hother.cancelable: async callback %r of token %s could not run: no event loop",
                self.callback,
                token.id,
            )
            if hasattr(awaitable, "close"):
                awaitable.close()  # type: ignore[attr-defined]
            self.ran = None
        return None


class _Forward:
    """Cancels another token when the observed one is cancelled."""

    __slots__ = ("observed", "preserve_reason", "take")

    def __init__(
        self,
        observed: CancelationToken,
        take: Callable[[Request, bool], list[Awaitable[Any]] | None],
        preserve_reason: bool,
    ) -> None:
        self.observed = observed
        self.take = take  # the other token's way in
        self.preserve_reason = preserve_reason

    def fire(self, request: Request, direct: bool) -> Awaitable[Any] | None:
        if self.preserve_reason:
            forwarded = Request(request.reason, request.message)
        else:
            message = f"linked token {self.observed.id} was cancelled"
            forwarded = Request(CancelationReason.PARENT, message)
        pending = self.take(forwarded, direct)
        return await_all_shielded(pending) if pending else None


class _EventSetter:
    __slots__ = ("event", "waker")

    def __init__(self, event: anyio.Event, waker: LoopWaker) -> None:
        self.event = event
        self.waker = waker

    def fire(self, request: Request, direct: bool) -> None:
        if direct and get_ident() == self.waker.thread_id:
            self.event.set()
        else:
            self.waker.call_soon(self.event.set)


class _ThreadEventSetter:
    __slots__ = ("event",)

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def fire(self, request: Request, direct: bool) -> None:
        self.event.set()


def _waker_or_none() -> LoopWaker | None:
    try:
        return current_waker()
    except RuntimeError:
        return None


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
    __slots__ = ("__weakref__", "_registrations", "_requests", "id")

    def __init__(self) -> None:
        self.id: str = new_id()
        """A unique id, for logs."""
        self._requests = Requests()
        # Who to tell, by key: an operation listens under its own name, anything else under
        # a small object of its own (see `Fire`).
        self._registrations: dict[object, Fire] = {}

    # -- state -------------------------------------------------------------------------------

    @property
    def is_cancelled(self) -> bool:
        """True once a cancellation has been requested."""
        return bool(self._requests)

    def is_cancelation_requested(self) -> bool:
        """0.11's name for `is_cancelled`, kept with a `DeprecationWarning`."""
        import warnings

        warnings.warn(
            "token.is_cancelation_requested() is deprecated: read token.is_cancelled",
            DeprecationWarning,
            stacklevel=2,
        )
        return bool(self._requests)

    @property
    def reason(self) -> CancelationReason | None:
        """The reason of the first request, or None."""
        first = self._requests.first
        return None if first is None else first.reason

    @property
    def message(self) -> str | None:
        """The message of the first request, or None."""
        first = self._requests.first
        return None if first is None else first.message

    @property
    def cancelled_at(self) -> datetime | None:
        """When the first request was made (UTC), or None."""
        first = self._requests.first
        return None if first is None else utc(first.wall)

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
        request = Request(check_reason(reason), check_message(message))
        pending = self._take(request, True)
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
        request = Request(check_reason(reason), check_message(message))
        return self._take(request, False) is not None

    def _take(self, request: Request, direct: bool) -> list[Awaitable[Any]] | None:
        """Keep `request` and, if it is the first, fire the listeners; else None.

        With `direct`, returns what the listeners left for the caller to await.
        """
        if not self._requests.add(request):
            return None
        pending: list[Awaitable[Any]] = []
        registrations = self._registrations
        for key in list(registrations):
            fire = registrations.pop(key, None)  # whoever pops it, fires it
            if fire is not None:
                awaitable = fire(key, request, direct)
                if awaitable is not None and awaitable is not True and awaitable is not False:
                    pending.append(awaitable)
        return pending

    # -- observing -----------------------------------------------------------------------------

    def check(self) -> None:
        """Raise the `CancelationError` subclass for the reason if cancelled; else nothing."""
        first = self._requests.first
        if first is not None:
            raise first.error()

    async def check_async(self) -> None:
        """A checkpoint that raises like `check()` when the token is cancelled."""
        self.check()
        await anyio.lowlevel.checkpoint()

    async def wait_for_cancel(self) -> None:
        """Wait until the token is cancelled (returns at once if it already is)."""
        if self._requests:
            await anyio.lowlevel.checkpoint()
            return
        setter = _EventSetter(anyio.Event(), current_waker())
        if self._listen(setter, _EventSetter.fire) is not None:  # cancelled meanwhile
            await anyio.lowlevel.checkpoint()
            return
        try:
            await setter.event.wait()
        finally:
            self._remove(setter)

    def wait_sync(self, timeout: float | None = None) -> bool:
        """Block this thread until the token is cancelled or `timeout` seconds pass.

        For plain threads; never call it on an event loop's thread. Returns `is_cancelled`.
        """
        timeout = check_wait(timeout)
        import threading  # plain threads only: not worth importing for everybody

        setter = _ThreadEventSetter(threading.Event())
        if self._listen(setter, _ThreadEventSetter.fire) is not None:
            return True
        try:
            return setter.event.wait(timeout)
        finally:
            self._remove(setter)

    def register_callback(self, callback: TokenCallback) -> CallbackRegistration:
        """Call `callback(token)` once when the token is cancelled (now, if it already is).

        The callback may be sync or async. From `await cancel()` it is called, and awaited,
        in the cancelling task; from `cancel_sync()` a sync callback runs in the calling
        thread and an async one is scheduled on the event loop that registered it. On a
        token already cancelled, it is called at once; an async one is scheduled, and
        `await token.register_callback(cb)` returns once it has run. An exception in a
        callback is logged, never raised. The returned handle unregisters it.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        listener = _UserCallback(self, callback, _waker_or_none())
        first = self._listen(listener, _UserCallback.fire)
        if first is not None:  # cancelled already: call it now
            listener.fire(first, False)
        return CallbackRegistration(self._remove, listener, listener.ran)

    def _listen(self, key: object, fire: Fire) -> Request | None:
        """Call `fire(key, ...)` once on cancellation; `_remove(key)` undoes it.

        If the token is cancelled already, nothing is registered and the first request is
        returned instead, for the caller to act on as it sees fit (in the order it chooses,
        when it listens to several tokens).
        """
        registrations = self._registrations
        registrations[key] = fire
        requests = self._requests
        if requests and registrations.pop(key, None) is not None:
            return requests[0]
        return None

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
        forward = _Forward(token, self._take, preserve_reason)
        first = token._listen(forward, _Forward.fire)
        if first is not None:
            forward.fire(first, False)
        registration = CallbackRegistration(token._remove, forward)
        self._links.append(registration)
        return registration


def request_sync(token: CancelationToken, request: Request) -> bool:
    """`token.cancel_sync()` with a request made by the caller: one whose details (a signal's
    number) become attributes of the exception, which the public methods do not take.

    A token whose class says how it is cancelled (an operation's own token cancels its
    operation) is asked through its own `cancel_sync()`, details aside: True is always acted on.
    """
    if type(token).cancel_sync is not CancelationToken.cancel_sync:
        return token.cancel_sync(request.reason, request.message)
    return token._take(request, False) is not None  # pyright: ignore[reportPrivateUsage]  # the token's own module


async def await_all_shielded(pending: list[Awaitable[Any]]) -> None:
    """Await callbacks' awaitables in order, shielded, logging failures."""
    with anyio.CancelScope(shield=True):
        for awaitable in pending:
            await call_logged(_await_awaitable, awaitable)
