"""Wake an event loop from any thread or from a signal handler.

This is the one module that touches asyncio and trio natives: everything else goes through
anyio. A `LoopWaker` is taken on the loop's own thread; later, from anywhere, it queues a
plain function to run on that loop without blocking. Once the loop has finished, queuing is
a quiet no-op.
"""

from __future__ import annotations

import sys
from _thread import get_ident
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ._callbacks import logger

if TYPE_CHECKING:  # imported lazily: importing asyncio costs more than importing anyio
    import asyncio

__all__ = ["LoopWaker", "current_waker", "last_waker"]


class _TrioToken(Protocol):
    def run_sync_soon(self, sync_fn: Callable[..., object], *args: object) -> None: ...


def _run_logged(fn: Callable[..., object], args: tuple[Any, ...]) -> None:
    # An exception escaping into the loop's own machinery would crash trio; log it instead.
    try:
        fn(*args)
    except Exception:
        logger().exception("hother.cancelable: a queued wake-up callback failed")


async def _await_logged(fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
    try:
        await fn(*args)
    except Exception:
        logger().exception("hother.cancelable: an async callback failed")


class LoopWaker:
    """A handle on one running event loop that any thread may use to run code there."""

    __slots__ = ("_loop", "_trio_token", "thread_id")

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None, trio_token: _TrioToken | None
    ) -> None:
        self._loop = loop
        self._trio_token = trio_token
        self.thread_id = get_ident()

    def call_soon(self, fn: Callable[..., object], *args: Any) -> bool:
        """Queue `fn(*args)` to run on the loop; False if the loop has finished."""
        try:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(_run_logged, fn, args)
            else:
                assert self._trio_token is not None
                self._trio_token.run_sync_soon(_run_logged, fn, args)
        except RuntimeError:  # asyncio: loop closed; trio: RunFinishedError
            return False
        return True

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: Any) -> bool:
        """Queue `await fn(*args)` as a detached task on the loop; False if it has finished."""
        return self.call_soon(self._spawn, fn, args)

    def _spawn(self, fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
        if self._loop is not None:
            task = self._loop.create_task(_await_logged(fn, args))
            _detached.add(task)
            task.add_done_callback(_detached.discard)
        else:
            import trio

            trio.lowlevel.spawn_system_task(_await_logged, fn, args)


_detached: set[asyncio.Task[None]] = set()


# The waker of the loop each thread ran last: most operations reuse it instead of a new one.
_latest: dict[int, LoopWaker] = {}
_last: LoopWaker | None = None  # the one current_waker() returned last, in any thread


def last_waker() -> LoopWaker | None:
    """The waker `current_waker()` returned last, in any thread: the loop used latest."""
    return _last


def current_waker() -> LoopWaker:
    """The waker of the event loop running in this thread (asyncio, uvloop or trio).

    Raises:
        RuntimeError: no event loop runs in this thread.
    """
    global _last
    # A running loop has imported its library already: look, do not import.
    latest = _latest.get(get_ident())
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        token = trio.lowlevel.current_trio_token()
        if latest is not None and latest._trio_token is token:  # pyright: ignore[reportPrivateUsage]
            _last = latest
            return latest
        waker = LoopWaker(None, token)
    else:
        asyncio = sys.modules.get("asyncio")
        if asyncio is None:
            raise RuntimeError("no running event loop")
        loop = asyncio.get_running_loop()
        if latest is not None and latest._loop is loop:  # pyright: ignore[reportPrivateUsage]
            _last = latest
            return latest
        waker = LoopWaker(loop, None)
    _latest[waker.thread_id] = _last = waker
    return waker
