"""The base class of every cancellation source that must wait or poll."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

from hother.cancelable._callbacks import logger
from hother.cancelable._context import CancelationReason

if TYPE_CHECKING:
    from hother.cancelable._cancelable import Cancelable

__all__ = ["CancelationSource"]


class CancelationSource(abc.ABC):
    """A source of cancellation that runs as a task while an operation's block runs.

    Subclass it and implement `watch()`: wait or poll until the condition holds, then call
    `trigger_cancelation(message)`. The operation starts `watch()` in the task group it owns
    when its block is entered and cancels it when the block is left, however it ended.

    Attributes:
        reason: the `CancelationReason` reported when this source cancels the operation.
        name: a name for logs and messages.
    """

    reason: ClassVar[CancelationReason] = CancelationReason.CONDITION

    def __init__(self, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        self.name = name if name is not None else type(self).__name__
        self._operation: Cancelable | None = None

    @abc.abstractmethod
    async def watch(self) -> None:
        """Wait until the condition holds, then call `trigger_cancelation()`."""

    def trigger_cancelation(self, message: str | None = None, **details: Any) -> bool:
        """Cancel the operation this source watches over; True if this was the first request.

        `message` becomes `context.cancel_message`; `details` are set on the exception that
        leaves the block (for instance `condition_name=...`).
        """
        operation = self._operation
        if operation is None:
            return False
        return operation._request(self.reason, message, details or None, True)  # pyright: ignore[reportPrivateUsage]

    async def _run_for(self, operation: Cancelable) -> None:
        self._operation = operation
        try:
            await self.watch()
        except Exception:
            # A broken source must not crash the operation it watches; it stops watching.
            logger.exception("hother.cancelable: source %s failed and stopped watching", self.name)
        finally:
            self._operation = None
