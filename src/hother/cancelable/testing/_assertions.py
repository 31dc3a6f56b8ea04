"""`assert_cancelation_within`: a block that must end by a cancellation, in a time window."""

from __future__ import annotations

from types import TracebackType
from typing import Self, final

import anyio

from hother.cancelable import CancelationError
from hother.cancelable._checks import check_seconds

from ._checks import check_exception_types

__all__ = ["ExpectedCancelation", "assert_cancelation_within"]

_CLOCK_TOLERANCE = 0.001  # seconds: uvloop's clock moves in steps of 1 ms


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
    check_exception_types("expected", expected, Exception)
    return ExpectedCancelation(low, high, expected)
