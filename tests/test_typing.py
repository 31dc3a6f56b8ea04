# pyright: reportUnnecessaryTypeIgnoreComment=error
"""Typing tests: the public signatures of hother.cancelable, pinned.

pyright checks this module in strict mode (`nox -s typecheck`, or `pyright` alone) and pytest
runs it (`pytest tests/test_typing.py`; every async test on asyncio, uvloop and trio), so each
test pins types and asserts behaviour at once:

- `assert_type(expr, T)` fails type checking unless pyright infers exactly `T` for `expr`; at
  run time it only returns `expr`.
- A call the types must refuse carries `# pyright: ignore[rule]`. The comment on the first
  line makes an ignore that suppresses nothing an error: if a signature loosens until pyright
  accepts the call, type checking fails. The library checks its arguments at run time too, so
  such calls run under `pytest.raises(TypeError)`, which tests that as well.
- A signature that `Callable[...]` cannot spell (named parameters, defaults) is pinned by
  assignment to a `Protocol` and by refused calls.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import aclosing
from datetime import datetime, timedelta
from typing import Any, Protocol, assert_type

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from hother.cancelable import (
    AllOfSource,
    AnyioBridge,
    AnyOfSource,
    CallbackRegistration,
    Cancelable,
    CancelableAsyncIterator,
    CancelationError,
    CancelationReason,
    CancelationSource,
    CancelationToken,
    CompositeSource,
    ConditionCancelation,
    ConditionSource,
    ErrorCallback,
    ErrorCallbackType,
    LinkedCancelationToken,
    ManualCancelation,
    OperationContext,
    OperationRegistry,
    OperationStatus,
    ParentCancelation,
    ProgressCallback,
    ProgressCallbackType,
    ResourceConditionSource,
    SignalCancelation,
    SignalSource,
    StatusCallback,
    StatusCallbackType,
    ThreadSafeRegistry,
    TimeoutCancelation,
    TimeoutSource,
    call_soon_threadsafe,
    cancelable,
    cancelable_combine,
    cancelable_method,
    cancelable_stream,
    cancelable_with_condition,
    cancelable_with_signal,
    cancelable_with_token,
    chunked_cancelable_stream,
    current_operation,
    ensure_cancelable,
    with_cancelable,
    with_current_operation,
    with_timeout,
)
from hother.cancelable.testing import (
    CancelationScenario,
    ExpectedCancelation,
    MockCancelationToken,
    OperationEvent,
    OperationRecorder,
    ScenarioResult,
    ScenarioStep,
    ScheduledCancel,
    StreamConfig,
    TokenCall,
    assert_cancelation_within,
    create_slow_stream,
    simulate_stream,
)

# -- helpers -----------------------------------------------------------------------------------


async def numbers(count: int = 3) -> AsyncGenerator[int]:
    for number in range(count):
        await anyio.lowlevel.checkpoint()
        yield number


def add(a: int, b: int) -> int:
    """A blocking function, for worker threads."""
    return a + b


async def answer() -> int:
    await anyio.lowlevel.checkpoint()
    return 42


async def plus_one(number: int, /) -> int:
    return number + 1  # a str gets here only past the type checker: TypeError


# -- Cancelable --------------------------------------------------------------------------------


async def test_factories_and_the_block_give_a_cancelable() -> None:
    token = CancelationToken()
    assert_type(Cancelable(name="plain"), Cancelable)
    assert_type(Cancelable.with_timeout(1), Cancelable)
    assert_type(Cancelable.with_timeout(timedelta(seconds=1)), Cancelable)
    assert_type(Cancelable.with_token(token), Cancelable)
    assert_type(Cancelable.with_signal(signal.SIGINT), Cancelable)
    assert_type(Cancelable.with_condition(lambda: False), Cancelable)
    combined = Cancelable.with_timeout(60).combine(Cancelable.with_token(token))
    assert_type(combined, Cancelable)

    assert_type(current_operation(), Cancelable | None)
    assert current_operation() is None
    async with combined as cancel:
        assert_type(cancel, Cancelable)
        assert_type(cancel.context, OperationContext)
        assert_type(cancel.operation_id, str)
        assert_type(cancel.parent, Cancelable | None)
        assert_type(cancel.token, CancelationToken)
        assert_type(cancel.is_running, bool)
        assert_type(cancel.is_cancelled, bool)
        assert_type(await cancel.check_cancelation(), None)
        assert_type(await cancel.report_progress("half way", {"done": 1}), None)
        assert cancel is combined
        assert current_operation() is cancel
        assert cancel.is_running
        with cancel.shield() as scope:
            assert_type(scope, anyio.CancelScope)
            assert scope.shield
        async with cancel.wrapping() as call:
            assert_type(call, Callable[..., Awaitable[Any]])
            assert await call(answer) == 42
    assert_type(cancel.is_completed, bool)
    assert cancel.is_completed
    assert current_operation() is None


async def test_callbacks_chain_and_requests_return_bool() -> None:
    seen: list[str] = []
    cancel = Cancelable(name="chained", raise_on_cancel=False)
    chained = (
        cancel.on_start(lambda context: seen.append(f"start {context.name}"))
        .on_progress(lambda operation_id, message, metadata: seen.append(f"progress {message}"))
        .on_cancel(lambda context: seen.append(f"cancel {context.cancel_message}"))
        .on_complete(lambda context: seen.append("complete"))
        .on_error(lambda context, error: seen.append(f"error {error!r}"))
    )
    assert_type(chained, Cancelable)
    assert chained is cancel
    async with cancel:
        await cancel.report_progress("one")
        first = await cancel.cancel(CancelationReason.MANUAL, "stop")
        again = cancel.cancel_sync(message="again")
        assert_type(first, bool)
        assert_type(again, bool)
        assert (first, again) == (True, False)
        await anyio.sleep(1)
    assert seen == ["start chained", "progress one", "cancel stop"]


async def test_cancelable_refuses_bad_arguments() -> None:
    with pytest.raises(TypeError, match="timeout"):
        Cancelable.with_timeout("1")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="name"):
        Cancelable(name=1)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="parent"):
        Cancelable(parent="outer")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="token"):
        Cancelable.with_token("token")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="predicate"):
        Cancelable.with_condition(True)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="others"):
        Cancelable().combine("other")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="callback"):
        Cancelable().on_cancel("print")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="reason"):
        await Cancelable().cancel("manual")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="message"):
        Cancelable().cancel_sync(message=1)  # pyright: ignore[reportArgumentType]


# -- the record and the exceptions -------------------------------------------------------------


async def test_the_record_of_a_cancelled_operation() -> None:
    async with Cancelable.with_timeout(0.01, name="late", raise_on_cancel=False) as cancel:
        await anyio.sleep(1)
    context = cancel.context
    assert_type(context.id, str)
    assert_type(context.name, str | None)
    assert_type(context.status, OperationStatus)
    assert_type(context.cancel_reason, CancelationReason | None)
    assert_type(context.cancel_message, str | None)
    assert_type(context.error, str | None)
    assert_type(context.partial_result, Any)
    assert_type(context.metadata, dict[str, Any])
    assert_type(context.start_time, datetime | None)
    assert_type(context.duration, timedelta | None)
    assert_type(context.duration_seconds, float | None)
    assert_type(context.is_terminal, bool)
    assert_type(context.copy(), OperationContext)
    assert_type(context.log_context(), dict[str, Any])
    assert context.status is OperationStatus.CANCELLED
    assert context.cancel_reason is CancelationReason.TIMEOUT
    assert context.log_context()["cancel_reason"] == "timeout"


async def test_a_timeout_is_a_timeout_error() -> None:
    with pytest.raises(TimeoutError) as caught:
        async with Cancelable.with_timeout(0.01, name="slow"):
            await anyio.sleep(1)
    error = caught.value
    assert isinstance(error, TimeoutCancelation)
    as_builtin: TimeoutError = error  # the docs promise `except TimeoutError:` catches it
    as_ours: CancelationError = error
    as_exception: Exception = error  # and `except Exception:`: never a BaseException only
    assert as_builtin is as_ours is as_exception
    assert_type(error.reason, CancelationReason)
    assert_type(error.message, str | None)
    assert_type(error.context, OperationContext | None)
    assert error.reason is CancelationReason.TIMEOUT
    assert error.context is not None
    assert error.context.name == "slow"


def test_the_exception_classes() -> None:
    # 0.11's positional order ([3/6]): the reason's own datum, then the message.
    signalled = SignalCancelation(2, "interrupted")
    condition = ConditionCancelation(condition_name="disk full")
    parent = ParentCancelation(parent_id="outer")
    assert_type(signalled.signal_number, int | None)
    assert_type(condition.condition_name, str | None)
    assert_type(parent.parent_id, str | None)
    assert_type(ManualCancelation.reason, CancelationReason)
    assert (signalled.signal_number, condition.condition_name, parent.parent_id) == (
        2,
        "disk full",
        "outer",
    )
    assert ManualCancelation().reason is CancelationReason.MANUAL
    for cls in (ManualCancelation, SignalCancelation, ConditionCancelation, ParentCancelation):
        assert issubclass(cls, CancelationError)
        assert not issubclass(cls, TimeoutError)
    # Only the timeout is a TimeoutError; the others are refused where one is expected.
    not_a_timeout: TimeoutError = ManualCancelation()  # pyright: ignore[reportAssignmentType]
    assert type(not_a_timeout) is ManualCancelation
    assert signalled.message == "interrupted"
    timed_out = TimeoutCancelation(5)
    assert_type(timed_out.timeout_seconds, float | None)
    assert (timed_out.timeout_seconds, timed_out.message) == (5, "operation timed out after 5 s")
    assert_type(
        ParentCancelation("outer", CancelationReason.TIMEOUT).parent_reason,
        CancelationReason | None,
    )
    # The message where 0.11 put the datum is refused at the call, never taken as the datum.
    with pytest.raises(TypeError, match="signal_number must be a signal number"):
        SignalCancelation("interrupted", 2)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="reason must be a CancelationReason"):
        CancelationError("stopped")  # pyright: ignore[reportArgumentType]


# -- tokens ------------------------------------------------------------------------------------


async def test_tokens() -> None:
    token = CancelationToken()
    cancelled: list[str] = []
    registration = token.register_callback(lambda cancelled_token: cancelled.append("called"))
    assert_type(registration, CallbackRegistration)
    assert_type(token.id, str)
    assert_type(token.is_cancelled, bool)
    assert_type(token.reason, CancelationReason | None)
    assert_type(token.message, str | None)
    assert_type(token.cancelled_at, datetime | None)
    assert_type(token.check(), None)
    assert_type(token.wait_sync(0), bool)
    linked = LinkedCancelationToken()
    assert_type(linked.link(token, preserve_reason=True), CallbackRegistration)

    first = await token.cancel(CancelationReason.MANUAL, "stop")
    again = token.cancel_sync(CancelationReason.TIMEOUT)
    assert_type(first, bool)
    assert_type(again, bool)
    assert (first, again) == (True, False)
    assert cancelled == ["called"]
    assert (linked.reason, linked.message) == (CancelationReason.MANUAL, "stop")
    assert_type(registration.unregister(), bool)
    assert registration.unregister() is False  # ran once, then left the token
    with pytest.raises(ManualCancelation, match="stop"):
        token.check()


async def test_tokens_refuse_bad_arguments() -> None:
    token = CancelationToken()
    with pytest.raises(TypeError, match="reason"):
        token.cancel_sync("manual")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="message"):
        await token.cancel(message=1)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="callback"):
        token.register_callback("print")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="token"):
        LinkedCancelationToken().link(Cancelable())  # pyright: ignore[reportArgumentType]
    assert not token.is_cancelled


# -- streams -----------------------------------------------------------------------------------


async def test_a_stream_inside_a_block_keeps_the_item_type() -> None:
    seen: list[int] = []  # before the block: its __aexit__ may swallow (raise_on_cancel=False)
    async with Cancelable() as cancel:
        stream = cancel.stream(numbers())
        assert_type(stream, CancelableAsyncIterator[int])
        async for item in stream:
            assert_type(item, int)
            seen.append(item)
        pairs = cancel.stream(create_slow_stream([("a", 1), ("b", 2)], delay=0))
        assert_type(pairs, CancelableAsyncIterator[tuple[str, int]])
        assert [key async for key, _ in pairs] == ["a", "b"]
        direct = CancelableAsyncIterator(numbers(), cancel)
        assert_type(direct, CancelableAsyncIterator[int])
        assert [item async for item in direct] == [0, 1, 2]
    assert seen == [0, 1, 2]


async def test_a_stream_of_its_own_keeps_the_item_type() -> None:
    async with cancelable_stream(numbers(), timeout=60, name="numbers") as items:
        assert_type(items, CancelableAsyncIterator[int])
        got = [item async for item in items]
    assert_type(got, list[int])
    assert got == [0, 1, 2]


async def test_chunks_are_lists_of_the_item_type() -> None:
    got: list[list[int]] = []
    async with Cancelable() as cancel:
        batches = chunked_cancelable_stream(numbers(7), 3, cancel)
        assert_type(batches, AsyncIterator[list[int]])
        async for batch in batches:
            assert_type(batch, list[int])
            got.append(batch)
    assert got == [[0, 1, 2], [3, 4, 5], [6]]


async def test_streams_refuse_bad_arguments() -> None:
    async with Cancelable() as cancel:
        with pytest.raises(TypeError, match="iterator"):
            cancel.stream(42)  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="chunk_size"):
            chunked_cancelable_stream(numbers(), "3", cancel)  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="cancelable"):
            chunked_cancelable_stream(numbers(), 3, None)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="timeout"):
        cancelable_stream(numbers(), timeout="60")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="stream"):
        cancelable_stream(3)  # pyright: ignore[reportArgumentType]


async def test_plain_iterables_stream_with_their_item_type() -> None:
    async with Cancelable() as cancel:
        words = cancel.stream(["a", "b"], in_thread=True)
        assert_type(words, CancelableAsyncIterator[str])
        assert [word async for word in words] == ["a", "b"]
    numbers_stream = cancelable_stream(range(3))
    assert_type(numbers_stream, CancelableAsyncIterator[int])
    assert [number async for number in numbers_stream] == [0, 1, 2]


def test_add_token_and_on_progress_keep_the_operations_type() -> None:
    class Job(Cancelable):
        pass

    job = Job.with_timeout(5).add_token(CancelationToken())
    assert_type(job, Job)
    assert_type(job.on_progress(print, include_children=True), Job)


# -- threads -----------------------------------------------------------------------------------


async def test_run_in_thread_returns_what_the_function_returns() -> None:
    async with Cancelable(name="threaded") as cancel:
        total = await cancel.run_in_thread(add, 1, 2)
        assert_type(total, int)
        seen = await cancel.run_in_thread(current_operation)
        assert_type(seen, Cancelable | None)
        assert total == 3
        assert seen is cancel
        with pytest.raises(TypeError, match="fn must be callable"):
            await cancel.run_in_thread(3)  # pyright: ignore[reportArgumentType]


async def test_the_bridge_from_threads() -> None:
    bridge = AnyioBridge.get_instance()
    assert_type(bridge, AnyioBridge)
    done = anyio.Event()
    queued = await anyio.to_thread.run_sync(call_soon_threadsafe, done.set)
    assert_type(queued, bool)
    assert queued
    with anyio.fail_after(5):
        await done.wait()
    with pytest.raises(TypeError, match="callback"):
        bridge.call_soon_threadsafe("set")  # pyright: ignore[reportArgumentType]


# -- with_timeout ------------------------------------------------------------------------------


async def test_with_timeout_returns_the_awaited_type() -> None:
    result = await with_timeout(5, answer())
    assert_type(result, int)
    assert result == 42
    assert await with_timeout(timedelta(seconds=5), answer()) == 42
    with pytest.raises(TypeError, match="coro must be awaitable"):
        await with_timeout(5, 42)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="timeout"):
        await with_timeout("5", answer())  # pyright: ignore[reportArgumentType]


# -- decorators: the decorated function keeps its parameters and its result ----------------------

STOP = CancelationToken()


class Fetch(Protocol):
    """The signature of `fetch` and `download`: named parameters, a default."""

    def __call__(
        self, url: str, cancelable: Cancelable | None = None
    ) -> Coroutine[Any, Any, str]: ...


@cancelable(timeout=5)
async def fetch(url: str, cancelable: Cancelable | None = None) -> str:
    assert cancelable is not None
    return f"{url} in {cancelable.context.name}"


@ensure_cancelable
async def download(url: str, cancelable: Cancelable | None = None) -> str:
    assert cancelable is not None
    return f"{url} in {cancelable.context.name}"


@with_current_operation()
async def save(row: int, operation: Cancelable | None = None) -> str | None:
    return None if operation is None else f"row {row} in {operation.context.name}"


@cancelable(timeout=5)
async def increment(number: int, /) -> int:
    return number + 1


@cancelable_with_token(STOP)
async def until_stopped(number: int, /) -> int:
    return number + 1


@cancelable_with_condition(lambda: False, 0.5, "never")
async def until_condition(number: int, /) -> int:
    return number + 1


@cancelable_with_signal()
async def until_signal(number: int, /) -> int:
    return number + 1


@cancelable_combine(lambda: Cancelable.with_timeout(5), lambda: Cancelable.with_token(STOP))
async def until_any(number: int, /) -> int:
    return number + 1


class Counter:
    @cancelable_method(timeout=5)
    async def length(self, text: str, /) -> int:
        operation = current_operation()
        assert operation is not None
        return len(f"{text} in {operation.context.name}")


async def test_decorators_keep_positional_signatures_exactly() -> None:
    assert_type(increment, Callable[[int], Coroutine[Any, Any, int]])
    assert_type(until_stopped, Callable[[int], Coroutine[Any, Any, int]])
    assert_type(until_condition, Callable[[int], Coroutine[Any, Any, int]])
    assert_type(until_signal, Callable[[int], Coroutine[Any, Any, int]])
    assert_type(until_any, Callable[[int], Coroutine[Any, Any, int]])
    assert_type(Counter().length, Callable[[str], Coroutine[Any, Any, int]])
    job = Cancelable(name="job")

    @with_cancelable(job)
    async def in_job(number: int, /) -> int:
        return number + 1

    assert_type(in_job, Callable[[int], Coroutine[Any, Any, int]])
    results = [await f(1) for f in (increment, until_stopped, until_condition, until_any)]
    assert results == [2, 2, 2, 2]
    assert await until_signal(1) == 2
    assert await in_job(1) == 2
    assert job.is_completed
    assert await Counter().length("x") == len("x in Counter.length")


async def test_decorators_keep_named_parameters_and_defaults() -> None:
    fetches: list[Fetch] = [fetch, download]
    save_with: Callable[[int], Coroutine[Any, Any, str | None]] = save
    assert [await f("u") for f in fetches] == ["u in fetch", "u in download"]
    assert await save_with(1) is None
    async with Cancelable(name="job") as cancel:
        assert await fetch("v", cancelable=cancel) == "v in job"
        assert await save(2) == "row 2 in job"


async def test_decorated_functions_refuse_bad_calls() -> None:
    with pytest.raises(TypeError, match="concatenate"):
        await increment("1")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="missing"):
        await fetch()  # pyright: ignore[reportCallIssue]
    with pytest.raises(TypeError, match="positional"):
        await fetch("u", None, "extra")  # pyright: ignore[reportCallIssue]
    with pytest.raises(TypeError, match="unexpected keyword"):
        await download("u", timeout=1)  # pyright: ignore[reportCallIssue]


async def test_0_11_call_forms_keep_their_types() -> None:
    assert_type(await with_timeout(5, answer(), "op-1", name="answer"), int)

    @cancelable(timeout=5, inject_param=None)
    async def plain(number: int, /) -> int:
        return number + 1

    with pytest.warns(DeprecationWarning, match="predicate="):

        @cancelable_with_condition(condition=lambda: False, check_interval=0.5)
        async def watched(number: int, /) -> int:
            return number + 1

    assert_type(plain, Callable[[int], Coroutine[Any, Any, int]])
    assert_type(watched, Callable[[int], Coroutine[Any, Any, int]])
    assert [await plain(1), await watched(1)] == [2, 2]
    async with Cancelable() as cancel:
        with pytest.warns(DeprecationWarning, match="ensure_cancelable"):
            assert_type(ensure_cancelable(cancel), Cancelable)


def test_decorators_refuse_what_they_cannot_decorate() -> None:
    with pytest.raises(TypeError, match="async def"):
        cancelable(timeout=5)(add)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="async def"):
        ensure_cancelable(add)  # pyright: ignore[reportArgumentType, reportCallIssue]
    with pytest.raises(TypeError, match="async def"):
        with_current_operation()(add)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="timeout"):
        cancelable(timeout="5")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="token"):
        cancelable_with_token("stop")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="cancel"):
        with_cancelable("job")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="cancelables"):
        cancelable_combine(5)  # pyright: ignore[reportArgumentType]


async def test_wrap_keeps_parameters_and_result() -> None:
    async with Cancelable() as cancel:
        checked = cancel.wrap(plus_one)
        assert_type(checked, Callable[[int], Coroutine[Any, Any, int]])
        assert await checked(1) == 2
        with pytest.raises(TypeError, match="await"):
            await cancel.wrap(add)(1, 2)  # pyright: ignore[reportArgumentType]


# -- sources -----------------------------------------------------------------------------------


class AfterAWhile(CancelationSource):
    """The custom source of docs/custom_sources.md, in short."""

    async def watch(self) -> None:
        await anyio.sleep(0.01)
        fired = self.trigger_cancelation("a while passed", condition_name="a while")
        assert_type(fired, bool)


async def test_sources() -> None:
    timeout = TimeoutSource(60)
    condition = ConditionSource(lambda: False, 0.5, "never")
    either = AnyOfSource([timeout, condition])
    both = AllOfSource([TimeoutSource(timedelta(seconds=60)), ConditionSource(lambda: True)])
    assert_type(timeout.timeout, float)
    assert_type(condition.condition_name, str)
    assert_type(condition.check_interval, float)
    assert_type(either.sources, tuple[CancelationSource, ...])
    assert_type(both.name, str)
    assert_type(CompositeSource, type[AnyOfSource])
    assert_type(SignalSource(signal.SIGINT).reason, CancelationReason)
    assert_type(ResourceConditionSource(memory_threshold=100).check(), str | None)
    assert_type(Cancelable().add_source(either), Cancelable)
    assert CompositeSource is AnyOfSource
    assert either.sources == (timeout, condition)

    with pytest.raises(ConditionCancelation) as caught:
        async with Cancelable().add_source(AfterAWhile()):
            await anyio.sleep(1)
    assert caught.value.reason is CancelationReason.CONDITION
    assert caught.value.condition_name == "a while"


def test_sources_refuse_bad_arguments() -> None:
    with pytest.raises(TypeError, match="abstract"):
        CancelationSource()  # pyright: ignore[reportAbstractUsage]
    with pytest.raises(TypeError, match="timeout"):
        TimeoutSource("60")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="predicate"):
        ConditionSource(True)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="sources"):
        AnyOfSource([TimeoutSource(1), "never"])  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="signal"):
        SignalSource("SIGINT")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="source"):
        Cancelable().add_source(TimeoutSource)  # pyright: ignore[reportArgumentType]


# -- the registry ------------------------------------------------------------------------------


async def test_the_registry() -> None:
    registry = OperationRegistry.get_instance()
    assert_type(registry, OperationRegistry)
    async with Cancelable(name="listed", register_globally=True) as cancel:
        found = registry.get_operation_sync(cancel.operation_id)
        assert_type(found, Cancelable | None)
        running = await registry.list_operations(OperationStatus.RUNNING)
        assert_type(running, list[OperationContext])
        assert found is cancel
        assert cancel.operation_id in [context.id for context in running]
    history = registry.get_history_sync(limit=1)
    assert_type(history, list[OperationContext])
    assert_type(registry.get_statistics_sync(), dict[str, Any])
    assert_type(await registry.cancel_all(), int)
    assert [context.id for context in history] == [cancel.operation_id]
    assert_type(ThreadSafeRegistry().get_operation(cancel.operation_id), Cancelable | None)
    with pytest.raises(TypeError, match="operation_id"):
        registry.cancel_operation_sync(1)  # pyright: ignore[reportArgumentType]


# -- hother.cancelable.testing -----------------------------------------------------------------


async def slow_body(cancel: Cancelable) -> int:
    await anyio.sleep(5)
    return 1


async def test_the_testing_helpers() -> None:
    token = MockCancelationToken()
    token.cancel_after_checks(1)
    async with assert_cancelation_within(0, 5) as caught:
        assert_type(caught, ExpectedCancelation)
        async with Cancelable.with_token(token):
            token.check()
            token.check()  # the second check cancels
    assert_type(caught.error, Exception | None)
    assert_type(caught.elapsed, float | None)
    assert_type(token.calls, list[TokenCall])
    assert_type(token.check_count, int)
    assert isinstance(caught.error, ManualCancelation)
    assert token.check_count == 2

    recorder = OperationRecorder()
    async with recorder.attach(Cancelable(name="recorded")) as recorded:
        assert_type(recorded, Cancelable)
    assert_type(recorder.events, list[OperationEvent])
    recorder.assert_completed(recorded)
    assert [event.kind for event in recorder.events] == ["start", "complete"]

    scenario = CancelationScenario().after(0.01).cancel(message="stop")
    assert_type(scenario, CancelationScenario)
    result = await scenario.run(Cancelable, slow_body)
    assert_type(result, ScenarioResult[int])
    assert_type(result.value, int | None)
    assert_type(result.status, OperationStatus)
    assert_type(result.steps, list[ScenarioStep])
    assert (result.value, result.status, result.message) == (
        None,
        OperationStatus.CANCELLED,
        "stop",
    )

    scheduled = MockCancelationToken()
    async with scheduled.schedule_cancel(0.01) as schedule:
        assert_type(schedule, ScheduledCancel)
        await scheduled.wait_for_cancel()
    assert_type(schedule.fired, bool)
    assert schedule.fired

    slow = create_slow_stream("ab", delay=0)
    assert_type(slow, AsyncGenerator[str, None])
    assert [letter async for letter in slow] == ["a", "b"]


def test_the_testing_helpers_refuse_bad_arguments() -> None:
    with pytest.raises(TypeError, match="expected"):
        assert_cancelation_within(0, 1, expected=KeyboardInterrupt)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="cancelable"):
        OperationRecorder().attach("job")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="delay"):
        CancelationScenario().after("1")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="checks"):
        MockCancelationToken().cancel_after_checks("2")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="items"):
        create_slow_stream(3)  # pyright: ignore[reportArgumentType]


# -- hother.cancelable.testing: the stream simulator --------------------------------------------


async def test_the_simulated_stream() -> None:
    config = StreamConfig(base_delay=0, stall_probability=0)
    assert_type(config.base_delay, float)
    assert_type(config.max_tokens, int)
    chunks = simulate_stream("cancel scopes compose", config, seed=7)
    assert_type(chunks, AsyncGenerator[str, None])  # so contextlib.aclosing() takes it
    async with aclosing(chunks):
        assert "".join([chunk async for chunk in chunks]) == "cancel scopes compose"
    with pytest.raises(TypeError, match="text"):
        simulate_stream(b"bytes")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="min_tokens"):
        StreamConfig(min_tokens=1.5)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="config"):
        simulate_stream("text", config={"base_delay": 0})  # pyright: ignore[reportArgumentType]


async def test_factories_return_the_subclass_and_refuse_unknown_options() -> None:
    class Traced(Cancelable):
        __slots__ = ()

    token = CancelationToken()
    assert_type(Traced.with_timeout(1), Traced)
    assert_type(Traced.with_token(token), Traced)
    assert_type(Traced.with_signal(signal.SIGUSR1), Traced)
    assert_type(Traced.with_condition(lambda: 0), Traced)
    assert type(Traced.with_token(token, raise_on_cancel=False)) is Traced
    with pytest.raises(TypeError, match="bogus"):
        Cancelable.with_timeout(1, bogus=True)  # pyright: ignore[reportCallIssue]
    with pytest.raises(TypeError, match="raise_on_cancel"):
        Cancelable.with_token(token, raise_on_cancel="no")  # pyright: ignore[reportArgumentType]


async def test_a_stream_timeout_may_be_a_timedelta_and_a_predicate_any_truthy_value() -> None:
    async def numbers() -> AsyncIterator[int]:
        yield 1

    items = cancelable_stream(numbers(), timeout=timedelta(seconds=5))
    assert [item async for item in items] == [1]
    pending: list[int] = []
    source = ConditionSource(lambda: len(pending), 0.01)  # a count: truthy once non-empty
    assert_type(source, ConditionSource)
    pending.append(1)
    with pytest.raises(ConditionCancelation):
        async with Cancelable().add_source(source):
            await anyio.sleep(5)


# -- the callback types (0.11's names) ---------------------------------------------------------


async def test_callbacks_typed_with_the_callback_types_are_accepted() -> None:
    seen: list[str] = []

    def progress(operation_id: str, message: Any, metadata: dict[str, Any] | None = None) -> None:
        seen.append(f"progress {message}")

    async def started(context: OperationContext) -> None:
        seen.append(f"start {context.name}")

    def failed(context: OperationContext, error: BaseException) -> None:
        seen.append(f"error {error}")

    async def reported(operation_id: str, message: Any, metadata: dict[str, Any] | None) -> None:
        seen.append(f"reported {message}")

    on_progress: ProgressCallback = progress
    on_start: StatusCallback = started
    on_error: ErrorCallback = failed
    on_report: ProgressCallbackType = reported
    on_end: StatusCallbackType = lambda context: seen.append(f"end {context.status.name}")  # noqa: E731
    on_failure: ErrorCallbackType = failed
    cancel = (
        Cancelable(name="typed")
        .on_progress(on_progress)
        .on_progress(on_report)
        .on_start(on_start)
        .on_complete(on_end)
        .on_error(on_error)
        .on_error(on_failure)
    )
    with pytest.raises(ValueError, match="bad row"):
        async with cancel:
            await cancel.report_progress("half")
            raise ValueError("bad row")
    assert seen == [
        "start typed",
        "progress half",
        "reported half",
        "error bad row",
        "error bad row",
    ]
    seen.clear()
    stream = cancelable_stream(numbers(), on_progress=on_report, report_interval=1)
    assert [item async for item in stream] == [0, 1, 2]
    assert len(seen) == 3
    assert all(line.startswith("reported ") for line in seen)


def test_the_callback_protocols_pin_0_11s_parameter_names() -> None:
    def renamed(op: str, msg: Any, meta: dict[str, Any] | None = None) -> None: ...

    def no_default(operation_id: str, message: Any, metadata: dict[str, Any] | None) -> None: ...

    def exceptions_only(context: OperationContext, error: Exception) -> None: ...

    by_position: ProgressCallbackType = renamed
    refused: ProgressCallback = renamed  # pyright: ignore[reportAssignmentType]
    also_refused: ProgressCallback = no_default  # pyright: ignore[reportAssignmentType]
    # on_error also hears a KeyboardInterrupt raised in the body: the error is a BaseException.
    narrower: ErrorCallbackType = exceptions_only  # pyright: ignore[reportAssignmentType]
    assert {by_position, refused, also_refused, narrower} == {renamed, no_default, exceptions_only}
