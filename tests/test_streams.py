"""Streams (SPEC section 5): items pass through, partial results survive every ending."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import (
    Cancelable,
    CancelableAsyncIterator,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationRegistry,
    OperationStatus,
    SignalCancelation,
    TimeoutCancelation,
    cancelable_stream,
    chunked_cancelable_stream,
)


class Source:
    """An async generator factory that records whether its `finally` ran."""

    def __init__(self) -> None:
        self.closed = False

    async def items(self, count: int = 1_000_000, delay: float = 0.005) -> AsyncIterator[int]:
        try:
            for index in range(count):
                await anyio.sleep(delay)
                yield index
        finally:
            self.closed = True


async def test_items_pass_through_and_the_stream_completes() -> None:
    source = Source()
    async with Cancelable() as cancel:
        seen = [item async for item in cancel.stream(source.items(5, 0))]
    assert seen == [0, 1, 2, 3, 4]
    assert cancel.context.partial_result == {
        "count": 5,
        "buffer": [0, 1, 2, 3, 4],
        "completed": True,
    }
    assert source.closed


async def test_timeout_mid_stream_keeps_what_was_consumed() -> None:
    source = Source()
    consumed: list[int] = []
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable.with_timeout(0.1) as cancel:
            async for item in cancel.stream(source.items()):
                consumed.append(item)
    partial = cancel.context.partial_result
    assert partial["count"] == len(consumed) > 0
    assert partial["buffer"] == consumed
    assert partial["completed"] is False
    assert info.value.context is not None
    assert info.value.context.partial_result is partial
    assert source.closed


async def test_token_mid_stream_keeps_what_was_consumed() -> None:
    token = CancelationToken()
    source = Source()
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token) as cancel:
            async for item in cancel.stream(source.items(delay=0)):
                if item == 9:
                    await token.cancel()
    assert cancel.context.partial_result["count"] == 10
    assert cancel.context.partial_result["buffer"][-1] == 9
    assert source.closed


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
async def test_signal_mid_stream_keeps_what_was_consumed() -> None:
    source = Source()
    with pytest.raises(SignalCancelation):
        async with Cancelable.with_signal(signal.SIGUSR1) as cancel:
            async for item in cancel.stream(source.items(delay=0.001)):
                if item == 4:
                    signal.raise_signal(signal.SIGUSR1)
    assert cancel.context.partial_result["count"] >= 5
    assert cancel.context.partial_result["completed"] is False


async def test_source_that_never_awaits_is_still_cancelled() -> None:
    closed: list[int] = []

    async def busy() -> AsyncIterator[int]:
        index = 0
        try:
            while True:
                yield index
                index += 1
        finally:
            closed.append(index)

    with pytest.raises(ManualCancelation):
        async with Cancelable() as cancel:
            async for item in cancel.stream(busy()):
                if item == 100:
                    cancel.cancel_sync()
    # Landed before the next item was asked for: nothing was taken from the source unseen.
    assert cancel.context.partial_result["count"] == 101
    assert cancel.context.partial_result["completed"] is False
    assert closed == [100]


async def test_items_asked_for_one_by_one_and_by_async_for_are_one_stream() -> None:
    source = Source()
    async with Cancelable() as cancel:
        items = cancel.stream(source.items(6, 0))
        first = await anext(items)
        rest = [item async for item in items]
        assert await anext(items, "exhausted") == "exhausted"
    assert (first, rest) == (0, [1, 2, 3, 4, 5])
    assert cancel.context.partial_result == {
        "count": 6,
        "buffer": [0, 1, 2, 3, 4, 5],
        "completed": True,
    }


async def test_a_stream_never_iterated_leaves_the_source_and_the_partial_result_alone() -> None:
    source = Source()
    async with Cancelable() as cancel:
        items = cancel.stream(source.items(3, 0))
        aiter(items)  # what `async for` does first; no item is asked for
    assert cancel.context.partial_result is None
    assert not source.closed  # never started: nothing to close
    await items.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(items)


async def test_early_break_closes_the_source_when_the_block_ends() -> None:
    source = Source()
    async with Cancelable() as cancel:
        async for item in cancel.stream(source.items(delay=0)):
            if item == 2:
                break
    assert source.closed
    assert cancel.context.status is OperationStatus.COMPLETED
    assert cancel.context.partial_result == {"count": 3, "buffer": [0, 1, 2], "completed": False}


async def test_aclosing_closes_the_source_at_once() -> None:
    source = Source()
    async with Cancelable() as cancel:
        async with aclosing(cancel.stream(source.items(delay=0))) as items:
            async for item in items:
                if item == 2:
                    break
        assert source.closed
        async with cancel.stream(Source().items(3, 0)) as more:
            assert [item async for item in more] == [0, 1, 2]


async def test_exception_in_the_loop_body_closes_the_source_and_arrives_bare() -> None:
    source = Source()
    with pytest.raises(KeyError) as info:
        async with Cancelable() as cancel:
            async for item in cancel.stream(source.items(delay=0)):
                if item == 3:
                    raise KeyError("consumer")
    assert type(info.value) is KeyError
    assert source.closed
    assert cancel.context.status is OperationStatus.FAILED
    assert cancel.context.partial_result["count"] == 4


async def test_source_that_raises() -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        async with Cancelable() as cancel:
            async for _ in cancel.stream(broken()):
                pass
    assert cancel.context.partial_result == {"count": 2, "buffer": [1, 2], "completed": False}
    assert cancel.context.error == "connection reset"


# -- a source whose `finally` raises as it is closed ---------------------------------------------


async def failing_cleanup() -> AsyncIterator[int]:
    """Gives items without awaiting (a cancellation lands in the loop body, not here); its
    cleanup raises."""
    try:
        for index in range(1_000_000):
            yield index
    finally:
        raise RuntimeError("cleanup failed")


@pytest.fixture
def registry() -> Iterator[OperationRegistry]:
    instance = OperationRegistry.get_instance()
    instance.clear_all_sync()
    yield instance
    instance.clear_all_sync()


def watched(operation: Cancelable, events: list[Any]) -> Cancelable:
    return (
        operation.on_complete(lambda context: events.append("complete"))
        .on_cancel(lambda context: events.append("cancel"))
        .on_error(lambda context, error: events.append(error))
    )


@pytest.mark.parametrize("left_by", ["break", "its timeout"])
async def test_a_source_failing_as_the_block_closes_it_fails_the_block_and_still_ends_it(
    registry: OperationRegistry, left_by: str
) -> None:
    token = CancelationToken()
    events: list[Any] = []
    timeout = 0.05 if left_by == "its timeout" else 5
    operation = watched(
        Cancelable.with_timeout(timeout, register_globally=True).combine(
            Cancelable.with_token(token)
        ),
        events,
    )
    with pytest.raises(RuntimeError, match="cleanup failed") as info:
        async with operation as cancel:
            async for item in cancel.stream(failing_cleanup()):
                if left_by == "break" and item == 2:
                    break
                if left_by == "its timeout":
                    await anyio.sleep(10)  # the deadline passes here, in the loop body
    # What closing the source raised left the block, and decided its status like the body's:
    assert operation.context.status is OperationStatus.FAILED
    assert operation.context.error == "cleanup failed"
    assert events == [info.value]  # on_error, once; nothing else
    assert not operation.is_running
    assert registry.get_operation_sync(operation.operation_id) is None
    assert token.callback_count == 0


async def test_a_source_failing_as_its_own_stream_closes_it_at_the_deadline_still_ends_it(
    registry: OperationRegistry,
) -> None:
    token = CancelationToken()
    events: list[Any] = []
    operation = watched(
        Cancelable.with_timeout(0.02, register_globally=True).combine(Cancelable.with_token(token)),
        events,
    )
    with pytest.raises(RuntimeError, match="cleanup failed") as info:
        async for _ in operation.stream(failing_cleanup()):  # run by the stream, no block
            await anyio.sleep(0.1)  # the deadline passes between two items
    assert operation.context.status is OperationStatus.FAILED
    assert operation.context.error == "cleanup failed"
    assert events == [info.value]
    assert not operation.is_running
    assert registry.get_operation_sync(operation.operation_id) is None
    assert token.callback_count == 0


async def test_cancelable_streams_whose_source_fails_to_close_let_go_of_a_long_lived_token() -> (
    None
):
    long_lived = CancelationToken()
    for _ in range(20):
        with pytest.raises(RuntimeError, match="cleanup failed"):
            async for _ in cancelable_stream(failing_cleanup(), timeout=0.01, token=long_lived):
                await anyio.sleep(0.03)  # the deadline passes between two items
    assert long_lived.callback_count == 0


async def test_buffer_keeps_the_newest_items_up_to_its_bound() -> None:
    async with Cancelable() as cancel:
        async for _ in cancel.stream(Source().items(50, 0), buffer_limit=10):
            pass
    assert cancel.context.partial_result["buffer"] == list(range(40, 50))
    assert cancel.context.partial_result["count"] == 50

    async with Cancelable() as cancel:
        async for _ in cancel.stream(Source().items(5, 0), buffer_partial=False):
            pass
    assert cancel.context.partial_result == {"count": 5, "buffer": None, "completed": True}


async def test_progress_is_reported_every_n_items() -> None:
    reports: list[tuple[str, Any, Any]] = []

    async def async_cb(op_id: str, message: Any, meta: Any) -> None:
        reports.append(("async", message, meta["count"]))

    async with (
        Cancelable()
        .on_progress(lambda op_id, message, meta: reports.append(("sync", message, meta)))
        .on_progress(async_cb) as cancel
    ):
        async for _ in cancel.stream(Source().items(10, 0), report_interval=4):
            pass
    assert [r for r in reports if r[0] == "sync"] == [
        ("sync", "Processed 4 items", {"count": 4, "latest_item": 3}),
        ("sync", "Processed 8 items", {"count": 8, "latest_item": 7}),
    ]
    assert [r for r in reports if r[0] == "async"] == [
        ("async", "Processed 4 items", 4),
        ("async", "Processed 8 items", 8),
    ]


async def test_a_failing_progress_callback_is_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []

    def broken(op_id: str, message: Any, meta: Any) -> None:
        raise RuntimeError("progress bug")

    async with (
        Cancelable()
        .on_progress(broken)
        .on_progress(lambda op_id, message, meta: seen.append(meta["count"])) as cancel
    ):
        async for _ in cancel.stream(Source().items(4, 0), report_interval=2):
            pass
    assert seen == [2, 4]
    assert sum("progress bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info) == 2


async def test_streams_hold_no_scope_across_items() -> None:
    # Consumer-side scopes opened and closed between items would break if one were held.
    async with Cancelable() as cancel:
        async for _ in cancel.stream(Source().items(5, 0)):
            with anyio.move_on_after(1):
                await anyio.lowlevel.checkpoint()
    async for _ in cancelable_stream(Source().items(5, 0), timeout=5):
        with anyio.CancelScope():
            await anyio.lowlevel.checkpoint()
        async with Cancelable():
            pass
    assert cancel.context.partial_result["completed"] is True


# -- cancelable_stream: a stream that runs its own operation -----------------------------------


async def test_cancelable_stream_timeout_counts_from_the_first_item() -> None:
    items = cancelable_stream(Source().items(), timeout=0.1, buffer_partial=True)
    await anyio.sleep(0.15)  # not started yet: the timeout has not begun
    consumed: list[int] = []
    start = time.monotonic()
    with pytest.raises(TimeoutCancelation) as info:
        async for item in items:
            consumed.append(item)
    assert 0.09 <= time.monotonic() - start < 1.0
    context = info.value.context
    assert context is not None
    assert context.status is OperationStatus.CANCELLED
    assert context.partial_result == {
        "count": len(consumed),
        "buffer": consumed,
        "completed": False,
    }
    assert info.value.__context__ is None


async def test_cancelable_stream_with_a_token_stops_between_items() -> None:
    token = CancelationToken()
    consumed: list[int] = []
    with pytest.raises(ManualCancelation, match="enough"):
        async for item in cancelable_stream(Source().items(delay=0), token=token):
            consumed.append(item)
            if item == 3:
                await token.cancel(message="enough")
    assert consumed == [0, 1, 2, 3]
    assert token.callback_count == 0


async def test_cancelable_stream_completes_and_reports_progress() -> None:
    reports: list[Any] = []
    items = cancelable_stream(
        Source().items(6, 0),
        report_interval=3,
        on_progress=lambda op_id, message, meta: reports.append((op_id, message)),
        operation_id="feed",
        name="feed",
    )
    assert [item async for item in items] == list(range(6))
    assert reports == [("feed", "Processed 3 items"), ("feed", "Processed 6 items")]


async def test_cancelable_stream_source_error_arrives_bare() -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise OSError("gone")

    with pytest.raises(OSError, match="gone"):
        async for _ in cancelable_stream(broken(), timeout=5):
            pass


async def test_cancelable_stream_outer_cancellation_goes_on_untouched() -> None:
    with anyio.move_on_after(0.05) as outer:
        async for _ in cancelable_stream(Source().items(), timeout=5):
            pass
    assert outer.cancelled_caught


async def test_cancelable_stream_closed_early_releases_its_token() -> None:
    token = CancelationToken()
    source = Source()
    async with cancelable_stream(source.items(delay=0), token=token) as items:
        async for item in items:
            if item == 1:
                break
    assert source.closed
    assert token.callback_count == 0


async def test_iterator_over_a_quiet_operation_just_ends() -> None:
    operation = Cancelable.with_timeout(0.05, raise_on_cancel=False)
    consumed = [item async for item in CancelableAsyncIterator(Source().items(), operation)]
    assert consumed
    assert operation.context.cancel_reason is CancelationReason.TIMEOUT


async def test_chunked_stream() -> None:
    async with Cancelable() as cancel:
        chunks = [
            chunk async for chunk in chunked_cancelable_stream(Source().items(7, 0), 3, cancel)
        ]
    assert chunks == [[0, 1, 2], [3, 4, 5], [6]]
    assert cancel.context.partial_result["count"] == 7


async def test_chunked_stream_cancelled_mid_way() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as cancel:
            async for _ in chunked_cancelable_stream(Source().items(), 2, cancel):
                pass
    assert cancel.context.partial_result["count"] > 0


async def test_a_stream_of_an_ended_operation_is_refused() -> None:
    async with Cancelable() as cancel:
        pass
    with pytest.raises(RuntimeError, match="has ended"):
        async for _ in cancel.stream(Source().items(1, 0)):
            pass


async def test_a_stream_cannot_run_an_operation_with_sources() -> None:
    operation = Cancelable.with_condition(lambda: False)
    with pytest.raises(RuntimeError, match="has sources"):
        async for _ in CancelableAsyncIterator(Source().items(1, 0), operation):
            pass


BAD_STREAM_ARGS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"report_interval": 0}, ValueError, r"^report_interval must be at least 1, got 0$"),
    ({"report_interval": 1.5}, TypeError, r"^report_interval must be a whole number"),
    ({"buffer_limit": 0}, ValueError, r"^buffer_limit must be at least 1, got 0$"),
    ({"buffer_partial": "yes"}, TypeError, r"^buffer_partial must be a bool, got 'yes'$"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_STREAM_ARGS)
def test_bad_stream_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Cancelable().stream(Source().items(), **kwargs)


def test_bad_stream_sources_and_operations() -> None:
    # Plain iterables are streams too ([2/6]): only what cannot be iterated is refused.
    with pytest.raises(
        TypeError, match=r"^iterator must be an iterable or an async iterable, got 42$"
    ):
        Cancelable().stream(42)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"^in_thread is for plain iterables, whose next item may block; "
    ):
        Cancelable().stream(Source().items(), in_thread=True)
    with pytest.raises(TypeError, match=r"^in_thread must be a bool, got 1$"):
        Cancelable().stream([1], in_thread=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^cancelable must be a Cancelable, got None$"):
        CancelableAsyncIterator(Source().items(), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^chunk_size must be at least 1, got 0$"):
        chunked_cancelable_stream(Source().items(), 0, Cancelable())
    with pytest.raises(ValueError, match=r"^timeout must be"):
        cancelable_stream(Source().items(), timeout=-1)


async def test_a_stream_running_its_operation_records_an_error_in_the_loop() -> None:
    events: list[str] = []
    operation = (
        Cancelable()
        .on_complete(lambda context: events.append("complete"))
        .on_error(lambda context, error: events.append(f"error: {error!r}"))
    )
    with pytest.raises(KeyError):
        async with CancelableAsyncIterator(Source().items(delay=0), operation) as items:
            async for _ in items:
                raise KeyError("body")
    assert events == ["error: KeyError('body')"]
    assert operation.context.status is OperationStatus.FAILED


async def test_chunked_stream_with_progress_and_buffer() -> None:
    reports: list[int] = []
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.2).on_progress(
            lambda op_id, message, meta: reports.append(meta["count"])
        ) as cancel:
            chunks = chunked_cancelable_stream(
                Source().items(4, 0.01), 3, cancel, report_interval=2, buffer_partial=True
            )
            async for _ in chunks:
                pass
            await anyio.sleep(10)
    assert reports == [2, 4]
    assert cancel.context.partial_result == {
        "count": 4,
        "buffer": [0, 1, 2, 3],
        "completed": True,
    }


# -- plain iterables ([2/6]) ---------------------------------------------------------------------


class Plain:
    """A plain generator factory that records whether its `finally` ran, and in which thread."""

    def __init__(self) -> None:
        self.closed = False
        self.threads: set[str] = set()

    def items(self, count: int = 10**9, pause: float = 0.0) -> Iterator[int]:
        import threading

        try:
            for index in range(count):
                self.threads.add(threading.current_thread().name)
                if pause:
                    time.sleep(pause)  # a blocking read
                yield index
        finally:
            self.closed = True


async def tick(ticks: list[float]) -> None:
    while True:
        ticks.append(time.monotonic())
        await anyio.sleep(0.01)


async def test_a_plain_list_streams_like_an_async_iterable() -> None:
    async with Cancelable() as cancel:
        seen = [item async for item in cancel.stream([3, 1, 2])]
    assert seen == [3, 1, 2]
    assert cancel.context.partial_result == {"count": 3, "buffer": [3, 1, 2], "completed": True}


async def test_a_plain_generator_lets_other_tasks_run_and_a_timeout_in() -> None:
    # The body never awaits: only the stream's checkpoint between items keeps the loop going.
    plain, ticks = Plain(), []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tick, ticks)
        with pytest.raises(TimeoutCancelation):
            async with Cancelable.with_timeout(0.2) as cancel:
                async for _ in cancel.stream(plain.items()):
                    pass
        tasks.cancel_scope.cancel()
    assert len(ticks) >= 5  # about 20 in 0.2 s; none at all if the loop were starved
    assert plain.closed
    assert cancel.context.partial_result["count"] > 0
    assert cancel.context.partial_result["completed"] is False


class Lines:
    """A plain iterator with a `close()`, like a file or a sync client's response."""

    def __init__(self) -> None:
        self.closed = 0

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        return "line"

    def close(self) -> None:
        self.closed += 1


async def test_a_plain_iterator_left_early_is_closed_once_one_never_iterated_never() -> None:
    left, lines, unstarted = Plain(), Lines(), Lines()
    async with Cancelable() as cancel:
        async for item in cancel.stream(left.items()):
            if item == 2:
                break
        async for _ in cancel.stream(lines):
            break
        cancel.stream(unstarted)  # as for async iterables: never started, left alone
    assert left.closed
    assert lines.closed == 1
    assert unstarted.closed == 0
    assert cancel.context.partial_result["count"] == 1


async def test_count_includes_the_item_a_cancellation_interrupted() -> None:
    token = CancelationToken()
    async with Cancelable.with_token(token, raise_on_cancel=False) as cancel:
        async for item in cancel.stream(range(100)):
            if item == 4:
                token.cancel_sync(message="stop mid-item")
                await anyio.sleep(1)  # processing item 4: interrupted here
    assert cancel.context.partial_result["count"] == 5
    assert cancel.context.partial_result["buffer"] == [0, 1, 2, 3, 4]


async def test_in_thread_takes_items_in_a_worker_while_the_loop_runs() -> None:
    plain, ticks = Plain(), []
    started = time.monotonic()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tick, ticks)
        async with Cancelable() as cancel:
            seen = [item async for item in cancel.stream(plain.items(5, 0.05), in_thread=True)]
        tasks.cancel_scope.cancel()
    elapsed = time.monotonic() - started
    assert seen == [0, 1, 2, 3, 4]
    import threading

    assert threading.current_thread().name not in plain.threads
    assert len([t for t in ticks if t - started < elapsed]) >= 8  # ~25 ticks in 0.25 s
    assert plain.closed


async def test_in_thread_cancellation_lands_once_the_item_being_taken_arrives() -> None:
    plain = Plain()
    started = time.monotonic()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.15) as cancel:
            async for _ in cancel.stream(plain.items(pause=0.1), in_thread=True):
                pass
    assert 0.15 <= time.monotonic() - started < 2.0
    assert plain.closed
    assert 1 <= cancel.context.partial_result["count"] <= 2


async def test_cancelable_stream_over_a_plain_iterable_with_a_token_keeps_its_id() -> None:
    token = CancelationToken()
    items = cancelable_stream(range(10**9), token=token, operation_id="rows", name="rows")
    with pytest.raises(ManualCancelation) as info:
        async with items:
            async for item in items:
                if item == 3:
                    await token.cancel(message="enough")
    assert info.value.context is not None
    assert info.value.context.id == "rows"
    assert info.value.message == "enough"
    assert info.value.context.partial_result["count"] == 4


async def test_chunked_stream_over_a_plain_iterable() -> None:
    async with Cancelable() as cancel:
        chunks = [chunk async for chunk in chunked_cancelable_stream(range(5), 2, cancel)]
    assert chunks == [[0, 1], [2, 3], [4]]
