"""Wake an event loop from any thread or from a signal handler.

This is the one module that touches asyncio and trio natives: everything else goes through
anyio. A `LoopWaker` is taken on the loop's own thread; later, from anywhere, it queues a
plain function to run on that loop without blocking. Once the loop has finished, queuing is
a quiet no-op. It can also make a signal wake the loop (`wake_on_signals`).
"""

from __future__ import annotations

import sys
from _thread import get_ident
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

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

    __slots__ = ("loop", "thread_id", "trio_token")

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None, trio_token: _TrioToken | None
    ) -> None:
        self.loop = loop
        self.trio_token = trio_token
        self.thread_id = get_ident()

    def call_soon(self, fn: Callable[..., object], *args: Any) -> bool:
        """Queue `fn(*args)` to run on the loop; False if the loop has finished."""
        try:
            if self.loop is not None:
                self.loop.call_soon_threadsafe(_run_logged, fn, args)
            else:
                assert self.trio_token is not None
                self.trio_token.run_sync_soon(_run_logged, fn, args)
        except RuntimeError:  # asyncio: loop closed; trio: RunFinishedError
            return False
        return True

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: Any) -> bool:
        """Queue `await fn(*args)` as a detached task on the loop; False if it has finished."""
        return self.call_soon(self._spawn, fn, args)

    def wake_on_signals(self) -> bool:
        """Make a signal wake this loop, as its own signal handlers do; False if not needed.

        Python runs a signal's handler in the main thread, between two bytecodes: a signal
        that comes after its last look, just as the loop goes to wait in `select()` (or that
        the kernel hands to another thread), is handled at the loop's next wake-up, maybe 30 s
        later. A wake-up fd, which the C handler writes the signal's number to, closes that
        gap: uvloop and trio always set one; asyncio's Unix loop sets its self-pipe only while
        it has signal handlers of its own (`add_signal_handler()`). This sets that self-pipe
        likewise (its reader ignores the signals it has no handler for), unless someone else
        set a wake-up fd already.
        """
        # Read as asyncio's add_signal_handler() does. Other loops wake themselves (uvloop,
        # trio, asyncio's proactor) or are left as they were (asyncio's Windows selector loop).
        csock = getattr(self.loop, "_csock", None)
        if csock is None or not isinstance(getattr(self.loop, "_signal_handlers", None), dict):
            return False
        import signal

        fd = csock.fileno()
        previous = signal.set_wakeup_fd(fd)
        if previous in (-1, fd):  # unset, or set by the loop's own signal handlers
            return True
        signal.set_wakeup_fd(previous)  # someone else's, who wakes what they run
        return False

    def stop_waking_on_signals(self) -> None:
        """Undo `wake_on_signals()`, unless the loop's own signal handlers still need it (as
        asyncio does when it removes its last one)."""
        if not getattr(self.loop, "_signal_handlers", None):
            import signal

            signal.set_wakeup_fd(-1)

    def _spawn(self, fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
        if self.loop is not None:
            task = self.loop.create_task(_await_logged(fn, args))
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


def _trio_runs_here() -> bool:
    """Whether trio runs in this thread, as trio itself tells sniffio (and so anyio).

    Never `sys.modules["trio"]`, which may be a half-made module while another thread imports
    trio for the first time. sniffio is only looked up, not imported: trio imports it before it
    runs, and where it is missing (or half-made), trio does not run here.
    """
    here = getattr(sys.modules.get("sniffio"), "thread_local", None)
    return getattr(here, "name", None) == "trio"


_asyncio: Any = None  # the module, once imported: a global is cheaper than an import
_trio: Any = None


def _trio_token() -> _TrioToken:
    """The running trio's token (trio runs in this thread)."""
    global _trio
    if _trio is None:
        import trio  # waits for another thread's import to finish, unlike sys.modules

        if not hasattr(trio, "lowlevel"):  # not the module trio runs from: ask anyio
            import anyio.lowlevel

            return cast("_TrioToken", anyio.lowlevel.current_token().native_token)
        _trio = trio
    return _trio.lowlevel.current_trio_token()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio (or uvloop) loop running in this thread, if any."""
    global _asyncio
    if _asyncio is None:
        # Looked up, not imported: where asyncio is not imported (or another thread is
        # importing it for the first time), no asyncio loop runs in this thread.
        module = sys.modules.get("asyncio")
        if getattr(module, "_get_running_loop", None) is None:
            return None
        _asyncio = module
    return _asyncio._get_running_loop()


def current_waker() -> LoopWaker:
    """The waker of the event loop running in this thread (asyncio, uvloop or trio).

    Raises:
        RuntimeError: no event loop runs in this thread.
    """
    global _last
    latest = _latest.get(get_ident())
    loop = _running_loop() if _asyncio is None else _asyncio._get_running_loop()
    if loop is not None:
        if latest is not None and latest.loop is loop:
            _last = latest
            return latest
        waker = LoopWaker(loop, None)
    elif _trio_runs_here():
        token = _trio_token()
        if latest is not None and latest.trio_token is token:
            _last = latest
            return latest
        waker = LoopWaker(None, token)
    else:
        raise RuntimeError("no running event loop")
    _latest[waker.thread_id] = _last = waker
    return waker
