"""FastAPI and Starlette: stop a request's work when its client leaves or its time is up.

Needs the `fastapi` extra: `pip install 'hother-cancelable[fastapi]'`.

- `RequestCancelationMiddleware` runs each HTTP request as an operation, with a
  `CancelationToken` of its own: when the client disconnects, the token is cancelled and so is
  the request's work; a timeout can bound every request (answered with 504), and so can the
  caller's own budget, read from the `Request-Timeout-Ms` header (`DEFAULT_DEADLINE_HEADER`);
- `get_request_token`, `cancelable_dependency` and `CancelableDependency` hand the request's
  cancellation to endpoints;
- `with_cancelation` runs an endpoint as an operation of its own and answers 504 (timeout),
  499 (the client disconnected) or 503 (any other cancellation);
- `cancelable_streaming_response` streams under an operation and ends the stream cleanly
  when that operation is cancelled;
- `CancelableWebSocket` closes a websocket (code 1001) when its operation is cancelled.

All of it runs unchanged on asyncio, uvloop and trio (uvicorn, hypercorn, ...).
"""

# No `from __future__ import annotations` here: FastAPI reads the annotations of the
# dependencies and endpoints built below, and older versions cannot resolve strings.

import contextlib
import functools
import inspect
import json
import math
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import (
    Annotated,
    Any,
    ClassVar,
    ParamSpec,
    Protocol,
    Self,
    TypeVar,
    cast,
    get_args,
    get_origin,
)

import anyio
import anyio.abc

try:
    from fastapi import HTTPException
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
except ImportError as _missing:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "hother.cancelable.integrations.fastapi needs FastAPI, which is not installed: "
        "pip install 'hother-cancelable[fastapi]'"
    ) from _missing

from hother.cancelable._callbacks import logger
from hother.cancelable._cancelable import Cancelable
from hother.cancelable._checks import check_bool, check_optional_str, check_timeout
from hother.cancelable._context import CancelationReason, OperationContext, OperationStatus
from hother.cancelable._exceptions import CancelationError
from hother.cancelable._token import CancelationToken
from hother.cancelable.sources import CancelationSource

__all__ = [
    "DEFAULT_DEADLINE_HEADER",
    "DISCONNECT_MESSAGE",
    "SHUTDOWN_MESSAGE",
    "CancelableDependency",
    "CancelableWebSocket",
    "RequestCancelationMiddleware",
    "cancelable_dependency",
    "cancelable_streaming_response",
    "get_request_token",
    "with_cancelation",
]

P = ParamSpec("P")
T = TypeVar("T")

DISCONNECT_MESSAGE = "client disconnected"
"""The message of a request token cancelled because its client disconnected (reason `MANUAL`)."""

SHUTDOWN_MESSAGE = "cancelled by the server (shutting down)"
"""The message of a request operation that its server cancelled (reason `PARENT`).

An ASGI server cancels a request's task when it shuts down with the request still running
(uvicorn after `timeout_graceful_shutdown`, hypercorn after `graceful_timeout`).
"""

DEFAULT_DEADLINE_HEADER = "Request-Timeout-Ms"
"""The header that carries the caller's remaining budget, a whole number of milliseconds.

`RequestCancelationMiddleware` and `CancelableDependency` read it by default
(`deadline_header=`); `hother.cancelable.integrations.httpx.DeadlineTransport` sends it.
"""

_TOKEN_KEY = "hother.cancelable.token"  # in scope["state"]
_LIMIT_KEY = "hother.cancelable.limit"  # in scope["state"], when the request has a limit
_DEFAULT_SETTER = "RequestCancelationMiddleware default_timeout"
_HIDDEN_REQUEST = "hother_cancelable_request"  # the parameter with_cancelation may add
_CLOSE_TIMEOUT = 1.0  # seconds closing a cancelled websocket may take
# The largest budget a header may carry: a year. Beyond that it is a mistake, not a budget.
_MAX_BUDGET_MS = 365 * 24 * 3600 * 1000
# Characters of an HTTP header name (RFC 9110 `token`).
_TOKEN_CHARACTERS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
# Seconds between a request token's cancellation (or the request's limit) and the cancellation
# of the whole request: the operations that listen end first, with their own report.
_GRACE = 0.1


# -- the middleware ----------------------------------------------------------------------------


class RequestCancelationMiddleware:
    """ASGI middleware: each HTTP request runs as an operation that its client can cancel.

    ```python
    app = FastAPI()
    app.add_middleware(RequestCancelationMiddleware, default_timeout=30)
    ```

    For each HTTP request it creates a `CancelationToken` (see `get_request_token`) and runs
    the rest of the app inside a `Cancelable`, which endpoints see as `current_operation()`:

    - when the client disconnects before the response is complete, the token is cancelled
      (reason `MANUAL`, message `DISCONNECT_MESSAGE`). Operations linked to the token (those
      of `cancelable_dependency` and `with_cancelation`, or your own
      `Cancelable.with_token(token)`) are cancelled at once and end with their own
      `ManualCancelation`; 0.1 s later, whatever the request still runs is cancelled too,
      listening or not, and its `finally` blocks run. Nothing is sent: nobody is listening.
      Somebody else cancelling the token stops the request the same way, and the client gets
      `503` if the response has not started. Such a `ManualCancelation` that an endpoint lets
      out ends the request the same way too: it is not an error of the app;
    - with `default_timeout`, each request has a limit, that many seconds after it arrived.
      The request's operations without a timeout of their own (those of
      `cancelable_dependency`, `with_cancelation()` and `cancelable_streaming_response`) end
      themselves at the limit, with reason `TIMEOUT` and a message that names it (`"request
      limit of 30 s (RequestCancelationMiddleware default_timeout) reached"`), so a stream
      ends cleanly. A route that declares a timeout of its own
      (`CancelableDependency(timeout=...)`, `with_cancelation(timeout=...)`) moves the limit
      to that timeout after its operation is entered, when that is later. 0.1 s after the
      limit, whatever the request still runs is cancelled (background tasks, which run after
      the response, included); if the response has not started, the client gets `504` with
      a JSON `{"detail": ...}` body, otherwise the response is cut off (a warning is logged)
      and the server closes the connection. The request's operation has that moment as its
      `deadline`, so `cancel.remaining` inside the request counts down to it;
    - a request whose `deadline_header` (`Request-Timeout-Ms` by default) says how many
      milliseconds its caller will wait brings that budget, counted from its arrival: the
      limit is the smaller of `default_timeout` and the budget (the budget alone, without
      `default_timeout`), and a route's own timeout never moves it past the budget (the
      caller has given up by then); operations with a timeout of their own end at the budget
      too. What ends at the budget says so: `"caller's budget of 300 ms (Request-Timeout-Ms)
      reached"`, and the `504` says `"request timed out: caller's budget of 300 ms
      (Request-Timeout-Ms) reached"`. A value that is not a whole number of milliseconds
      from 0 to a year, or a header sent more than once, gets `400` with a JSON
      `{"detail": ...}` that names the header and the value; `0` gets the `504` at once.
      Neither runs the app.

    The request body still reaches the app, through the middleware: the disconnect is watched
    by reading the request's messages one ahead of the app, from the start (after the app's
    first read, for a request that sent `Expect: 100-continue`). The tasks that watch stop when
    the request ends, and exceptions of the app leave the middleware unchanged, never wrapped
    in an `ExceptionGroup`, for Starlette's and FastAPI's exception handlers. Websocket and
    lifespan messages pass through untouched.

    It is a pure ASGI middleware, so cancellation reaches the endpoint (Starlette's
    `BaseHTTPMiddleware` would get in its way); add it with `app.add_middleware` or wrap an
    ASGI app with it.

    Args:
        app: the ASGI application to wrap.
        default_timeout: seconds (or a `timedelta`) each HTTP request may take, unless its
            route declares a longer timeout; None for no limit.
        deadline_header: the header that carries the caller's budget in milliseconds
            (`DEFAULT_DEADLINE_HEADER`); None to ignore it. With the middleware installed,
            this is the app's one setting: `CancelableDependency` does not read the header
            again.

    Raises:
        TypeError: `app` is not callable, `default_timeout` is not a duration, or
            `deadline_header` not a str or None.
        ValueError: `default_timeout` is zero, negative, NaN or infinite, or
            `deadline_header` is not a header name.
    """

    __slots__ = ("app", "deadline_header", "default_timeout")

    def __init__(
        self,
        app: ASGIApp,
        default_timeout: float | timedelta | None = None,
        *,
        deadline_header: str | None = DEFAULT_DEADLINE_HEADER,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be an ASGI application, got {app!r}")
        self.app: ASGIApp = app
        self.default_timeout: float | None = (
            None if default_timeout is None else check_timeout(default_timeout, "default_timeout")
        )
        self.deadline_header: str | None = _check_header_name(deadline_header)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            budget = _read_budget(scope, self.deadline_header)
        except _MalformedBudget as malformed:
            await JSONResponse({"detail": str(malformed)}, status_code=400)(scope, receive, send)
            return
        if budget is not None and budget.spent:  # the caller has given up already
            await JSONResponse({"detail": budget.detail}, status_code=504)(scope, receive, send)
            return
        limit = _RequestLimit.starting(self.default_timeout, budget)
        await self._serve(scope, receive, send, limit)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, limit: "_RequestLimit | None"
    ) -> None:
        token = CancelationToken()
        # A state of its own: a server may share one dict between requests (lifespan state).
        state = {**scope.get("state", {}), _TOKEN_KEY: token}
        if limit is not None:
            state[_LIMIT_KEY] = limit
        scope["state"] = state
        name = f"{scope.get('method', 'HTTP')} {scope.get('path', '')}"
        operation = _RequestOperation(name=name, raise_on_cancel=False)
        exchange = _Exchange(scope, receive, send, token, operation)
        error = await self._run(scope, exchange, operation, limit)
        reason, message = _why_cancelled(error, operation.context, token, limit)
        if reason is None or exchange.client_left:  # not cancelled, or nobody is listening
            return
        if exchange.response_started:
            logger().warning(
                "hother.cancelable: the response to %s was cut off (a stream not sent by "
                "cancelable_streaming_response): %s",
                operation.context.name,
                message,
            )
            return
        if reason is CancelationReason.TIMEOUT:
            status, detail = 504, _timed_out(None) if limit is None else limit.detail
        else:  # somebody cancelled the request's token
            status, detail = 503, f"request cancelled: {message or 'no reason given'}"
        await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)

    async def _run(
        self,
        scope: Scope,
        exchange: "_Exchange",
        operation: "_RequestOperation",
        limit: "_RequestLimit | None",
    ) -> Exception | None:
        """Run the app as the request's operation; return what it raised, unwrapped."""
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as task_group:
                exchange.start(task_group)
                try:
                    async with operation:
                        if limit is not None:
                            operation.enforce(limit)
                        await self.app(scope, exchange.receive, exchange.send)
                except Exception as exc:  # raised again by the caller, outside the group
                    error = exc
                finally:
                    task_group.cancel_scope.cancel()
        finally:
            exchange.close()
        return error


class _RequestOperation(Cancelable):
    """The operation of one HTTP request, run by the middleware.

    Its end says why the request's work stopped, to the hooks of `instrumentation` and in
    its record: the client disconnected (the request's token), the request's limit passed
    (its deadline says the limit's message), or the server cancelled it (`SHUTDOWN_MESSAGE`).
    """

    __slots__ = ()

    _cancelled_outside = SHUTDOWN_MESSAGE  # only the server encloses the middleware

    def enforce(self, limit: "_RequestLimit") -> None:
        """Take the limit, plus the grace, as its deadline, and follow it as it moves.

        The request's own operations end themselves at the limit; the deadline then cancels
        the rest of the request, and it is what `remaining` counts down to inside the request.
        """

        def follow(deadline: float) -> None:
            if self.is_running:
                self._assign_deadline(deadline + _GRACE, limit.message)

        limit.on_move = follow
        follow(limit.deadline)


def _why_cancelled(
    error: Exception | None,
    context: OperationContext,
    token: CancelationToken,
    limit: "_RequestLimit | None",
) -> tuple[CancelationReason | None, str | None]:
    """The reason and message the request was cancelled with; raises an error of the app."""
    if error is not None:
        # An operation of the request let out the request's own cancellation.
        if _reports(error, token):
            return token.reason, token.message
        if limit is not None and limit.reported_by(error):
            return CancelationReason.TIMEOUT, limit.message
        raise error
    if context.status is not OperationStatus.CANCELLED:
        return None, None
    if context.cancel_reason is CancelationReason.TIMEOUT and limit is not None:
        return CancelationReason.TIMEOUT, limit.message  # its deadline: the limit's
    return context.cancel_reason, context.cancel_message


def _reports(error: Exception, token: CancelationToken) -> bool:
    """Is `error` the cancellation of `token`, raised by an operation linked to it?"""
    return (
        isinstance(error, CancelationError)
        and token.is_cancelled
        and error.reason is token.reason
        and error.message == token.message
    )


def _timed_out(seconds: float | None) -> str:
    return "request timed out" if seconds is None else f"request timed out after {seconds:g} s"


# -- the caller's budget -----------------------------------------------------------------------


class _MalformedBudget(ValueError):
    """A deadline header that holds no budget; the message names the header and the value."""


class _Budget:
    """The caller's budget, from a request header: the moment the caller gives up.

    On the clock of the loop that read the header, counted from then (the request's arrival).
    """

    __slots__ = ("deadline", "header", "milliseconds")

    def __init__(self, milliseconds: int, header: str) -> None:
        self.milliseconds = milliseconds
        self.header = header
        self.deadline = anyio.current_time() + milliseconds / 1000

    @property
    def spent(self) -> bool:
        """Nothing left: the caller has given up already."""
        return self.milliseconds == 0

    @property
    def message(self) -> str:
        """The message of a cancellation at the budget."""
        return f"caller's budget of {self.milliseconds} ms ({self.header}) reached"

    @property
    def detail(self) -> str:
        """The `detail` of the 504 a request gets for it."""
        return f"request timed out: {self.message}"

    async def wait(self) -> None:
        """Return once the budget is spent."""
        await anyio.sleep_until(self.deadline)


def _check_header_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"deadline_header must be a header name (a str) or None, got {value!r}")
    if not value or not _TOKEN_CHARACTERS.issuperset(value):
        raise ValueError(f"deadline_header must be an HTTP header name, got {value!r}")
    return value


def _read_budget(scope: Scope, header: str | None) -> _Budget | None:
    """The caller's budget the request carries in `header`; None without one.

    Raises `_MalformedBudget` for a value that is not a whole number of milliseconds from 0
    to `_MAX_BUDGET_MS`, or for a header sent more than once.
    """
    if header is None:
        return None
    name = header.lower().encode("ascii")
    values = [value for key, value in scope.get("headers", ()) if key.lower() == name]
    if not values:
        return None
    if len(values) > 1:
        shown = ", ".join(_shown(value) for value in values)
        raise _MalformedBudget(f"{header} must be sent once, got {len(values)} values: {shown}")
    digits = values[0].strip(b" \t")
    # bytes.isdigit() accepts ASCII digits only: no sign, no space, no "1_000", no "1e3".
    significant = digits.lstrip(b"0")
    if not digits.isdigit() or len(significant) > 11 or int(significant or b"0") > _MAX_BUDGET_MS:
        raise _MalformedBudget(
            f"{header} must be a whole number of milliseconds from 0 to {_MAX_BUDGET_MS}, "
            f"got {_shown(values[0])}"
        )
    return _Budget(int(significant or b"0"), header)


def _shown(value: bytes) -> str:
    """A header value as an error message quotes it: decoded, and cut when long."""
    text = value.decode("latin-1")
    return repr(text if len(text) <= 40 else f"{text[:40]}...")


# -- the request's limit -----------------------------------------------------------------------


class _Limit(Protocol):
    """A moment at which operations of the request end themselves, with a message."""

    @property
    def message(self) -> str: ...

    @property
    def deadline(self) -> float: ...

    async def wait(self) -> None: ...


class _RequestLimit:
    """When a request's work must end, on its loop's clock, and what set that moment.

    The middleware's `default_timeout` or the caller's budget, whichever comes first, sets it
    as the request arrives; a route's own timeout moves it later as the route's operation is
    entered, never past the caller's budget. It only ever moves later, so a waiter that
    wakes early just waits again.
    """

    __slots__ = ("budget", "deadline", "detail", "message", "on_move")

    def __init__(self, budget: _Budget | None) -> None:
        self.budget = budget  # the ceiling: the caller has given up by then
        self.deadline = -math.inf
        self.message = ""  # of a cancellation at the limit
        self.detail = ""  # of the 504 answered for it
        self.on_move: Callable[[float], None] | None = None

    @classmethod
    def starting(
        cls, default_timeout: float | None, budget: _Budget | None
    ) -> "_RequestLimit | None":
        """The limit of a request that arrives now; None when it has none."""
        limit = cls(budget)
        if default_timeout is not None:
            limit.extend(default_timeout, _DEFAULT_SETTER)
        elif budget is not None:
            limit.move(budget.deadline, budget.message, budget.detail)
        else:
            return None
        return limit

    def extend(self, seconds: float, setter: str) -> None:
        """Move the limit to `seconds` from now, if that is later, and not past the budget."""
        deadline = anyio.current_time() + seconds
        budget = self.budget
        if budget is not None and deadline >= budget.deadline:
            self.move(budget.deadline, budget.message, budget.detail)
        else:
            message = f"request limit of {seconds:g} s ({setter}) reached"
            self.move(deadline, message, _timed_out(seconds))

    def move(self, deadline: float, message: str, detail: str) -> None:
        """Move the limit to `deadline` (said by `message` and `detail`), if that is later."""
        if deadline > self.deadline:
            self.deadline, self.message, self.detail = deadline, message, detail
            if self.on_move is not None:
                self.on_move(deadline)

    async def wait(self) -> None:
        """Return once the limit has passed."""
        deadline = self.deadline
        await anyio.sleep_until(deadline)
        if self.deadline > deadline:  # moved meanwhile
            await self.wait()

    def reported_by(self, error: Exception) -> bool:
        """Is `error` the cancellation of an operation that reached this limit?"""
        messages = (self.message, None if self.budget is None else self.budget.message)
        return (
            isinstance(error, CancelationError)
            and error.reason is CancelationReason.TIMEOUT
            and error.message in messages  # no other operation says that
        )

    def detail_for(self, message: str | None) -> str | None:
        """The 504's `detail` for an operation that ended with `message`, if at this limit."""
        if message == self.message:
            return self.detail
        if self.budget is not None and message == self.budget.message:
            return self.budget.detail
        return None


class _LimitSource(CancelationSource):
    """Ends an operation of the request at a limit: the request's, or the caller's budget."""

    reason = CancelationReason.TIMEOUT

    def __init__(self, limit: _Limit, name: str) -> None:
        super().__init__(name=name)
        self._limit = limit

    async def watch(self) -> None:
        await self._limit.wait()
        self.trigger_cancelation(self._limit.message)

    def fires_by(self) -> float:
        return self._limit.deadline


class _Exchange:
    """One request's messages, read one ahead of the app to see a disconnect in time."""

    __slots__ = (
        "_deferred",
        "_inbox",
        "_operation",
        "_outbox",
        "_receive",
        "_send",
        "_task_group",
        "_token",
        "client_left",
        "response_complete",
        "response_started",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        token: CancelationToken,
        operation: Cancelable,
    ) -> None:
        self._receive = receive
        self._send = send
        self._token = token
        self._operation = operation
        # One message read ahead at most: a body the app does not read is not buffered.
        self._outbox, self._inbox = anyio.create_memory_object_stream[Message](1)
        self._task_group: anyio.abc.TaskGroup | None = None
        # Reading first would make the server answer `100 Continue`: leave that to the app.
        self._deferred = (b"expect", b"100-continue") in (
            (name.lower(), value.lower()) for name, value in scope.get("headers", ())
        )
        self.response_started = False
        self.response_complete = False
        self.client_left = False

    def start(self, task_group: anyio.abc.TaskGroup) -> None:
        self._task_group = task_group
        task_group.start_soon(self._follow_token, name="hother.cancelable: request token")
        if not self._deferred:
            task_group.start_soon(self._watch, name="hother.cancelable: request watcher")

    def close(self) -> None:
        self._outbox.close()
        self._inbox.close()

    async def _follow_token(self) -> None:
        token = self._token
        await token.wait_for_cancel()
        # Operations linked to the token first, to end with their own cancellation; then
        # the rest of the request.
        await anyio.sleep(_GRACE)
        await self._operation.cancel(token.reason or CancelationReason.MANUAL, token.message)

    async def _watch(self) -> None:
        outbox = self._outbox
        while True:
            try:
                message = await self._receive()
            except Exception:
                logger().warning("hother.cancelable: reading the request failed", exc_info=True)
                message = {"type": "http.disconnect"}
            if message["type"] == "http.disconnect":
                outbox.close()  # the app's next receive() says so
                if not self.response_complete:
                    self.client_left = True
                    await self._token.cancel(CancelationReason.MANUAL, DISCONNECT_MESSAGE)
                return
            await outbox.send(message)

    async def receive(self) -> Message:
        if self._deferred and self._task_group is not None:
            self._deferred = False
            self._task_group.start_soon(self._watch, name="hother.cancelable: request watcher")
        try:
            return await self._inbox.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.response_started = True
        elif (kind == "http.response.body" and not message.get("more_body", False)) or (
            kind == "http.response.pathsend"
        ):
            self.response_complete = True  # before sending: the server may then report a disconnect
        await self._send(message)


# -- the request's cancellation, for endpoints -------------------------------------------------


def get_request_token(request: HTTPConnection) -> CancelationToken:
    """The token `RequestCancelationMiddleware` made for `request`.

    It is cancelled when the client disconnects (reason `MANUAL`, message
    `DISCONNECT_MESSAGE`). Give it to work that only observes, `Cancelable.with_token(token)`,
    or threads (`token.check()`).

    Raises:
        TypeError: `request` is not a Starlette/FastAPI `Request`.
        RuntimeError: the middleware is not installed, or `request` is not an HTTP request.
    """
    if not isinstance(request, HTTPConnection):
        raise TypeError(f"request must be a Request, got {request!r}")
    token = _token_of(request)
    if token is None:
        raise RuntimeError(
            "this request has no cancellation token: add the middleware with "
            "`app.add_middleware(RequestCancelationMiddleware)` (HTTP requests only)"
        )
    return token


def _token_of(request: HTTPConnection | None) -> CancelationToken | None:
    if request is None:
        return None
    token = request.scope.get("state", {}).get(_TOKEN_KEY)
    return token if isinstance(token, CancelationToken) else None


def _limit_in(scope: Scope) -> _RequestLimit | None:
    limit = scope.get("state", {}).get(_LIMIT_KEY)
    return limit if isinstance(limit, _RequestLimit) else None


# The operations already bound to their request's limit (by `_request_operation`).
_BOUND: weakref.WeakSet[Cancelable] = weakref.WeakSet()


def _bind(operation: Cancelable, limit: _RequestLimit, timeout: float | None) -> None:
    """Bind a pending operation of the request to the request's limit.

    With a timeout of its own, the operation moves the limit to that timeout as it is
    entered (if that is later), and ends itself at the caller's budget, if any; without one,
    it ends itself at the limit.
    """
    if timeout is None:
        operation.add_source(_LimitSource(limit, "request limit"))
    else:
        setter = f"timeout of {operation.context.name}"
        operation.on_start(lambda _: limit.extend(timeout, setter))
        if limit.budget is not None:
            operation.add_source(_LimitSource(limit.budget, "caller's budget"))
    _BOUND.add(operation)


def _request_operation(
    request: HTTPConnection | None,
    timeout: float | None,
    name: str | None,
    raise_on_cancel: bool = True,
    register_globally: bool = False,
    budget: _Budget | None = None,
) -> Cancelable:
    """A fresh operation cancelled by the request's token (if any) and limit (if any), and by
    `timeout` (if any), which then replaces the request's limit when it is longer; `budget`
    is a caller's budget read without the middleware."""
    options: dict[str, Any] = {
        "name": name,
        "raise_on_cancel": raise_on_cancel,
        "register_globally": register_globally,
    }
    if timeout is None:
        operation = Cancelable(**options)
    else:
        operation = Cancelable.with_timeout(timeout, **options)
    token = _token_of(request)
    if token is not None:
        operation.add_token(token)
    limit = None if request is None else _limit_in(request.scope)
    if limit is not None:
        _bind(operation, limit, timeout)
    if budget is not None:
        operation.add_source(_LimitSource(budget, "caller's budget"))
    return operation


class _RequestOnly:
    """The signature a dependency instance shows FastAPI: `(request: Request)`."""

    def __get__(self, instance: object, owner: type | None = None) -> inspect.Signature:
        if instance is None:
            raise AttributeError("__signature__")  # the class: its own, from __init__
        parameter = inspect.Parameter(
            "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
        )
        return inspect.Signature([parameter], return_annotation=Cancelable)


class CancelableDependency:
    """A FastAPI dependency that gives each request a fresh `Cancelable`, not yet entered.

    ```python
    slow_work = CancelableDependency(timeout=10)

    @app.get("/report")
    async def report(cancel: Annotated[Cancelable, Depends(slow_work)]) -> dict[str, int]:
        async with cancel:
            ...
    ```

    The operation is cancelled when the client disconnects (through the request's token, so
    `RequestCancelationMiddleware` must be installed for that) and, with `timeout`, that many
    seconds after the endpoint enters it. Enter it once, with `async with`, or hand it to
    `cancelable_streaming_response`. Its exceptions are the usual ones: `TimeoutCancelation`,
    and `ManualCancelation` for a disconnect; catch them, or use `with_cancelation` to turn
    them into HTTP answers.

    Under the middleware's `default_timeout`, `timeout` is the route's own limit: entering
    the operation moves the request's limit to `timeout` from then, when that is later than
    the middleware's, so the route may run longer than the default. Without `timeout`, the
    operation ends itself at the request's limit, with reason `TIMEOUT` and a message naming
    that limit.

    The caller's budget: with the middleware installed, the middleware reads the header (its
    `deadline_header` is the app's setting) and the request's limit includes the budget, so
    the dependency does not read it again. Without the middleware, the dependency reads
    `deadline_header` itself: the operation ends at the budget, counted from this call (as
    the request's dependencies are solved), or at its own `timeout`, whichever comes first,
    with reason `TIMEOUT` and the message `"caller's budget of 300 ms (Request-Timeout-Ms)
    reached"` at the budget. A malformed value raises `HTTPException(400)` whose `detail`
    names the header and the value, and `0` raises `HTTPException(504)`, as the middleware
    answers: the endpoint does not run.

    Its only parameter is the request, so clients see nothing of it: no query parameter,
    nothing in the OpenAPI schema; the budget header is all a client can send it, and only
    ever shortens its operation. The timeout is fixed here, by the app.
    `cancelable_dependency` is the instance without a timeout. FastAPI caches a dependency
    within a request: two `Depends` of the same instance get the same operation, which runs
    one block; use two instances, or `Depends(..., use_cache=False)`, for two operations.

    Args:
        timeout: seconds (or a `timedelta`) from entry; None for no limit of its own.
        name: the operation's name; by default the request's method and path.
        register_globally: list each request's operation in `OperationRegistry` while it
            runs, so that it can be found (`list_operations(name_pattern=...)`) and cancelled
            by id (`cancel_operation(id)`) from elsewhere.
        deadline_header: the header that carries the caller's budget in milliseconds
            (`DEFAULT_DEADLINE_HEADER`), read without the middleware; None to ignore it.

    Raises:
        TypeError, ValueError: `timeout` is not a positive duration, `name` not a str,
            `register_globally` not a bool, or `deadline_header` not a header name or None.
    """

    __slots__ = ("_deadline_header", "_name", "_register_globally", "_timeout")

    def __init__(
        self,
        timeout: float | timedelta | None = None,
        name: str | None = None,
        *,
        register_globally: bool = False,
        deadline_header: str | None = DEFAULT_DEADLINE_HEADER,
    ) -> None:
        self._timeout = None if timeout is None else check_timeout(timeout)
        self._name = check_optional_str("name", name)
        self._register_globally = check_bool("register_globally", register_globally)
        self._deadline_header = _check_header_name(deadline_header)

    @property
    def timeout(self) -> float | None:
        """The timeout in seconds, or None."""
        return self._timeout

    @property
    def register_globally(self) -> bool:
        """Whether the operations are listed in `OperationRegistry` while they run."""
        return self._register_globally

    @property
    def deadline_header(self) -> str | None:
        """The header read for the caller's budget without the middleware, or None."""
        return self._deadline_header

    async def __call__(
        self, request: Request, timeout: float | timedelta | None = None
    ) -> Cancelable:
        """The request's operation (FastAPI calls this).

        `timeout` is 0.11's `cancelable_dependency(request, timeout=...)`, for code that
        calls it directly; accepted with a `DeprecationWarning` (it is the timeout of this
        call's operation, instead of this dependency's): write
        `CancelableDependency(timeout=...)`. FastAPI never sees it, so clients cannot set it.
        """
        seconds = self._timeout
        if timeout is not None:
            seconds = check_timeout(timeout)
            import warnings

            warnings.warn(
                "cancelable_dependency(request, timeout=...) is 0.11's form, deprecated: "
                "use Depends(CancelableDependency(timeout=...))",
                DeprecationWarning,
                stacklevel=2,
            )
        name = self._name or f"{request.method} {request.url.path}"
        return _request_operation(
            request,
            seconds,
            name,
            register_globally=self._register_globally,
            budget=self._budget(request),
        )

    def _budget(self, request: Request) -> _Budget | None:
        """The caller's budget, when no middleware has read it for the whole request."""
        if _token_of(request) is not None:  # the middleware's limit includes it
            return None
        try:
            budget = _read_budget(request.scope, self._deadline_header)
        except _MalformedBudget as malformed:
            raise HTTPException(status_code=400, detail=str(malformed)) from None
        if budget is not None and budget.spent:
            raise HTTPException(status_code=504, detail=budget.detail)
        return budget

    # FastAPI reads the parameters of `__call__` from this: the request only, so that 0.11's
    # `timeout` never becomes a query parameter that clients could set.
    __signature__: ClassVar[_RequestOnly] = _RequestOnly()

    def __repr__(self) -> str:
        return (
            f"CancelableDependency(timeout={self._timeout!r}, name={self._name!r}, "
            f"register_globally={self._register_globally!r}, "
            f"deadline_header={self._deadline_header!r})"
        )


cancelable_dependency: CancelableDependency = CancelableDependency()
"""`Depends(cancelable_dependency)`: a `Cancelable` per request, cancelled by its client.

See `CancelableDependency`, also for a timeout.
"""


# -- the decorator -----------------------------------------------------------------------------


def with_cancelation(
    timeout: float | timedelta | None = None, raise_on_cancel: bool = True
) -> Callable[
    [Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T | Response]]
]:
    """Run each call of an `async def` endpoint as an operation, and answer its cancellation.

    ```python
    @app.get("/search")
    @with_cancelation(timeout=5)
    async def search(q: str) -> list[str]: ...
    ```

    Put it below the route decorator. The operation has `timeout` (if given) and the request's
    token (with `RequestCancelationMiddleware`), and is `current_operation()` inside the
    endpoint. When it is cancelled, the answer is:

    - `504 Gateway Timeout` when its timeout passed;
    - `499` (client closed request) when the client disconnected; nobody reads it, but logs
      and tracing see it;
    - `503 Service Unavailable` for any other cancellation of the operation (a `cancel()`,
      say).

    With `raise_on_cancel` (the default), that answer is raised as an `HTTPException` with a
    `detail`, so the app's handler for `HTTPException` formats it; otherwise the endpoint
    returns a `JSONResponse` with the status and `{"detail": ...}`. Cancellations from outside
    the operation (an enclosing scope, the server) go on untouched.

    Under the middleware's `default_timeout`, `timeout` is the route's own limit: entering
    the operation moves the request's limit to `timeout` from then, when that is later, so
    the endpoint may run longer than the default. Without `timeout`, the operation ends at
    the request's limit and answers `504` itself. A caller's budget that the middleware read
    (`Request-Timeout-Ms`) ends the operation too, with or without `timeout`, and is answered
    with the middleware's `504`; without the middleware, no header is read here (use
    `CancelableDependency`). The operation covers the endpoint's call:
    a streaming response it returns is sent afterwards, within the request's limit, and
    needs an operation of its own (`cancelable_streaming_response`).

    The endpoint keeps its name, docstring and signature, so FastAPI sees its parameters. To
    get the request, the wrapper uses the endpoint's own `Request` parameter if it has one;
    otherwise it adds a hidden keyword-only `Request` parameter to the signature FastAPI
    reads, and removes it before calling the endpoint (requests carry no extra parameter).

    Raises:
        TypeError, ValueError: `timeout` is not a positive duration, `raise_on_cancel` not a
            bool, or the decorated function is not `async def`.
    """
    seconds = None if timeout is None else check_timeout(timeout)
    check_bool("raise_on_cancel", raise_on_cancel)

    def decorate(
        endpoint: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T | Response]]:
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(
                f"the decorated endpoint must be an `async def` function, got {endpoint!r}"
            )
        signature = _evaluated_signature(endpoint)
        hidden = None if _has_request_parameter(signature) else _HIDDEN_REQUEST
        name = endpoint.__qualname__

        @functools.wraps(endpoint)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T | Response:
            if hidden is not None:
                request = _as_request(kwargs.pop(hidden, None))
            else:
                found = (_as_request(value) for value in (*args, *kwargs.values()))
                request = next((value for value in found if value is not None), None)
            operation = _request_operation(request, seconds, name, raise_on_cancel=False)
            async with operation:
                return await endpoint(*args, **kwargs)
            # Only a cancellation of the operation itself ends the block quietly.
            status, detail = _answer_for(operation.context, request, seconds)
            if raise_on_cancel:
                raise HTTPException(status_code=status, detail=detail)
            return JSONResponse({"detail": detail}, status_code=status)

        if hidden is not None:
            signature = _with_hidden_request(signature, hidden)
        run.__signature__ = signature  # type: ignore[attr-defined]  # read by FastAPI
        return run

    return decorate


def _answer_for(
    context: OperationContext, request: Request | None, timeout: float | None
) -> tuple[int, str]:
    if context.cancel_reason is CancelationReason.TIMEOUT:
        limit = None if request is None else _limit_in(request.scope)
        # At the request's limit or the caller's budget, the middleware's detail.
        detail = None if limit is None else limit.detail_for(context.cancel_message)
        return 504, detail or _timed_out(timeout)
    token = _token_of(request)
    if token is not None and _client_left(token):
        return 499, "client closed request"
    return 503, f"request cancelled: {_why(context)}"


def _client_left(token: CancelationToken) -> bool:
    return token.reason is CancelationReason.MANUAL and token.message == DISCONNECT_MESSAGE


def _why(context: OperationContext) -> str:
    if context.cancel_message:
        return context.cancel_message
    return "unknown" if context.cancel_reason is None else context.cancel_reason.value


def _as_request(value: object) -> Request | None:
    return cast("Request", value) if isinstance(value, Request) else None


def _evaluated_signature(fn: Callable[..., Any]) -> inspect.Signature:
    # With the annotations evaluated in the endpoint's module, not the wrapper's.
    try:
        return inspect.signature(fn, eval_str=True)
    except NameError:
        return inspect.signature(fn)


def _is_request_annotation(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return isinstance(annotation, type) and issubclass(annotation, Request)


def _has_request_parameter(signature: inspect.Signature) -> bool:
    return any(_is_request_annotation(p.annotation) for p in signature.parameters.values())


def _with_hidden_request(signature: inspect.Signature, hidden: str) -> inspect.Signature:
    parameters = list(signature.parameters.values())
    if any(p.name == hidden for p in parameters):
        raise TypeError(f"the endpoint must not declare a parameter named {hidden!r}")
    extra = inspect.Parameter(hidden, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
    position = len(parameters)
    if parameters and parameters[-1].kind is inspect.Parameter.VAR_KEYWORD:
        position -= 1
    parameters.insert(position, extra)
    return signature.replace(parameters=parameters)


# -- streaming ---------------------------------------------------------------------------------


def cancelable_streaming_response(
    generator: AsyncIterable[str | bytes] | Iterable[str | bytes],
    cancelable: Cancelable,
    media_type: str = "text/plain",
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """A `StreamingResponse` that streams `generator` as `cancelable`, ending cleanly if cancelled.

    ```python
    @app.get("/events")
    async def events(cancel: Annotated[Cancelable, Depends(CancelableDependency(timeout=60))]):
        return cancelable_streaming_response(ticks(), cancel, media_type="text/event-stream")
    ```

    `cancelable` must not have been entered: the response enters it when it starts sending
    the body (its timeout counts from then), iterates `generator` with `cancel.stream(...)`
    (so `context.partial_result["count"]` is the number of chunks sent), and leaves it when
    the body ends. When the operation is cancelled (its timeout, the request's token, a
    source), `generator` is closed (its `finally` runs) and the body ends normally: the
    client gets a complete response, shorter than planned. A `text/event-stream` response
    first sends a last event:

    ```text
    event: cancelled
    data: {"reason": "timeout", "message": "operation timed out after 60 s"}
    ```

    Under `RequestCancelationMiddleware(default_timeout=...)`, the operation also ends at the
    request's limit (reason `TIMEOUT`, a message naming the limit), the same clean way,
    unless it comes from `CancelableDependency(timeout=...)`, whose timeout is the route's
    own limit; at the caller's budget (`Request-Timeout-Ms`), it ends in any case. A client
    that disconnects gets nothing more, and cancellations from outside the operation (the
    server) go on as usual. Chunks are `bytes`, or `str` encoded as UTF-8.

    Raises:
        TypeError: `generator` is not iterable, `cancelable` not a `Cancelable`.
        RuntimeError: `cancelable` was already entered.
    """
    if not isinstance(generator, AsyncIterable | Iterable):
        raise TypeError(f"generator must be an (async) iterable of chunks, got {generator!r}")
    if not isinstance(cancelable, Cancelable):
        raise TypeError(f"cancelable must be a Cancelable, got {cancelable!r}")
    if cancelable.context.status is not OperationStatus.PENDING:
        raise RuntimeError(
            f"{cancelable!r} was already entered: give the response a Cancelable of its own, "
            "which it enters while it streams"
        )
    if not isinstance(media_type, str):
        raise TypeError(f"media_type must be a str, got {media_type!r}")
    return _CancelableStreamingResponse(
        generator, cancelable, media_type, status_code, None if headers is None else dict(headers)
    )


class _CancelableStreamingResponse(StreamingResponse):
    def __init__(
        self,
        content: AsyncIterable[str | bytes] | Iterable[str | bytes],
        operation: Cancelable,
        media_type: str,
        status_code: int,
        headers: dict[str, str] | None,
    ) -> None:
        event_stream = media_type.partition(";")[0].strip().lower() == "text/event-stream"
        if event_stream:
            headers = {"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})}
        super().__init__(content, status_code=status_code, headers=headers, media_type=media_type)
        self._operation = operation
        self._event_stream = event_stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = _limit_in(scope)
        operation = self._operation
        pending = operation.context.status is OperationStatus.PENDING
        if limit is not None and pending and operation not in _BOUND:
            _bind(operation, limit, None)  # any operation: the stream ends at the limit
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        operation = self._operation
        sending = False
        try:
            async with operation:
                async for chunk in operation.stream(self.body_iterator, buffer_partial=False):
                    body = chunk.encode(self.charset) if isinstance(chunk, str) else bytes(chunk)
                    sending = True
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    sending = False
        except CancelationError:
            if operation.context.status is not OperationStatus.CANCELLED:
                raise  # the generator's own, not this operation's
        if operation.context.status is OperationStatus.CANCELLED:
            if sending:
                return  # cut in the middle of a chunk: the server closes the connection
            if self._event_stream:
                final = _cancelled_event(operation.context)
                await send({"type": "http.response.body", "body": final, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _cancelled_event(context: OperationContext) -> bytes:
    reason = None if context.cancel_reason is None else context.cancel_reason.value
    data = json.dumps({"reason": reason, "message": context.cancel_message})
    return f"event: cancelled\ndata: {data}\n\n".encode()


# -- websockets --------------------------------------------------------------------------------


class CancelableWebSocket:
    """A websocket whose session is an operation: cancelling it closes the socket.

    ```python
    @app.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async with CancelableWebSocket(websocket, Cancelable.with_timeout(300)) as ws:
            async for text in ws.iter_text():
                await ws.send_text(text)
    ```

    `async with` enters `cancelable`; inside the block, every `receive_*` and `send_*`
    checks the operation first and is interrupted when it is cancelled. When the operation
    is cancelled by its own sources (timeout, token, `cancel()`, ...), the server closes the
    socket with `close_code` (1001, "going away", by default: the server ends the session on
    purpose; 1011 stays what a server sends for an error) and the operation's message as the
    reason, and the block ends quietly: `ws.cancelable.context` says why. Other exceptions,
    `WebSocketDisconnect` when the client leaves among them, leave the block unchanged, and
    the server handles them as usual.

    `RequestCancelationMiddleware` does not watch websockets: a client that leaves shows up
    as `WebSocketDisconnect` from `receive_*`.

    Args:
        websocket: the Starlette/FastAPI websocket, accepted or not.
        cancelable: the operation, not entered yet.
        close_code: the close code sent on cancellation (1000-4999).

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: `close_code` out of range.
        RuntimeError: `cancelable` was already entered.
    """

    __slots__ = ("_cancelable", "_close_code", "_websocket")

    def __init__(
        self, websocket: WebSocket, cancelable: Cancelable, close_code: int = 1001
    ) -> None:
        if not isinstance(websocket, WebSocket):
            raise TypeError(f"websocket must be a WebSocket, got {websocket!r}")
        if not isinstance(cancelable, Cancelable):
            raise TypeError(f"cancelable must be a Cancelable, got {cancelable!r}")
        if cancelable.context.status is not OperationStatus.PENDING:
            raise RuntimeError(f"{cancelable!r} was already entered: give a Cancelable of its own")
        if isinstance(close_code, bool) or not isinstance(close_code, int):
            raise TypeError(f"close_code must be an int, got {close_code!r}")
        if not 1000 <= close_code <= 4999:
            raise ValueError(f"close_code must be between 1000 and 4999, got {close_code!r}")
        self._websocket = websocket
        self._cancelable = cancelable
        self._close_code = close_code

    @property
    def websocket(self) -> WebSocket:
        """The wrapped websocket."""
        return self._websocket

    @property
    def cancelable(self) -> Cancelable:
        """The operation the session runs as."""
        return self._cancelable

    async def __aenter__(self) -> Self:
        await self._cancelable.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        operation = self._cancelable
        try:
            suppress = await operation.__aexit__(exc_type, exc, tb)
        except CancelationError:  # raised only for the operation's own cancellation
            pass
        else:
            own = operation.context.status is OperationStatus.CANCELLED and (
                suppress or isinstance(exc, CancelationError)  # check_cancelation() raised it
            )
            if not own:
                # An enclosing scope's cancellation goes on untouched, and the socket is left
                # to the code that owns that scope (the server closes it as the handler ends).
                return suppress
        await self._close_cancelled(operation.context)
        return True

    async def _close_cancelled(self, context: OperationContext) -> None:
        websocket = self._websocket
        if WebSocketState.DISCONNECTED in (websocket.application_state, websocket.client_state):
            return
        reason = (context.cancel_message or "cancelled").encode()[:123].decode(errors="ignore")
        with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            with contextlib.suppress(WebSocketDisconnect):  # the client left first
                await websocket.close(self._close_code, reason)

    async def _check(self) -> None:
        if not self._cancelable.is_running:
            raise RuntimeError("use the websocket inside `async with CancelableWebSocket(...)`")
        await self._cancelable.check_cancelation()

    async def accept(
        self, subprotocol: str | None = None, headers: Iterable[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Accept the connection, unless the operation is cancelled."""
        await self._check()
        await self._websocket.accept(subprotocol, headers)

    async def receive_text(self) -> str:
        """Wait for a text message."""
        await self._check()
        return await self._websocket.receive_text()

    async def receive_bytes(self) -> bytes:
        """Wait for a binary message."""
        await self._check()
        return await self._websocket.receive_bytes()

    async def receive_json(self, mode: str = "text") -> Any:
        """Wait for a JSON message (`mode` "text" or "binary")."""
        await self._check()
        return await self._websocket.receive_json(mode)

    async def send_text(self, data: str) -> None:
        """Send a text message."""
        await self._check()
        await self._websocket.send_text(data)

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self._check()
        await self._websocket.send_bytes(data)

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Send `data` as JSON (`mode` "text" or "binary")."""
        await self._check()
        await self._websocket.send_json(data, mode)

    async def iter_text(self) -> AsyncIterator[str]:
        """The text messages, until the client disconnects."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """The binary messages, until the client disconnects."""
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> AsyncIterator[Any]:
        """The JSON messages, until the client disconnects."""
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the connection yourself (no check: closing is always allowed)."""
        await self._websocket.close(code, reason)
