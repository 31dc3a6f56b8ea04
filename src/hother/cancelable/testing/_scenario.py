"""`CancelationScenario`: a script of what happens to an operation, and when."""

from __future__ import annotations

import inspect
import signal as _signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Self, TypeVar

import anyio

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    OperationContext,
    OperationStatus,
)
from hother.cancelable._checks import check_message, check_reason, check_seconds

__all__ = ["CancelationScenario", "ScenarioResult", "ScenarioStep"]

T = TypeVar("T")

_MANUAL = CancelationReason.MANUAL


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
