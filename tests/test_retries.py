"""Retry loops (tenacity, stamina) inside an operation: `cancel.wrap()` and `cancel.wrapping()`.

Both libraries retry on trio too (they pick their sleep through sniffio), so every test runs
on every backend. Each test runs the same retry loop written four ways: tenacity's
`AsyncRetrying` called with the wrapped function, tenacity's `async for` loop with
`cancel.wrapping()`, `stamina.retry_context`, and `@stamina.retry`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationStatus,
    TimeoutCancelation,
)

try:
    import tenacity
except ImportError:  # pragma: no cover - an optional test dependency
    tenacity = None  # type: ignore[assignment]
try:
    import stamina
except ImportError:  # pragma: no cover - an optional test dependency
    stamina = None  # type: ignore[assignment]

needs_tenacity = pytest.mark.skipif(tenacity is None, reason="tenacity is not installed")
needs_stamina = pytest.mark.skipif(stamina is None, reason="stamina is not installed")

SLACK = 0.5  # loose upper bound on timings, for slow CI machines

Attempt = Callable[[], Awaitable[Any]]


def retryable(exc: BaseException) -> bool:
    """The predicate docs/integrations/retries.md recommends, for both libraries.

    It names what to retry and excludes every `CancelationError`, `TimeoutCancelation`
    included although it is a `TimeoutError`. It also sees the backend's cancellation
    exception, which is not an `Exception` subclass and so is not retried either.
    """
    return isinstance(exc, ConnectionError | TimeoutError) and not isinstance(exc, CancelationError)


async def no_sleep(seconds: float) -> None:
    """A tenacity `sleep` without a checkpoint: only `cancel.wrap()` can stop the loop."""


# -- the same retry loop, four ways ------------------------------------------------------------


async def tenacity_call(
    cancel: Cancelable, attempt: Attempt, attempts: int, wait: float, **options: Any
) -> None:
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_fixed(wait),
        retry=tenacity.retry_if_exception(retryable),
        reraise=True,
        **options,
    )
    await retrying(cancel.wrap(attempt))


async def tenacity_loop(
    cancel: Cancelable, attempt: Attempt, attempts: int, wait: float, **options: Any
) -> None:
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_fixed(wait),
        retry=tenacity.retry_if_exception(retryable),
        reraise=True,
        **options,
    )
    async with cancel.wrapping() as call:
        async for try_ in retrying:
            with try_:
                await call(attempt)


async def stamina_context(cancel: Cancelable, attempt: Attempt, attempts: int, wait: float) -> None:
    async for try_ in stamina.retry_context(
        on=retryable,
        attempts=attempts,
        timeout=None,
        wait_initial=wait,
        wait_max=wait,
        wait_jitter=0,
    ):
        with try_:
            await cancel.wrap(attempt)()


async def stamina_decorator(
    cancel: Cancelable, attempt: Attempt, attempts: int, wait: float
) -> None:
    retried = stamina.retry(
        on=retryable,
        attempts=attempts,
        timeout=None,
        wait_initial=wait,
        wait_max=wait,
        wait_jitter=0,
    )(cancel.wrap(attempt))
    await retried()


LOOPS = [
    pytest.param(tenacity_call, id="tenacity-call", marks=needs_tenacity),
    pytest.param(tenacity_loop, id="tenacity-loop", marks=needs_tenacity),
    pytest.param(stamina_context, id="stamina-context", marks=needs_stamina),
    pytest.param(stamina_decorator, id="stamina-decorator", marks=needs_stamina),
]
TENACITY_LOOPS = LOOPS[:2]

RetryLoop = Callable[..., Awaitable[None]]


class Attempts:
    """An attempt that always fails with ConnectionError; counts how often it started."""

    def __init__(
        self, duration: float | None = 0.001, on_attempt: Callable[[int], None] | None = None
    ) -> None:
        self.count = 0
        self.duration = duration  # None: no checkpoint at all
        self.on_attempt = on_attempt

    async def __call__(self) -> None:
        self.count += 1
        if self.on_attempt is not None:
            self.on_attempt(self.count)
        if self.duration is not None:
            await anyio.sleep(self.duration)
        raise ConnectionError("connection reset")


# -- a timeout bounds the whole loop -----------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
async def test_a_timeout_bounds_the_whole_retry_loop(loop: RetryLoop) -> None:
    attempt = Attempts()
    start = anyio.current_time()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.1) as cancel:
            await loop(cancel, attempt, attempts=50, wait=0.05)  # 2.5 s of backoff alone
    assert anyio.current_time() - start < 0.1 + SLACK
    assert 1 <= attempt.count <= 4
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT


@pytest.mark.parametrize("loop", LOOPS)
async def test_a_timeout_interrupts_an_attempt_in_progress(loop: RetryLoop) -> None:
    attempt = Attempts(duration=5)
    start = anyio.current_time()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as cancel:
            await loop(cancel, attempt, attempts=5, wait=0)
    assert anyio.current_time() - start < 0.05 + SLACK
    assert attempt.count == 1


@pytest.mark.parametrize("loop", TENACITY_LOOPS)
async def test_wrap_refuses_an_attempt_after_a_deadline_passed_without_a_checkpoint(
    loop: RetryLoop,
) -> None:
    def block_past_the_deadline(count: int) -> None:
        time.sleep(0.03)  # blocking code: the deadline passes, no checkpoint sees it

    attempt = Attempts(duration=None, on_attempt=block_past_the_deadline)
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable.with_timeout(0.02) as cancel:
            await loop(cancel, attempt, attempts=5, wait=0, sleep=no_sleep)
    assert attempt.count == 1
    assert info.value.context is cancel.context
    assert cancel.context.status is OperationStatus.CANCELLED


# -- a cancelled token stops further attempts --------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
async def test_a_token_cancelled_meanwhile_stops_further_attempts(loop: RetryLoop) -> None:
    token = CancelationToken()
    attempt = Attempts(duration=0.01)
    started_before_cancel: list[int] = []

    async def cancel_soon() -> None:
        await anyio.sleep(0.05)
        await token.cancel(message="user pressed stop")
        started_before_cancel.append(attempt.count)

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_soon)
        with pytest.raises(ManualCancelation, match="user pressed stop"):
            async with Cancelable.with_token(token) as cancel:
                await loop(cancel, attempt, attempts=50, wait=0.01)
    assert 1 <= attempt.count < 50
    assert started_before_cancel == [attempt.count]
    assert cancel.context.cancel_reason is CancelationReason.MANUAL


@pytest.mark.parametrize("loop", LOOPS)
async def test_a_token_cancelled_during_an_attempt_stops_the_next_one(loop: RetryLoop) -> None:
    token = CancelationToken()

    def cancel_on_third(count: int) -> None:
        if count == 3:
            token.cancel_sync(message="stop")  # from sync code: delivered at the next turn

    attempt = Attempts(duration=0, on_attempt=cancel_on_third)
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token) as cancel:
            await loop(cancel, attempt, attempts=10, wait=0)
    assert attempt.count == 3


@pytest.mark.parametrize("loop", TENACITY_LOOPS)
async def test_wrap_alone_stops_the_loop_when_nothing_checkpoints(loop: RetryLoop) -> None:
    token = CancelationToken()

    def cancel_on_second(count: int) -> None:
        if count == 2:
            token.cancel_sync()

    attempt = Attempts(duration=None, on_attempt=cancel_on_second)
    with pytest.raises(ManualCancelation) as info:
        async with Cancelable.with_token(token) as cancel:
            await loop(cancel, attempt, attempts=10, wait=0, sleep=no_sleep)
    assert attempt.count == 2
    assert info.value.context is cancel.context  # raised by wrap's check, with the record


# -- a CancelationError is never retried -------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
async def test_a_cancelation_error_is_never_retried(loop: RetryLoop) -> None:
    count = 0

    async def inner_step_times_out() -> None:
        # An inner operation's TimeoutCancelation: a TimeoutError, yet not retried.
        nonlocal count
        count += 1
        async with Cancelable.with_timeout(0.001):
            await anyio.sleep(1)

    with pytest.raises(TimeoutCancelation):
        async with Cancelable() as cancel:
            await loop(cancel, inner_step_times_out, attempts=5, wait=0)
    assert count == 1


@pytest.mark.parametrize("loop", LOOPS)
async def test_a_plain_timeout_error_is_retried(loop: RetryLoop) -> None:
    count = 0

    async def attempt_times_out() -> str:
        # anyio.fail_after raises a builtin TimeoutError: the way to time out one attempt.
        nonlocal count
        count += 1
        with anyio.fail_after(0.001 if count < 3 else 1):
            await anyio.sleep(0.01)
        return "done"

    async with Cancelable.with_timeout(5) as cancel:
        await loop(cancel, attempt_times_out, attempts=5, wait=0)
    assert count == 3
    assert cancel.context.status is OperationStatus.COMPLETED


async def test_the_recommended_predicate() -> None:
    assert retryable(ConnectionResetError())
    assert retryable(TimeoutError())
    assert not retryable(TimeoutCancelation())
    assert not retryable(ManualCancelation())
    assert not retryable(ValueError())
    assert not retryable(KeyboardInterrupt())
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.sleep(1)
        except anyio.get_cancelled_exc_class() as backend_cancellation:
            assert not retryable(backend_cancellation)
            raise
