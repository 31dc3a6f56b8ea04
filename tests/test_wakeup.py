"""The cross-thread wake-up: reaching a loop from any thread, harmless once the loop is gone."""

from __future__ import annotations

import threading

import anyio
import pytest

from hother.cancelable import CancelationToken
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
