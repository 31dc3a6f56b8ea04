"""The instrumentation hooks in use, called as operations start and end (SPEC section 10).

`active` is one list, changed in place by `instrumentation.set_hooks`, so the core tests it
with one global read per start and end: with no hooks set, nothing else happens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ._callbacks import logger

if TYPE_CHECKING:
    from ._context import OperationContext

__all__ = ["OperationHook", "active", "run_end", "run_start"]


class OperationHook(Protocol):
    """What `set_hooks` takes: two methods, called on the operation's own thread.

    `on_start(context)` as the block begins (status `RUNNING`), in the block's task: what
    it sets in context variables (a current span) is seen by the body. `on_end(context,
    error)` once the operation's record is final (status, reason, message, duration), still
    in that task, before the `on_complete` / `on_cancel` / `on_error` callbacks; `error` is
    the exception that failed it (status `FAILED`), else None. Neither may change the
    operation: what they raise is logged and dropped.
    """

    def on_start(self, context: OperationContext) -> None: ...

    def on_end(self, context: OperationContext, error: BaseException | None) -> None: ...


active: list[OperationHook] = []


def run_start(context: OperationContext) -> None:
    for hook in active:
        try:
            hook.on_start(context)
        except Exception:
            logger().exception("hother.cancelable: instrumentation hook %r failed", hook)


def run_end(context: OperationContext, error: BaseException | None) -> None:
    for hook in reversed(active):  # the last started, the first ended: spans nest
        try:
            hook.on_end(context, error)
        except Exception:
            logger().exception("hother.cancelable: instrumentation hook %r failed", hook)
