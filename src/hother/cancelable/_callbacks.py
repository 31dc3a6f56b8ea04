"""Calling users' callbacks, sync or async, so that a failing one is logged and skipped."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from ._context import CANCELLED, COMPLETED

if TYPE_CHECKING:
    import logging

    from ._context import OperationContext, OperationStatus

__all__ = ["Callbacks", "call_logged", "call_logged_sync", "logger"]

Callback = Callable[..., Any]


class Callbacks:
    """An operation's callbacks, by what they are for: `start`, `complete`, `cancel`, `error`
    and `progress`. Each runs shielded, sync or async; one that raises is logged and skipped.
    """

    __slots__ = ("_by_kind",)

    def __init__(self) -> None:
        self._by_kind: dict[str, list[Callback]] = {}

    def add(self, kind: str, callback: Callback) -> None:
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        self._by_kind.setdefault(kind, []).append(callback)

    async def run(self, kind: str, *args: Any) -> None:
        callbacks = self._by_kind.get(kind)
        if callbacks:
            with anyio.CancelScope(shield=True):
                for callback in callbacks:
                    await call_logged(callback, *args)

    async def run_end(
        self, status: OperationStatus, context: OperationContext, exc: BaseException | None
    ) -> None:
        """The callbacks for how the operation ended."""
        if status is COMPLETED:
            await self.run("complete", context)
        elif status is CANCELLED:
            await self.run("cancel", context)
        else:
            await self.run("error", context, exc)


def logger() -> logging.Logger:
    """The library's logger, `hother.cancelable`; logging is imported on first use only.

    It has a `NullHandler`, as the logging HOWTO asks of libraries: an application that
    configures no logging sees nothing (no "last resort" output on stderr); one that does
    sees the library's records through its own handlers.
    """
    import logging

    log = logging.getLogger("hother.cancelable")
    if not any(isinstance(handler, logging.NullHandler) for handler in log.handlers):
        log.addHandler(logging.NullHandler())
    return log


async def call_logged(callback: Callable[..., Any], *args: Any) -> None:
    """Call `callback(*args)`, awaiting it if it is async; log an exception instead of raising."""
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger().exception("hother.cancelable: callback %r failed", callback)


def call_logged_sync(callback: Callable[..., Any], *args: Any) -> Awaitable[Any] | None:
    """Call `callback(*args)`; return the awaitable if it is async, log an exception if it fails."""
    try:
        result = callback(*args)
    except Exception:
        logger().exception("hother.cancelable: callback %r failed", callback)
        return None
    return result if inspect.isawaitable(result) else None
