"""The base class of every cancellation source that must wait or poll."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from hother.cancelable._callbacks import logger
from hother.cancelable._checks import check_message
from hother.cancelable._context import CancelationReason

__all__ = ["CancelationSource", "Sink", "attach_all", "detach_all"]

_RESERVED = frozenset({"reason", "context", "message"})

# Where a source reports that it fired: (the source, message, details) -> first request?
Sink = Callable[["CancelationSource", "str | None", "dict[str, Any]"], bool]


class CancelationSource(abc.ABC):
    """A source of cancellation that runs as a task while an operation's block runs.

    Subclass it and implement `watch()`: wait or poll until the condition holds, then call
    `trigger_cancelation(message)`. The operation starts `watch()` in the task group it owns
    when its block is entered and cancels it when the block is left, however it ended.

    ```python
    class FileAppears(CancelationSource):
        def __init__(self, path: str) -> None:
            super().__init__(name=f"file {path}")
            self.path = path

        async def watch(self) -> None:
            while not await anyio.Path(self.path).exists():
                await anyio.sleep(0.1)
            self.trigger_cancelation(f"{self.path} appeared")
    ```

    A source watches one operation at a time.

    Attributes:
        reason: the `CancelationReason` reported when this source cancels the operation
            (`CONDITION` unless a subclass says otherwise).
        name: a name for logs and messages.
    """

    reason: ClassVar[CancelationReason] = CancelationReason.CONDITION

    def __init__(self, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        self.name: str = name if name is not None else type(self).__name__
        self._sink: Sink | None = None

    @abc.abstractmethod
    async def watch(self) -> None:
        """Wait or poll until the condition holds, then call `trigger_cancelation()`.

        It runs as a task in the operation's task group, inside the operation's block, and
        is cancelled when the block is left. An exception escaping it is logged and stops
        this source only; the operation goes on.
        """

    def trigger_cancelation(self, message: str | None = None, **details: Any) -> bool:
        """Cancel the operation this source watches; True if this was the first request.

        Safe from `watch()`, from other threads and from signal handlers: the request is
        recorded at once and the operation's scope is cancelled on its own event loop, at its
        next turn. `message` becomes
        `context.cancel_message`; `details` become attributes of the exception that leaves
        the block (for instance `condition_name=...` on `ConditionCancelation`).
        """
        check_message(message)
        reserved = _RESERVED.intersection(details)
        if reserved:
            raise TypeError(
                f"details must not be named {', '.join(sorted(reserved))}: the exception "
                "already has those attributes"
            )
        sink = self._sink
        return False if sink is None else sink(self, message, details)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- driven by the operation, or by a composite source -------------------------------------

    def _attach(self, sink: Sink) -> None:
        """Start watching for `sink`; at block entry, on the loop thread, before any task.

        Subclasses that must act at once (install a signal handler) extend it; raising here
        refuses the block before anything else was set up.
        """
        if self._sink is not None:
            raise RuntimeError(f"{self!r} already watches another operation")
        self._sink = sink

    def _detach(self) -> None:
        """Stop watching; at block exit, after the task has ended, whatever ended the block."""
        self._sink = None

    async def _run(self) -> None:
        try:
            await self.watch()
        except Exception:
            # A broken source must not crash the operation it watches; it stops watching.
            logger().exception("hother.cancelable: source %r failed and stopped watching", self)


def attach_all(sources: Iterable[CancelationSource], sink: Sink) -> None:
    """Attach every source to `sink`, or none: on failure the attached ones are detached."""
    attached: list[CancelationSource] = []
    try:
        for source in sources:
            source._attach(sink)  # pyright: ignore[reportPrivateUsage]  # the hook sources extend
            attached.append(source)
    except BaseException:
        detach_all(attached)
        raise


def detach_all(sources: Iterable[CancelationSource]) -> None:
    """Detach every source; one that fails to is logged and the others still are."""
    for source in sources:
        try:
            source._detach()  # pyright: ignore[reportPrivateUsage]  # the hook sources extend
        except Exception:
            logger().exception("hother.cancelable: detaching %r failed", source)
