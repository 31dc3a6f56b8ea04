"""When a stream starts and ends (SPEC section 5): iterated too late, closed before it began,
over sources that have no `aclose()`, and closing sources that ran to their end."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import (
    Cancelable,
    CancelableAsyncIterator,
    CancelationToken,
    OperationStatus,
    cancelable_stream,
)


class Rows:
    """An async iterator that is not a generator: `aclose()` only when asked for."""

    def __init__(self, count: int = 3) -> None:
        self.count = count
        self.given = 0

    def __aiter__(self) -> Rows:
        return self

    async def __anext__(self) -> int:
        await anyio.lowlevel.checkpoint()
        if self.given == self.count:
            raise StopAsyncIteration
        self.given += 1
        return self.given


class ClosableRows(Rows):
    def __init__(self, count: int = 3) -> None:
        super().__init__(count)
        self.closed = False
        self.closes = 0

    async def aclose(self) -> None:
        self.closed = True
        self.closes += 1


async def test_a_stream_first_iterated_after_its_block_ended_is_refused() -> None:
    rows = Rows()
    async with Cancelable() as cancel:
        items = aiter(cancel.stream(rows))  # made in the block, not iterated there
    with pytest.raises(RuntimeError, match=r"has ended; its streams cannot start$"):
        await anext(items)
    assert rows.given == 0


async def test_a_stream_closed_before_its_first_item_gives_none_and_closes_its_source() -> None:
    rows = ClosableRows()
    items = cancelable_stream(rows, timeout=60)
    await items.aclose()
    assert rows.closed
    with pytest.raises(StopAsyncIteration):
        await anext(items)
    assert rows.given == 0


async def test_a_source_without_aclose_is_left_early_inside_a_block() -> None:
    async with Cancelable() as cancel:
        async for row in cancel.stream(Rows()):
            if row == 2:
                break
    assert cancel.context.partial_result == {"count": 2, "buffer": [1, 2], "completed": False}
    assert cancel.context.status is OperationStatus.COMPLETED


async def test_a_source_without_aclose_is_left_early_by_a_stream_of_its_own() -> None:
    operation = Cancelable(name="rows")
    items = operation.stream(Rows(), buffer_partial=False)
    assert await anext(items) == 1
    await items.aclose()
    assert operation.context.partial_result == {"count": 1, "buffer": None, "completed": False}
    assert operation.context.status is OperationStatus.COMPLETED


async def test_a_second_stream_cannot_run_an_operation_another_stream_runs() -> None:
    # One operation nobody entered, run step by step by its stream: a second stream would cut
    # the first one short and replace its partial result, so it is refused at its first item.
    async def numbers() -> AsyncIterator[int]:
        for number in range(3):
            yield number

    operation = Cancelable()
    first = CancelableAsyncIterator(numbers(), operation)
    second = CancelableAsyncIterator(numbers(), operation)
    async with first:
        assert await anext(first) == 0
        with pytest.raises(RuntimeError, match="run by another stream"):
            await anext(second)
        assert [number async for number in first] == [1, 2]
    await second.aclose()
    assert operation.context.status is OperationStatus.COMPLETED
    assert operation.context.partial_result == {"count": 3, "buffer": None, "completed": True}


# -- a source that ran to its end is closed too, once --------------------------------------------


async def test_a_source_that_ran_to_its_end_inside_a_block_is_closed_once() -> None:
    rows = ClosableRows(3)
    async with Cancelable() as cancel:
        items = cancel.stream(rows)
        assert [row async for row in items] == [1, 2, 3]
        assert rows.closes == 1  # as the stream ended
        await items.aclose()
        assert rows.closes == 1
    assert rows.closes == 1  # the block's end closes nothing twice
    assert cancel.context.partial_result == {"count": 3, "buffer": [1, 2, 3], "completed": True}


async def test_a_source_that_ran_to_its_end_inside_a_block_is_closed_once_by_the_blocks_end() -> (
    None
):
    rows = ClosableRows(3)
    async with Cancelable() as cancel:
        async for _row in cancel.stream(rows):
            pass
    assert rows.closes == 1


async def test_a_source_that_ran_to_its_end_in_a_stream_of_its_own_is_closed_once() -> None:
    rows = ClosableRows(3)
    items = cancelable_stream(rows, timeout=60)
    assert [row async for row in items] == [1, 2, 3]
    assert rows.closes == 1  # as the stream ended
    await items.aclose()
    assert rows.closes == 1


# -- left by `break`, never closed ---------------------------------------------------------------


# trio warns, rightly, about each async generator it finalizes for its user; the point here is
# that it gets the chance to, and the sources' `finally` blocks run.
@pytest.mark.filterwarnings("ignore:Async generator .* was garbage collected:ResourceWarning")
async def test_streams_left_by_break_let_go_of_the_token_and_close_their_sources() -> None:
    long_lived = CancelationToken()
    finished = 0
    all_finished = anyio.Event()

    async def rows() -> AsyncIterator[int]:
        nonlocal finished
        try:
            for row in range(10):
                await anyio.lowlevel.checkpoint()
                yield row
        finally:
            finished += 1
            if finished == 200:
                all_finished.set()

    for _ in range(200):
        async for _row in cancelable_stream(rows(), token=long_lived):
            break  # and no aclose()
    gc.collect()
    assert long_lived.callback_count == 0
    # The dropped sources are closed by the event loop's async generator finalizer, which
    # runs them on the loop's next turns; wait for their `finally` blocks, with a deadline.
    with anyio.fail_after(5):
        await all_finished.wait()
    assert finished == 200


async def test_an_interrupt_from_on_start_of_a_stream_run_operation_undoes_its_start() -> None:
    token = CancelationToken()

    def interrupted(context: object) -> None:
        raise KeyboardInterrupt

    rows = ClosableRows(3)
    operation = Cancelable.with_token(token).on_start(interrupted)
    items = CancelableAsyncIterator(rows, operation)
    with pytest.raises(KeyboardInterrupt):
        await anext(items)
    assert operation.context.status is OperationStatus.FAILED
    assert not operation.is_running
    assert token.callback_count == 0
    with pytest.raises(StopAsyncIteration):  # the stream ended with its operation
        await anext(items)
    await items.aclose()
    assert rows.closes == 1
