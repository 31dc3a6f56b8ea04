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

    def __init__(self) -> None:
        self._waker: LoopWaker | None = None

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
        """Bind the bridge to this loop, then wait forever (as 0.11 did); not needed any more."""
        self._bind_here()
        await anyio.sleep_forever()

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


def _run_callback(waker: LoopWaker, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
    result = callback(*args)
    if isinstance(result, Awaitable):
        waker.start_soon(_awaited, result)


async def _awaited(awaitable: Awaitable[Any]) -> None:
    await awaitable


def call_soon_threadsafe(callback: Callable[..., Any], *args: Any) -> bool:
    """`AnyioBridge.get_instance().call_soon_threadsafe(callback, *args)`, kept from 0.11."""
    return AnyioBridge.get_instance().call_soon_threadsafe(callback, *args)
