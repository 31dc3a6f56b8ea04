"""Signal sources (SPEC section 4): real signals, handlers restored, nesting, main thread only.

Also `cancel_on_signals` (a token cancelled by signals for the length of a block) and the
second Ctrl-C, which forces the exit: that one runs in a child process per backend, since a
KeyboardInterrupt in the test process would stop the test run.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import pytest

import hother.cancelable
from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    OperationStatus,
    SignalCancelation,
    SignalSource,
    cancel_on_signals,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")

WATCHED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


def handlers() -> dict[int, Any]:
    return {signum: signal.getsignal(signum) for signum in WATCHED}


async def raise_later(signum: int, delay: float = 0.02) -> None:
    await anyio.sleep(delay)
    signal.raise_signal(signum)


async def test_signal_cancels_with_signal_cancelation() -> None:
    before = handlers()
    with pytest.raises(SignalCancelation) as info:
        async with (
            Cancelable.with_signal(signal.SIGUSR1) as cancel,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(raise_later, signal.SIGUSR1)
            await anyio.sleep(10)
    err = info.value
    assert err.signal_number == signal.SIGUSR1
    assert err.reason is CancelationReason.SIGNAL
    assert err.__context__ is None
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.SIGNAL
    assert cancel.context.cancel_message == "received SIGUSR1"
    assert handlers() == before


async def test_ctrl_c_becomes_the_cancellation_not_a_keyboard_interrupt() -> None:
    before = handlers()
    with pytest.raises(SignalCancelation) as info:
        async with Cancelable.with_signal():
            signal.raise_signal(signal.SIGINT)
            await anyio.sleep(10)
    assert info.value.signal_number == signal.SIGINT
    assert handlers() == before


def test_default_signals_are_sigint_and_sigterm() -> None:
    assert SignalSource().signals == (signal.SIGINT, signal.SIGTERM)
    assert SignalSource(signal.SIGUSR2).signals == (signal.SIGUSR2,)


def _custom_handler(signum: int, frame: object) -> None:  # pragma: no cover - never called
    raise AssertionError("the previous handler must not run while the block watches")


async def test_previous_handlers_are_back_exactly_after_every_kind_of_exit() -> None:
    previous = signal.signal(signal.SIGUSR2, _custom_handler)
    try:
        before = handlers()
        async with Cancelable.with_signal(signal.SIGUSR2, signal.SIGUSR1):
            assert signal.getsignal(signal.SIGUSR2) is not _custom_handler
        assert handlers() == before
        with pytest.raises(KeyError):
            async with Cancelable.with_signal(signal.SIGUSR2):
                raise KeyError("body")
        assert handlers() == before
        with anyio.move_on_after(0.01):
            async with Cancelable.with_signal(signal.SIGUSR2):
                await anyio.sleep(10)
        assert handlers() == before
        with pytest.raises(SignalCancelation):
            async with Cancelable.with_signal(signal.SIGUSR2):
                signal.raise_signal(signal.SIGUSR2)
                await anyio.sleep(10)
        assert handlers() == before
        with pytest.raises(KeyboardInterrupt):
            async with Cancelable.with_signal(signal.SIGUSR2):
                raise KeyboardInterrupt
        assert handlers() == before
    finally:
        signal.signal(signal.SIGUSR2, previous)


async def test_nested_operations_on_one_signal_are_all_cancelled() -> None:
    before = handlers()
    with pytest.raises(SignalCancelation):
        async with (
            Cancelable.with_signal(signal.SIGUSR1) as outer,
            Cancelable.with_signal(signal.SIGUSR1) as inner,
        ):
            signal.raise_signal(signal.SIGUSR1)
            await anyio.sleep(10)
    assert inner.context.cancel_reason is CancelationReason.SIGNAL
    assert outer.context.status is OperationStatus.CANCELLED
    assert outer.context.cancel_reason is CancelationReason.SIGNAL
    assert handlers() == before


async def test_concurrent_operations_on_one_signal_are_all_cancelled() -> None:
    before = handlers()
    outcomes: list[Any] = []

    async def worker() -> None:
        async with Cancelable.with_signal(signal.SIGUSR1, raise_on_cancel=False) as cancel:
            await anyio.sleep(10)
        outcomes.append(cancel.context.cancel_reason)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            tg.start_soon(worker)
            tg.start_soon(raise_later, signal.SIGUSR1, 0.05)
    assert outcomes == [CancelationReason.SIGNAL, CancelationReason.SIGNAL]
    assert handlers() == before


async def test_a_signal_only_cancels_operations_watching_it() -> None:
    async with Cancelable.with_signal(signal.SIGUSR2) as bystander:
        with pytest.raises(SignalCancelation):
            async with Cancelable.with_signal(signal.SIGUSR1):
                signal.raise_signal(signal.SIGUSR1)
                await anyio.sleep(10)
        await anyio.sleep(0.01)
    assert bystander.context.status is OperationStatus.COMPLETED


def test_off_the_main_thread_entry_fails_and_registers_nothing() -> None:
    before = handlers()
    errors: list[BaseException] = []

    def run(backend: str) -> None:
        async def main() -> None:
            async with Cancelable.with_signal(signal.SIGUSR1):
                pass  # pragma: no cover - entry must fail

        try:
            anyio.run(main, backend=backend)
        except RuntimeError as exc:
            errors.append(exc)

    for backend in ("asyncio", "trio"):
        thread = threading.Thread(target=run, args=(backend,))
        thread.start()
        thread.join()
    assert len(errors) == 2
    assert all("main thread" in str(err) for err in errors)
    assert handlers() == before


BAD_SIGNALS: list[tuple[Any, type[Exception], str]] = [
    (999, ValueError, r"^signals\[0\] is not a known signal, got 999$"),
    ("SIGINT", TypeError, r"^signals\[0\] must be a signal number, got 'SIGINT'$"),
    (True, TypeError, r"^signals\[0\] must be a signal number, got True$"),
    (signal.SIGKILL, ValueError, r"^signals\[0\] cannot be caught, got SIGKILL$"),
]


@pytest.mark.parametrize(("value", "error", "message"), BAD_SIGNALS)
@pytest.mark.parametrize("make", [SignalSource, Cancelable.with_signal])
def test_bad_signals_are_refused_at_the_call(
    make: Callable[..., Any], value: Any, error: type[Exception], message: str
) -> None:
    before = handlers()
    with pytest.raises(error, match=message):
        make(value)
    assert handlers() == before


async def test_is_cancelled_as_soon_as_the_handler_ran() -> None:
    with pytest.raises(SignalCancelation):
        async with Cancelable.with_signal(signal.SIGUSR2) as cancel:
            signal.raise_signal(signal.SIGUSR2)  # the Python handler runs before this returns
            assert cancel.is_cancelled
            await anyio.sleep(10)


def signaller(signum: int) -> threading.Thread:
    """A thread that, once started, sends `signum` to itself when the loop waits.

    The kernel runs the C handler there, and the Python one waits for the main thread to run
    Python again: the state a Ctrl-C leaves when it lands after Python last looked for
    signals, as the loop goes to block in select(). Every time, not once in a thousand.
    """

    def send() -> None:
        time.sleep(0.05)
        signal.pthread_kill(threading.get_ident(), signum)

    return threading.Thread(target=send)


def wakeup_fd() -> int:
    """The signal wake-up fd, -1 if none, left as it was (as trio and uvloop set theirs)."""
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    return fd


async def test_a_signal_wakes_the_loop_at_once() -> None:
    thread = signaller(signal.SIGUSR1)
    start = time.monotonic()
    with pytest.raises(SignalCancelation):
        async with Cancelable.with_signal(signal.SIGUSR1):
            thread.start()
            await anyio.sleep(10)
    thread.join()
    assert time.monotonic() - start < 5  # not when the sleep ends


async def test_the_wake_up_fd_is_back_as_it_was_after_the_blocks() -> None:
    before = wakeup_fd()
    helper = cancel_on_signals(CancelationToken(), signal.SIGUSR2)
    async with Cancelable.with_signal(signal.SIGUSR1):
        assert wakeup_fd() != -1  # on asyncio, the loop's self-pipe
        helper.__enter__()
    assert wakeup_fd() != -1  # the helper, entered on this loop, still watches
    helper.__exit__(None, None, None)
    assert wakeup_fd() == before


async def test_the_loops_own_signal_receivers_still_work_after_a_block() -> None:
    # On asyncio they get their signals through the same wake-up fd, which must stay set.
    with anyio.open_signal_receiver(signal.SIGUSR2) as receiver:
        with pytest.raises(SignalCancelation):
            async with Cancelable.with_signal(signal.SIGUSR1):
                signal.raise_signal(signal.SIGUSR1)
                await anyio.sleep(10)
        signal.raise_signal(signal.SIGUSR2)
        with anyio.fail_after(5):
            async for signum in receiver:
                assert signum == signal.SIGUSR2
                break


# -- cancel_on_signals: a token cancelled by signals for the length of a block -----------------


async def test_cancel_on_signals_cancels_the_token_with_the_signal_number() -> None:
    before = handlers()
    token = CancelationToken()
    with cancel_on_signals(token, signal.SIGUSR1) as entered:
        assert entered is token
        assert signal.getsignal(signal.SIGUSR1) is not before[signal.SIGUSR1]
        signal.raise_signal(signal.SIGUSR1)  # the handler runs before this returns
        assert token.is_cancelled
    assert handlers() == before
    assert token.reason is CancelationReason.SIGNAL
    assert token.message == "received SIGUSR1"
    with pytest.raises(SignalCancelation) as checked:
        token.check()
    with pytest.raises(SignalCancelation) as checked_async:
        await token.check_async()
    for info in (checked, checked_async):
        assert info.value.signal_number == signal.SIGUSR1
        assert info.value.reason is CancelationReason.SIGNAL
        assert info.value.message == "received SIGUSR1"


async def test_a_with_token_block_raises_signal_cancelation_with_the_number() -> None:
    token = CancelationToken()
    with cancel_on_signals(token, signal.SIGUSR1):
        with pytest.raises(SignalCancelation) as info:
            async with (
                Cancelable.with_token(token) as cancel,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(raise_later, signal.SIGUSR1)
                await anyio.sleep(10)
        # A block entered once the token is cancelled says the same.
        with pytest.raises(SignalCancelation) as late:
            async with Cancelable.with_token(token):
                await anyio.sleep(10)
    assert info.value.signal_number == late.value.signal_number == signal.SIGUSR1
    assert info.value.message == late.value.message == "received SIGUSR1"
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.SIGNAL
    assert cancel.context.cancel_message == "received SIGUSR1"


async def test_one_signal_cancels_the_token_of_every_task_given_it() -> None:
    token = CancelationToken()
    stopped: list[int | None] = []

    async def worker() -> None:
        try:
            async with Cancelable.with_token(token):
                await anyio.sleep(10)
        except SignalCancelation as exc:
            stopped.append(exc.signal_number)

    with anyio.fail_after(5), cancel_on_signals(token, signal.SIGUSR1):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(worker)
            tg.start_soon(raise_later, signal.SIGUSR1)
    assert stopped == [signal.SIGUSR1] * 3


async def test_cancel_on_signals_wakes_the_loop_at_once() -> None:
    token = CancelationToken()
    thread = signaller(signal.SIGUSR1)
    start = time.monotonic()
    with cancel_on_signals(token, signal.SIGUSR1):
        thread.start()
        with anyio.move_on_after(10):
            await token.wait_for_cancel()
    thread.join()
    assert token.message == "received SIGUSR1"
    assert time.monotonic() - start < 5  # not when the wait ends


async def test_cancel_on_signals_may_be_entered_with_async_with() -> None:
    before = handlers()
    token = CancelationToken()
    async with cancel_on_signals(token, signal.SIGUSR2) as entered:
        assert entered is token
        signal.raise_signal(signal.SIGUSR2)
    assert handlers() == before
    assert token.message == "received SIGUSR2"


async def test_cancel_on_signals_turns_ctrl_c_into_the_tokens_cancellation() -> None:
    before = handlers()
    token = CancelationToken()
    helper = cancel_on_signals(token)
    assert helper.signals == (signal.SIGINT, signal.SIGTERM)
    with helper:
        signal.raise_signal(signal.SIGINT)  # no KeyboardInterrupt
    assert handlers() == before
    assert token.reason is CancelationReason.SIGNAL
    assert token.message == "received SIGINT"
    with pytest.raises(SignalCancelation) as info:
        token.check()
    assert info.value.signal_number == signal.SIGINT


async def test_cancel_on_signals_puts_the_previous_handlers_back_whatever_ends_the_block() -> None:
    previous = signal.signal(signal.SIGUSR2, _custom_handler)
    try:
        before = handlers()
        with cancel_on_signals(CancelationToken(), signal.SIGUSR2, signal.SIGUSR1):
            assert signal.getsignal(signal.SIGUSR2) is not _custom_handler
        assert handlers() == before
        with pytest.raises(KeyError), cancel_on_signals(CancelationToken(), signal.SIGUSR2):
            raise KeyError("body")
        assert handlers() == before
        with anyio.move_on_after(0.01), cancel_on_signals(CancelationToken(), signal.SIGUSR2):
            await anyio.sleep(10)
        assert handlers() == before
        with cancel_on_signals(CancelationToken(), signal.SIGUSR2):
            signal.raise_signal(signal.SIGUSR2)
        assert handlers() == before
        # Mixed with an operation's signal source, on one handler, left in either order.
        outer = cancel_on_signals(CancelationToken(), signal.SIGUSR2)
        with pytest.raises(SignalCancelation):
            async with Cancelable.with_signal(signal.SIGUSR2):
                outer.__enter__()
                signal.raise_signal(signal.SIGUSR2)
                await anyio.sleep(10)
        assert signal.getsignal(signal.SIGUSR2) is not _custom_handler
        outer.__exit__(None, None, None)
        assert handlers() == before
        assert outer.token.message == "received SIGUSR2"
    finally:
        signal.signal(signal.SIGUSR2, previous)


async def test_a_signal_reaches_the_token_and_the_operations_waiting_for_it() -> None:
    token = CancelationToken()
    with cancel_on_signals(token, signal.SIGUSR1), pytest.raises(SignalCancelation) as info:
        async with Cancelable.with_signal(signal.SIGUSR1):
            signal.raise_signal(signal.SIGUSR1)
            await anyio.sleep(10)
    assert info.value.signal_number == signal.SIGUSR1
    assert token.message == "received SIGUSR1"


def test_a_token_cancelled_by_hand_for_a_signal_has_no_signal_number() -> None:
    token = CancelationToken()
    assert token.cancel_sync(CancelationReason.SIGNAL, "received SIGTERM")
    with pytest.raises(SignalCancelation) as info:
        token.check()
    assert info.value.signal_number is None
    assert info.value.message == "received SIGTERM"


async def test_cancel_on_signals_on_an_operations_own_token_cancels_the_operation() -> None:
    # The operation's own token is cancelled through the operation (SPEC section 7).
    with pytest.raises(SignalCancelation) as info:
        async with Cancelable() as cancel:
            with cancel_on_signals(cancel.token, signal.SIGUSR1):
                signal.raise_signal(signal.SIGUSR1)
                await anyio.sleep(10)
    assert info.value.message == "received SIGUSR1"
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.SIGNAL


async def test_a_token_cancelled_before_the_signal_keeps_its_first_reason() -> None:
    token = CancelationToken()
    await token.cancel(message="stop")
    with cancel_on_signals(token, signal.SIGUSR1):
        signal.raise_signal(signal.SIGUSR1)
    assert token.reason is CancelationReason.MANUAL
    assert token.message == "stop"


async def test_each_block_gets_its_own_first_ctrl_c() -> None:
    # The second Ctrl-C forces the exit only while the block that had the first one runs.
    try:
        for _ in range(2):
            with pytest.raises(SignalCancelation):
                async with Cancelable.with_signal(signal.SIGINT):
                    signal.raise_signal(signal.SIGINT)
                    await anyio.sleep(10)
            token = CancelationToken()
            with cancel_on_signals(token, signal.SIGINT):
                signal.raise_signal(signal.SIGINT)
            assert token.message == "received SIGINT"
    except KeyboardInterrupt:  # pragma: no cover - the failure this test exists to catch
        pytest.fail("a Ctrl-C after the block that had the first one ended forced the exit")


def test_cancel_on_signals_off_the_main_thread_fails_and_registers_nothing() -> None:
    before = handlers()
    errors: list[BaseException] = []
    helper = cancel_on_signals(CancelationToken(), signal.SIGUSR1)

    def enter() -> None:
        try:
            with helper:
                pass  # pragma: no cover - entry must fail
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=enter, name="worker")
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert str(errors[0]).startswith(f"{helper!r} must be entered in the main thread")
    assert "'worker'" in str(errors[0])
    assert handlers() == before


def test_cancel_on_signals_entered_twice_at_once_is_refused() -> None:
    before = handlers()
    helper = cancel_on_signals(CancelationToken(), signal.SIGUSR1)
    with helper:
        during = handlers()
        with pytest.raises(RuntimeError, match=r"is already entered$"), helper:
            pass  # pragma: no cover - entry must fail
        assert handlers() == during
    assert handlers() == before
    with helper:  # once left, it may be entered again
        assert handlers() == during
    assert handlers() == before


@pytest.mark.parametrize(("value", "error", "message"), BAD_SIGNALS)
def test_cancel_on_signals_refuses_bad_signals_at_the_call(
    value: Any, error: type[Exception], message: str
) -> None:
    before = handlers()
    with pytest.raises(error, match=message):
        cancel_on_signals(CancelationToken(), value)
    with pytest.raises(error, match=message.replace(r"signals\[0\]", r"signals\[1\]")):
        cancel_on_signals(CancelationToken(), signal.SIGUSR1, value)
    assert handlers() == before


@pytest.mark.parametrize("token", [None, "token", Cancelable()], ids=repr)
def test_cancel_on_signals_refuses_what_is_not_a_token(token: Any) -> None:
    before = handlers()
    with pytest.raises(TypeError, match=r"^token must be a CancelationToken, got "):
        cancel_on_signals(token)
    assert handlers() == before


# -- a second Ctrl-C, in a child process per backend -----------------------------------------

CHILD = """
import json, signal, sys, time

import anyio

from hother.cancelable import Cancelable, CancelationToken, SignalCancelation, cancel_on_signals

mode, signum, stuck = sys.argv[1], signal.Signals[sys.argv[2]], sys.argv[3]


async def cleanup() -> None:
    # Stuck (a second SIGINT must force the exit), or done when a second SIGTERM arrived.
    second = CancelationToken()
    with cancel_on_signals(second, signal.SIGTERM), anyio.CancelScope(shield=True):
        print("cleaning up", flush=True)
        if stuck == "waiting":
            await anyio.sleep(30)
        elif stuck == "blocking":
            time.sleep(30)  # blocks the event loop itself
        elif stuck == "nested":  # a block entered now does not take the second SIGINT
            async with Cancelable.with_signal(signal.SIGINT):
                await anyio.sleep(30)
        else:
            with anyio.fail_after(10):
                await second.wait_for_cancel()
            print("second signal:", second.message, flush=True)
    print("cleanup done", flush=True)


async def with_signal_source() -> None:
    try:
        async with Cancelable.with_signal(signal.SIGINT, signal.SIGTERM):
            print("ready", flush=True)
            try:
                await anyio.sleep(30)
            finally:
                await cleanup()
    except SignalCancelation as exc:
        print("ended by", signal.Signals(exc.signal_number).name, flush=True)


async def with_helper() -> None:
    token = CancelationToken()
    with cancel_on_signals(token):
        print("ready", flush=True)
        await token.wait_for_cancel()
        await cleanup()
    try:
        token.check()
    except SignalCancelation as exc:
        print("ended by", signal.Signals(exc.signal_number).name, flush=True)


backend, options = json.loads(sys.argv[4])
main = {"source": with_signal_source, "helper": with_helper}[mode]
anyio.run(main, backend=backend, backend_options=options)
"""
SRC = str(Path(hother.cancelable.__file__).resolve().parents[2])  # the package under test
BOUND = 10.0  # seconds: generous; the exit takes a few hundredths


class Child:
    """The child process, and its output line by line as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()  # None: the output ended
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, wanted: str | None) -> None:
        """Collect lines until `wanted` came (None: until the output ends)."""
        deadline = time.monotonic() + BOUND
        while not self.seen or self.seen[-1] != wanted:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {wanted!r} line within {BOUND} s; got {self.seen!r}")
            if line is None and wanted is not None:
                pytest.fail(f"the output ended before {wanted!r}; got {self.seen!r}")
            if line is None:
                return
            self.seen.append(line)

    def finish(self) -> tuple[int, str, float]:
        """(exit code, stderr, seconds it took to exit)."""
        start = time.monotonic()
        try:
            code = self.proc.wait(BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"still running {BOUND} s later; output {self.seen!r}")
        took = time.monotonic() - start
        self.wait_for(None)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read(), took


@contextmanager
def child(
    mode: str, signum: signal.Signals, anyio_backend: Any, stuck: str = "no"
) -> Generator[Child]:
    """The child: `mode` "source" (a signal source) or "helper" (cancel_on_signals), whose
    cleanup after the first `signum` is stuck "waiting" (a shielded sleep), "nested" (the
    same, in a block with a SIGINT source), "blocking" (a blocking call), or "no" (it waits
    for a second SIGTERM)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    arguments = [mode, signum.name, stuck, json.dumps(list(anyio_backend))]
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            yield Child(proc)
        finally:
            if proc.poll() is None:
                proc.kill()


def assert_keyboard_interrupt(code: int, stderr: str) -> None:
    # The traceback's last line; a warning may follow it (on asyncio, anyio's wrapper of a
    # task spawned just before the exit, cancelled before it started, drops its coroutine).
    assert "KeyboardInterrupt" in stderr.splitlines(), stderr
    assert code == -signal.SIGINT  # how Python ends on an uncaught KeyboardInterrupt


@pytest.mark.parametrize("stuck", ["waiting", "nested"])
@pytest.mark.parametrize("mode", ["source", "helper"])
def test_second_sigint_forces_exit(mode: str, stuck: str, anyio_backend: Any) -> None:
    # "nested": the cleanup waits in a block of its own that watches SIGINT, entered after
    # the first one; the second still forces the exit instead of cancelling that block.
    with child(mode, signal.SIGINT, anyio_backend, stuck=stuck) as proc:
        proc.wait_for("ready")
        proc.proc.send_signal(signal.SIGINT)
        proc.wait_for("cleaning up")  # the first one cancelled; the cleanup is stuck
        proc.proc.send_signal(signal.SIGINT)
        code, stderr, _ = proc.finish()
    assert_keyboard_interrupt(code, stderr)
    assert "cleanup done" not in proc.seen


@pytest.mark.parametrize("mode", ["source", "helper"])
def test_a_third_sigint_ends_a_cleanup_that_blocks_the_event_loop(
    mode: str, anyio_backend: Any
) -> None:
    # The second is delivered where the loop can take it, which a blocked loop never does;
    # the third is raised at once, wherever the program is.
    with child(mode, signal.SIGINT, anyio_backend, stuck="blocking") as proc:
        proc.wait_for("ready")
        proc.proc.send_signal(signal.SIGINT)
        proc.wait_for("cleaning up")
        presses = 1
        while presses < 5 and proc.proc.poll() is None:
            proc.proc.send_signal(signal.SIGINT)
            presses += 1
            with suppress(subprocess.TimeoutExpired):
                proc.proc.wait(0.5)
        code, stderr, _ = proc.finish()
    assert_keyboard_interrupt(code, stderr)
    assert presses == 3
    assert "cleanup done" not in proc.seen


@pytest.mark.parametrize("mode", ["source", "helper"])
def test_second_sigterm_changes_nothing(mode: str, anyio_backend: Any) -> None:
    with child(mode, signal.SIGTERM, anyio_backend) as proc:
        proc.wait_for("ready")
        proc.proc.send_signal(signal.SIGTERM)
        proc.wait_for("cleaning up")
        proc.proc.send_signal(signal.SIGTERM)  # goes to the cleanup's own token, as any signal
        code, stderr, _ = proc.finish()
    assert (code, stderr) == (0, "")
    assert proc.seen[-3:] == ["second signal: received SIGTERM", "cleanup done", "ended by SIGTERM"]
