"""Helpers for testing code that uses hother.cancelable, on asyncio, uvloop and trio.

- `MockCancelationToken`: a token that records how it is used and cancels itself on cue;
- `OperationRecorder`: records the life of operations and asserts how they ended;
- `assert_cancelation_within`: asserts that a block ends by a cancellation, in a time window;
- `CancelationScenario`: scripts what happens to an operation, and when;
- `create_slow_stream`: an async iterator that yields its items slowly.

Nothing here starts a task or a thread that outlives the block or the call that started it.
Times are measured on the event loop's clock (`anyio.current_time()`), so a fake clock such
as trio's `MockClock` speeds them up too; only `TokenCall.time`, which may be taken in any
thread, is on `time.monotonic()`.
"""

from __future__ import annotations

import inspect
import random
import signal as _signal
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, Self, TypeVar, final
from weakref import WeakSet

import anyio

if TYPE_CHECKING:  # at run time anyio imports its submodules on first use
    import anyio.abc
    import anyio.lowlevel

from ._cancelable import Cancelable
from ._checks import check_message, check_reason, check_seconds
from ._context import CancelationReason, OperationContext, OperationStatus
from ._exceptions import CancelationError
from ._token import CancelationToken

__all__ = [
    "CancelationScenario",
    "ExpectedCancelation",
    "MockCancelationToken",
    "OperationEvent",
    "OperationRecorder",
    "ScenarioResult",
    "ScenarioStep",
    "ScheduledCancel",
    "TokenCall",
    "assert_cancelation_within",
    "create_slow_stream",
]

T = TypeVar("T")
C = TypeVar("C", bound=Cancelable)

_MANUAL = CancelationReason.MANUAL
_CLOCK_TOLERANCE = 0.001  # seconds: uvloop's clock moves in steps of 1 ms
_TOKEN_METHODS = ("cancel", "cancel_sync", "check", "check_async")


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


# -- MockCancelationToken ----------------------------------------------------------------------


class TokenCall(NamedTuple):
    """One call made to a `MockCancelationToken`."""

    method: Literal["cancel", "cancel_sync", "check", "check_async"]
    """The method called."""
    reason: CancelationReason | None
    """For `cancel`/`cancel_sync`, the reason given; for a check that raised, the token's."""
    message: str | None
    """For `cancel`/`cancel_sync`, the message given; for a check that raised, the token's."""
    result: bool
    """For `cancel`/`cancel_sync`, what it returned (True: the first request); for a check,
    True if it raised because the token was cancelled."""
    time: float
    """When the call was made, on `time.monotonic()`."""


class MockCancelationToken(CancelationToken):
    """A `CancelationToken` that records its calls and can cancel itself on cue.

    It is a real token: hand it to `Cancelable.with_token()`, to code that calls `check()`,
    to other threads. On top of that it records every call of the code under test to
    `cancel()`, `cancel_sync()`, `check()` and `check_async()` in `calls`, and it can be
    told to cancel itself:

    - `cancel_after_checks(n)`: the next `n` checks pass, the one after cancels the token
      and raises, so a loop that checks once per item handles exactly `n` items;
    - `schedule_cancel(delay)`: an `async with` block during which the token is cancelled
      `delay` seconds after entry, by a task that never outlives the block.

    ```python
    token = MockCancelationToken()
    token.cancel_after_checks(2)
    handled = []
    with pytest.raises(ManualCancelation):
        for item in range(10):
            token.check()
            handled.append(item)
    assert handled == [0, 1]
    assert token.check_count == 3
    ```

    Cancellations the token makes on cue are not calls of the code under test: they are not
    in `calls`. `reason`, `message` and `cancelled_at` tell how and when it was cancelled.
    """

    __slots__ = ("_calls", "_cancel_at", "_checks")

    def __init__(self) -> None:
        super().__init__()
        self._calls: list[TokenCall] = []
        self._checks = 0
        # (the check number that cancels, reason, message), set by cancel_after_checks().
        self._cancel_at: tuple[int, CancelationReason, str | None] | None = None

    @property
    def calls(self) -> list[TokenCall]:
        """The calls made so far, oldest first (a copy)."""
        return list(self._calls)

    @property
    def check_count(self) -> int:
        """How many times `check()` and `check_async()` were called."""
        return self._checks

    def call_count(self, method: str) -> int:
        """How many calls to `method`: `cancel`, `cancel_sync`, `check` or `check_async`.

        Raises:
            ValueError: `method` is not one of those names.
        """
        if method not in _TOKEN_METHODS:
            raise ValueError(f"method must be one of {', '.join(_TOKEN_METHODS)}, got {method!r}")
        return sum(1 for call in self._calls if call.method == method)

    async def cancel(self, reason: CancelationReason = _MANUAL, message: str | None = None) -> bool:
        """`CancelationToken.cancel()`, recorded in `calls`."""
        at = time.monotonic()
        result = await super().cancel(reason, message)
        self._calls.append(TokenCall("cancel", reason, message, result, at))
        return result

    def cancel_sync(self, reason: CancelationReason = _MANUAL, message: str | None = None) -> bool:
        """`CancelationToken.cancel_sync()`, recorded in `calls`."""
        at = time.monotonic()
        result = super().cancel_sync(reason, message)
        self._calls.append(TokenCall("cancel_sync", reason, message, result, at))
        return result

    def check(self) -> None:
        """`CancelationToken.check()`, recorded in `calls`; counted by `cancel_after_checks`."""
        self._checked("check")

    async def check_async(self) -> None:
        """`CancelationToken.check_async()`, recorded and counted like `check()`."""
        self._checked("check_async")
        await anyio.lowlevel.checkpoint()

    def _checked(self, method: Literal["check", "check_async"]) -> None:
        at = time.monotonic()
        self._checks += 1
        cue = self._cancel_at
        if cue is not None and self._checks >= cue[0]:
            self._cancel_at = None
            CancelationToken.cancel_sync(self, cue[1], cue[2])
        cancelled = self.is_cancelled
        reason, message = (self.reason, self.message) if cancelled else (None, None)
        self._calls.append(TokenCall(method, reason, message, cancelled, at))
        super().check()

    def cancel_after_checks(
        self, checks: int, reason: CancelationReason = _MANUAL, message: str | None = None
    ) -> None:
        """Let the next `checks` checks pass; the one after cancels the token and raises.

        Checks are calls to `check()` and `check_async()`; `is_cancelled` is not one. With
        `checks=0` the very next check cancels. A later call replaces the cue.

        Raises:
            TypeError, ValueError: `checks` is not a whole number >= 0, or `reason` or
                `message` has the wrong type.
        """
        checks = _check_count("checks", checks)
        self._cancel_at = (self._checks + checks + 1, check_reason(reason), check_message(message))

    def schedule_cancel(
        self, delay: float, reason: CancelationReason = _MANUAL, message: str | None = None
    ) -> ScheduledCancel:
        """An `async with` block during which the token is cancelled `delay` seconds in.

        ```python
        async with token.schedule_cancel(0.1, message="stop"):
            async with Cancelable.with_token(token):
                await anyio.sleep(1)  # ends after 0.1 s with ManualCancelation
        ```

        The cancellation runs as a task of the block's own task group, on the event loop
        (as `await token.cancel()`). If the block ends first, the task is cancelled and the
        token is left as it is; either way nothing is left running after the block.

        Raises:
            TypeError, ValueError: `delay` is not a finite number of seconds >= 0, or
                `reason` or `message` has the wrong type.
        """
        return ScheduledCancel(
            self, check_seconds("delay", delay), check_reason(reason), check_message(message)
        )


@final
class ScheduledCancel:
    """The `async with` block returned by `MockCancelationToken.schedule_cancel()`.

    Single use. Inside and after the block, `fired` says whether the delay passed and the
    token was cancelled by it.
    """

    __slots__ = ("_delay", "_entered", "_message", "_reason", "_task_group", "_token", "fired")

    def __init__(
        self,
        token: MockCancelationToken,
        delay: float,
        reason: CancelationReason,
        message: str | None,
    ) -> None:
        self._token = token
        self._delay = delay
        self._reason = reason
        self._message = message
        self._task_group: anyio.abc.TaskGroup | None = None
        self._entered = False
        self.fired: bool = False
        """True once the delay has passed and the token was cancelled by this schedule."""

    async def _fire(self) -> None:
        await anyio.sleep(self._delay)
        self.fired = True
        await CancelationToken.cancel(self._token, self._reason, self._message)

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError(
                "a scheduled cancellation runs one block; call schedule_cancel() again"
            )
        self._entered = True
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._fire)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group = self._task_group
        assert task_group is not None
        self._task_group = None
        task_group.cancel_scope.cancel()
        try:
            # Not given the body's exception, so the group never wraps it.
            await task_group.__aexit__(None, None, None)
        except BaseException:
            if exc is None:
                raise


# -- OperationRecorder -------------------------------------------------------------------------

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
            _check_exception_types("error", error, BaseException)
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


def _check_exception_types(name: str, value: object, base: type[BaseException]) -> None:
    types: tuple[object, ...] = value if isinstance(value, tuple) else (value,)  # pyright: ignore[reportUnknownVariableType]
    if not types or not all(isinstance(t, type) and issubclass(t, base) for t in types):
        raise TypeError(
            f"{name} must be a subclass of {base.__name__} or a tuple of them, got {value!r}"
        )


# -- assert_cancelation_within -----------------------------------------------------------------


@final
class ExpectedCancelation:
    """The `async with` block returned by `assert_cancelation_within()`.

    After a block that passed, `error` is the cancellation it caught and `elapsed` how long
    the block took, in seconds.
    """

    __slots__ = ("_scope", "_start", "elapsed", "error", "expected", "max_time", "min_time")

    def __init__(
        self,
        min_time: float,
        max_time: float,
        expected: type[Exception] | tuple[type[Exception], ...],
    ) -> None:
        self.min_time: float = min_time
        """The start of the window, in seconds."""
        self.max_time: float = max_time
        """The end of the window, in seconds."""
        self.expected: type[Exception] | tuple[type[Exception], ...] = expected
        """The exception class, or classes, that the block must raise."""
        self.error: Exception | None = None
        """The cancellation that ended the block."""
        self.elapsed: float | None = None
        """Seconds from entering the block to its end."""
        self._scope: anyio.CancelScope | None = None
        self._start = 0.0

    def _window(self) -> str:
        expected = self.expected
        names = (
            " or ".join(t.__name__ for t in expected)
            if isinstance(expected, tuple)
            else expected.__name__
        )
        return f"expected {names} between {self.min_time:g} and {self.max_time:g} s"

    async def __aenter__(self) -> Self:
        if self._scope is not None:
            raise RuntimeError(
                "assert_cancelation_within() runs one block; call it again for another"
            )
        self._start = anyio.current_time()
        # Stop waiting past max_time: by then the assertion has failed anyway.
        self._scope = anyio.CancelScope(deadline=self._start + self.max_time + _CLOCK_TOLERANCE)
        self._scope.__enter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        scope = self._scope
        assert scope is not None
        elapsed = self.elapsed = anyio.current_time() - self._start
        try:
            scope.__exit__(exc_type, exc, tb)
        except BaseException as new:  # the scope stripped its own cancellation from a group
            exc = new
            if not scope.cancelled_caught:
                raise
        if scope.cancelled_caught:
            raise AssertionError(
                f"the block was still running after {self.max_time:g} s; {self._window()}"
            ) from None
        if exc is None:
            raise AssertionError(
                f"the block finished after {elapsed:.3f} s without being cancelled; "
                f"{self._window()}"
            )
        if not isinstance(exc, Exception):
            return False  # an enclosing scope's cancellation, KeyboardInterrupt: not ours
        if not isinstance(exc, self.expected):
            raise AssertionError(
                f"the block raised {exc!r} after {elapsed:.3f} s; {self._window()}"
            ) from exc
        if not self.min_time - _CLOCK_TOLERANCE <= elapsed <= self.max_time + _CLOCK_TOLERANCE:
            raise AssertionError(
                f"the block raised {type(exc).__name__} after {elapsed:.3f} s; {self._window()}"
            ) from exc
        self.error = exc
        return True


def assert_cancelation_within(
    min_time: float,
    max_time: float,
    expected: type[Exception] | tuple[type[Exception], ...] = CancelationError,
) -> ExpectedCancelation:
    """An `async with` block that must end by a cancellation, `min_time` to `max_time` s in.

    ```python
    async with assert_cancelation_within(0.05, 0.5) as caught:
        async with Cancelable.with_timeout(0.1):
            await anyio.sleep(1)
    assert caught.error.reason is CancelationReason.TIMEOUT
    ```

    The block passes when it raises an instance of `expected` (any `CancelationError` by
    default; `TimeoutError` for `anyio.fail_after`, say) within the window: the exception is
    swallowed and kept in `caught.error`. Otherwise an `AssertionError` says what happened:
    the block finished normally, raised something else, ended too early or too late. A block
    still running at `max_time` is cancelled there, so a test never hangs on it. Time is
    measured on the event loop's clock, with a tolerance of 1 ms either side: uvloop's
    clock moves in 1 ms steps, so a 0.1 s timeout may be measured as 0.0999... s there.

    A backend cancellation cannot be expected: it belongs to the scope that cancelled, and an
    enclosing scope's cancellation goes through untouched.

    Raises:
        TypeError, ValueError: a time is not a finite number of seconds >= 0, `max_time` is
            less than `min_time`, or `expected` is not an `Exception` subclass or a tuple of them.
    """
    low = check_seconds("min_time", min_time)
    high = check_seconds("max_time", max_time)
    if high < low:
        raise ValueError(f"max_time must be >= min_time ({min_time!r}), got {max_time!r}")
    _check_exception_types("expected", expected, Exception)
    return ExpectedCancelation(low, high, expected)


# -- CancelationScenario -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScenarioStep:
    """A step of a `CancelationScenario` that ran."""

    at: float
    """Seconds after the block was entered (never less than the step's scheduled time)."""
    action: str
    """What the step did."""


@dataclass(frozen=True, slots=True)
class ScenarioResult(Generic[T]):
    """What happened when a `CancelationScenario` ran."""

    context: OperationContext
    """The operation's record: status, reason, message, partial result."""
    value: T | None
    """What the body returned, or None if it did not return."""
    error: Exception | None
    """The exception that left the block (a `CancelationError` when it was cancelled)."""
    elapsed: float
    """Seconds from entering the block to its end."""
    steps: list[ScenarioStep]
    """The steps that ran before the block ended, in order."""

    @property
    def status(self) -> OperationStatus:
        """How the operation ended: `COMPLETED`, `CANCELLED` or `FAILED`."""
        return self.context.status

    @property
    def reason(self) -> CancelationReason | None:
        """Why it was cancelled, or None."""
        return self.context.cancel_reason

    @property
    def message(self) -> str | None:
        """The cancel message, or None."""
        return self.context.cancel_message


_Action = Callable[[Cancelable], Awaitable[None]]


class _Step(NamedTuple):
    at: float  # seconds after entry
    action: _Action
    description: str


class CancelationScenario:
    """A script of what happens to an operation, and when; `run()` plays it.

    ```python
    token = CancelationToken()
    scenario = CancelationScenario().after(0.05).cancel_token(token, message="stop")
    result = await scenario.run(lambda: Cancelable.with_token(token), work)
    assert result.status is OperationStatus.CANCELLED
    assert result.message == "stop"
    ```

    `after(delay)` waits `delay` seconds after the previous step (the block's entry for the
    first); the other methods add a step and return the scenario, so calls chain:

    - `cancel_token(token, reason, message)`: `await token.cancel(reason, message)`;
    - `cancel(reason, message)`: cancels the operation itself;
    - `signal(signum)`: the process sends itself the signal (`signal.raise_signal`);
    - `check(fn)`: calls `fn(cancel)`, sync or async, to assert on the state at that moment
      or to change it (flip a flag a condition watches). An exception it raises stops the
      operation, and `run()` raises it once the block has ended.

    Steps with no `after()` between them happen at the same moment and are played to the
    end once the first has begun, even if the block ends meanwhile (so a check that comes
    right after a cancellation does run); a moment not yet due when the block ends is not
    played. A scenario can be run many times.
    """

    __slots__ = ("_offset", "_steps")

    def __init__(self) -> None:
        self._steps: list[_Step] = []
        self._offset = 0.0

    def _add(self, action: _Action, description: str) -> Self:
        self._steps.append(_Step(self._offset, action, description))
        return self

    def after(self, delay: float) -> Self:
        """Run the next step `delay` seconds after the previous one.

        Raises:
            TypeError, ValueError: `delay` is not a finite number of seconds >= 0.
        """
        self._offset += check_seconds("delay", delay)
        return self

    def cancel_token(
        self,
        token: CancelationToken,
        reason: CancelationReason = _MANUAL,
        message: str | None = None,
    ) -> Self:
        """Cancel `token` with `reason` and `message`.

        Raises:
            TypeError: `token` is not a `CancelationToken`, or `reason` or `message` has the
                wrong type.
        """
        if not isinstance(token, CancelationToken):
            raise TypeError(f"token must be a CancelationToken, got {token!r}")
        check_reason(reason)
        check_message(message)

        async def cancel_token(_: Cancelable) -> None:
            await token.cancel(reason, message)

        return self._add(cancel_token, f"cancel token {token.id} ({reason.name})")

    def cancel(self, reason: CancelationReason = _MANUAL, message: str | None = None) -> Self:
        """Cancel the operation itself, as `await cancel.cancel(reason, message)`.

        Raises:
            TypeError: `reason` or `message` has the wrong type.
        """
        check_reason(reason)
        check_message(message)

        async def cancel_operation(operation: Cancelable) -> None:
            await operation.cancel(reason, message)

        return self._add(cancel_operation, f"cancel the operation ({reason.name})")

    def signal(self, signum: int) -> Self:
        """Send the signal `signum` to this process, as `kill -<signum> <pid>` would.

        Raises:
            TypeError, ValueError: `signum` is not a signal number of this platform.
        """
        if isinstance(signum, bool) or not isinstance(signum, int):
            raise TypeError(f"signum must be a signal number, got {signum!r}")
        try:
            number = _signal.Signals(signum)
        except ValueError:
            raise ValueError(f"signum must be a signal number, got {signum!r}") from None

        async def send(_: Cancelable) -> None:
            _signal.raise_signal(number)

        return self._add(send, f"raise {number.name}")

    def check(self, fn: Callable[[Cancelable], Any], name: str | None = None) -> Self:
        """Call `fn(cancel)` (sync or async), named `name` in the result's steps.

        Raises:
            TypeError: `fn` is not callable or `name` is not a str.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")

        async def call(operation: Cancelable) -> None:
            result = fn(operation)
            if inspect.isawaitable(result):
                await result

        label = name if name is not None else getattr(fn, "__name__", repr(fn))
        return self._add(call, f"check {label}")

    async def run(
        self,
        operation: Cancelable | Callable[[], Cancelable],
        body: Callable[[Cancelable], Awaitable[T]],
    ) -> ScenarioResult[T]:
        """Enter `operation`, run `await body(cancel)` in its block and play the steps.

        `operation` is a `Cancelable` not yet entered, or a function that builds one. The
        exception that leaves the block is not raised: it is in the result's `error`, next
        to the operation's record. Only a failing `check` step, and a cancellation of an
        enclosing scope, are raised.

        Raises:
            TypeError: `operation` is not a `Cancelable` or a function returning one, or
                `body` is not callable.
            ValueError: the operation was entered already.
            BaseException: what a `check` step raised, as it was raised.
        """
        cancel = _build(operation)
        if not callable(body):
            raise TypeError(f"body must be callable, got {body!r}")
        value: T | None = None
        error: Exception | None = None
        pending: BaseException | None = None
        start = anyio.current_time()
        playback = _Playback(self._steps, cancel, start)
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        try:
            task_group.start_soon(playback.play)
            with playback.stopper:
                try:
                    async with cancel:
                        value = await body(cancel)
                except Exception as exc:
                    error = exc
        except BaseException as exc:  # an enclosing scope's cancellation: it goes on
            pending = exc
            task_group.cancel_scope.cancel()
        ended = anyio.current_time()
        playback.block_ended()
        try:
            # Not given the body's exception, so the group never wraps it.
            await task_group.__aexit__(None, None, None)
        except BaseException:
            if pending is None:
                raise
        if pending is not None:
            raise pending
        if playback.failures:
            raise playback.failures[0]
        elapsed = ended - start
        if playback.ran:  # a step's time is never before its due time, nor after the end
            elapsed = max(elapsed, playback.ran[-1].at)
        return ScenarioResult(cancel.context, value, error, elapsed, playback.ran)

    def __repr__(self) -> str:
        steps = ", ".join(f"{step.at:g} s: {step.description}" for step in self._steps)
        return f"<CancelationScenario [{steps}]>"


class _Playback:
    """Plays a scenario's steps beside the block, as a task of `run()`'s task group.

    Steps with no `after()` between them are one moment, played to its end once begun (so
    a check's assertions are never cut short); a moment not begun when the block ends is
    not played. No clocks are compared: under uvloop the loop's clock has 1 ms steps.
    """

    __slots__ = ("_ended", "_steps", "_waiting", "cancel", "failures", "ran", "start", "stopper")

    def __init__(self, steps: list[_Step], cancel: Cancelable, start: float) -> None:
        self._steps = list(steps)
        self.cancel = cancel
        self.start = start
        self.ran: list[ScenarioStep] = []
        self.failures: list[BaseException] = []
        self.stopper = anyio.CancelScope()  # around the block: stops it when a step fails
        self._waiting: anyio.CancelScope | None = None
        self._ended = False

    def block_ended(self) -> None:
        self._ended = True
        if self._waiting is not None:
            self._waiting.cancel()

    async def play(self) -> None:
        moment: float | None = None
        for step in self._steps:
            if step.at != moment:
                if self._ended:
                    return
                due = self.start + step.at
                if due > anyio.current_time():
                    with anyio.CancelScope() as self._waiting:
                        await anyio.sleep_until(due)
                    self._waiting = None
                    if self._ended:
                        return
                moment = step.at
            # Never before its time: uvloop's clock may wake a timer a hair early.
            at = max(anyio.current_time() - self.start, step.at)
            self.ran.append(ScenarioStep(at, step.description))
            try:
                await step.action(self.cancel)
            except anyio.get_cancelled_exc_class():
                raise  # run() is over: the block ended before this step did
            except BaseException as exc:  # KeyboardInterrupt too: run() raises it, as is
                self.failures.append(exc)
                self.stopper.cancel()
                return


def _build(operation: object) -> Cancelable:
    built: object = operation() if callable(operation) else operation
    if not isinstance(built, Cancelable):
        where = "operation()" if callable(operation) else "operation"
        raise TypeError(f"{where} must be a Cancelable or a function returning one, got {built!r}")
    if built.context.status is not OperationStatus.PENDING:
        raise ValueError(f"operation must be a Cancelable not entered yet, got {built!r}")
    return built


# -- create_slow_stream ------------------------------------------------------------------------


def create_slow_stream(
    items: Iterable[T], delay: float = 0.01, jitter: float = 0.0
) -> AsyncGenerator[T]:
    """An async iterator over `items` that waits before each one, for streaming consumers.

    ```python
    async for item in create_slow_stream(["a", "b", "c"], delay=0.01):
        ...
    ```

    Each item comes `delay` seconds after the previous one, plus a random extra of up to
    `jitter` seconds. The wait is `anyio.sleep`, a checkpoint, so the stream can be
    cancelled between items. Arguments are checked here, not at the first item.

    Raises:
        TypeError: `items` is not iterable.
        TypeError, ValueError: `delay` or `jitter` is not a finite number of seconds >= 0.
    """
    try:
        iterator = iter(items)
    except TypeError:
        raise TypeError(f"items must be an iterable, got {items!r}") from None
    return _slow(iterator, check_seconds("delay", delay), check_seconds("jitter", jitter))


async def _slow(iterator: Iterator[T], delay: float, jitter: float) -> AsyncGenerator[T]:
    for item in iterator:
        await anyio.sleep(delay + random.uniform(0, jitter) if jitter else delay)
        yield item
