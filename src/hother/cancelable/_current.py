"""The operation the calling code runs in: a context variable that tasks and threads inherit."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._cancelable import Cancelable

__all__ = ["bind_current", "current", "current_operation"]

current: ContextVar[Cancelable | None] = ContextVar("hother.cancelable.current", default=None)
"""Set by a block as it begins, reset as it ends."""


def current_operation() -> Cancelable | None:
    """The innermost `Cancelable` whose block the calling code runs in, or None.

    Tasks started inside a block, and `run_in_thread` workers, see it too.
    """
    return current.get()


def bind_current(operation: Cancelable) -> None:
    """Make `operation` the current one in this context (a worker thread's copy, say)."""
    current.set(operation)
