"""The cross-thread wake-up: reaching a loop from any thread, harmless once the loop is gone."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import Cancelable, CancelationToken, ManualCancelation, OperationStatus
from hother.cancelable._wakeup import LoopWaker, current_waker


async def test_call_soon_from_another_thread_runs_on_the_loop() -> None:
    waker = current_waker()
    ran = anyio.Event()
    threads: list[int] = []

    def on_loop() -> None:
        threads.append(threading.get_ident())
        ran.set()

    thread = threading.Thread(target=waker.call_soon, args=(on_loop,))
    thread.start()
    thread.join()
    with anyio.fail_after(2):
        await ran.wait()
    assert threads == [threading.get_ident()]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_waking_a_finished_loop_is_a_quiet_no_op(backend: str) -> None:
    wakers: list[LoopWaker] = []

    async def main() -> None:
        wakers.append(current_waker())

    anyio.run(main, backend=backend)
    ran: list[str] = []
    assert wakers[0].call_soon(ran.append, "late") is False
    assert ran == []


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_callback_of_a_finished_loop_is_skipped_with_a_warning(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = CancelationToken()
    ran: list[str] = []

    async def on_cancel(t: CancelationToken) -> None:
        ran.append("ran")

    async def main() -> None:
        token.register_callback(on_cancel)

    anyio.run(main, backend=backend)
    assert token.cancel_sync() is True
    assert ran == []
    assert "could not run" in caplog.text


async def test_a_failing_queued_callback_is_logged_not_raised_into_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waker = current_waker()
    done = anyio.Event()

    def broken() -> None:
        done.set()
        raise RuntimeError("queued bug")

    assert waker.call_soon(broken)
    with anyio.fail_after(2):
        await done.wait()
    await anyio.sleep(0.01)
    assert "queued bug" in caplog.text


# -- another thread importing trio meanwhile ---------------------------------------------------


@contextmanager
def trio_half_imported(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What another thread importing trio for the first time leaves in `sys.modules` meanwhile:
    the module object, none of its attributes yet. Undone when the block ends."""
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "trio", types.ModuleType("trio"))
        yield


# On trio too: trio and anyio's trio backend use the module objects they imported, never
# `sys.modules["trio"]`, so a trio run goes on unaware of the stand-in; only a lookup there sees it.

# Asyncio only: on trio, an async callback queued from another thread is spawned with trio's own
# API, which the wake-up module imports when it needs it; and while a trio run goes on, trio was
# imported in full before it began, so no thread can be importing it for the first time then.
ASYNCIO_BACKENDS = pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(
            ("asyncio", {"use_uvloop": True}),
            id="uvloop",
            marks=pytest.mark.skipif(sys.platform == "win32", reason="no uvloop on Windows"),
        ),
    ],
)


async def test_an_operation_runs_while_another_thread_imports_trio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = CancelationToken()
    with trio_half_imported(monkeypatch):
        async with Cancelable.with_timeout(5) as cancel:
            await anyio.lowlevel.checkpoint()
        assert cancel.context.status is OperationStatus.COMPLETED
        timer = threading.Timer(0.02, token.cancel_sync, kwargs={"message": "from a thread"})
        timer.start()
        with anyio.fail_after(5), pytest.raises(ManualCancelation, match="from a thread"):
            async with Cancelable.with_token(token):
                await anyio.sleep(10)
        timer.join(5)


@ASYNCIO_BACKENDS
async def test_a_token_callback_is_registered_while_another_thread_imports_trio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = CancelationToken()
    ran_on: list[int] = []
    ran = anyio.Event()

    async def on_cancel(t: CancelationToken) -> None:
        ran_on.append(threading.get_ident())
        ran.set()

    with trio_half_imported(monkeypatch):
        token.register_callback(on_cancel)
        thread = threading.Thread(target=token.cancel_sync)
        thread.start()
        thread.join(5)
        with anyio.fail_after(5):
            await ran.wait()
    assert ran_on == [threading.get_ident()]  # on this loop, not in the cancelling thread


async def test_wait_for_cancel_works_while_another_thread_imports_trio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = CancelationToken()
    with trio_half_imported(monkeypatch):
        timer = threading.Timer(0.02, token.cancel_sync, kwargs={"message": "from a thread"})
        timer.start()
        with anyio.fail_after(5):
            await token.wait_for_cancel()
        timer.join(5)
    assert token.message == "from a thread"
    assert token.callback_count == 0
