"""Sources made of sources: any of them, all of them, and a timeout that can take part."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from hother.cancelable._checks import check_timeout
from hother.cancelable._context import CancelationReason

from ._base import CancelationSource, Sink, attach_all, detach_all

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = ["AllOfSource", "AnyOfSource", "CompositeSource", "TimeoutSource"]


class TimeoutSource(CancelationSource):
    """Fires `timeout` after the block starts, with reason `TIMEOUT`.

    Made for composites (`AllOfSource([TimeoutSource(60), ...])`); on its own, prefer
    `Cancelable.with_timeout`, which uses the scope's deadline and no task.

    Raises:
        TypeError, ValueError: `timeout` is not a positive, finite number of seconds or
            a positive `timedelta`.
    """

    reason: ClassVar[CancelationReason] = CancelationReason.TIMEOUT

    def __init__(self, timeout: float | timedelta, name: str | None = None) -> None:
        self.timeout: float = check_timeout(timeout)
        super().__init__(name=name or f"timeout {self.timeout:g} s")
        self._fires_at = float("inf")

    async def watch(self) -> None:
        self._fires_at = anyio.current_time() + self.timeout
        await anyio.sleep_until(self._fires_at)
        self.trigger_cancelation(f"operation timed out after {self.timeout:g} s")

    def fires_by(self) -> float:
        return self._fires_at


class _Group(CancelationSource):
    """Runs its members side by side; what their firing means is the subclass's business."""

    def __init__(self, sources: Iterable[CancelationSource], name: str | None) -> None:
        members = list(sources) if _iterable(sources) else None
        if members is None:
            raise TypeError(f"sources must be an iterable of CancelationSource, got {sources!r}")
        if not members:
            raise ValueError("sources must hold at least one CancelationSource, got none")
        for index, member in enumerate(members):
            if not isinstance(member, CancelationSource):
                raise TypeError(f"sources[{index}] must be a CancelationSource, got {member!r}")
        seen: set[int] = set()
        for member in members:
            if id(member) in seen:
                raise ValueError(f"sources must not hold the same source twice, got {member!r}")
            seen.add(id(member))
        self.sources: tuple[CancelationSource, ...] = tuple(members)
        super().__init__(
            name=name or f"{type(self).__name__}({', '.join(m.name for m in members)})"
        )

    async def watch(self) -> None:
        async with anyio.create_task_group() as task_group:
            for member in self.sources:
                task_group.start_soon(member._run)

    def _attach(self, sink: Sink) -> None:
        super()._attach(sink)
        try:
            attach_all(self.sources, self._member_fired)
        except BaseException:
            super()._detach()
            raise

    def _detach(self) -> None:
        detach_all(self.sources)
        super()._detach()

    def _member_fired(
        self, member: CancelationSource, message: str | None, details: dict[str, Any]
    ) -> bool:
        raise NotImplementedError  # pragma: no cover


class AnyOfSource(_Group):
    """Fires as soon as any member fires, with that member's reason, message and details.

    Raises:
        TypeError, ValueError: `sources` is not a non-empty iterable of distinct sources.
    """

    def __init__(self, sources: Iterable[CancelationSource], name: str | None = None) -> None:
        super().__init__(sources, name)

    def _member_fired(
        self, member: CancelationSource, message: str | None, details: dict[str, Any]
    ) -> bool:
        sink = self._sink
        return False if sink is None else sink(member, message, details)


CompositeSource = AnyOfSource
"""The name `AnyOfSource` had in 0.11."""


class AllOfSource(_Group):
    """Fires once every member has fired, with the reason and details of the last one.

    A member that fired stays fired: `AllOfSource([TimeoutSource(60), condition])` cancels
    once a minute has passed and the condition has held at least once.

    Raises:
        TypeError, ValueError: `sources` is not a non-empty iterable of distinct sources.
    """

    def __init__(self, sources: Iterable[CancelationSource], name: str | None = None) -> None:
        super().__init__(sources, name)
        self._fired: set[int] = set()

    def _attach(self, sink: Sink) -> None:
        self._fired = set()
        super()._attach(sink)

    def _member_fired(
        self, member: CancelationSource, message: str | None, details: dict[str, Any]
    ) -> bool:
        self._fired.add(id(member))
        sink = self._sink
        if sink is None or len(self._fired) < len(self.sources):
            return False
        summary = f"all {len(self.sources)} sources fired; last: {message or member.name}"
        return sink(member, summary, details)


def _iterable(value: object) -> bool:
    try:
        iter(value)  # type: ignore[call-overload]
    except TypeError:
        return False
    return not isinstance(value, str | bytes)
