"""The Cancelable: one operation, one cancel scope, many ways to cancel it.

Its parts live beside it: the requests it takes (`_request.py`), its deadline
(`_deadline.py`), its own token and the link to a parent (`_links.py`), the exit table
(`_ending.py`) and the current-operation variable (`_current.py`). This module composes them:
the factories and options, the requests, and one life shared by an `async with` block and by
a stream that runs the operation item by item (`_begin` and `_end`).
"""

from __future__ import annotations

import sys
import time
from _thread import get_ident
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from contextlib import asynccontextmanager
from contextvars import Token
from functools import wraps
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, Self, TypeVar, final

import anyio

if TYPE_CHECKING:  # at run time anyio imports its submodules on first use
    from collections.abc import Coroutine
    from datetime import datetime, timedelta
    from typing import TypedDict, Unpack

    import anyio.abc
    import anyio.lowlevel

    from ._ending import Ended, Ending
    from ._exceptions import CancelationError

    class _Options(TypedDict, total=False):
        """The keyword arguments the factories pass on to `Cancelable`."""

        parent: Cancelable | None
        metadata: Mapping[str, Any] | None
        register_globally: bool
        raise_on_cancel: bool


from ._callbacks import Callback, Callbacks
from ._checks import (
    check_aware_datetime,
    check_bool,
    check_deadline,
    check_message,
    check_metadata,
    check_optional_str,
    check_reason,
    check_timeout,
)
from ._context import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    CancelationReason,
    OperationContext,
    OperationStatus,
)
from ._current import current
from ._deadline import Deadline, NamedDeadline
from ._ending import (
    CANCELLED_OUTSIDE,
    CAUGHT,
    ENCLOSING,
    FINISHED,
    RAISE,
    RAISED,
    RAISED_OWN,
    SUPPRESS,
    ending,
    is_cancellation,
    raise_unchained,
    sole,
)
from ._exceptions import CancelationError as _CancelationError
from ._hooks import active as hooks
from ._hooks import run_end, run_start
from ._links import OperationToken, ParentLink
from ._registry import OperationRegistry
from ._request import Request, Requests
from ._streams import DEFAULT_BUFFER_LIMIT, CancelableAsyncIterator, items_of
from ._threads import run_in_thread
from ._token import CancelationToken
from ._wakeup import LoopWaker, current_waker
from .sources._base import CancelationSource, attach_all, detach_all
from .sources._condition import ConditionSource
from .sources._signal import SignalSource

__all__ = ["Cancelable", "cancelable_stream"]

P = ParamSpec("P")
T = TypeVar("T")

_INF = float("inf")
_MISSING = Token.MISSING
_PARENT = CancelationReason.PARENT


@final
class _Shield:
    """`with cancel.shield():` (or `async with`): a section no cancellation interrupts.

    Leaving it normally raises the operation's cancellation requested meanwhile, so a loop
    of shielded steps stops between two steps; `async with` is a checkpoint there too. In a
    `finally` or `except` block, the exception on its way (often that very cancellation)
    goes on instead: a cleanup section never replaces it.
    """

    __slots__ = ("_check", "_raise_if_asked", "_scope")

    def __init__(
        self, raise_if_asked: Callable[[], None], check: Callable[[], Awaitable[None]]
    ) -> None:
        self._raise_if_asked = raise_if_asked  # the operation's, raising its cancellation
        self._check = check  # and its checkpoint
        self._scope = anyio.CancelScope(shield=True)

    def __enter__(self) -> anyio.CancelScope:
        return self._scope.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        suppressed = bool(self._scope.__exit__(exc_type, exc, tb))
        if exc is None and sys.exc_info()[1] is None:  # not in a `finally` of an exception
            self._raise_if_asked()
        return suppressed

    async def __aenter__(self) -> anyio.CancelScope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        suppressed = self.__exit__(exc_type, exc, tb)
        if exc is None and sys.exc_info()[1] is None:
            await self._check()
        return suppressed


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
        "_deadline",
        "_parent",
        "_parent_link",
        "_raise_on_cancel",
        "_register_globally",
        "_requests",
        "_reset",
        "_scope",
        "_sources",
        "_stepped",
        "_streams",
        "_task_group",
        "_timeout",
        "_token",
        "_tokens",
        "_until",
        "_waker",
    )

    # The message of a cancellation by an enclosing scope (reason `PARENT`).
    _cancelled_outside: ClassVar[str] = ENCLOSING

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
        # What the operation is made of: set by the factories, read as the block begins.
        self._timeout: float | None = None
        self._until: datetime | None = None  # a wall-clock deadline (`with_deadline`)
        self._parent = parent
        # Tokens that cancel this operation with their own reason and message; it listens to
        # them itself, keyed by itself (no object per link). Most operations have none, or
        # one, kept bare: no tuple per operation for the collector to walk. See `_listened`.
        self._tokens: CancelationToken | tuple[CancelationToken, ...] = ()
        self._sources: tuple[CancelationSource, ...] = ()
        self._callbacks: Callbacks | None = None
        # What asked it to stop; the first one is what the block reports.
        self._requests = Requests()
        self._token: OperationToken | None = None  # made when first read
        # While it runs (kept after, for what the record still answers).
        self._waker: LoopWaker | None = None  # its loop, for requests from other threads
        self._deadline: Deadline | None = None
        self._scope: anyio.CancelScope | None = None  # the block's, or the current step's
        self._reset: Token[Cancelable | None] | None = None  # the current-operation variable
        self._parent_link: ParentLink | None = None
        self._task_group: anyio.abc.TaskGroup | None = None  # where sources run
        self._streams: list[CancelableAsyncIterator[Any]] | None = None  # closed at the end
        self._stepped = False  # run item by item by a stream, not by an `async with` block

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
            ValueError: `timeout` is zero, negative, NaN or infinite, or too large to count.
        """
        seconds = check_timeout(timeout)
        cancelable = cls(operation_id=operation_id, name=name, **kwargs)
        cancelable._timeout = seconds
        return cancelable

    @classmethod
    def with_deadline(
        cls,
        when: datetime,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Unpack[_Options],
    ) -> Self:
        """An operation cancelled at the wall-clock instant `when` (reason `TIMEOUT`).

        `when` is an aware `datetime`; it is turned into a deadline on the loop's clock as the
        block is entered. One already past ends the block at its first checkpoint. The block
        raises `TimeoutCancelation`, whose message names the instant.

        Raises:
            TypeError: `when` is not a `datetime`.
            ValueError: `when` is naive (it has no time zone).
        """
        until = check_aware_datetime("when", when)
        cancelable = cls(operation_id=operation_id, name=name, **kwargs)
        cancelable._until = until
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

    def add_token(self, token: CancelationToken) -> Self:
        """Be cancelled also when `token` is, with the token's reason and message.

        `Cancelable.with_timeout(5).add_token(token)` is a timeout that the token can end
        early: one operation, one id. Adding a token it already listens to changes nothing.

        Raises:
            TypeError: `token` is not a `CancelationToken`.
            ValueError: `token` is this operation's own `token`.
            RuntimeError: the operation was already entered.
        """
        if not isinstance(token, CancelationToken):
            raise TypeError(f"token must be a CancelationToken, got {token!r}")
        if token is self._token:
            raise ValueError(
                f"token is this operation's own token, {token!r}: it cannot wait for itself"
            )
        self._require_pending("add_token")
        listened = self._listened()
        if token not in listened:
            self._tokens = (*listened, token) if listened else token
        return self

    def combine(self, *others: Cancelable, operation_id: str | None = None) -> Cancelable:
        """A new operation cancelled by this one or any of `others`, with its reason.

        Timeouts, tokens and sources are merged, and the earliest timeout wins. Cancelling
        one of the originals (`cancel()`, its token) cancels the combination, which is the
        one to enter: the originals never run.

        The combination has an id of its own (`operation_id`, or a new one: none of the
        members'); it keeps this operation's name, metadata, `parent`, `register_globally`
        and `raise_on_cancel`, and no callbacks: register them on it. To keep this
        operation's id and callbacks, use `add_token` or `add_source` on it instead.

        Raises:
            TypeError: one of `others` is not a `Cancelable`.
        """
        for index, other in enumerate(others):
            if not isinstance(other, Cancelable):
                raise TypeError(f"others[{index}] must be a Cancelable, got {other!r}")
        members = (self, *others)
        combined = Cancelable(
            operation_id,
            name=self._context.name,
            parent=self._parent,
            metadata=self._context.metadata,
            register_globally=self._register_globally,
            raise_on_cancel=self._raise_on_cancel,
        )
        timeouts = [m._timeout for m in members if m._timeout is not None]
        combined._timeout = min(timeouts) if timeouts else None
        instants = [m._until for m in members if m._until is not None]
        combined._until = min(instants) if instants else None
        # Each token listened to once: a token two members share requests once.
        tokens = [t for member in members for t in (*member._listened(), member.token)]
        combined._tokens = tuple(dict.fromkeys(tokens))
        combined._sources = tuple(source for member in members for source in member._sources)
        return combined

    # -- callbacks -----------------------------------------------------------------------------

    def _add_callback(self, kind: str, callback: Callback) -> Self:
        if self._callbacks is None:
            self._callbacks = Callbacks()
        self._callbacks.add(kind, callback)
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

    def on_progress(
        self,
        callback: Callable[[str, Any, dict[str, Any] | None], Any],
        *,
        include_children: bool = False,
    ) -> Self:
        """Call `callback(operation_id, message, metadata)` on each `report_progress`.

        With `include_children`, `callback` also hears the progress of every operation
        below this one: those made with `parent=` it, those whose block runs inside its
        block (nested, or in a task started there), and theirs in turn. The first argument
        is then the id of the operation that reported, so one callback can keep one line of
        progress for a whole crawl.

        Raises:
            TypeError: `callback` is not callable, or `include_children` is not a bool.
        """
        if include_children is not False:
            check_bool("include_children", include_children)
            self._add_callback("progress below", callback)
        return self._add_callback("progress", callback)

    async def report_progress(self, message: Any, metadata: dict[str, Any] | None = None) -> None:
        """Call the progress callbacks with `(operation_id, message, metadata)`.

        Then those of the operations above it that asked for their children's progress
        (`on_progress(..., include_children=True)`), nearest first.

        Raises:
            TypeError: `metadata` is neither a dict nor None.
        """
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict or None, got {metadata!r}")
        operation_id = self._context.id
        if self._callbacks is not None:
            await self._callbacks.run("progress", operation_id, message, metadata)
        seen: list[Cancelable] = [self]
        above = self._above()
        while above is not None and above not in seen:  # a parent may run inside its child
            if above._callbacks is not None:
                await above._callbacks.run("progress below", operation_id, message, metadata)
            seen.append(above)
            above = above._above()

    def _above(self) -> Cancelable | None:
        """The operation this one is a child of: its `parent`, else the one it runs in."""
        return self._parent if self._parent is not None else self._enclosing

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
        return self._context.status is RUNNING

    @property
    def is_completed(self) -> bool:
        """True once the block finished normally."""
        return self._context.status is COMPLETED

    @property
    def is_cancelled(self) -> bool:
        """True from the moment a cancellation of the operation is requested.

        That includes its own deadline passing and an enclosing `Cancelable` being cancelled,
        so `while not cancel.is_cancelled:` loops stop.
        """
        if self._requests:  # every cancelled operation has one
            return True
        if self._context.status is not RUNNING:
            return False
        deadline = self._deadline
        if (deadline is not None and deadline.passed()) or self._overdue_parent() is not None:
            return True
        enclosing = self._enclosing
        return enclosing is not None and enclosing.is_cancelled

    @property
    def deadline(self) -> float:
        """Its own deadline on anyio's clock (`anyio.current_time()`); `math.inf` for none.

        Like `trio.CancelScope.deadline`. It is `math.inf` before the block is entered (a
        timeout counts from entry). Inside the block it can be assigned, from the block's
        loop, to move the deadline earlier or later (`math.inf` removes it); when it passes,
        the block ends as by its own timeout (`TIMEOUT`). A deadline that has passed already
        has cancelled the operation: assigning another one then changes nothing.

        Raises:
            TypeError: the value assigned is not a number.
            ValueError: the value assigned is NaN.
            RuntimeError: assigned outside the running block, or from another thread.
        """
        deadline = self._deadline
        if deadline is None or self._context.status is PENDING:
            return _INF
        return deadline.when

    @deadline.setter
    def deadline(self, when: float) -> None:
        self._assign_deadline(check_deadline(when), None)

    def _assign_deadline(self, when: float, label: str | None) -> None:
        """Move its deadline to `when`; its passing then says `label` (None: "operation
        deadline passed" for a first deadline, else what the deadline says already)."""
        waker = self._waker
        if self._context.status is not RUNNING or waker is None:
            raise RuntimeError(
                f"deadline: {self!r} is not running; assign it inside its block (before it, "
                "use with_timeout() or with_deadline())"
            )
        if get_ident() != waker.thread_id:
            raise RuntimeError(f"deadline: assign it on the loop running {self!r}'s block")
        deadline = self._deadline
        if deadline is not None and deadline.passed():
            self._ask(deadline.request(), True)  # it came first: the block ends with it
            return
        if deadline is None:
            label = "operation deadline passed" if label is None else label
            deadline = NamedDeadline(when - anyio.current_time(), label)
            self._deadline = deadline
            if self._token is not None:
                self._token.deadline = deadline
        else:
            deadline.move_to(when)
            if label is not None and isinstance(deadline, NamedDeadline):
                deadline.label = label
        self._move_scope(deadline)

    def _move_scope(self, deadline: Deadline) -> None:
        scope = self._scope
        if scope is not None:
            scope.deadline = min(deadline.when, self._parent_deadline(self._enclosing))
        if self._token is not None:  # children linked from outside its block keep it too
            self._token.lend(deadline, self._waker)

    @property
    def remaining(self) -> float:
        """Seconds until the earliest deadline that can stop it; `math.inf` for none.

        Its own deadline, its running parents' (`parent=`), and, when read from inside its
        block on its loop, every enclosing scope's (`anyio.current_effective_deadline()`) and
        its sources' that know when they fire (`CancelationSource.fires_by()`).
        `0.0` once passed, never negative. Readable from any thread (`run_in_thread`):
        what to hand a blocking call or a driver that takes a timeout. `math.inf` before the
        block is entered.
        """
        if self._context.status is PENDING:
            return _INF
        nearest = _INF
        operation: Cancelable | None = self
        while operation is not None:
            deadline = operation._deadline
            if deadline is not None and (operation is self or operation.is_running):
                nearest = min(nearest, deadline.remaining)
            operation = operation._parent
        if self._inside_block():
            now = anyio.current_time()
            fires = min((source.fires_by() for source in self._sources), default=_INF)
            effective = min(anyio.current_effective_deadline(), fires) - now
            nearest = min(nearest, max(0.0, effective))
        return nearest

    def _inside_block(self) -> bool:
        """Is the caller inside this operation's running block, on its loop?"""
        waker = self._waker
        if self._context.status is not RUNNING or waker is None or get_ident() != waker.thread_id:
            return False
        operation = current.get()
        while operation is not None:
            if operation is self:
                return True
            operation = operation._enclosing
        return False

    @property
    def token(self) -> CancelationToken:
        """The operation's own token: cancelled whenever the operation is asked to stop.

        It carries the request's reason and message. Hand it to code that only observes
        (`token.check()`, `Cancelable.with_token(...)`), including code running in other
        threads. Cancelling it cancels this operation, and only this one, as `cancel()` does:
        it is not the token given to `with_token`.
        """
        return self._own_token()

    def _own_token(self) -> OperationToken:
        token = self._token
        if token is None:
            token = self._token = OperationToken(self)
            if self._context.status is RUNNING:
                token.deadline = self._deadline
            first = self._requests.first
            if first is not None:
                token.settle(first)
        return token

    def __repr__(self) -> str:
        name = f" {self._context.name!r}" if self._context.name else ""
        return f"<Cancelable {self._context.id}{name} {self._context.status.value}>"

    # -- requesting ----------------------------------------------------------------------------

    async def cancel(
        self,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
        propagate_to_children: bool | None = None,
    ) -> bool:
        """Request the cancellation of this operation; True if this was the first request.

        From the loop running the block, the scope is cancelled before this returns; the
        block ends at its next checkpoint. Works before entry too: the block is then
        cancelled as soon as it starts. It is not itself a checkpoint. Operations linked to
        it with `parent=`, and those running inside its block, are cancelled with it.

        `propagate_to_children` is 0.11's, accepted with a `DeprecationWarning`: children
        are always cancelled with their parent (in 0.11 too, whatever it said).
        """
        if propagate_to_children is not None:
            _warn_propagate(propagate_to_children)
        return self._ask(Request(check_reason(reason), check_message(message)), True)

    def cancel_sync(
        self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None
    ) -> bool:
        """Request the cancellation from any thread or a signal handler, without blocking.

        `is_cancelled` is True at once; the scope is cancelled on the block's own loop at its
        next turn.
        """
        return self._ask(Request(check_reason(reason), check_message(message)), False)

    def _ask(self, request: Request, direct: bool) -> bool:
        """Keep a request; if it is the first, cancel the scope. True if it was the first.

        Safe from any thread and from signal handlers. `direct` says the caller is async code,
        so on the block's own loop thread the scope is cancelled right here; otherwise the
        cancellation is queued to that loop. It is also how the operation hears of its tokens
        (a `Fire`, registered under the operation itself): a token's first request is the
        operation's too, with no record per operation.
        """
        status = self._context.status
        if status is not RUNNING and status is not PENDING:
            return False
        won = True
        deadline = self._deadline
        if deadline is not None and deadline.passed():
            # The deadline has passed, so it came first, even if its timer has not fired yet.
            request, won = deadline.request(), False
        elif (
            self._parent_link is not None
            and request.reason is not _PARENT
            and (link := self._overdue_parent())
        ):
            # The parent's deadline has passed: its cancellation came first.
            request, won = link.request(), False
        requests = self._requests
        if not requests.add(request):
            return False
        waker = self._waker  # read after the add: a block begins, then looks at its requests
        if waker is not None:
            if direct and get_ident() == waker.thread_id:
                # `_trip()` inline: trio's pending Cancelled keeps every frame of this call
                # stack alive until the task runs, so one frame less per operation counts
                # when a token cancels thousands.
                scope = self._scope
                if scope is not None and self._context.status is RUNNING:
                    scope.cancel()
            else:
                waker.call_soon(self._trip)
        token = self._token
        if token is not None:  # children linked to this operation listen on it
            token.settle(requests[0])
        return won

    def _source_fired(
        self, source: CancelationSource, message: str | None, details: dict[str, Any]
    ) -> bool:
        # Not direct: a signal source reports from its handler, where only queuing is safe.
        return self._ask(Request(source.reason, message, details or None), False)

    def _trip(self) -> None:
        scope = self._scope
        if scope is not None and self._context.status is RUNNING:
            scope.cancel()

    def _overdue_parent(self) -> ParentLink | None:
        """The link to the parent, once the parent's deadline has passed; else None.

        The parent's token hears of its deadline only as its block ends.
        """
        link, parent = self._parent_link, self._parent
        if link is None or parent is None or not parent.is_running:
            return None
        deadline = parent._deadline
        return link if deadline is not None and deadline.passed() else None

    @property
    def _enclosing(self) -> Cancelable | None:
        """The operation whose block this one's block runs in, if any."""
        reset = self._reset
        if reset is None or reset.old_value is _MISSING:
            return None
        return reset.old_value

    def _cancelled_since(self) -> float:
        """When its cancellation began or will begin, on time.monotonic()."""
        first, deadline = self._requests.first, self._deadline
        return min(
            _INF if first is None else first.at,
            _INF if deadline is None else deadline.when_monotonic,
        )

    def _enclosing_cancelled_before(self, deadline: Deadline) -> bool:
        # Only enclosing operations can tell; a plain anyio scope does not say when.
        enclosing = self._enclosing
        while enclosing is not None:
            if enclosing._cancelled_since() < deadline.when_monotonic:
                return True
            enclosing = enclosing._enclosing
        return False

    # -- links: the tokens it listens to, and its parent -------------------------------------

    def _listened(self) -> tuple[CancelationToken, ...]:
        """The tokens this operation listens to."""
        tokens = self._tokens
        return (tokens,) if isinstance(tokens, CancelationToken) else tokens

    def _arm(self) -> None:
        """Listen to the tokens and the parent; those cancelled already are heard in the
        order they were cancelled, so the first request in time wins."""
        heard: list[Request] | None = None
        tokens = self._tokens
        for token in (tokens,) if isinstance(tokens, CancelationToken) else tokens:
            # The operation listens under its own name, with a function its class shares:
            # no object per link, for a token shared by thousands of operations.
            first = token._listen(self, Cancelable._ask)  # pyright: ignore[reportPrivateUsage]
            if first is not None:
                heard = [first] if heard is None else [*heard, first]
        parent = self._parent
        if parent is not None:
            link = ParentLink(parent.operation_id, parent._own_token(), self._ask, self._keep)
            self._parent_link = link
            request = link.arm()
            if request is not None:
                heard = [request] if heard is None else [*heard, request]
        if heard is not None:
            for request in sorted(heard, key=_made_at):
                self._ask(request, True)

    def _disarm(self) -> None:
        tokens = self._tokens
        if isinstance(tokens, CancelationToken):  # one, bare: no tuple to walk
            tokens._remove(self)  # pyright: ignore[reportPrivateUsage]  # see `_arm`
        else:
            for token in tokens:
                token._remove(self)  # pyright: ignore[reportPrivateUsage]  # see `_arm`
        if self._parent_link is not None:
            self._parent_link.disarm()  # kept: the exit still asks what the link says

    def _parent_deadline(self, enclosing: Cancelable | None) -> float:
        """The parent's deadline on this loop's clock, when this block runs outside its block.

        Inside it, the parent's own scope cancels this block in time; outside, its token learns
        of the deadline only when its block ends, so this block keeps the deadline itself.
        """
        parent = self._parent
        if parent is None or parent._deadline is None or not parent.is_running:
            return _INF
        while enclosing is not None:
            if enclosing is parent:
                return _INF
            enclosing = enclosing._enclosing
        return parent._deadline.on_this_loop()

    def _keep(self, deadline: Deadline, waker: LoopWaker | None) -> None:
        """Keep a parent's deadline (the parent's block began after this one's, or moved it)."""
        # On the same loop only: its clock, and a scope is only touched from its own thread.
        scope = self._scope
        if scope is not None and waker is self._waker:
            own = _INF if self._deadline is None else self._deadline.when
            scope.deadline = min(own, deadline.when)

    def _new_deadline(self) -> Deadline | None:
        """The deadline its block begins with: its timeout's, or its instant's, the earlier."""
        deadline = None if self._timeout is None else Deadline(self._timeout)
        if self._until is not None:
            instant = Deadline.until(self._until)
            if deadline is None or instant.when < deadline.when:
                deadline = instant
        return deadline

    # -- one life: begin, end ------------------------------------------------------------------

    def _require_pending(self, what: str) -> None:
        if self._context.status is not PENDING:
            raise RuntimeError(
                f"{what}: {self!r} was already entered; a Cancelable runs one block, "
                "create a new one for each operation"
            )

    def _begin(self, waker: LoopWaker, deadline: Deadline | None) -> None:
        """The operation starts running: recorded, registered, listening."""
        self._waker, self._deadline = waker, deadline
        context = self._context
        context.status = RUNNING
        context._started = time.time()  # pyright: ignore[reportPrivateUsage]  # its record
        if self._register_globally:
            OperationRegistry.get_instance().register_sync(self)
        if self._requests:  # asked before it began
            self._trip()
        if self._tokens or self._parent is not None:
            self._arm()
        token = self._token
        if token is not None and deadline is not None:
            token.deadline = deadline
            token.lend(deadline, waker)
        if hooks:
            run_start(context)

    def _decide(self, ended: Ended, exc: BaseException | None, own_deadline_only: bool) -> Ending:
        """Ask the exit table how the operation ends, and record what it says to record.

        `own_deadline_only`: the scope that caught held no deadline but its own (a step's).
        """
        requests = self._requests
        first = requests[0] if requests else None
        deadline, link = self._deadline, self._parent_link
        raised = exc if ended is RAISED_OWN and isinstance(exc, _CancelationError) else None
        quiet = not self._raise_on_cancel
        if first is not None or (deadline is None and link is None):
            answer = ending(ended, first, quiet, raised)  # nothing due to weigh
        else:
            passed = own_deadline_only or (deadline is not None and deadline.passed())
            answer = ending(
                ended,
                None,
                quiet,
                raised,
                deadline,
                passed,
                passed and deadline is not None and self._enclosing_cancelled_before(deadline),
                None if link is None or own_deadline_only else link.request(),
                self._overdue_parent() is not None,
            )
        status, record, action, from_parent = answer
        if record is not None:
            outside = self._cancelled_outside
            if outside is not ENCLOSING and ended is CANCELLED_OUTSIDE and record.reason is _PARENT:
                # Who the enclosing scope is, when a subclass knows (a server, say).
                record = Request(_PARENT, outside)
                answer = (status, record, action, from_parent)
            requests.add(record)
        if status is FAILED:
            self._context.error = str(exc)
        elif raised is not None and raised.context is None:
            raised.context = self._context  # a token's check(): it now carries this record
        return answer

    def _close(self, status: OperationStatus, exc: BaseException | None = None) -> None:
        """Record how the operation ended, tell its token and the hooks, and let go."""
        context = self._context
        context.status = status
        context._ended = time.time()  # pyright: ignore[reportPrivateUsage]  # its record
        requests = self._requests
        first = requests[0] if requests else None
        if status is CANCELLED and first is not None:
            context.cancel_reason, context.cancel_message = first.reason, first.message
        token = self._token
        if token is not None:
            token.deadline = None
            if first is not None:
                token.settle(first)
        self._waker = None
        if self._register_globally:
            OperationRegistry.get_instance()._unregister(self)  # pyright: ignore[reportPrivateUsage]  # its own entry, by identity
        if hooks:
            run_end(context, exc if status is FAILED else None)

    async def _conclude(
        self, status: OperationStatus, exc: BaseException | None, from_parent: bool
    ) -> None:
        """The end's async half: let an enclosing cancellation through, run the callbacks."""
        try:
            if from_parent:
                # If the parent's scope encloses this block, its cancellation goes on from
                # here, untouched, to the scope that owns it (row 8 of the exit table).
                await anyio.lowlevel.checkpoint_if_cancelled()
        finally:
            self._close(status, exc)
            if self._callbacks is not None:
                await self._callbacks.run_end(status, self._context, exc)

    # -- the block -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._context.status is not PENDING:
            self._require_pending("async with")
        waker = current_waker()
        if self._sources:
            # May refuse the block (a signal source off the main thread): nothing is set up yet.
            attach_all(self._sources, self._source_fired)
        enclosing = current.get()
        if self._until is None:
            deadline = None if self._timeout is None else Deadline(self._timeout)
        else:
            deadline = self._new_deadline()
        scope_deadline = _INF if deadline is None else deadline.when
        if self._parent is not None:
            scope_deadline = min(scope_deadline, self._parent_deadline(enclosing))
        # Without a deadline, no keyword: anyio passes keywords on through two more calls.
        scope = (
            anyio.CancelScope()
            if scope_deadline == _INF
            else anyio.CancelScope(deadline=scope_deadline)
        )
        self._scope = scope
        scope.__enter__()
        self._reset = current.set(self)
        try:
            self._begin(waker, deadline)
            if self._sources:
                task_group = anyio.create_task_group()
                await task_group.__aenter__()
                self._task_group = task_group
                for source in self._sources:
                    task_group.start_soon(source._run, name=f"{self!r}: {source!r}")  # pyright: ignore[reportPrivateUsage]  # the operation runs its sources
            if self._callbacks is not None:
                await self._callbacks.run("start", self._context)
        except BaseException as exc:  # an on_start callback's KeyboardInterrupt, say
            # Undo what was set up, as if the body had raised it at its first line.
            if not await self.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._leave_block()
        if self._task_group is None and not self._streams:  # nothing to wait for: no coroutine
            ended, exc, replaced = self._leave_scope(exc_type, exc, tb, exc is None, None)
        else:
            ended, exc, replaced = await self._close_block(exc_type, exc, tb)
        status, _, action, from_parent = self._decide(ended, exc, False)
        if from_parent or self._callbacks is not None:
            await self._conclude(status, exc, from_parent)
        else:
            self._close(status, exc)
        if action is RAISE:
            raise_unchained(self._requests[0].error(self._context))
        if replaced is not None:
            raise replaced
        return action is SUPPRESS

    def _leave_block(self) -> None:
        """This task leaves the block: the current operation is the enclosing one again, and
        the operation stops listening to its tokens and its parent."""
        reset = self._reset
        if self._context.status is not RUNNING or current.get() is not self:
            raise RuntimeError(
                f"{self!r} is not the innermost running operation of this task: a Cancelable "
                "must be exited once, by the task that entered it, innermost first"
            )
        assert reset is not None
        try:
            current.reset(reset)
        except ValueError:
            raise RuntimeError(
                f"{self!r} was entered in another task: a Cancelable must be exited by the "
                "task that entered it"
            ) from None
        if self._tokens or self._parent_link is not None:
            self._disarm()

    async def _close_block(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> tuple[Ended, BaseException | None, BaseException | None]:
        """Stop the sources, leave the scope, close the streams (see `_leave_scope`)."""
        body_finished = exc is None
        adopted: BaseException | None = None  # raised by the sources' group, in place of exc
        if self._task_group is not None:
            adopted = await self._stop_sources(exc)
            if adopted is not None:
                exc_type, exc, tb = type(adopted), adopted, adopted.__traceback__
        left = self._leave_scope(exc_type, exc, tb, body_finished, adopted)
        if self._streams:
            failed = await self._close_streams()
            if failed is not None:  # a source's `finally` raised: that leaves the block
                caught = left[0] is CAUGHT
                if exc is not None and (caught or _cancelled(exc, group=True)):
                    failed.__context__ = None  # chained to no backend cancellation
                return self._ended(failed, False, False), failed, failed
        return left

    def _leave_scope(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        body_finished: bool,
        adopted: BaseException | None,
    ) -> tuple[Ended, BaseException | None, BaseException | None]:
        """Leave the block's scope.

        Returns what ended the body, the exception that left it, and the one the block must
        raise itself (Python raises `exc` again only if it came from the body).
        """
        assert self._scope is not None
        replaced: BaseException | None = None
        try:
            # True when the scope swallowed the exception (trio also says True for none).
            caught = bool(self._scope.__exit__(exc_type, exc, tb)) and exc is not None
        except BaseException as new:  # the scope stripped its Cancelled from a group
            caught, exc, replaced = False, new, new
        if adopted is not None and not caught and replaced is None:
            replaced = adopted
        ended = FINISHED if exc is None else self._ended(exc, caught, body_finished)
        return ended, exc, replaced

    async def _stop_sources(self, exc: BaseException | None) -> BaseException | None:
        """Cancel the sources' tasks and wait for them; what their group raised that must go
        on in place of `exc`, if anything."""
        task_group = self._task_group
        assert task_group is not None
        self._task_group = None
        adopted: BaseException | None = None
        task_group.cancel_scope.cancel()
        try:
            # Not given the body's exception, so the group never wraps it.
            await task_group.__aexit__(None, None, None)
        except BaseException as met:
            # A cancellation delivered while sources wound down, or what a source raised
            # past its own handling (KeyboardInterrupt, SystemExit): that goes on, even
            # over the Cancelled the group sent the body when it happened.
            cancelled = anyio.get_cancelled_exc_class()
            if exc is None or (
                is_cancellation(exc, cancelled) and not is_cancellation(met, cancelled)
            ):
                adopted = sole(met)
        finally:
            detach_all(self._sources)
        # Waiting there, this task may have been resumed by a thrown Cancelled, and an
        # error raised in such a step gets chained to it; go on in a plain step instead.
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return adopted

    async def _close_streams(self) -> BaseException | None:
        """Close what the block's streams left open; what a source raised doing so, if any."""
        streams, self._streams = self._streams or [], None
        failed: BaseException | None = None
        for stream in streams:
            try:
                await stream._block_ended()  # pyright: ignore[reportPrivateUsage]  # its part of the block's end
            except BaseException as exc:
                failed = failed or exc
        return failed

    def _ended(self, exc: BaseException | None, caught: bool, body_finished: bool) -> Ended:
        """What ended the body, for the exit table."""
        if body_finished and (exc is None or caught or _cancelled(exc, group=True)):
            # A cancellation met only by the sources' teardown, after the body returned.
            return FINISHED
        if caught:
            return CAUGHT
        if isinstance(exc, _CancelationError) and (exc.context is self._context or self._requests):
            # Raised by check_cancelation() or a token's check(), or an inner operation's
            # report of a cancellation this one was asked for too (the same signal, say).
            return RAISED_OWN
        if exc is not None and _cancelled(exc, group=False):
            return CANCELLED_OUTSIDE
        return FINISHED if exc is None else RAISED

    # -- run item by item, by a stream that runs the operation ---------------------------------

    async def _begin_steps(self) -> None:
        """A stream begins running this operation: no block, a scope per item."""
        if self._sources:
            raise RuntimeError(
                f"{self!r} has sources, which run as tasks of its block: enter it with "
                "`async with` and iterate `cancel.stream(...)` inside the block"
            )
        waker = current_waker()
        self._stepped = True
        self._begin(waker, self._new_deadline())
        if self._callbacks is not None:
            try:
                await self._callbacks.run("start", self._context)
            except BaseException as exc:
                await self._end_steps(exc)
                raise

    def _step(self) -> anyio.CancelScope | None:
        """The scope one item is awaited in; None when the operation must stop first.

        It stays the operation's scope after the step: cancelling a scope that was left
        does nothing, and the next step looks at the requests first.
        """
        deadline = self._deadline
        if not self._requests and deadline is not None and deadline.passed():
            self._ask(deadline.request(), True)
        if self._requests:
            return None
        self._scope = scope = anyio.CancelScope(
            deadline=_INF if deadline is None else deadline.when
        )
        return scope

    async def _end_steps(
        self, exc: BaseException | None, cancelled: bool = False
    ) -> CancelationError | None:
        """The stream is done with the operation; the error to raise for its cancellation."""
        if not self._stepped:
            return None
        self._stepped = False
        self._disarm()
        # Cancelled: a step's scope caught, or a request came between items.
        ended = CAUGHT if cancelled else self._ended(exc, False, exc is None)
        status, _, action, from_parent = self._decide(ended, exc, cancelled)
        await self._conclude(status, exc, from_parent)
        return self._requests[0].error(self._context) if action is RAISE else None

    def _abandon_steps(self) -> None:
        """The stream was dropped mid-way: at least stop listening to the tokens."""
        if not self._stepped:
            return
        self._stepped = False
        self._disarm()
        self._waker = None

    def _join_stream(
        self, stream: CancelableAsyncIterator[Any]
    ) -> tuple[Requests, Callable[[], None]] | None:
        """A stream begins inside the block, which closes it as it ends.

        Returns the requests, to watch between items, and what cancels the block's scope
        when one came meanwhile; None when no block runs the operation.
        """
        if self._stepped or self._context.status is not RUNNING:
            return None
        if self._streams is None:
            self._streams = []
        self._streams.append(stream)
        return self._requests, self._trip

    # -- inside the block ----------------------------------------------------------------------

    def stream(
        self,
        iterator: AsyncIterable[T] | Iterable[T],
        report_interval: int | None = None,
        buffer_partial: bool = True,
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
        *,
        in_thread: bool = False,
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
        is closed when the block ends.

        `iterator` may be a plain iterable: a checkpoint between two of its items keeps the
        loop responsive; with `in_thread`, each item is taken in a worker thread, for an
        iterator whose `next()` blocks. See `CancelableAsyncIterator`.
        """
        return CancelableAsyncIterator(
            iterator, self, report_interval, buffer_partial, buffer_limit, in_thread=in_thread
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

    async def check_cancelation(self) -> None:
        """A checkpoint that raises this operation's `CancelationError` if it is cancelled.

        When an enclosing scope cancelled it, the backend's cancellation is raised instead, as
        at any checkpoint.
        """
        self._raise_if_asked()
        await anyio.lowlevel.checkpoint()
        if self._requests:
            raise self._requests[0].error(self._context)

    def _raise_if_asked(self) -> None:
        """Raise this operation's `CancelationError` if it was asked to stop (or is overdue).

        A deadline that passed after an enclosing operation was cancelled came second: that
        cancellation is the one to arrive, at the caller's next checkpoint.
        """
        deadline = self._deadline
        if (
            not self._requests
            and deadline is not None
            and deadline.passed()
            and not self._enclosing_cancelled_before(deadline)
        ):
            self._ask(deadline.request(), True)
        if self._requests:
            raise self._requests[0].error(self._context)

    def shield(self) -> _Shield:
        """A section no cancellation can interrupt: `with cancel.shield():` (or `async with`).

        The operation still records any request made meanwhile (`is_cancelled` is True at
        once). Leaving the section normally raises that cancellation, the operation's
        `CancelationError`, so a loop of shielded steps stops between two steps, as in 0.11;
        leaving `async with cancel.shield()` is also a checkpoint, where an enclosing scope's
        cancellation arrives. A shield left in a `finally` or `except` block (a cleanup while
        the cancellation unwinds) raises nothing: the exception on its way goes on.
        """
        return _Shield(self._raise_if_asked, self.check_cancelation)

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


def _warn_propagate(value: object) -> None:
    import warnings

    check_bool("propagate_to_children", value)
    warnings.warn(
        f"cancel(propagate_to_children={value!r}) is deprecated and changes nothing: "
        "operations linked with parent= (and those running inside the block) are always "
        "cancelled with it; call cancel(reason, message)",
        DeprecationWarning,
        stacklevel=3,
    )


def _accepts(callback: Callable[..., Any], count: int) -> bool | None:
    """Can `callback` be called with `count` positional arguments? None: cannot tell."""
    import inspect

    try:
        inspect.signature(callback).bind(*range(count))
    except TypeError:
        return False
    except ValueError:
        return None
    return True


def _made_at(request: Request) -> float:
    return request.at


def _cancelled(exc: BaseException, group: bool) -> bool:
    cancelled = anyio.get_cancelled_exc_class()
    return is_cancellation(exc, cancelled) if group else isinstance(exc, cancelled)


def cancelable_stream(
    stream: AsyncIterable[T] | Iterable[T],
    timeout: float | timedelta | None = None,
    token: CancelationToken | None = None,
    report_interval: int | None = None,
    on_progress: Callable[[str, Any, dict[str, Any] | None], Any] | None = None,
    buffer_partial: bool = False,
    operation_id: str | None = None,
    name: str | None = None,
    *,
    in_thread: bool = False,
) -> CancelableAsyncIterator[T]:
    """`stream` as an operation of its own, bounded by `timeout` and/or `token`.

    The timeout counts from the first item asked for. A cancellation leaves the `async for`
    as the `CancelationError` for its reason; `partial_result` of the operation (reached
    through the exception's `context`) holds what was consumed. Close it with
    `async with cancelable_stream(...) as items:` (or `contextlib.aclosing`) when the loop
    may be left early. `stream` may be a plain iterable, and `in_thread` takes its items in a
    worker thread, as for `Cancelable.stream`.

    Raises:
        TypeError, ValueError: an argument is of the wrong type or out of range.
    """
    items: AsyncIterator[T] = items_of("stream", stream, in_thread)
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be callable or None, got {on_progress!r}")
    if timeout is not None:
        operation = Cancelable.with_timeout(timeout, operation_id=operation_id, name=name)
    else:
        operation = Cancelable(operation_id=operation_id, name=name)
    if token is not None:
        operation.add_token(token)
    iterator = CancelableAsyncIterator(items, operation, report_interval, buffer_partial)
    if on_progress is not None:
        operation.on_progress(_progress_callback(on_progress))
    return iterator


def _progress_callback(callback: Callable[..., Any]) -> Callable[..., Any]:
    """`callback` as a progress callback; 0.11's `(count, latest_item)` form adapted to it."""
    if _accepts(callback, 3) is not False or not _accepts(callback, 2):
        return callback  # a progress callback (or one whose signature cannot be read)
    import warnings

    warnings.warn(
        "cancelable_stream(on_progress=callback(count, latest_item)) is 0.11's form, "
        "deprecated: take (operation_id, message, metadata), where metadata has 'count' and "
        "'latest_item'",
        DeprecationWarning,
        stacklevel=3,
    )

    def adapted(operation_id: str, message: Any, metadata: dict[str, Any] | None) -> Any:
        meta = metadata or {}
        return callback(meta.get("count"), meta.get("latest_item"))

    return adapted
