"""Threads: blocking work run as part of an operation, seeing its cancellation."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ._current import bind_current

if TYPE_CHECKING:  # at run time anyio imports its submodules on first use
    import anyio.lowlevel
    import anyio.to_thread

    from ._cancelable import Cancelable

__all__ = ["run_in_thread"]

T = TypeVar("T")


async def run_in_thread(
    operation: Cancelable,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    abandon_on_cancel: bool,
) -> T:
    """What `Cancelable.run_in_thread` does; see there."""
    # A copy of the caller's context per job: nothing leaks into the pool thread's next job.
    context = contextvars.copy_context()
    context.run(bind_current, operation)

    def call() -> T:
        return context.run(fn, *args, **kwargs)

    result = await anyio.to_thread.run_sync(call, abandon_on_cancel=abandon_on_cancel)
    # Cancelled while it waited for the thread: end here rather than at some later checkpoint.
    await anyio.lowlevel.checkpoint_if_cancelled()
    return result
