"""`MockCancelationToken`: a real token that records its calls and cancels itself on cue."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Literal, NamedTuple, Self, final

import anyio

if TYPE_CHECKING:  # at run time anyio imports its submodules on first use
    import anyio.abc
    import anyio.lowlevel

from hother.cancelable import CancelationReason, CancelationToken
from hother.cancelable._checks import check_message, check_reason, check_seconds

from ._checks import check_whole

__all__ = ["MockCancelationToken", "ScheduledCancel", "TokenCall"]

_MANUAL = CancelationReason.MANUAL
_TOKEN_METHODS = ("cancel", "cancel_sync", "check", "check_async")


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
        checks = check_whole("checks", checks)
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
