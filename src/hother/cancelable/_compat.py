"""The faces 0.11 had that new code does not need: kept so that code written for 0.11 runs.

- `AnyioBridge` and `call_soon_threadsafe`: run a callback on an event loop from a thread
  (`token.cancel_sync()` and `cancel.cancel_sync()` are safe from any thread now);
- `cancelable_method`, the name `cancelable` had for methods.

(`CompositeSource`, the name `AnyOfSource` had, stays beside it in `sources/`.)
"""

from __future__ import annotations

import contextlib
from _thread import allocate_lock
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from ._callbacks import logger
from ._decorators import cancelable
from ._wakeup import LoopWaker, current_waker, last_waker

if TYPE_CHECKING:
    import threading

__all__ = ["AnyioBridge", "call_soon_threadsafe", "cancelable_method"]

cancelable_method = cancelable
"""`cancelable` for methods: the same decorator (the operation is named after the method)."""


class AnyioBridge:
    """Run callbacks on an event loop from other threads; kept for code written for 0.11.

    In 0.11 the bridge had to be started (`await bridge.start()` in a task) before it
    worked. Here it works at once: it uses the loop it was last bound to, which is the loop
    of the latest `get_instance()` or `start()` call made inside a loop, or else the loop
    this library ran on last (the latest operation block, token wait or callback
    registration). New code needs none of this: `token.cancel_sync()`
    and `cancel.cancel_sync()` are safe from any thread.
    """

    _instance: ClassVar[AnyioBridge | None] = None
    _lock: ClassVar[threading.Lock] = allocate_lock()

    def __init__(self, buffer_size: int | None = None) -> None:
        if buffer_size is not None:
            if isinstance(buffer_size, bool) or not isinstance(buffer_size, int):
                raise TypeError(f"buffer_size must be a whole number, got {buffer_size!r}")
            if buffer_size < 1:
                raise ValueError(f"buffer_size must be at least 1, got {buffer_size!r}")
            _deprecated(
                "AnyioBridge(buffer_size=...) is deprecated: the bridge keeps no buffer, "
                "callbacks go straight to the loop; write AnyioBridge()"
            )
        self._waker: LoopWaker | None = None
        self._running: anyio.CancelScope | None = None  # the scope of a running start()

    @classmethod
    def get_instance(cls) -> AnyioBridge:
        """The process-wide bridge, bound to the running loop if called inside one."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            instance = cls._instance
        instance._bind_here()
        return instance

    def _bind_here(self) -> None:
        with contextlib.suppress(RuntimeError):  # outside a loop: keep the last binding
            self._waker = current_waker()

    async def start(self) -> None:
        """Bind the bridge to this loop, then wait until `stop()` (as 0.11 did).

        Not needed any more, and deprecated: the bridge works without it.
        """
        _deprecated(_NOT_NEEDED.format("await bridge.start()"))
        self._bind_here()
        with anyio.CancelScope() as running:
            self._running = running
            try:
                await anyio.sleep_forever()
            finally:
                self._running = None

    async def stop(self) -> None:
        """End a running `start()`, as 0.11 did; deprecated, with `start()`."""
        _deprecated(_NOT_NEEDED.format("await bridge.stop()"))
        if self._running is not None:
            self._running.cancel()

    @property
    def is_started(self) -> bool:
        """True while `start()` runs, as in 0.11; deprecated: the bridge always works."""
        _deprecated(_NOT_NEEDED.format("bridge.is_started"))
        return self._running is not None

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> bool:
        """Run `callback(*args)` (sync, or async as a task) on the bridge's loop, soon.

        Safe from any thread. Returns False, and logs why, when there is no loop to run it.

        Raises:
            TypeError: `callback` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        for waker in (self._waker, last_waker()):  # the bound loop, else the latest one
            if waker is not None and waker.call_soon(_run_callback, waker, callback, args):
                return True
        logger().warning("hother.cancelable: no running event loop to run %r on", callback)
        return False


_NOT_NEEDED = (
    "{} is deprecated: the bridge works without being started, and new code needs none: "
    "token.cancel_sync() and cancel.cancel_sync() are safe from any thread"
)


def _deprecated(message: str) -> None:
    import warnings

    warnings.warn(message, DeprecationWarning, stacklevel=3)


def _run_callback(waker: LoopWaker, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
    result = callback(*args)
    if isinstance(result, Awaitable):
        waker.start_soon(_awaited, result)


async def _awaited(awaitable: Awaitable[Any]) -> None:
    await awaitable


def call_soon_threadsafe(callback: Callable[..., Any], *args: Any) -> bool:
    """`AnyioBridge.get_instance().call_soon_threadsafe(callback, *args)`, kept from 0.11."""
    return AnyioBridge.get_instance().call_soon_threadsafe(callback, *args)
