"""Decorators (SPEC section 5): signatures kept, operation injected where declared."""

from __future__ import annotations

import inspect
import signal
import time
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
    with pytest.raises(TypeError, match=r"^inject_param must be a parameter name, got 'a b'$"):
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
