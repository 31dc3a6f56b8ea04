"""Signal sources (SPEC section 4): real signals, handlers restored, nesting, main thread only."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    OperationStatus,
    SignalCancelation,
    SignalSource,
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
