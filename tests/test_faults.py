"""Faults: what a block does when the code around it misbehaves, and what it leaves behind.

Each test checks what leaves the block, the status recorded, and that nothing outlives it:
no task, no token callback, no registry entry, no signal handler, no current operation.

Covered elsewhere, not repeated here:
- a source whose `watch()` raises an Exception is logged and the block goes on:
  tests/test_sources.py::test_broken_source_is_logged_and_the_block_goes_on;
- a KeyboardInterrupt in the body puts the signal handlers back:
  tests/test_signal_source.py::test_previous_handlers_are_back_exactly_after_every_kind_of_exit;
- failing callbacks: tests/test_cancelable.py::test_failing_callback_is_logged_not_raised
  (on_start, on_complete) and tests/test_token.py::
  test_failing_callback_is_logged_and_others_still_run (token callbacks, from `cancel()`);
  a slow async on_cancel under an outer cancellation:
  tests/test_cancelable.py::test_exit_callbacks_run_despite_an_outer_cancellation;
- a predicate that raises every time is logged once and never ends the operation:
  tests/test_condition_source.py::test_predicate_that_always_raises_never_ends_the_operation
  and test_raising_predicate_is_logged_once_and_polling_goes_on;
- a plain operation exited by a child task is refused:
  tests/test_cancelable.py::test_exit_in_another_task_is_refused_and_corrupts_nothing.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationSource,
    CancelationToken,
    ConditionCancelation,
    ConditionSource,
    ManualCancelation,
    OperationContext,
    OperationRegistry,
    OperationStatus,
    SignalCancelation,
    SignalSource,
    TimeoutCancelation,
    current_operation,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")

PROMPT = 1.0  # seconds


class Polled:
    """A predicate that counts its calls, holds once told to, and raises if told to."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error
        self.holds = False

    def __call__(self) -> bool:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.holds


class Leftovers:
    """What an operation may leave behind; `check()` says nothing changed since it was made."""

    def __init__(self, token: CancelationToken, polled: Polled | None = None) -> None:
        self.token = token
        self.polled = polled
        self.handler = signal.getsignal(signal.SIGUSR1)
        self.tasks = len(anyio.get_running_tasks())
        self.current = current_operation()

    async def check(self) -> None:
        calls = None if self.polled is None else self.polled.calls
        await anyio.sleep(0.03)  # a source task still running would poll meanwhile
        if self.polled is not None:
            assert self.polled.calls == calls, "the condition is still polled"
        assert self.token.callback_count == 0
        assert OperationRegistry.get_instance().list_operations_sync() == []
        assert signal.getsignal(signal.SIGUSR1) is self.handler
        assert len(anyio.get_running_tasks()) == self.tasks
        assert current_operation() is self.current


def everything(token: CancelationToken, polled: Polled, **kwargs: Any) -> Cancelable:
    """An operation with every kind of source: timeout, token, condition, signal, registry."""
    return (
        Cancelable.with_timeout(5, register_globally=True, **kwargs)
        .combine(Cancelable.with_token(token))
        .add_source(SignalSource(signal.SIGUSR1))
        .add_source(_condition(polled))
    )


def _condition(predicate: Callable[[], Any]) -> CancelationSource:
    return ConditionSource(predicate, 0.005, "polled")


# -- KeyboardInterrupt and SystemExit ------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(KeyboardInterrupt, id="KeyboardInterrupt"),
        pytest.param(lambda: SystemExit(3), id="SystemExit(3)"),
    ],
)
async def test_an_interrupt_in_the_body_leaves_the_block_as_is_and_nothing_behind(
    make: Callable[[], BaseException],
) -> None:
    interrupt = make()
    token, polled = CancelationToken(), Polled()
    leftovers = Leftovers(token, polled)
    errors: list[BaseException] = []
    operation = everything(token, polled).on_error(lambda context, error: errors.append(error))
    with pytest.raises(type(interrupt)) as caught:
        async with operation:
            await anyio.sleep(0.02)  # the sources are running
            raise interrupt
    assert caught.value is interrupt  # itself, not wrapped in a group
    assert operation.context.status is OperationStatus.FAILED
    assert operation.context.error == str(interrupt)
    assert operation.context.cancel_reason is None
    assert errors == [interrupt]
    await leftovers.check()


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
async def test_an_interrupt_after_a_cancel_request_still_leaves_the_block_as_is(
    interrupt: type[BaseException],
) -> None:
    token, polled = CancelationToken(), Polled()
    leftovers = Leftovers(token, polled)
    with pytest.raises(interrupt):
        async with everything(token, polled) as operation:
            token.cancel_sync()  # requested, not yet delivered: the interrupt comes first
            raise interrupt
    assert operation.context.status is OperationStatus.FAILED
    await leftovers.check()


class Interrupting(CancelationSource):
    def __init__(self, interrupt: BaseException) -> None:
        super().__init__()
        self.interrupt = interrupt

    async def watch(self) -> None:
        await anyio.sleep(0.01)
        raise self.interrupt


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_a_source_raising_an_interrupt_stops_the_run_with_that_interrupt(
    anyio_backend: Any, interrupt: type[BaseException]
) -> None:
    # A run, not a test on the loop: on asyncio an interrupt raised in a task leaves the loop.
    backend, options = anyio_backend
    operations: list[Cancelable] = []
    previous = signal.getsignal(signal.SIGUSR1)

    async def main() -> None:
        operation = Cancelable(register_globally=True).add_source(Interrupting(interrupt()))
        operations.append(operation.add_source(SignalSource(signal.SIGUSR1)))
        async with operation:
            await anyio.sleep(PROMPT)

    with pytest.raises(interrupt):
        anyio.run(main, backend=backend, backend_options=options)
    # On asyncio the interrupt left the loop once from the source's task and once from the
    # main task, which asyncio logs as never retrieved when collected: collect it here.
    gc.collect()
    assert operations[0].context.is_terminal
    assert OperationRegistry.get_instance().list_operations_sync() == []
    assert signal.getsignal(signal.SIGUSR1) is previous


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(KeyboardInterrupt, id="KeyboardInterrupt"),
        pytest.param(lambda: SystemExit(3), id="SystemExit(3)"),
    ],
)
def test_an_interrupt_from_on_start_undoes_the_entry(
    anyio_backend: Any, make: Callable[[], BaseException]
) -> None:
    # A run of its own: an entry left half done breaks the run it happened in (trio ends it
    # with TrioInternalError), which must not be the test runner's shared loop.
    backend, options = anyio_backend
    interrupt = make()
    token = CancelationToken()
    previous = signal.getsignal(signal.SIGUSR1)
    registry = OperationRegistry.get_instance()
    body: list[str] = []

    def interrupting(context: OperationContext) -> None:
        raise interrupt

    async def main() -> None:
        operation = (
            Cancelable.with_timeout(5, register_globally=True)
            .combine(Cancelable.with_token(token))
            .add_source(SignalSource(signal.SIGUSR1))
            .on_start(interrupting)
        )
        try:
            with pytest.raises(type(interrupt)) as caught:
                async with operation:
                    body.append("ran")
            assert caught.value is interrupt
            assert body == []
            # As if the body had raised it at its first line:
            assert not operation.is_running
            assert operation.context.status is OperationStatus.FAILED
            assert operation.context.error == str(interrupt)
            # and nothing of the entry is left:
            assert current_operation() is None
            assert registry.get_operation_sync(operation.operation_id) is None
            assert token.callback_count == 0
            assert signal.getsignal(signal.SIGUSR1) is previous
        finally:
            if operation.is_running:  # left set up: undo it, for the tests after this one
                await operation.__aexit__(None, None, None)
        with pytest.raises(SignalCancelation):  # the signal works as usual afterwards
            async with Cancelable.with_signal(signal.SIGUSR1):
                os.kill(os.getpid(), signal.SIGUSR1)
                await anyio.sleep(10)

    anyio.run(main, backend=backend, backend_options=options)  # ends normally
    assert signal.getsignal(signal.SIGUSR1) is previous


# -- sources that raise ------------------------------------------------------------------------


class Broken(CancelationSource):
    async def watch(self) -> None:
        raise RuntimeError("source bug")


async def test_a_broken_source_leaves_the_other_sources_working(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token, later = CancelationToken(), Polled()
    leftovers = Leftovers(token, later)
    operation = Cancelable.with_token(token).add_source(Broken()).add_source(_condition(later))
    with pytest.raises(ConditionCancelation):
        async with operation:
            await anyio.sleep(0.02)
            assert operation.is_running  # the broken source was logged, the block goes on
            later.error = None
            later.holds = True
            await anyio.sleep(PROMPT)
    assert any("source bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    await leftovers.check()


# -- callbacks that raise or block -------------------------------------------------------------


def raising(*args: Any) -> None:
    raise RuntimeError("callback bug")


async def raising_async(*args: Any) -> None:
    await anyio.lowlevel.checkpoint()
    raise RuntimeError("async callback bug")


@pytest.mark.parametrize("callback", [raising, raising_async])
async def test_raising_exit_callbacks_change_nothing_the_block_reports(
    callback: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ManualCancelation):
        async with Cancelable().on_cancel(callback).on_progress(callback) as cancelled:
            await cancelled.report_progress("halfway")
            await cancelled.cancel()
            await anyio.sleep(PROMPT)
    assert cancelled.context.status is OperationStatus.CANCELLED
    with pytest.raises(ValueError, match="body"):
        async with Cancelable().on_error(callback) as failed:
            raise ValueError("body")
    assert failed.context.status is OperationStatus.FAILED
    assert failed.context.error == "body"
    failures = [r for r in caplog.records if r.exc_info and "callback bug" in str(r.exc_info[1])]
    assert len(failures) == 3


async def test_a_token_callback_that_raises_from_another_thread_wakes_the_operation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = CancelationToken()
    token.register_callback(raising)  # registered first: runs before the operation's wake-up
    start = time.monotonic()
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token):
            threading.Timer(0.01, token.cancel_sync).start()
            await anyio.sleep(PROMPT * 5)
    assert time.monotonic() - start < PROMPT
    assert any("callback bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    assert token.callback_count == 0


async def test_a_callback_that_blocks_briefly_delays_but_loses_nothing() -> None:
    ran: list[str] = []
    all_ran = threading.Event()

    def record(what: str) -> None:
        ran.append(what)
        if len(ran) == 4:
            all_ran.set()

    def blocking(*args: Any) -> None:
        time.sleep(0.05)  # blocking on purpose: a slow sync callback
        record("blocked")

    async def slow(*args: Any) -> None:
        await anyio.sleep(0.05)
        record("slept")

    token = CancelationToken()
    token.register_callback(blocking)
    token.register_callback(slow)
    start = time.monotonic()
    with pytest.raises(ManualCancelation) as caught:
        async with Cancelable.with_token(token).on_cancel(blocking).on_cancel(slow):
            threading.Timer(0.01, token.cancel_sync, kwargs={"message": "stop"}).start()
            await anyio.sleep(PROMPT * 5)
    assert 0.05 <= time.monotonic() - start < PROMPT
    assert caught.value.message == "stop"
    # The token's async callback runs as a task on this loop; give it its time.
    await anyio.to_thread.run_sync(all_ran.wait, PROMPT)
    assert sorted(ran) == ["blocked", "blocked", "slept", "slept"]
    assert token.callback_count == 0


async def test_await_cancel_waits_for_a_slow_async_callback_but_trips_operations_first() -> None:
    token = CancelationToken()
    tripped: list[float] = []

    async def slow(t: CancelationToken) -> None:
        await anyio.sleep(0.05)

    token.register_callback(slow)

    async def wait() -> None:
        with pytest.raises(ManualCancelation):
            async with Cancelable.with_token(token):
                await anyio.sleep(PROMPT * 5)
        tripped.append(anyio.current_time())

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(wait)
        await anyio.sleep(0.01)
        start = anyio.current_time()
        assert await token.cancel()
        returned = anyio.current_time()
    assert returned - start >= 0.045  # it awaited the callback (uvloop's clock: 1 ms steps)
    assert tripped[0] - start < 0.04  # the operation ended meanwhile, not after


# -- a predicate that raises every time ----------------------------------------------------------


class AsyncPolled(Polled):
    async def check(self) -> bool:
        await anyio.lowlevel.checkpoint()
        return super().__call__()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_predicate_that_always_raises_leaves_the_other_sources_in_charge(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    polled = Polled(ZeroDivisionError("bug")) if kind == "sync" else AsyncPolled(KeyError("bug"))
    predicate: Any = polled if kind == "sync" else polled.check  # type: ignore[attr-defined]
    token = CancelationToken()
    leftovers = Leftovers(token, polled)
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05).add_source(_condition(predicate)):
            await anyio.sleep(PROMPT)
    calls = polled.calls
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token).add_source(_condition(predicate)):
            await anyio.sleep(0.03)
            await token.cancel()
            await anyio.sleep(PROMPT)
    assert polled.calls > calls > 1
    # The library's own log (not, say, asyncio's about a task an earlier test left behind).
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "hother.cancelable"
    ]
    assert len(errors) == 2  # once per operation, however many times it raised
    assert all("treated as not met" in error.getMessage() for error in errors)
    await leftovers.check()


# -- a burst of signals ------------------------------------------------------------------------


async def test_a_burst_of_a_hundred_signals_cancels_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append(signum))
    cancelled: list[OperationContext] = []
    try:
        token = CancelationToken()
        leftovers = Leftovers(token)
        with pytest.raises(SignalCancelation) as caught:
            async with (
                Cancelable.with_signal(signal.SIGUSR1)
                .combine(Cancelable.with_token(token))
                .on_cancel(cancelled.append)
            ) as operation:
                for _ in range(100):
                    signal.raise_signal(signal.SIGUSR1)  # each handler runs before it returns
                assert operation.is_cancelled
                await anyio.sleep(PROMPT)
        assert caught.value.signal_number == signal.SIGUSR1
        assert operation.context.cancel_reason is CancelationReason.SIGNAL
        assert operation.context.cancel_message == "received SIGUSR1"
        assert len(cancelled) == 1
        assert seen == []  # the previous handler saw none of them
        await leftovers.check()
        signal.raise_signal(signal.SIGUSR1)
        assert seen == [signal.SIGUSR1]  # and is back
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    finally:
        signal.signal(signal.SIGUSR1, previous)


async def test_a_burst_of_signals_on_nested_operations_cancels_each_once() -> None:
    leftovers = Leftovers(CancelationToken())
    ended: list[str] = []
    with pytest.raises(SignalCancelation):
        async with Cancelable.with_signal(signal.SIGUSR1).on_cancel(
            lambda context: ended.append("outer")
        ):
            with pytest.raises(SignalCancelation):
                async with Cancelable.with_signal(signal.SIGUSR1).on_cancel(
                    lambda context: ended.append("inner")
                ):
                    for _ in range(100):
                        signal.raise_signal(signal.SIGUSR1)
                    await anyio.sleep(PROMPT)
            await anyio.sleep(PROMPT)
    assert ended == ["inner", "outer"]
    await leftovers.check()


# -- entered in one task, exited in another ------------------------------------------------------


@pytest.mark.parametrize(
    ("intruder_starts", "error"),
    [
        ("inside the block", "was entered in another task"),
        ("before the block", "is not the innermost running operation of this task"),
    ],
)
async def test_an_exit_from_another_task_is_refused_and_the_operation_still_works(
    intruder_starts: str, error: str
) -> None:
    token, polled = CancelationToken(), Polled()
    leftovers = Leftovers(token, polled)
    operation = everything(token, polled)
    entered = anyio.Event()
    refused: list[RuntimeError] = []
    tried = anyio.Event()

    async def intruder() -> None:
        await entered.wait()
        try:
            await operation.__aexit__(None, None, None)
        except RuntimeError as exc:
            refused.append(exc)
        tried.set()

    async with anyio.create_task_group() as task_group:
        if intruder_starts == "before the block":
            task_group.start_soon(intruder)
        with pytest.raises(ManualCancelation):
            async with operation:
                if intruder_starts == "inside the block":
                    task_group.start_soon(intruder)
                entered.set()
                with anyio.fail_after(PROMPT):
                    await tried.wait()
                # Refused, and nothing was undone: the block still runs with all its sources.
                assert error in str(refused[0])
                assert operation.is_running
                assert current_operation() is operation
                assert token.callback_count == 1
                assert len(OperationRegistry.get_instance().list_operations_sync()) == 1
                assert signal.getsignal(signal.SIGUSR1) is not leftovers.handler
                calls = polled.calls
                await anyio.sleep(0.02)
                assert polled.calls > calls
                await token.cancel()
                await anyio.sleep(PROMPT)
    assert operation.context.status is OperationStatus.CANCELLED
    assert operation.context.cancel_reason is CancelationReason.MANUAL
    await leftovers.check()
