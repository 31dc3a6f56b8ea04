"""Streams: items pass through, progress is reported, partial results survive cancellation.

No cancel scope is ever held across a `yield`: inside an operation's block its own scope
applies, and the items come from a plain async generator (the cheapest wrapper Python has: a
coroutine per `__anext__` costs twice as much per item); for a stream that runs an operation of
its own (`cancelable_stream`), each step opens a scope of its own and closes it before
returning.

A stream is part of the operation it runs in or runs, so it uses a few of the operation's
private methods, each marked where it is called: `_join_stream` (inside a block: the
operation's requests, watched per item, and the way to cancel its scope when one came
meanwhile), and the life of an operation run item by item (`_begin_steps`, `_step`,
`_end_steps`, `_abandon_steps`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Self, TypeVar, cast

import anyio

from ._checks import check_bool
from ._context import OperationContext, OperationStatus

if TYPE_CHECKING:  # at run time anyio imports its submodules on first use
    import anyio.lowlevel

    from ._cancelable import Cancelable
    from ._exceptions import CancelationError

__all__ = [
    "DEFAULT_BUFFER_LIMIT",
    "CancelableAsyncIterator",
    "chunked_cancelable_stream",
    "items_of",
]

T = TypeVar("T")

DEFAULT_BUFFER_LIMIT = 1000
"""How many of the newest items `partial_result["buffer"]` keeps, unless told otherwise."""


def items_of(name: str, value: object, in_thread: object) -> AsyncIterator[Any]:
    """The async iterator that gives `value`'s items: its own, or a plain iterator's."""
    check_bool("in_thread", in_thread)
    if isinstance(value, AsyncIterable | AsyncIterator):
        if in_thread:
            raise ValueError(
                f"in_thread is for plain iterables, whose next item may block; {name} is an "
                f"async iterable, got {value!r}"
            )
        items = cast("AsyncIterable[Any]", value)
        return items if isinstance(items, AsyncIterator) else aiter(items)
    if isinstance(value, str | bytes | bytearray):
        raise TypeError(
            f"{name} must be an iterable of items, not one {type(value).__name__} (wrap it in a "
            f"list to stream it as one item), got {value!r}"
        )
    if isinstance(value, Iterable):
        return _PlainItems(iter(cast("Iterable[Any]", value)), bool(in_thread))
    raise TypeError(f"{name} must be an iterable or an async iterable, got {value!r}")


_DONE: Any = object()


class _PlainItems(AsyncIterator[T], Generic[T]):
    """A plain iterator's items, with a checkpoint between two items.

    So a loop over a list whose body never awaits still lets other tasks run, and lets a
    cancellation in. With `in_thread`, each item is taken in a worker thread (that call is
    the checkpoint): the loop goes on while a blocking `next()` waits, and a cancellation
    lands once the item being taken has arrived.
    """

    __slots__ = ("_in_thread", "_iterator", "_started")

    def __init__(self, iterator: Iterator[T], in_thread: bool) -> None:
        self._iterator = iterator
        self._in_thread = in_thread
        self._started = False

    async def __anext__(self) -> T:
        if self._in_thread:
            item = await anyio.to_thread.run_sync(next, self._iterator, _DONE)
        else:
            if self._started:
                await anyio.lowlevel.checkpoint()
            self._started = True
            item = next(self._iterator, _DONE)
        if item is _DONE:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Close the iterator, if it can be (a generator's `finally` runs)."""
        close: Callable[[], Any] | None = getattr(self._iterator, "close", None)
        if close is None:
            return
        if self._in_thread:
            await anyio.to_thread.run_sync(close)
        else:
            close()


def _check_interval(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"report_interval must be a whole number of items or None, got {value!r}")
    if value <= 0:
        raise ValueError(f"report_interval must be at least 1, got {value!r}")
    return value


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be at least 1, got {value!r}")
    return value


class CancelableAsyncIterator(AsyncIterator[T], Generic[T]):
    """Iterates `iterator` under `cancelable`, counting items and keeping partial results.

    `iterator` is an async iterable or a plain one (a list, a generator): between two items
    of a plain one the stream awaits a checkpoint, so a body that never awaits still lets
    other tasks run and a cancellation in; with `in_thread`, each of its items is taken in a
    worker thread instead, for an iterator whose `next()` blocks (a sync client's response,
    a file being written).

    Items pass through unchanged. `cancelable.context.partial_result` becomes
    `{"count": int, "buffer": list | None, "completed": bool}`, kept up to date however the
    block ends. `count` is the number of items handed to the loop's body, so an item whose
    processing a cancellation interrupted is counted; `buffer` holds the newest
    `buffer_limit` items when `buffer_partial` is on (a `deque` while the stream runs, a
    `list` once it has ended). Every `report_interval`
    items, progress is reported: `"Processed N items"` with `{"count": N, "latest_item": item}`.

    Iterated inside the operation's `async with` block (what `cancel.stream(...)` is for),
    the block's own scope cancels it. Given an operation that was never entered (what
    `cancelable_stream` does), the iterator runs that operation itself, one step at a time:
    it starts at the first item, and a cancellation then leaves the `async for` as the
    `CancelationError` for its reason (or ends the stream, with `raise_on_cancel=False`).

    The source is closed (its `aclose()` awaited, or a plain iterator's `close()` called,
    so its `finally` runs) once, when the
    stream ends however it ends: run to its end, left early (`break`, an exception, a
    cancellation: as the operation's block ends), or closed with `aclose()` or
    `async with` on the iterator, which close it at once.

    Raises:
        TypeError, ValueError: an argument is of the wrong type or out of range.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_count",
        "_inside",
        "_interval",
        "_operation",
        "_partial",
        "_source",
        "_started",
    )

    def __init__(
        self,
        iterator: AsyncIterable[T] | Iterable[T],
        cancelable: Cancelable,
        report_interval: int | None = None,
        buffer_partial: bool = False,
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
        *,
        in_thread: bool = False,
    ) -> None:
        # What every Cancelable has (this module cannot import the class: it imports this).
        if not isinstance(getattr(cancelable, "context", None), OperationContext):
            raise TypeError(f"cancelable must be a Cancelable, got {cancelable!r}")
        self._interval = _check_interval(report_interval)
        check_bool("buffer_partial", buffer_partial)
        limit = _check_positive_int("buffer_limit", buffer_limit)
        self._source: AsyncIterator[T] = items_of("iterator", iterator, in_thread)
        self._operation = cancelable
        self._count = 0
        self._buffer: deque[T] | None = deque(maxlen=limit) if buffer_partial else None
        self._partial: dict[str, Any] = {"count": 0, "buffer": None, "completed": False}
        self._started = False  # the first item asked for binds it to its operation
        # Iterated inside the operation's running block: where the items come from.
        self._inside: AsyncGenerator[T] | None = None
        self._closed = False

    def __aiter__(self) -> AsyncIterator[T]:
        # `async for` inside the block iterates the generator itself: no coroutine per item.
        return self if self._inside_block() is None else cast("AsyncIterator[T]", self._inside)

    async def __anext__(self) -> T:
        inside = self._inside_block()
        if inside is not None:
            return await inside.__anext__()
        if self._closed:
            raise StopAsyncIteration
        if not self._started:
            await self._start()
        return await self._step()

    def _inside_block(self) -> AsyncGenerator[T] | None:
        if self._inside is None and not self._started and self._operation.is_running:
            self._inside = self._items_inside()
        return self._inside

    async def _items_inside(self) -> AsyncGenerator[T]:
        """The hot path: a few stores per item, on local names."""
        operation = self._operation
        joined = operation._join_stream(self)  # pyright: ignore[reportPrivateUsage]  # see the module's docstring
        if joined is None:
            raise _refused(operation)
        requests, trip = joined
        self._bind()
        partial, buffer, interval = self._partial, self._buffer, self._interval
        count = 0
        try:
            async for item in self._source:
                count += 1
                partial["count"] = count
                if buffer is not None:
                    buffer.append(item)
                if interval is not None and count % interval == 0:
                    await self._report(count, item)
                yield item
                if requests:
                    # Requested while the source gave items without a checkpoint (from a
                    # thread, a signal handler, the loop body): land it before the next item.
                    trip()
                    await anyio.lowlevel.checkpoint()
        except BaseException:  # from the source, a cancellation, or GeneratorExit: left early
            self._end(completed=False)
            await self._close_source()  # a source that raised is closed already: no-op
            raise
        self._end(completed=True)
        await self._close_source()  # one that is not a generator may hold on till then

    def _passed(self, item: T) -> None:
        count = self._count = self._count + 1
        if self._buffer is not None:
            self._buffer.append(item)
        self._partial["count"] = count

    async def _report(self, count: int, item: T) -> None:
        await self._operation.report_progress(
            f"Processed {count} items", {"count": count, "latest_item": item}
        )

    def _bind(self) -> None:
        self._partial["buffer"] = self._buffer
        self._operation.context.partial_result = self._partial
        self._started = True

    # -- a stream that runs its operation, item by item -------------------------------------

    async def _start(self) -> None:
        operation = self._operation
        status = operation.context.status
        if status is not OperationStatus.PENDING:
            raise _refused(operation)
        try:
            await operation._begin_steps()  # pyright: ignore[reportPrivateUsage]  # it runs the operation
        except BaseException:  # an on_start callback's interrupt: the stream ends with it
            self._closed = True
            await self._close_source()
            raise
        self._bind()

    async def _step(self) -> T:
        operation = self._operation
        scope = operation._step()  # pyright: ignore[reportPrivateUsage]  # it runs the operation
        if scope is None:  # asked to stop, or its deadline passed, since the last item
            return await self._stop_cancelled()
        item: T | None = None
        try:
            with scope:
                item = await self._source.__anext__()
        except StopAsyncIteration:
            self._end(completed=True)
            await self._end_run(None)
            raise
        except BaseException as exc:
            self._end(completed=False)
            await self._end_run(exc)
            raise
        if scope.cancelled_caught:  # the operation's own cancellation ended this step
            return await self._stop_cancelled()
        item = cast("T", item)
        self._passed(item)
        if self._interval is not None and self._count % self._interval == 0:
            await self._report(self._count, item)
        return item

    async def _stop_cancelled(self) -> NoReturn:
        self._end(completed=False)
        error = await self._end_run(None, cancelled=True)
        if error is not None:
            raise error
        raise StopAsyncIteration

    async def _end_run(
        self, exc: BaseException | None, cancelled: bool = False
    ) -> CancelationError | None:
        """Close the source, then end the operation this stream ran with what ended the loop.

        A source whose `finally` raises ends it with that instead, and that leaves the loop.
        """
        failed: BaseException | None = None
        try:
            await self._close_source()
        except BaseException as error:
            failed = error
        if failed is not None:
            exc, cancelled = failed, False
        error = await self._operation._end_steps(exc, cancelled)  # pyright: ignore[reportPrivateUsage]  # it runs the operation
        if failed is not None:
            raise failed
        return error

    # -- the end ------------------------------------------------------------------------------

    def _end(self, completed: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._partial["completed"] = completed
        if self._buffer is not None:
            self._partial["buffer"] = list(self._buffer)

    async def _close_source(self) -> None:
        close: Callable[[], Any] | None = getattr(self._source, "aclose", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await close()

    async def aclose(self) -> None:
        """Stop the stream now: close the source (its `finally` runs) and keep what it gave."""
        await self._close(None)

    async def _close(self, exc: BaseException | None) -> None:
        if self._inside is not None:
            await self._block_ended()
            return
        if self._closed:
            return
        if not self._started:
            self._closed = True
            await self._close_source()
            return
        self._end(completed=False)
        await self._end_run(exc)  # the operation this stream ran ends with what ended the loop

    async def _block_ended(self) -> None:
        """Close what the loop left open; the operation calls it as its block ends."""
        assert self._inside is not None
        await self._inside.aclose()  # waiting at a `yield`: it ends as left early
        if not self._started:  # never asked for an item: the generator never ran
            self._closed = True
            await self._close_source()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close(exc)

    def __del__(self) -> None:
        # Dropped mid-way without aclose(): at least release the tokens it listened to.
        operation = getattr(self, "_operation", None)
        if operation is not None and self._started and not self._closed:
            operation._abandon_steps()  # pyright: ignore[reportPrivateUsage]  # it ran the operation


def _refused(operation: Cancelable) -> RuntimeError:
    """Why a stream cannot start on `operation`, which neither runs a block nor waits to run."""
    if operation.is_running:  # run by another stream, step by step: this one would cut it short
        return RuntimeError(
            f"{operation!r} is run by another stream; give each stream an operation of "
            "its own, or iterate the streams inside its `async with` block"
        )
    return RuntimeError(f"{operation!r} has ended; its streams cannot start")


class _Chunks(AsyncIterator[list[T]], Generic[T]):
    __slots__ = ("_count", "_items", "_operation", "_size")

    def __init__(
        self, items: CancelableAsyncIterator[T], size: int, operation: Cancelable | None
    ) -> None:
        self._items = items
        self._size = size
        self._operation = operation  # reports each chunk; None when items are reported
        self._count = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[T]:
        chunk: list[T] = []
        try:
            while len(chunk) < self._size:
                chunk.append(await self._items.__anext__())
        except StopAsyncIteration:
            if not chunk:
                raise
        if self._operation is not None:
            self._count += len(chunk)
            final = "final " if len(chunk) < self._size else ""
            await self._operation.report_progress(
                f"Processed {final}chunk of {len(chunk)} items",
                {"count": self._count, "chunk_size": len(chunk)},
            )
        return chunk

    async def aclose(self) -> None:
        await self._items.aclose()


def chunked_cancelable_stream(
    stream: AsyncIterable[T] | Iterable[T],
    chunk_size: int,
    cancelable: Cancelable,
    report_interval: int | None = None,
    buffer_partial: bool = False,
    *,
    in_thread: bool = False,
) -> AsyncIterator[list[T]]:
    """`stream` in lists of up to `chunk_size` items, under `cancelable` like `cancel.stream`.

    The last list may be shorter. Cancellation and partial results (counted in items, not
    lists) behave as for `CancelableAsyncIterator`. A list that a cancellation cuts short is
    not delivered; with `buffer_partial`, its items are in `partial_result["buffer"]`.

    Progress: with `report_interval`, every that many items, as for `cancel.stream`;
    without it, once per list, as in 0.11: `"Processed chunk of N items"` (the last, shorter
    one: `"Processed final chunk of N items"`) with `{"count": items so far, "chunk_size": N}`,
    reported before the list is handed over.

    Raises:
        TypeError, ValueError: `chunk_size` is not a whole number >= 1, or another argument
            is bad.
    """
    size = _check_positive_int("chunk_size", chunk_size)
    items = items_of("stream", stream, in_thread)
    iterator = CancelableAsyncIterator(items, cancelable, report_interval, buffer_partial)
    return _Chunks(iterator, size, cancelable if report_interval is None else None)
