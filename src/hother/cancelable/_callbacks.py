"""Calling users' callbacks, sync or async, so that a failing one is logged and skipped."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

__all__ = ["call_logged", "call_logged_sync", "logger"]


def logger() -> logging.Logger:
    """The library's logger, `hother.cancelable`; logging is imported on first use only."""
    import logging

    return logging.getLogger("hother.cancelable")


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
