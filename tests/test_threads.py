"""Threads (SPEC section 5): run_in_thread, blocking waits, and the 0.11 bridge."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from hother.cancelable import (
    AnyioBridge,
    Cancelable,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationStatus,
    TimeoutCancelation,
    call_soon_threadsafe,
    current_operation,
)

REQUEST = contextvars.ContextVar("REQUEST", default="none")


async def test_the_thread_sees_the_operation_and_the_callers_context() -> None:
    REQUEST.set("request-42")

    def job() -> tuple[str, Any, str]:
        operation = current_operation()
        assert operation is not None
        return REQUEST.get(), operation, threading.current_thread().name

    async with Cancelable(name="job") as cancel:
        value, seen, thread_name = await cancel.run_in_thread(job)
    assert value == "request-42"
    assert seen is cancel
    assert thread_name != threading.current_thread().name


async def test_a_pool_thread_running_two_jobs_sees_nothing_of_the_first() -> None:
    runs: list[tuple[int, str]] = []

    def job(index: int) -> None:
        runs.append((threading.get_ident(), REQUEST.get()))
        REQUEST.set(f"leaked by job {index}")  # must stay in this job's copy

    REQUEST.set("clean")
    async with Cancelable() as cancel:
        for index in range(20):
            await cancel.run_in_thread(job, index)
    threads = [ident for ident, _ in runs]
    assert len(set(threads)) < len(threads)  # some pool thread ran several jobs
    assert {value for _, value in runs} == {"clean"}
    assert REQUEST.get() == "clean"


async def test_a_body_cancelled_mid_way_waits_for_the_thread_by_default() -> None:
    finished = threading.Event()

    def slow() -> str:
        time.sleep(0.3)
        finished.set()
        return "done"

    start = time.monotonic()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as cancel:
            await cancel.run_in_thread(slow)
    elapsed = time.monotonic() - start
    assert finished.is_set()
    assert 0.25 <= elapsed < 2
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT


async def test_abandon_on_cancel_returns_at_once() -> None:
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.3)
        finished.set()

    start = time.monotonic()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as cancel:
            await cancel.run_in_thread(slow, abandon_on_cancel=True)
    assert time.monotonic() - start < 0.25
    assert not finished.is_set()  # still running on its own
    assert finished.wait(2)


async def test_the_thread_sees_the_deadline_through_the_token() -> None:
    steps: list[int] = []

    def cooperative() -> None:
        operation = current_operation()
        assert operation is not None
        for step in range(1000):
            time.sleep(0.01)
            operation.token.check()
            steps.append(step)

    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable.with_timeout(0.1) as cancel:
            await cancel.run_in_thread(cooperative)
    assert 3 < len(steps) < 100
    assert info.value.context is cancel.context


async def test_the_thread_sees_a_token_cancel_and_check_cancelled_works() -> None:
    token = CancelationToken()

    def via_check_cancelled() -> None:
        for _ in range(1000):
            time.sleep(0.01)
            anyio.from_thread.check_cancelled()

    threading.Timer(0.05, token.cancel_sync).start()
    start = time.monotonic()
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token) as cancel:
            await cancel.run_in_thread(via_check_cancelled)
    assert time.monotonic() - start < 2


async def test_an_exception_in_the_thread_arrives_bare() -> None:
    def broken(value: str) -> int:
        return int(value)

    with pytest.raises(ValueError, match="invalid literal") as info:
        async with Cancelable.with_timeout(5) as cancel:
            await cancel.run_in_thread(broken, "x")
    assert type(info.value) is ValueError
    assert cancel.context.status is OperationStatus.FAILED


async def test_keyword_arguments_and_result() -> None:
    async with Cancelable() as cancel:
        assert await cancel.run_in_thread(divmod, 7, 2) == (3, 1)
        assert await cancel.run_in_thread(int, "ff", base=16) == 255


async def test_run_in_thread_rejects_non_callables() -> None:
    async with Cancelable() as cancel:
        with pytest.raises(TypeError, match=r"^fn must be callable, got 3$"):
            await cancel.run_in_thread(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^abandon_on_cancel must be a bool"):
            await cancel.run_in_thread(print, abandon_on_cancel="yes")  # type: ignore[arg-type]


def test_a_plain_thread_waits_on_a_token_with_a_timeout_and_polls_it() -> None:
    token = CancelationToken()
    results: list[bool] = []

    def waiter() -> None:
        results.append(token.wait_sync(timeout=0.01))
        results.append(token.is_cancelled)
        results.append(token.wait_sync(timeout=5))

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.1)
    token.cancel_sync()
    thread.join(5)
    assert results == [False, False, True]


async def test_bridge_runs_callbacks_on_the_loop_without_start() -> None:
    loop_thread = threading.get_ident()
    ran: list[int] = []
    done = anyio.Event()

    async def async_callback() -> None:
        ran.append(threading.get_ident())
        done.set()

    bridge = AnyioBridge.get_instance()
    thread = threading.Thread(
        target=lambda: (
            bridge.call_soon_threadsafe(ran.append, threading.get_ident()),
            call_soon_threadsafe(async_callback),
        )
    )
    thread.start()
    thread.join()
    with anyio.fail_after(2):
        await done.wait()
    assert ran[1] == loop_thread
    assert ran[0] != loop_thread  # the sync callback got the thread's ident as its argument


def run_an_operation_in_another_loop(backend_name: str) -> None:
    """Make a loop that is gone by the time this returns the one the library ran on last."""

    async def one_operation() -> None:
        async with Cancelable():
            pass

    anyio.run(one_operation, backend=backend_name)


async def test_bridge_start_binds_and_waits_like_0_11(backend_name: str) -> None:
    # The library's latest loop is another one, finished: only start() can bind the bridge here.
    await anyio.to_thread.run_sync(run_an_operation_in_another_loop, backend_name)
    bridge = AnyioBridge()  # bound to no loop yet
    returned: list[str] = []
    ran_on: list[int] = []
    done = anyio.Event()

    async def start() -> None:
        with pytest.warns(DeprecationWarning, match=r"^await bridge\.start\(\) is deprecated"):
            await bridge.start()
        returned.append("start() returned")

    def on_loop() -> None:
        ran_on.append(threading.get_ident())
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(start)
        await anyio.wait_all_tasks_blocked()  # start() ran up to where it waits
        assert await anyio.to_thread.run_sync(bridge.call_soon_threadsafe, on_loop) is True
        with anyio.fail_after(2):
            await done.wait()
        assert ran_on == [threading.get_ident()]  # bound to this loop by start()
        assert returned == []  # and still waiting, as in 0.11, until stopped
        with pytest.warns(DeprecationWarning, match=r"^bridge\.is_started is deprecated"):
            assert bridge.is_started
        with pytest.warns(DeprecationWarning, match=r"^await bridge\.stop\(\) is deprecated"):
            await bridge.stop()  # start() returns, as in 0.11
        await anyio.wait_all_tasks_blocked()
        assert returned == ["start() returned"]
    with pytest.warns(DeprecationWarning, match="is_started"):
        assert not bridge.is_started


def test_bridge_buffer_size_is_accepted_with_a_warning_and_checked() -> None:
    with pytest.warns(
        DeprecationWarning, match=r"^AnyioBridge\(buffer_size=\.\.\.\) is deprecated"
    ) as caught:
        AnyioBridge(buffer_size=5000)
    assert caught[0].filename == __file__
    with pytest.raises(ValueError, match=r"^buffer_size must be at least 1, got 0$"):
        AnyioBridge(buffer_size=0)
    with pytest.raises(TypeError, match=r"^buffer_size must be a whole number, got '10'$"):
        AnyioBridge(buffer_size="10")  # type: ignore[arg-type]


async def test_the_operations_token_wait_sync_wakes_at_the_deadline() -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as cancel:
            assert await cancel.run_in_thread(cancel.token.wait_sync, 5) is True
    assert time.monotonic() - start < 1


@pytest.mark.parametrize(
    ("deadline", "timeout"),
    [
        pytest.param(None, 1e30, id="wait_sync(1e30)"),
        pytest.param(None, 10**400, id="wait_sync(10**400)"),
        pytest.param(1e10, None, id="a deadline 1e10 s away, wait_sync()"),
    ],
)
async def test_the_operations_token_wait_sync_longer_than_threads_can_wait_simply_waits(
    deadline: float | None, timeout: float | None
) -> None:
    woken: list[bool] = []

    def wait() -> None:
        operation = current_operation()
        assert operation is not None
        woken.append(operation.token.wait_sync(timeout))

    operation = Cancelable() if deadline is None else Cancelable.with_timeout(deadline)
    timer = threading.Timer(0.05, operation.cancel_sync, kwargs={"message": "from a thread"})
    start = time.monotonic()
    try:
        with pytest.raises(ManualCancelation, match="from a thread"):
            async with operation:
                timer.start()
                await operation.run_in_thread(wait)
    finally:
        timer.cancel()
    assert woken == [True]
    assert time.monotonic() - start < 2


async def test_is_cancelled_sees_the_deadline_from_a_worker_thread() -> None:
    def poll() -> float:
        operation = current_operation()
        assert operation is not None
        start = time.monotonic()
        while not operation.is_cancelled and time.monotonic() - start < 5:
            time.sleep(0.005)
        return time.monotonic() - start

    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as cancel:
            waited = await cancel.run_in_thread(poll)
            assert waited < 1
            await anyio.sleep(10)


async def test_a_child_token_in_a_thread_sees_its_parents_deadline() -> None:
    def cooperative() -> str:
        operation = current_operation()
        assert operation is not None
        for _ in range(500):
            time.sleep(0.01)
            if operation.token.is_cancelled:
                return "stopped"
        return "ran out"

    with pytest.raises(TimeoutCancelation):
        async with (
            Cancelable.with_timeout(0.05) as outer,
            Cancelable(parent=outer) as child,
        ):
            assert await child.run_in_thread(cooperative) == "stopped"


async def test_a_bridge_bound_to_a_finished_loop_falls_back_to_the_latest(
    backend_name: str,
) -> None:
    def bind_in_another_loop() -> None:
        async def bind() -> None:
            AnyioBridge.get_instance()

        anyio.run(bind, backend=backend_name)

    await anyio.to_thread.run_sync(bind_in_another_loop)  # that loop is gone now
    done = anyio.Event()
    ran_on: list[int] = []

    def on_loop() -> None:
        ran_on.append(threading.get_ident())
        done.set()

    async with Cancelable():  # the latest operation's loop is this one
        assert await anyio.to_thread.run_sync(call_soon_threadsafe, on_loop) is True
        with anyio.fail_after(2):
            await done.wait()
    assert ran_on == [threading.get_ident()]  # run on this loop, the latest one


async def test_a_bridge_falls_back_to_the_loop_of_the_latest_token_callback_too(
    backend_name: str,
) -> None:
    def operation_in_another_loop() -> None:
        async def one_operation() -> None:
            async with Cancelable():
                pass

        anyio.run(one_operation, backend=backend_name)

    await anyio.to_thread.run_sync(operation_in_another_loop)  # that loop is gone now
    registration = CancelationToken().register_callback(lambda token: None)  # on this loop
    done = anyio.Event()
    ran_on: list[int] = []

    def on_loop() -> None:
        ran_on.append(threading.get_ident())
        done.set()

    assert await anyio.to_thread.run_sync(call_soon_threadsafe, on_loop) is True
    with anyio.fail_after(2):
        await done.wait()
    assert ran_on == [threading.get_ident()]  # run on this loop, the latest one
    registration.unregister()


def test_a_bridge_with_no_loop_left_runs_nothing_and_says_so(
    backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def one_operation() -> None:
        async with Cancelable():
            pass

    anyio.run(one_operation, backend=backend_name)  # the latest loop, finished now
    ran: list[int] = []
    with caplog.at_level("WARNING", logger="hother.cancelable"):
        assert AnyioBridge().call_soon_threadsafe(ran.append, 1) is False
    assert ran == []
    assert "no running event loop to run" in caplog.text
