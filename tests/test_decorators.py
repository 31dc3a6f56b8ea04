"""Decorators (SPEC section 5): signatures kept, operation injected where declared."""

from __future__ import annotations

import inspect
import signal
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ConditionCancelation,
    ManualCancelation,
    OperationRegistry,
    SignalCancelation,
    TimeoutCancelation,
    cancelable,
    cancelable_combine,
    cancelable_method,
    cancelable_with_condition,
    cancelable_with_signal,
    cancelable_with_token,
    current_operation,
    ensure_cancelable,
    with_cancelable,
    with_current_operation,
    with_timeout,
)


@cancelable(timeout=0.05, name="slow")
async def slow(seconds: float, cancelable: Cancelable | None = None) -> str:
    """Sleep, then answer."""
    assert cancelable is not None
    assert current_operation() is cancelable
    await anyio.sleep(seconds)
    return "done"


async def test_cancelable_runs_each_call_as_an_operation_with_its_timeout() -> None:
    assert await slow(0) == "done"
    with pytest.raises(TimeoutCancelation) as info:
        await slow(10)
    assert info.value.context is not None
    assert info.value.context.name == "slow"


def test_the_decorated_function_keeps_name_docstring_and_signature() -> None:
    assert slow.__name__ == "slow"
    assert slow.__doc__ == "Sleep, then answer."
    assert list(inspect.signature(slow).parameters) == ["seconds", "cancelable"]


async def test_injected_only_where_declared() -> None:
    seen: list[Any] = []

    @cancelable()
    async def plain(x: int) -> int:
        seen.append(current_operation())
        return x + 1

    @cancelable(inject_param="op")
    async def named(op: Cancelable) -> Cancelable:
        return op

    assert await plain(1) == 2
    assert isinstance(seen[0], Cancelable)
    assert seen[0].context.name.endswith("plain")
    assert isinstance(await named(), Cancelable)  # type: ignore[call-arg]


async def test_a_caller_may_pass_its_own_cancelable() -> None:
    @cancelable()
    async def job(cancelable: Cancelable | None = None) -> Cancelable | None:
        return cancelable

    mine = Cancelable()
    assert await job(cancelable=mine) is mine


class Service:
    @cancelable_method(timeout=0.05)
    async def work(self, cancelable: Cancelable | None = None) -> None:
        await anyio.sleep(10)


async def test_cancelable_method() -> None:
    with pytest.raises(TimeoutCancelation) as info:
        await Service().work()
    assert info.value.context is not None
    assert info.value.context.name == "Service.work"


async def test_cancelable_with_token() -> None:
    token = CancelationToken()

    @cancelable_with_token(token)
    async def job() -> None:
        await token.cancel(message="stop")
        await anyio.sleep(10)

    with pytest.raises(ManualCancelation, match="stop"):
        await job()
    assert token.callback_count == 0


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
async def test_cancelable_with_signal() -> None:
    @cancelable_with_signal(signal.SIGUSR1)
    async def job() -> None:
        signal.raise_signal(signal.SIGUSR1)
        await anyio.sleep(10)

    with pytest.raises(SignalCancelation):
        await job()


async def test_cancelable_with_condition() -> None:
    start = time.monotonic()

    @cancelable_with_condition(lambda: time.monotonic() - start > 0.03, 0.01, "late")
    async def job() -> None:
        await anyio.sleep(10)

    with pytest.raises(ConditionCancelation) as info:
        await job()
    assert info.value.condition_name == "late"


async def test_cancelable_combine_applies_every_source() -> None:
    token = CancelationToken()

    @cancelable_combine(
        lambda: Cancelable.with_timeout(5),
        Cancelable.with_token(token),
        lambda: Cancelable.with_condition(lambda: False, 0.01),
    )
    async def job(cancelable: Cancelable) -> list[Any]:
        await anyio.sleep(0.01)
        return [cancelable.context.status]

    assert await job()  # type: ignore[call-arg]

    @cancelable_combine(lambda: Cancelable.with_timeout(0.05), lambda: Cancelable.with_timeout(5))
    async def timed() -> None:
        await anyio.sleep(10)

    start = time.monotonic()
    with pytest.raises(TimeoutCancelation):
        await timed()
    assert time.monotonic() - start < 1

    @cancelable_combine(Cancelable.with_token(token))
    async def by_token() -> None:
        await token.cancel()
        await anyio.sleep(10)

    with pytest.raises(ManualCancelation):
        await by_token()


async def test_with_cancelable_runs_the_call_in_that_block() -> None:
    operation = Cancelable.with_timeout(0.05, name="given")

    @with_cancelable(operation, inject=True)
    async def job(cancelable: Cancelable) -> None:
        assert cancelable is operation
        await anyio.sleep(10)

    with pytest.raises(TimeoutCancelation):
        await job()  # type: ignore[call-arg]
    assert operation.context.cancel_reason is CancelationReason.TIMEOUT

    quiet = Cancelable.with_timeout(0.01, raise_on_cancel=False)

    @with_cancelable(quiet)
    async def quietly() -> str:
        await anyio.sleep(10)
        return "never"

    assert await quietly() is None


async def test_with_current_operation() -> None:
    @with_current_operation()
    async def job(operation: Cancelable | None = None) -> Cancelable | None:
        return operation

    assert await job() is None
    async with Cancelable() as cancel:
        assert await job() is cancel


async def test_with_timeout() -> None:
    async def answer() -> int:
        await anyio.lowlevel.checkpoint()
        return 42

    assert await with_timeout(1, answer()) == 42
    with pytest.raises(TimeoutCancelation):
        await with_timeout(0.02, anyio.sleep(10))


async def test_ensure_cancelable() -> None:
    @ensure_cancelable
    async def library_call(cancelable: Cancelable | None = None) -> Cancelable | None:
        return cancelable

    made = await library_call()
    assert isinstance(made, Cancelable)
    assert made.is_completed
    async with Cancelable() as mine:
        assert await library_call(cancelable=mine) is mine


async def test_decorated_calls_can_register_globally() -> None:
    registry = OperationRegistry.get_instance()
    registry.clear_all_sync()

    @cancelable(register_globally=True, name="listed")
    async def job() -> list[str | None]:
        return [record.name for record in await registry.list_operations()]

    assert await job() == ["listed"]
    registry.clear_all_sync()


def test_bad_decorator_input() -> None:
    def not_async() -> None:
        pass

    with pytest.raises(TypeError, match="must be an `async def` function"):
        cancelable()(not_async)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^timeout must be"):
        cancelable(timeout=0)
    with pytest.raises(
        TypeError, match=r"^inject_param must be a parameter name or None, got 'a b'$"
    ):
        cancelable(inject_param="a b")
    with pytest.raises(TypeError, match=r"^token must be a CancelationToken, got None$"):
        cancelable_with_token(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"is not a known signal"):
        cancelable_with_signal(999)
    with pytest.raises(TypeError, match=r"^predicate must be callable"):
        cancelable_with_condition(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^cancelables must hold at least one"):
        cancelable_combine()
    with pytest.raises(TypeError, match=r"^cancelables\[0\] must be a Cancelable"):
        cancelable_combine(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^cancel must be a Cancelable, got 1$"):
        with_cancelable(1)  # type: ignore[arg-type]

    async def no_parameter() -> None:
        pass

    with pytest.raises(TypeError, match="must declare a `cancelable` parameter"):
        ensure_cancelable(no_parameter)


async def test_with_timeout_rejects_bad_input_and_closes_the_coroutine() -> None:
    with pytest.raises(TypeError, match=r"^coro must be awaitable, got 3$"):
        await with_timeout(1, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^timeout must be"):
        await with_timeout(-1, anyio.sleep(0.01))  # closed, so no "never awaited" warning


async def test_the_operation_may_be_passed_by_position_and_none_means_not_passed() -> None:
    @cancelable()
    async def job(url: str, cancelable: Cancelable | None = None) -> Cancelable | None:
        return cancelable

    @ensure_cancelable
    async def library_call(url: str, cancelable: Cancelable | None = None) -> Cancelable | None:
        return cancelable

    mine = Cancelable()
    assert await job("u", mine) is mine
    assert isinstance(await job("u", None), Cancelable)
    assert isinstance(await job("u", cancelable=None), Cancelable)
    async with Cancelable() as running:
        assert await library_call("u", running) is running
    assert isinstance(await library_call("u", None), Cancelable)


async def test_concurrent_calls_sharing_an_operation_id_keep_the_registry_right() -> None:
    registry = OperationRegistry.get_instance()
    registry.clear_all_sync()

    @cancelable(operation_id="fetch", register_globally=True)
    async def fetch(seconds: float) -> None:
        await anyio.sleep(seconds)

    async with anyio.create_task_group() as tg:
        tg.start_soon(fetch, 0.01)
        tg.start_soon(fetch, 0.1)
        await anyio.sleep(0.05)
        assert [r.id for r in registry.list_operations_sync()] == ["fetch"]  # the slow one
        assert registry.get_operation_sync("fetch") is not None
    assert len(registry.get_history_sync()) == 2
    registry.clear_all_sync()


async def test_an_operation_is_injected_into_a_positional_only_parameter() -> None:
    @cancelable(name="fetch")
    async def fetch(url: str, retries: int = 3, cancelable: Cancelable | None = None, /) -> str:
        assert cancelable is not None
        return f"{url} {retries} {cancelable.context.name}"

    @ensure_cancelable
    async def ensured(url: str, cancelable: Cancelable | None = None, /) -> bool:
        return isinstance(cancelable, Cancelable)

    @with_current_operation()
    async def current(operation: Cancelable | None = None, /) -> Cancelable | None:
        return operation

    assert await fetch("a") == "a 3 fetch"  # the default of `retries` fills the gap
    assert await fetch("b", 1) == "b 1 fetch"
    assert await ensured("c") is True
    async with Cancelable() as outer:
        assert await current() is outer
    with pytest.raises(TypeError, match="url"):  # a required argument left out: Python says so
        await fetch()  # type: ignore[call-arg]


async def test_with_current_operation_leaves_other_functions_and_given_values_alone() -> None:
    @with_current_operation()
    async def plain(value: int) -> int:
        return value

    @with_current_operation()
    async def job(operation: Cancelable | None = None) -> Cancelable | None:
        return operation

    mine = Cancelable()
    async with Cancelable() as running:
        assert await plain(3) == 3
        assert await job(mine) is mine
        assert await job(operation=mine) is mine
        assert await job(None) is running


async def test_a_combine_factory_that_builds_no_cancelable_is_refused_at_the_call() -> None:
    @cancelable_combine(Cancelable.with_timeout(5), lambda: "not an operation")  # type: ignore[arg-type, return-value]
    async def job() -> None:
        raise AssertionError("not run")

    with pytest.raises(TypeError, match=r"^a cancelable factory must .*, got 'not an operation'$"):
        await job()


async def test_with_timeout_refusing_its_timeout_leaves_another_awaitable_untouched() -> None:
    class Answer:
        """Awaitable more than once, unlike a coroutine."""

        def __await__(self) -> Any:
            yield from anyio.lowlevel.checkpoint().__await__()
            return 42

    answer = Answer()
    with pytest.raises(ValueError, match=r"^timeout must be"):
        await with_timeout(0, answer)
    assert await with_timeout(1, answer) == 42


async def test_the_operation_is_injected_into_a_keyword_only_parameter() -> None:
    @with_current_operation()
    async def job(*, operation: Cancelable | None = None) -> Cancelable | None:
        return operation

    @cancelable(name="fetch")
    async def fetch(url: str, *, cancelable: Cancelable | None = None) -> Cancelable | None:
        return cancelable

    async with Cancelable() as running:
        assert await job() is running
    made = await fetch("u")
    assert made is not None
    assert (made.context.name, made.is_completed) == ("fetch", True)


# -- 0.11 user code (issue "Upgrading from 0.11 without surprises") ------------------------------
# Each test below is written as code written for hother-cancelable 0.11 would be.


CHECK_DEPRECATED = r"^ensure_cancelable\(cancelable\) is deprecated"


def _warned_here(record: pytest.WarningsRecorder) -> None:
    """The deprecation points at the user's line: this file, not the library."""
    assert [w.filename for w in record] == [__file__] * len(record)


OFF_SWITCHES: dict[str, Callable[..., Any]] = {
    "cancelable": lambda **kw: cancelable(timeout=30.0, **kw),
    "cancelable_method": lambda **kw: cancelable_method(**kw),
    "cancelable_with_token": lambda **kw: cancelable_with_token(CancelationToken(), **kw),
    "cancelable_with_signal": lambda **kw: cancelable_with_signal(**kw),
    "cancelable_with_condition": lambda **kw: cancelable_with_condition(lambda: False, **kw),
    "cancelable_combine": lambda **kw: cancelable_combine(Cancelable.with_timeout(30), **kw),
}


@pytest.mark.parametrize("decorator", OFF_SWITCHES.values(), ids=OFF_SWITCHES.keys())
async def test_inject_param_none_turns_injection_off_as_in_0_11(
    decorator: Callable[..., Any],
) -> None:
    @decorator(name="clean", inject_param=None)
    async def clean_signature(arg1: int, cancelable: Cancelable | None = None) -> Any:
        ctx = current_operation()
        assert ctx is not None
        return cancelable, ctx.context.name, arg1

    assert await clean_signature(1) == (None, "clean", 1)


@pytest.mark.parametrize("decorator", OFF_SWITCHES.values(), ids=OFF_SWITCHES.keys())
async def test_inject_param_empty_turns_injection_off_with_a_deprecation_warning(
    decorator: Callable[..., Any],
) -> None:
    with pytest.warns(
        DeprecationWarning, match=r'^inject_param="" is deprecated: write inject_param=None'
    ) as record:

        @decorator(name="clean", inject_param="")
        async def clean_signature(cancelable: Cancelable | None = None) -> Any:
            ctx = current_operation()
            assert ctx is not None
            return cancelable, ctx.context.name

    _warned_here(record)
    assert await clean_signature() == (None, "clean")


async def test_with_cancelable_with_inject_param_none_or_empty_injects_nothing() -> None:
    shared = Cancelable(name="shared")

    @with_cancelable(shared, inject=True, inject_param=None)
    async def off(cancelable: Cancelable | None = None) -> Cancelable | None:
        return cancelable

    with pytest.warns(DeprecationWarning, match=r'^inject_param="" is deprecated') as record:

        @with_cancelable(shared, inject=True, inject_param="")
        async def empty(cancelable: Cancelable | None = None) -> Cancelable | None:
            return cancelable

    _warned_here(record)
    async with shared:
        assert await off() is None
        assert await empty() is None


async def test_with_timeout_takes_operation_id_and_name_as_in_0_11() -> None:
    async def fetch_data() -> tuple[str, str | None]:
        ctx = current_operation()
        assert ctx is not None
        await anyio.lowlevel.checkpoint()
        return ctx.operation_id, ctx.context.name

    result = await with_timeout(5.0, fetch_data(), operation_id="fetch-1", name="fetch")
    assert result == ("fetch-1", "fetch")
    assert await with_timeout(5.0, fetch_data(), "fetch-2", "again") == ("fetch-2", "again")
    with pytest.raises(TimeoutCancelation) as info:
        await with_timeout(0.02, anyio.sleep(10), name="slow")
    assert info.value.context is not None
    assert info.value.context.name == "slow"


async def test_with_timeout_refuses_a_bad_operation_id_and_closes_the_coroutine() -> None:
    coro = anyio.sleep(1)
    with pytest.raises(TypeError, match=r"^operation_id must be a str or None, got 42$"):
        await with_timeout(1, coro, operation_id=42)  # type: ignore[arg-type]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_with_cancelable_calls_inside_the_running_block_share_it_as_in_0_11() -> None:
    # docs/advanced.md of 0.11: one shared budget, the block entered by the caller.
    batch_cancel = Cancelable.with_timeout(5.0, name="batch")
    progress: list[Any] = []
    batch_cancel.on_progress(lambda op_id, message, meta: progress.append(message))

    @with_cancelable(batch_cancel)
    async def process_item(item: str) -> str:
        ctx = current_operation()
        assert ctx is batch_cancel
        await ctx.report_progress(f"Processing {item}")
        await anyio.lowlevel.checkpoint()
        return f"Done: {item}"

    @with_cancelable(batch_cancel, inject=True)
    async def process_with_injection(item: str, cancelable: Cancelable | None = None) -> str:
        assert cancelable is batch_cancel
        return f"Injected: {item}"

    async with batch_cancel:
        assert await process_item("A") == "Done: A"
        assert await process_item("B") == "Done: B"
        assert await process_with_injection("C") == "Injected: C"
    assert progress == ["Processing A", "Processing B"]
    assert batch_cancel.is_completed


async def test_with_cancelable_inside_the_block_is_cancelled_by_it() -> None:
    timeout_cancel = Cancelable.with_timeout(0.05, name="timeout_test")

    @with_cancelable(timeout_cancel)
    async def slow_operation() -> str:
        await anyio.sleep(10)
        return "Should not reach here"

    start = time.monotonic()
    with pytest.raises(TimeoutCancelation):
        async with timeout_cancel:
            await slow_operation()
    assert time.monotonic() - start < 5
    assert timeout_cancel.context.cancel_reason is CancelationReason.TIMEOUT


async def test_with_cancelable_runs_inside_from_tasks_and_blocks_started_in_the_block() -> None:
    shared = Cancelable(name="shared")
    seen: list[Any] = []

    @with_cancelable(shared, inject=True, inject_param="ctx")
    async def step(n: int, ctx: Cancelable | None = None) -> None:
        current = current_operation()
        assert current is not None
        seen.append((n, ctx is shared, current.context.name))

    async with shared:
        async with anyio.create_task_group() as tg:
            tg.start_soon(step, 1)
            tg.start_soon(step, 2)
        async with Cancelable(name="inner"):
            await step(3)
    assert sorted(seen) == [(1, True, "shared"), (2, True, "shared"), (3, True, "inner")]


async def test_with_cancelable_called_while_its_block_runs_in_another_task_is_refused() -> None:
    shared = Cancelable(name="shared")
    entered, release = anyio.Event(), anyio.Event()

    @with_cancelable(shared)
    async def step() -> None:
        raise AssertionError("not run")

    async def hold() -> None:
        async with shared:
            entered.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await entered.wait()
        with pytest.raises(RuntimeError, match=r"\.step\(\) is decorated .* runs in another task"):
            await step()
        release.set()
    assert shared.is_completed


async def test_with_cancelable_called_after_its_block_ended_says_so() -> None:
    pipeline_cancel = Cancelable.with_timeout(30.0, name="data_pipeline")

    @with_cancelable(pipeline_cancel)
    async def fetch_data(source: str) -> str:
        return source

    async with pipeline_cancel:
        assert await fetch_data("API") == "API"
    with pytest.raises(RuntimeError, match=r"has ended: a Cancelable runs one block") as info:
        await fetch_data("again")
    assert "fetch_data()" in str(info.value)
    assert "@cancelable(...)" in str(info.value)


async def test_ensure_cancelable_as_0_11_check_returns_the_operation_with_a_warning() -> None:
    @cancelable(timeout=5.0)
    async def job(cancelable: Cancelable | None = None) -> Cancelable:
        with pytest.warns(DeprecationWarning, match=CHECK_DEPRECATED) as record:
            cancel = ensure_cancelable(cancelable)
        _warned_here(record)
        return cancel

    made = await job()
    assert made.context.name is not None
    assert made.context.name.endswith("job")
    with pytest.warns(DeprecationWarning, match="assert cancelable is not None"):
        assert ensure_cancelable(cancelable=made) is made


async def test_ensure_cancelable_of_none_raises_runtime_error_as_in_0_11() -> None:
    async def job(cancelable: Cancelable | None = None) -> Cancelable:  # not decorated
        return ensure_cancelable(cancelable)

    with (
        pytest.warns(DeprecationWarning, match=CHECK_DEPRECATED) as record,
        pytest.raises(RuntimeError, match=r"^cancelable is None: .*@ensure_cancelable"),
    ):
        await job()
    _warned_here(record)


async def test_ensure_cancelable_refuses_what_is_neither_a_function_nor_an_operation() -> None:
    with pytest.raises(TypeError, match=r"^ensure_cancelable takes an `async def` .*, got 5$"):
        ensure_cancelable(5)  # type: ignore[call-overload]

    @ensure_cancelable  # the decorator form is unchanged
    async def download(cancelable: Cancelable | None = None) -> str | None:
        return None if cancelable is None else cancelable.context.name

    assert await download() is not None


async def test_cancelable_with_condition_accepts_0_11_condition_keyword_with_a_warning() -> None:
    done = False
    with pytest.warns(
        DeprecationWarning, match=r"write cancelable_with_condition\(predicate="
    ) as record:

        @cancelable_with_condition(
            condition=lambda: done, check_interval=0.01, condition_name="done"
        )
        async def worker(cancelable: Cancelable | None = None) -> None:
            nonlocal done
            assert cancelable is not None
            done = True
            await anyio.sleep(10)

    _warned_here(record)
    with pytest.raises(ConditionCancelation) as info:
        await worker()
    assert info.value.condition_name == "done"


async def test_cancelable_with_condition_refuses_both_names_or_a_bad_condition() -> None:
    with pytest.raises(TypeError, match=r"^give predicate or condition .*not both"):
        cancelable_with_condition(bool, condition=bool)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^condition must be callable, got 5$"):
        cancelable_with_condition(condition=5)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^predicate must be callable, got None$"):
        cancelable_with_condition()  # type: ignore[call-overload]


async def test_cancelable_combine_as_0_11_applies_timeouts_and_tokens_on_every_call() -> None:
    token = CancelationToken()

    @cancelable_combine(
        Cancelable.with_timeout(0.05),
        Cancelable.with_token(token),
        name="robust_operation",
    )
    async def download_file(url: str, cancelable: Cancelable | None = None) -> str:
        assert cancelable is not None
        await anyio.sleep(float(url))
        return cancelable.context.name or ""

    assert await download_file("0") == "robust_operation"
    for _ in range(2):  # the instances given are templates: each call gets both
        start = time.monotonic()
        with pytest.raises(TimeoutCancelation):
            await download_file("10")
        assert time.monotonic() - start < 5

    @cancelable_combine(
        Cancelable.with_timeout(30), Cancelable.with_token(token), inject_param=None
    )
    async def stopped(cancelable: Cancelable | None = None) -> None:
        assert cancelable is None
        await token.cancel(message="stop")
        await anyio.sleep(10)

    with pytest.raises(ManualCancelation, match="stop"):
        await stopped()


async def test_cancelable_combine_keeps_its_operation_id() -> None:
    @cancelable_combine(Cancelable.with_timeout(30), operation_id="download-1")
    async def download() -> str | None:
        ctx = current_operation()
        return None if ctx is None else ctx.operation_id

    assert await download() == "download-1"
