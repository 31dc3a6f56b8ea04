"""The Cancelable: one operation, one cancel scope, many ways to cancel it."""

from __future__ import annotations

import time
from _thread import get_ident
from _weakref import ref as weak_ref
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from functools import wraps
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    NoReturn,
    ParamSpec,
    Self,
    TypeVar,
    cast,
    final,
)

import anyio

if TYPE_CHECKING:  # at run time anyio imports its submodules on first use
    from collections.abc import Coroutine
    from datetime import timedelta
    from typing import TypedDict, Unpack

    import anyio.abc
    import anyio.lowlevel

    class _Options(TypedDict, total=False):
        """The keyword arguments the factories pass on to `Cancelable`."""

        parent: Cancelable | None
        metadata: Mapping[str, Any] | None
        register_globally: bool
        raise_on_cancel: bool


from ._callbacks import call_logged
from ._checks import (
    check_bool,
    check_message,
    check_metadata,
    check_optional_str,
    check_reason,
    check_seconds,
    check_timeout,
)
from ._context import CancelationReason, OperationContext, OperationStatus
from ._exceptions import CancelationError, error_for
from ._registry import OperationRegistry
from ._streams import DEFAULT_BUFFER_LIMIT, CancelableAsyncIterator
from ._threads import run_in_thread
from ._token import CancelationToken, Request
from ._wakeup import LoopWaker, current_waker
from .sources._base import CancelationSource, attach_all, detach_all
from .sources._condition import ConditionSource
from .sources._signal import SignalSource

__all__ = ["Cancelable", "current_operation"]

P = ParamSpec("P")
T = TypeVar("T")

_current: ContextVar[Cancelable | None] = ContextVar("hother.cancelable.current", default=None)

_INF = float("inf")
_PARENT_KEY = "parent_id"  # in a request's details: it came from the parent link


def current_operation() -> Cancelable | None:
    """The innermost `Cancelable` whose block the calling code runs in, or None.

    Tasks started inside a block, and `run_in_thread` workers, see it too.
    """
    return _current.get()


class _OperationToken(CancelationToken):
    """An operation's own token: also cancelled once the operation's deadline has passed.

    A deadline cancels the scope without any request, so a thread that only holds the token
    would not see it; this token looks at the deadline itself, on a clock any thread can
    read, and records the timeout the first time it is found expired.
    """

    __slots__ = ("_operation",)

    def __init__(self, operation: Cancelable) -> None:
        super().__init__()
        self._operation = weak_ref(operation)

    def _catch_up(self) -> None:
        # The operation's own deadline, and its parents' (whose cancellation reaches it).
        operation = self._operation()
        while operation is not None and not self._outcomes:
            operation._expire_if_due()  # pyright: ignore[reportPrivateUsage]
            operation = operation.parent

    def _next_deadline(self) -> float:
        # Seconds on time.monotonic() until the nearest deadline that would cancel this token.
        nearest = _INF
        operation = self._operation()
        while operation is not None:
            nearest = min(nearest, operation._deadline_mono)  # pyright: ignore[reportPrivateUsage]
            operation = operation.parent
        return nearest

    def wait_sync(self, timeout: float | None = None) -> bool:
        # Like the base class, also woken by a deadline, which no request announces.
        end = _INF if timeout is None else time.monotonic() + check_seconds("timeout", timeout)
        while True:
            if self.is_cancelled:
                return True
            now = time.monotonic()
            if now >= end:
                return False
            wake = min(end, self._next_deadline())
            super().wait_sync(None if wake == _INF else max(0.0, wake - now))

    @property
    def is_cancelled(self) -> bool:
        self._catch_up()
        return bool(self._outcomes)

    def check(self) -> None:
        self._catch_up()
        operation = self._operation()
        if operation is not None and operation._requests:  # pyright: ignore[reportPrivateUsage]
            raise operation._error()  # pyright: ignore[reportPrivateUsage]  # with its context
        super().check()


class _ParentLink:
    """Requests an operation's cancellation (reason `PARENT`) when its parent's token is."""

    __slots__ = ("details", "message", "operation", "registered", "token")

    def __init__(self, operation: Cancelable, parent: Cancelable) -> None:
        self.token = parent.token
        self.operation = operation
        self.message = f"parent operation {parent.operation_id} was cancelled"
        self.details = {_PARENT_KEY: parent.operation_id}
        self.registered = False  # listening to the token while the block runs

    def _fire(self, token: CancelationToken, direct: bool) -> None:
        self.operation._request(CancelationReason.PARENT, self.message, self.details, direct)  # pyright: ignore[reportPrivateUsage]


@final
class _Shield:
    """`with cancel.shield():` (or `async with`): a section no cancellation interrupts."""

    __slots__ = ("_scope",)

    def __init__(self) -> None:
        self._scope = anyio.CancelScope(shield=True)

    def __enter__(self) -> anyio.CancelScope:
        return self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return bool(self._scope.__exit__(exc_type, exc, tb))

    async def __aenter__(self) -> anyio.CancelScope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)


_Callback = Callable[..., Any]


class Cancelable:
    """An async context manager that runs one operation under one `anyio.CancelScope`.

    Every source given to it (a timeout, tokens, a parent, `cancel()`, later signals and
    conditions) trips that scope. How the block ends is recorded in `context` and reported by
    the exception that leaves the block:

    - the body finished: status `COMPLETED`, nothing raised;
    - the body raised `E`: status `FAILED`, `E` itself leaves the block;
    - one of its own sources cancelled it: status `CANCELLED`, the `CancelationError`
      subclass for the reason leaves the block (nothing, with `raise_on_cancel=False`);
    - an enclosing scope cancelled it: status `CANCELLED`, reason `PARENT`, and the backend's
      own cancellation exception goes on untouched, to the scope that owns it.

    Args:
        operation_id: the id of the operation; a random UUID if omitted.
        name: a human-readable name.
        parent: a parent operation; cancelling it cancels this one (reason `PARENT`).
        metadata: free-form data stored in `context.metadata`.
        register_globally: list the operation in `OperationRegistry.get_instance()` while
            its block runs; its final record then joins the registry's history.
        raise_on_cancel: raise a `CancelationError` when its own sources cancel it (the
            default), or end the block quietly like `anyio.move_on_after`.

    Raises:
        TypeError: an argument has the wrong type.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_context",
        "_ctx_token",
        "_deadline",
        "_deadline_mono",
        "_detached",
        "_enclosing",
        "_parent",
        "_parent_link",
        "_raise_on_cancel",
        "_register_globally",
        "_requests",
        "_scope",
        "_sources",
        "_streams",
        "_task_group",
        "_timeout",
        "_token",
        "_tokens",
        "_waker",
    )

    def __init__(
        self,
        operation_id: str | None = None,
        name: str | None = None,
        parent: Cancelable | None = None,
        metadata: Mapping[str, Any] | None = None,
        register_globally: bool = False,
        raise_on_cancel: bool = True,
    ) -> None:
        if operation_id is not None or name is not None:  # most operations have neither
            check_optional_str("operation_id", operation_id)
            check_optional_str("name", name)
        if parent is not None and not isinstance(parent, Cancelable):
            raise TypeError(f"parent must be a Cancelable or None, got {parent!r}")
        self._context = OperationContext(
            id=operation_id,
            name=name,
            metadata=None if metadata is None else check_metadata(metadata),
            parent_id=None if parent is None else parent.operation_id,
        )
        if register_globally is not False or raise_on_cancel is not True:  # not the defaults
            check_bool("register_globally", register_globally)
            check_bool("raise_on_cancel", raise_on_cancel)
        self._register_globally = register_globally
        self._raise_on_cancel = raise_on_cancel
        self._parent = parent
        self._timeout: float | None = None
        # Tokens that cancel this operation with their own reason and message; it listens to
        # them itself, keyed by itself (no object per link). Most operations have none, or
        # one, kept bare: no tuple per operation for the collector to walk. See `_listened`.
        self._tokens: CancelationToken | tuple[CancelationToken, ...] = ()
        self._parent_link: _ParentLink | None = None  # made as the block starts
        self._sources: tuple[CancelationSource, ...] = ()
        self._task_group: anyio.abc.TaskGroup | None = None  # where sources run
        self._callbacks: dict[str, list[_Callback]] | None = None
        # Cancellation requests; the first one appended is what the block reports. Appending
        # is atomic, so any thread or a signal handler may request without a lock.
        self._requests: list[Request] = []
        self._deadline = _INF  # on the loop's clock
        self._deadline_mono = _INF  # the same on time.monotonic(), for other threads
        self._token: CancelationToken | None = None
        self._scope: anyio.CancelScope | None = None
        self._waker: LoopWaker | None = None
        self._enclosing: Cancelable | None = None
        self._ctx_token: Token[Cancelable | None] | None = None
        self._streams: list[CancelableAsyncIterator[Any]] | None = None  # closed at the end
        self._detached = False  # run step by step by a stream, not by an `async with` block

    # -- factories -----------------------------------------------------------------------------

    @classmethod
    def with_timeout(
        cls,
        timeout: float | timedelta,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Unpack[_Options],
    ) -> Self:
        """An operation cancelled `timeout` after its block is entered (reason `TIMEOUT`).

        The deadline is the cancel scope's own: no task, no timer thread. The block then
        raises `TimeoutCancelation`, which is also a `TimeoutError`.

        Raises:
            TypeError: `timeout` is not a number of seconds or a `timedelta`.
            ValueError: `timeout` is zero, negative, NaN or infinite.
        """
        seconds = check_timeout(timeout)
        cancelable = cls(operation_id=operation_id, name=name, **kwargs)
        cancelable._timeout = seconds
        return cancelable

    @classmethod
    def with_token(
        cls,
        token: CancelationToken,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Unpack[_Options],
    ) -> Self:
        """An operation cancelled when `token` is, with the token's reason and message.

        Raises:
            TypeError: `token` is not a `CancelationToken`.
        """
        if not isinstance(token, CancelationToken):
            raise TypeError(f"token must be a CancelationToken, got {token!r}")
        cancelable = cls(operation_id=operation_id, name=name, **kwargs)
        cancelable._tokens = token
        return cancelable

    @classmethod
    def with_signal(
        cls,
        *signals: int,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Unpack[_Options],
    ) -> Self:
        """An operation cancelled when one of `signals` arrives (default SIGINT and SIGTERM).

        The block raises `SignalCancelation` (`signal_number`), reason `SIGNAL`; Ctrl-C
        becomes that instead of a `KeyboardInterrupt` while the block runs, and the previous
        handlers are back when it ends. See `SignalSource`.

        Raises:
            TypeError, ValueError: a signal is not a known, catchable signal number.
        """
        source = SignalSource(*signals)
        return cls(operation_id=operation_id, name=name, **kwargs).add_source(source)

    @classmethod
    def with_condition(
        cls,
        predicate: Callable[[], Any],
        check_interval: float = 0.1,
        condition_name: str | None = None,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Unpack[_Options],
    ) -> Self:
        """An operation cancelled once `predicate()` (sync or async) returns true.

        It is checked as the block starts and every `check_interval` seconds; the block then
        raises `ConditionCancelation` (`condition_name`), reason `CONDITION`. See
        `ConditionSource`, also for a predicate that raises.

        Raises:
            TypeError: `predicate` is not callable.
            ValueError: `check_interval` is not a positive, finite number.
        """
        source = ConditionSource(predicate, check_interval, condition_name)
        return cls(operation_id=operation_id, name=name, **kwargs).add_source(source)

    def add_source(self, source: CancelationSource) -> Self:
        """Add a cancellation source that runs as a task while the block runs.

        Raises:
            TypeError: `source` is not a `CancelationSource`.
            RuntimeError: the operation was already entered.
        """
        if not isinstance(source, CancelationSource):
            raise TypeError(f"source must be a CancelationSource, got {source!r}")
        self._require_pending("add_source")
        self._sources = (*self._sources, source)
        return self

    def combine(self, *others: Cancelable) -> Cancelable:
        """A new operation cancelled by this one or any of `others`, with its reason.

        Timeouts, tokens and sources are merged, and the earliest timeout wins. Cancelling
        one of the originals (`cancel()`, its token) cancels the combination.

        Raises:
            TypeError: one of `others` is not a `Cancelable`.
        """
        for index, other in enumerate(others):
            if not isinstance(other, Cancelable):
                raise TypeError(f"others[{index}] must be a Cancelable, got {other!r}")
        members = (self, *others)
        combined = Cancelable(
            name=self._context.name,
            parent=self._parent,
            metadata=self._context.metadata,
            register_globally=self._register_globally,
            raise_on_cancel=self._raise_on_cancel,
        )
        timeouts = [m._timeout for m in members if m._timeout is not None]
        combined._timeout = min(timeouts) if timeouts else None
        # Each token listened to once: a token two members share requests once.
        tokens = [t for member in members for t in (*member._listened(), member.token)]
        combined._tokens = tuple(dict.fromkeys(tokens))
        combined._sources = tuple(source for member in members for source in member._sources)
        return combined

    # -- callbacks -----------------------------------------------------------------------------

    def _add_callback(self, kind: str, callback: _Callback) -> Self:
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        if self._callbacks is None:
            self._callbacks = {}
        self._callbacks.setdefault(kind, []).append(callback)
        return self

    def on_start(self, callback: Callable[[OperationContext], Any]) -> Self:
        """Call `callback(context)` (sync or async) when the block is entered."""
        return self._add_callback("start", callback)

    def on_complete(self, callback: Callable[[OperationContext], Any]) -> Self:
        """Call `callback(context)` (sync or async) when the block finishes normally."""
        return self._add_callback("complete", callback)

    def on_cancel(self, callback: Callable[[OperationContext], Any]) -> Self:
        """Call `callback(context)` (sync or async) when the block ends by cancellation."""
        return self._add_callback("cancel", callback)

    def on_error(self, callback: Callable[[OperationContext, BaseException], Any]) -> Self:
        """Call `callback(context, error)` (sync or async) when the body raises."""
        return self._add_callback("error", callback)

    def on_progress(self, callback: Callable[[str, Any, dict[str, Any] | None], Any]) -> Self:
        """Call `callback(operation_id, message, metadata)` on each `report_progress`."""
        return self._add_callback("progress", callback)

    async def _run_callbacks(self, kind: str, *args: Any) -> None:
        callbacks = self._callbacks.get(kind) if self._callbacks is not None else None
        if callbacks:
            with anyio.CancelScope(shield=True):
                for callback in callbacks:
                    await call_logged(callback, *args)

    async def report_progress(self, message: Any, metadata: dict[str, Any] | None = None) -> None:
        """Call the progress callbacks with `(operation_id, message, metadata)`.

        Raises:
            TypeError: `metadata` is neither a dict nor None.
        """
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict or None, got {metadata!r}")
        await self._run_callbacks("progress", self._context.id, message, metadata)

    # -- state ---------------------------------------------------------------------------------

    @property
    def context(self) -> OperationContext:
        """The operation's record: status, reason, message, error, partial result."""
        return self._context

    @property
    def operation_id(self) -> str:
        """The operation's id."""
        return self._context.id

    @property
    def parent(self) -> Cancelable | None:
        """The parent operation given at construction, if any."""
        return self._parent

    @property
    def is_running(self) -> bool:
        """True while the block runs."""
        return self._context.status is OperationStatus.RUNNING

    @property
    def is_completed(self) -> bool:
        """True once the block finished normally."""
        return self._context.status is OperationStatus.COMPLETED

    @property
    def is_cancelled(self) -> bool:
        """True from the moment a cancellation of the operation is requested.

        That includes its own deadline passing and an enclosing `Cancelable` being cancelled,
        so `while not cancel.is_cancelled:` loops stop.
        """
        if self._requests:  # every cancelled operation has one
            return True
        status = self._context.status
        if status is not OperationStatus.RUNNING:
            return False
        if self._deadline_passed() or self._due_parent_link() is not None:
            return True
        return self._enclosing is not None and self._enclosing.is_cancelled

    @property
    def token(self) -> CancelationToken:
        """A token that is cancelled when this operation's cancellation is requested.

        Hand it to code that only observes (`token.check()`, `Cancelable.with_token(...)`),
        including code running in other threads.
        """
        token = self._token
        if token is None:
            token = self._token = _OperationToken(self)
            if self._requests:
                first = self._requests[0]
                token._request(first.reason, first.message, False)  # pyright: ignore[reportPrivateUsage]
        return token

    def __repr__(self) -> str:
        name = f" {self._context.name!r}" if self._context.name else ""
        return f"<Cancelable {self._context.id}{name} {self._context.status.value}>"

    # -- requesting ----------------------------------------------------------------------------

    async def cancel(
        self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None
    ) -> bool:
        """Request the cancellation of this operation; True if this was the first request.

        From the loop running the block, the scope is cancelled before this returns; the
        block ends at its next checkpoint. Works before entry too: the block is then
        cancelled as soon as it starts. It is not itself a checkpoint.
        """
        return self._request(check_reason(reason), check_message(message), None, True)

    def cancel_sync(
        self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None
    ) -> bool:
        """Request the cancellation from any thread or a signal handler, without blocking.

        `is_cancelled` is True at once; the scope is cancelled on the block's own loop at its
        next turn.
        """
        return self._request(check_reason(reason), check_message(message), None, False)

    def _request(
        self,
        reason: CancelationReason,
        message: str | None,
        details: dict[str, Any] | None,
        direct: bool,
    ) -> bool:
        """Record a request; if it is the first, cancel the scope. True if it was the first.

        Safe from any thread and from signal handlers. `direct` says the caller is async code,
        so on the block's own loop thread the scope is cancelled right here; otherwise the
        cancellation is queued to that loop.
        """
        return self._ask(Request(reason, message, details), direct)

    def _ask(self, request: Request, direct: bool) -> bool:
        """`_request` with the record made: tokens share one among their operations."""
        if self._context.is_terminal:
            return False
        won = True
        if self._deadline_passed():
            # The deadline has passed, so it came first, even if its timer has not fired yet.
            request = Request(CancelationReason.TIMEOUT, self._timeout_message(), None)
            won = False
        elif request.reason is not CancelationReason.PARENT and (link := self._due_parent_link()):
            # The parent's deadline has passed: its cancellation came first.
            request = Request(CancelationReason.PARENT, link.message, link.details)
            won = False
        if not self._append(request):
            return False
        waker = self._waker  # read after the append: __aenter__ sets it, then looks at requests
        if waker is not None:
            if direct and get_ident() == waker.thread_id:
                # `_trip()` inline: trio's pending Cancelled keeps every frame of this call
                # stack alive until the task runs, so one frame less per operation counts
                # when a token cancels thousands.
                scope = self._scope
                if scope is not None and self._context.status is OperationStatus.RUNNING:
                    scope.cancel()
            else:
                waker.call_soon(self._trip)
        self._notify_token()
        return won

    def _record(
        self, reason: CancelationReason, message: str | None, details: dict[str, Any] | None
    ) -> bool:
        """Append a request; True if it is the first."""
        return self._append(Request(reason, message, details))

    def _append(self, request: Request) -> bool:
        requests = self._requests
        requests.append(request)
        return requests[0] is request

    def _notify_token(self) -> None:
        # Children linked to this operation listen on its token: tell them after the own scope.
        token = self._token
        if token is not None and not token.is_cancelled:
            first = self._requests[0]
            token._request(first.reason, first.message, False)  # pyright: ignore[reportPrivateUsage]

    def _trip(self) -> None:
        scope = self._scope
        if scope is not None and self._context.status is OperationStatus.RUNNING:
            scope.cancel()

    def _deadline_passed(self) -> bool:
        waker = self._waker
        if waker is None or self._deadline == _INF:
            return False
        if get_ident() == waker.thread_id:
            return anyio.current_time() >= self._deadline  # the loop's own clock
        return time.monotonic() >= self._deadline_mono  # another thread: the same instant

    def _due_parent_link(self) -> _ParentLink | None:
        """The link to the parent, once the parent's deadline has passed; else None.

        The parent's token hears of its deadline only as its block ends.
        """
        link, parent = self._parent_link, self._parent
        if (
            link is not None
            and parent is not None
            and parent._context.status is OperationStatus.RUNNING
            and parent._deadline_passed()
        ):
            return link
        return None

    def _record_passed_deadline(self) -> None:
        """The block ended without a checkpoint after a deadline: record that it was due."""
        if self._deadline_passed() and not self._enclosing_cancelled_before_deadline():
            self._record(CancelationReason.TIMEOUT, self._timeout_message(), None)
        elif (link := self._due_parent_link()) is not None:
            self._record(CancelationReason.PARENT, link.message, link.details)

    def _cancelled_since(self) -> float:
        """When its cancellation began or will begin, on time.monotonic()."""
        requests = self._requests
        return min(requests[0].at if requests else _INF, self._deadline_mono)

    def _enclosing_cancelled_before_deadline(self) -> bool:
        # Only enclosing operations can tell; a plain anyio scope does not say when.
        enclosing = self._enclosing
        while enclosing is not None:
            if enclosing._cancelled_since() < self._deadline_mono:
                return True
            enclosing = enclosing._enclosing
        return False

    def _timeout_message(self) -> str:
        return f"operation timed out after {self._timeout:g} s"

    # -- the block -----------------------------------------------------------------------------

    def _require_pending(self, what: str) -> None:
        if self._context.status is not OperationStatus.PENDING:
            raise RuntimeError(
                f"{what}: {self!r} was already entered; a Cancelable runs one block, "
                "create a new one for each operation"
            )

    async def __aenter__(self) -> Self:
        if self._context.status is not OperationStatus.PENDING:
            self._require_pending("async with")
        waker = current_waker()
        if self._sources:
            # May refuse the block (a signal source off the main thread): nothing is set up yet.
            attach_all(self._sources, self._source_fired)
        enclosing = _current.get()
        if self._timeout is None:
            deadline = scope_deadline = _INF
        else:
            deadline = scope_deadline = anyio.current_time() + self._timeout
            self._deadline_mono = time.monotonic() + self._timeout
        if self._parent is not None:
            scope_deadline = min(scope_deadline, self._parent_deadline(enclosing))
        # Without a deadline, no keyword: anyio passes keywords on through two more calls.
        scope = (
            anyio.CancelScope()
            if scope_deadline == _INF
            else anyio.CancelScope(deadline=scope_deadline)
        )
        self._deadline, self._scope, self._enclosing = deadline, scope, enclosing
        self._waker = waker
        scope.__enter__()
        self._ctx_token = _current.set(self)
        context = self._context
        context.status = OperationStatus.RUNNING
        context._started = time.time()  # pyright: ignore[reportPrivateUsage]
        if self._register_globally:
            OperationRegistry.get_instance().register_sync(self)
        if self._requests:
            scope.cancel()
        self._arm_links()
        if deadline != _INF and self._token is not None:
            self._lend_deadline()
        if self._sources:
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
            self._task_group = task_group
            for source in self._sources:
                task_group.start_soon(source._run, name=f"{self!r}: {source!r}")  # pyright: ignore[reportPrivateUsage]
        if self._callbacks is not None:
            await self._run_callbacks("start", context)
        return self

    def _parent_deadline(self, enclosing: Cancelable | None) -> float:
        """The parent's deadline on this loop's clock, when this block runs outside its block.

        Inside it, the parent's own scope cancels this block in time; outside, its token learns
        of the deadline only when its block ends, so this block keeps the deadline itself.
        """
        parent = self._parent
        if parent is None or parent._deadline_mono == _INF or not parent.is_running:
            return _INF
        while enclosing is not None:
            if enclosing is parent:
                return _INF
            enclosing = enclosing._enclosing
        return anyio.current_time() + (parent._deadline_mono - time.monotonic())

    def _lend_deadline(self) -> None:
        """Children that linked to this operation before its block began keep its deadline too.

        They run outside this block (they were entered first), on this loop or another one.
        """
        assert self._token is not None
        for listener in list(self._token._registrations.values()):  # pyright: ignore[reportPrivateUsage]
            if isinstance(listener, _ParentLink) and listener.operation._parent is self:
                listener.operation._keep_deadline(self._deadline, self._waker)

    def _keep_deadline(self, deadline: float, waker: LoopWaker | None) -> None:
        # On the same loop only: its clock, and a scope is only touched from its own thread.
        scope = self._scope
        if scope is not None and waker is self._waker and deadline < scope.deadline:
            scope.deadline = deadline

    def _source_fired(
        self, source: CancelationSource, message: str | None, details: dict[str, Any]
    ) -> bool:
        # Not direct: a signal source reports from its handler, where only queuing is safe.
        return self._request(source.reason, message, details or None, False)

    def _fire(self, token: CancelationToken, direct: bool) -> None:
        """One of `_tokens` was cancelled: request this operation's, with its reason."""
        # The token's first request is this operation's too: no record per operation.
        self._ask(token._outcomes[0], direct)  # pyright: ignore[reportPrivateUsage]

    def _listened(self) -> tuple[CancelationToken, ...]:
        """The tokens this operation listens to."""
        tokens = self._tokens
        return (tokens,) if isinstance(tokens, CancelationToken) else tokens

    def _disarm_links(self) -> None:
        for token in self._listened():
            token._remove(self)  # pyright: ignore[reportPrivateUsage]
        if self._parent_link is not None:
            _disarm(self._parent_link)

    def _arm_links(self) -> None:
        for token in self._listened():
            if token._outcomes:  # pyright: ignore[reportPrivateUsage]  # cancelled already
                self._fire(token, True)
            else:
                token._listen(self, self)  # pyright: ignore[reportPrivateUsage]
        parent = self._parent
        if parent is not None:
            self._parent_link = link = _ParentLink(self, parent)
            _arm(link)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._context.status is not OperationStatus.RUNNING or _current.get() is not self:
            raise RuntimeError(
                f"{self!r} is not the innermost running operation of this task: a Cancelable "
                "must be exited once, by the task that entered it, innermost first"
            )
        assert self._ctx_token is not None
        assert self._scope is not None
        try:
            _current.reset(self._ctx_token)
        except ValueError:
            raise RuntimeError(
                f"{self!r} was entered in another task: a Cancelable must be exited by the "
                "task that entered it"
            ) from None
        self._disarm_links()
        task_group = self._task_group
        adopted: BaseException | None = None  # raised by the sources' group, in place of exc
        body_finished = exc is None
        if task_group is not None:
            self._task_group = None
            task_group.cancel_scope.cancel()
            try:
                # Not given the body's exception, so the group never wraps it.
                await task_group.__aexit__(None, None, None)
            except BaseException as met:
                # A cancellation delivered while sources wound down, or what a source raised
                # past its own handling (KeyboardInterrupt, SystemExit): that goes on, even
                # over the Cancelled the group sent the body when it happened.
                if exc is None or (_is_cancellation(exc) and not _is_cancellation(met)):
                    adopted = _sole(met)
                    exc_type, exc, tb = type(adopted), adopted, adopted.__traceback__
            finally:
                detach_all(self._sources)
            # Waiting there, this task may have been resumed by a thrown Cancelled, and an
            # error raised in such a step gets chained to it; go on in a plain step instead.
            await anyio.lowlevel.cancel_shielded_checkpoint()

        replaced: BaseException | None = None
        try:
            # True when the scope swallowed the exception (trio also says True for none).
            caught = bool(self._scope.__exit__(exc_type, exc, tb)) and exc is not None
        except BaseException as new:  # the scope stripped its Cancelled from a group
            caught, exc, replaced = False, new, new
        if adopted is not None and not caught and replaced is None:
            replaced = adopted  # not the exception Python would raise again: raise it here

        suppress = False
        raising: CancelationError | None = None
        if caught and body_finished:
            # The body finished before any checkpoint saw the cancellation; only the sources'
            # teardown did, and the scope swallowed that: completed, as without sources.
            status = OperationStatus.COMPLETED
        elif caught:
            if not self._requests:  # nothing asked for it: a deadline did, its own or its parent's
                if self._deadline_passed() or self._parent_link is None:
                    self._record(CancelationReason.TIMEOUT, self._timeout_message(), None)
                else:
                    link = self._parent_link
                    self._record(CancelationReason.PARENT, link.message, link.details)
            if _PARENT_KEY in (self._requests[0].details or ()):
                try:
                    await anyio.lowlevel.checkpoint_if_cancelled()
                except anyio.get_cancelled_exc_class():
                    # The parent's scope encloses this block: its cancellation goes on,
                    # untouched, to the scope that owns it (row 8 of the exit table).
                    await self._finish(OperationStatus.CANCELLED, None)
                    raise
            status = OperationStatus.CANCELLED
            if self._raise_on_cancel:
                raising = self._error()
            else:
                suppress = True
        elif body_finished and adopted is not None and _is_cancellation(adopted):
            # An enclosing cancellation reached the sources' teardown, after the body finished:
            # it goes on (the exit waited there), and the operation's work was completed.
            status = OperationStatus.COMPLETED
        else:
            status = OperationStatus.COMPLETED if exc is None else self._status_for(exc)
            own_error = status is OperationStatus.CANCELLED and isinstance(exc, CancelationError)
            suppress = own_error and not self._raise_on_cancel

        if (
            status is not OperationStatus.CANCELLED
            and not self._requests
            and (self._deadline != _INF or self._parent_link is not None)
        ):
            self._record_passed_deadline()  # finished (or failed), yet a deadline was due
        if self._streams or self._callbacks is not None:
            await self._finish(status, exc)
        else:
            self._end(status)
        if raising is not None:
            _raise_unchained(raising)
        if replaced is not None:
            raise replaced
        return suppress

    def _status_for(self, exc: BaseException | None) -> OperationStatus:
        """How the operation ended when its scope caught nothing: `exc` left the body."""
        if exc is None:
            return OperationStatus.COMPLETED
        if isinstance(exc, CancelationError) and (exc.context is self._context or self._requests):
            # Raised by check_cancelation() or a token's check(), or an inner operation's report
            # of a cancellation this one was asked for too (the same signal, say): it goes on,
            # carrying this operation's record if it had none.
            if exc.context is None:
                exc.context = self._context
            if not self._requests:  # raised by hand, carrying this record: it is the request
                self._record(exc.reason, exc.message, None)
            return OperationStatus.CANCELLED
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            if not self._requests:
                if self._deadline_passed() and not self._enclosing_cancelled_before_deadline():
                    # Its own deadline came first; the enclosing cancellation goes on.
                    self._record(CancelationReason.TIMEOUT, self._timeout_message(), None)
                else:
                    self._record(CancelationReason.PARENT, "cancelled by an enclosing scope", None)
            return OperationStatus.CANCELLED
        self._context.error = str(exc)
        return OperationStatus.FAILED

    async def _finish(self, status: OperationStatus, exc: BaseException | None) -> None:
        """Close the streams, record how the block ended, and run the exit callbacks."""
        streams = self._streams
        if streams:
            self._streams = None
            for stream in streams:
                await stream._block_ended()  # pyright: ignore[reportPrivateUsage]
        self._end(status)
        context = self._context
        if self._callbacks is not None:
            if status is OperationStatus.COMPLETED:
                await self._run_callbacks("complete", context)
            elif status is OperationStatus.CANCELLED:
                await self._run_callbacks("cancel", context)
            else:
                assert exc is not None
                await self._run_callbacks("error", context, exc)

    def _end(self, status: OperationStatus) -> None:
        """Record how the block ended: status, time, reason; tell the children; let go."""
        context = self._context
        context.status = status
        context._ended = time.time()  # pyright: ignore[reportPrivateUsage]
        if status is OperationStatus.CANCELLED:
            first = self._requests[0]
            context.cancel_reason, context.cancel_message = first.reason, first.message
        if self._requests:
            self._notify_token()
        self._waker = None
        if self._register_globally:
            OperationRegistry.get_instance()._unregister(self)  # pyright: ignore[reportPrivateUsage]

    # -- run step by step, by a stream that owns the operation ---------------------------------

    async def _start_detached(self) -> None:
        if self._sources:
            raise RuntimeError(
                f"{self!r} has sources, which run as tasks of its block: enter it with "
                "`async with` and iterate `cancel.stream(...)` inside the block"
            )
        self._waker = current_waker()
        if self._timeout is not None:
            self._deadline = anyio.current_time() + self._timeout
            self._deadline_mono = time.monotonic() + self._timeout
        context = self._context
        context.status = OperationStatus.RUNNING
        context._started = time.time()  # pyright: ignore[reportPrivateUsage]
        if self._register_globally:
            OperationRegistry.get_instance().register_sync(self)
        self._detached = True
        self._arm_links()
        if self._callbacks is not None:
            await self._run_callbacks("start", context)

    def _expire_if_due(self) -> None:
        # From any thread: the deadline, read on time.monotonic(), has passed.
        if (
            not self._requests
            and self._context.status is OperationStatus.RUNNING
            and time.monotonic() >= self._deadline_mono
        ):
            self._request(CancelationReason.TIMEOUT, self._timeout_message(), None, False)

    def _due(self) -> bool:
        """A request was made or the deadline passed (then recorded as one): stop now."""
        if not self._requests and self._deadline_passed():
            self._request(CancelationReason.TIMEOUT, self._timeout_message(), None, True)
        return bool(self._requests)

    def _open_step(self) -> anyio.CancelScope:
        self._scope = scope = anyio.CancelScope(deadline=self._deadline)
        return scope

    def _close_step(self) -> None:
        self._scope = None

    async def _end_detached(
        self, exc: BaseException | None, cancelled: bool = False
    ) -> CancelationError | None:
        """End the operation a stream ran; the error to raise for its own cancellation."""
        if not self._detached:
            return None
        self._detached = False
        self._disarm_links()
        error: CancelationError | None = None
        if cancelled:
            if not self._requests:  # the step's scope caught its deadline
                self._record(CancelationReason.TIMEOUT, self._timeout_message(), None)
            status = OperationStatus.CANCELLED
            if self._raise_on_cancel:
                error = self._error()
        else:
            status = self._status_for(exc)
        await self._finish(status, exc)
        return error

    def _abandon_detached(self) -> None:
        self._detached = False
        self._disarm_links()
        self._waker = None

    def _error(self) -> CancelationError:
        first = self._requests[0]
        return error_for(first.reason, first.message, self._context, **(first.details or {}))

    # -- inside the block ----------------------------------------------------------------------

    def stream(
        self,
        iterator: AsyncIterable[T],
        report_interval: int | None = None,
        buffer_partial: bool = True,
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
    ) -> CancelableAsyncIterator[T]:
        """Iterate `iterator` inside this block: items pass through, progress is counted.

        ```python
        async with Cancelable.with_timeout(60) as cancel:
            async for item in cancel.stream(source(), report_interval=100):
                await process(item)
        ```

        `context.partial_result` becomes `{"count", "buffer", "completed"}`, up to date
        however the block ends; `buffer` keeps the newest `buffer_limit` items (unless
        `buffer_partial` is False). Every `report_interval` items the progress callbacks get
        `"Processed N items"` with `{"count": N, "latest_item": item}`. Left early, the source
        is closed when the block ends. See `CancelableAsyncIterator`.
        """
        return CancelableAsyncIterator(
            iterator, self, report_interval, buffer_partial, buffer_limit
        )

    async def run_in_thread(
        self, fn: Callable[..., T], *args: Any, abandon_on_cancel: bool = False, **kwargs: Any
    ) -> T:
        """Run `fn(*args, **kwargs)` in a worker thread, as part of this operation.

        The thread gets a copy of the caller's context variables (nothing leaks into the
        pool thread's later jobs), in which `current_operation()` is this operation. It sees
        the cancellation: `current_operation().token.check()` raises the operation's
        `CancelationError` (the deadline included) and `anyio.from_thread.check_cancelled()`
        raises the backend's cancellation, so `fn` can stop early.

        By default the await waits for `fn` to return, however long that takes, then the
        block ends as cancelled. With `abandon_on_cancel=True` it returns at once on
        cancellation and leaves the thread to finish on its own (its result is dropped).

        Raises:
            TypeError: `fn` is not callable.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        check_bool("abandon_on_cancel", abandon_on_cancel)
        return await run_in_thread(self, fn, args, kwargs, abandon_on_cancel)

    def _adopt_stream(self, stream: CancelableAsyncIterator[Any]) -> None:
        if self._streams is None:
            self._streams = []
        self._streams.append(stream)

    async def check_cancelation(self) -> None:
        """A checkpoint that raises this operation's `CancelationError` if it is cancelled.

        When an enclosing scope cancelled it, the backend's cancellation is raised instead, as
        at any checkpoint.
        """
        if not self._requests and self._deadline_passed():
            self._request(CancelationReason.TIMEOUT, self._timeout_message(), None, True)
        if self._requests:
            raise self._error()
        await anyio.lowlevel.checkpoint()
        if self._requests:
            raise self._error()

    def shield(self) -> _Shield:
        """A section no cancellation can interrupt: `with cancel.shield():` (or `async with`).

        The operation still records any request made meanwhile, and is cancelled at its next
        checkpoint after the section.
        """
        return _Shield()

    def wrap(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """`fn` as a coroutine function that first checks this operation's cancellation.

        Made for retry loops (tenacity, stamina): once the operation is cancelled, the next
        attempt raises its `CancelationError` instead of running.

        Raises:
            TypeError: `fn` is not callable.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")

        @wraps(fn)
        async def checked(*args: P.args, **kwargs: P.kwargs) -> T:
            await self.check_cancelation()
            return await fn(*args, **kwargs)

        return checked

    @asynccontextmanager
    async def wrapping(self) -> AsyncGenerator[Callable[..., Awaitable[Any]]]:
        """`async with cancel.wrapping() as call:` then `await call(fn, *args, **kwargs)`.

        Each call first checks this operation's cancellation, like `wrap`.
        """

        async def call(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
            return await self.wrap(fn)(*args, **kwargs)

        yield call


def _arm(link: _ParentLink) -> None:
    token = link.token
    if token.is_cancelled:
        link._fire(token, True)  # pyright: ignore[reportPrivateUsage]
    else:
        link.registered = True
        token._listen(link, link)  # pyright: ignore[reportPrivateUsage]  # the link is its own key


def _disarm(link: _ParentLink) -> None:
    if link.registered:
        link.registered = False
        link.token._remove(link)  # pyright: ignore[reportPrivateUsage]


def bind_current(operation: Cancelable) -> None:
    """Make `operation` the current one in this context (a worker thread's copy, say)."""
    _current.set(operation)


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        inner = cast("BaseExceptionGroup[BaseException]", exc).exceptions
        return all(_is_cancellation(one) for one in inner)
    return isinstance(exc, anyio.get_cancelled_exc_class())


def _sole(exc: BaseException) -> BaseException:
    """The one exception of a group of one (a source's KeyboardInterrupt, bare as on asyncio)."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    inner = cast("BaseExceptionGroup[BaseException]", exc).exceptions
    return _sole(inner[0]) if len(inner) == 1 else cast("BaseException", exc)


def _raise_unchained(error: BaseException) -> NoReturn:
    # Raised inside __aexit__, the error would be chained to the backend's Cancelled; drop it.
    try:
        raise error
    finally:
        error.__context__ = None
