"""The process-wide registry of operations: list, inspect and cancel them by id."""

from __future__ import annotations

from _thread import allocate_lock
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar

from ._checks import INF, check_bool, check_message, check_optional_str, check_reason
from ._context import CancelationReason, OperationContext, OperationStatus

if TYPE_CHECKING:
    import threading
    import weakref
    from collections.abc import Callable
    from datetime import datetime, timedelta
    from typing import Protocol

    from ._cancelable import Cancelable

    class Registered(Protocol):
        """What the registry needs of an operation (a `Cancelable` is one); it imports no class."""

        @property
        def operation_id(self) -> str: ...

        @property
        def context(self) -> OperationContext: ...

        def cancel_sync(
            self, reason: CancelationReason = ..., message: str | None = ...
        ) -> bool: ...


__all__ = ["OperationRegistry", "ThreadSafeRegistry"]


def _is_registered(value: object) -> bool:
    # By what it has, as a runtime-checkable Protocol would (without its import-time cost).
    return all(hasattr(value, name) for name in ("operation_id", "context", "cancel_sync"))


P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_HISTORY_LIMIT = 1000
BULK_MESSAGE = "Bulk cancelation"  # cancel_all's message when it is given none, as in 0.11
_WILDCARDS = frozenset("*?[")


def _snapshot(context: OperationContext) -> OperationContext:
    return context.copy()


def _check_id(operation_id: object) -> None:
    if not isinstance(operation_id, str):
        raise TypeError(f"operation_id must be a str, got {operation_id!r}")


def _check_status(status: object) -> OperationStatus | None:
    if status is None or isinstance(status, OperationStatus):
        return status
    hint = ""
    if isinstance(status, str) and status.upper() in OperationStatus.__members__:
        hint = f"; use OperationStatus.{status.upper()}"  # 0.11's statuses were str enums
    raise TypeError(f"status must be an OperationStatus or None, got {status!r}{hint}")


def _name_matcher(name_pattern: str | None) -> Callable[[str | None], bool] | None:
    """How `name_pattern` selects names; None when it selects every operation.

    The name contains the pattern (0.11's substring) or, for a pattern with a wildcard, the
    whole name matches it as a shell-style glob; case is ignored either way.
    """
    if not name_pattern:  # None or "": no filter, as in 0.11
        return None
    pattern = name_pattern.casefold()
    if _WILDCARDS.isdisjoint(pattern):
        return lambda name: name is not None and pattern in name.casefold()
    from fnmatch import fnmatchcase  # for globs only: not worth importing for everybody

    def matches(name: str | None) -> bool:
        if name is None:
            return False
        folded = name.casefold()
        return pattern in folded or fnmatchcase(folded, pattern)

    return matches


def _record_filter(
    status: object, parent_id: object, name_pattern: object
) -> Callable[[OperationContext], bool]:
    """The records `list_operations` keeps; checks its arguments first."""
    wanted_status = _check_status(status)
    wanted_parent = check_optional_str("parent_id", parent_id)
    name_matches = _name_matcher(check_optional_str("name_pattern", name_pattern))

    def wanted(context: OperationContext) -> bool:
        return (
            (wanted_status is None or context.status is wanted_status)
            and (not wanted_parent or context.parent_id == wanted_parent)  # "": any, as in 0.11
            and (name_matches is None or name_matches(context.name))
        )

    return wanted


def _check_age(older_than: object) -> timedelta:
    """`older_than` of `cleanup_completed`: a duration >= 0 (the longest a timedelta holds,
    for a number of seconds beyond it)."""
    from datetime import timedelta

    if isinstance(older_than, timedelta):
        if older_than < timedelta(0):
            raise ValueError(f"older_than must be a duration >= 0, got {older_than!r}")
        return older_than
    if isinstance(older_than, int | float) and not isinstance(older_than, bool):
        if not 0 <= older_than < INF:  # NaN fails every comparison
            raise ValueError(f"older_than must be >= 0 and finite, got {older_than!r}")
        try:
            return timedelta(seconds=older_than)
        except OverflowError:
            return timedelta.max
    raise TypeError(f"older_than must be a timedelta, seconds or None, got {older_than!r}")


def _check_limit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _check_history_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be a whole number or None, got {limit!r}")
    if limit < 1:  # 0.11 read 0 as "no limit": refused rather than read as "none"
        raise ValueError(f"limit must be >= 1, or None for no limit, got {limit!r}")
    return limit


def _cutoff(older_than: object) -> datetime | None:
    """The end time before which `cleanup_completed` forgets a record; None: any end time.

    Raises OverflowError for an age no record can have (before the year 1).
    """
    from datetime import UTC, datetime

    return None if older_than is None else datetime.now(UTC) - _check_age(older_than)


class OperationRegistry:
    """Lists, inspects and cancels the running operations of this process, by id.

    `OperationRegistry()` is the process-wide registry, the same object every time (as in
    0.11), and so is `OperationRegistry.get_instance()`. Operations built with
    `register_globally=True` are registered in it as their block starts and unregistered as
    it ends, however it ended; their final record then joins a bounded history
    (`history_limit` entries, 1000 by default). The registry holds running operations
    weakly, so it keeps none alive by itself, and it belongs to no event loop: it serves
    asyncio and trio in the same process, and any thread. `OperationRegistry.isolated()`
    makes a registry of your own, apart from it.

    Every method is async, with a `_sync` twin that is safe from any thread.
    """

    __slots__ = ("_history", "_lock", "_operations")

    _lock: threading.Lock
    # Keyed by the object, in the order registered: several may share an operation id.
    _operations: dict[int, weakref.ref[Cancelable]]
    _history: deque[OperationContext]

    _instance: ClassVar[OperationRegistry | None] = None
    _instance_lock: ClassVar[threading.Lock] = allocate_lock()

    def __new__(cls) -> OperationRegistry:
        """The process-wide registry (what `get_instance()` returns)."""
        return OperationRegistry.get_instance()

    @classmethod
    def get_instance(cls) -> OperationRegistry:
        """The process-wide registry, where `register_globally=True` lists operations."""
        with OperationRegistry._instance_lock:
            if OperationRegistry._instance is None:
                OperationRegistry._instance = OperationRegistry._build(DEFAULT_HISTORY_LIMIT)
            return OperationRegistry._instance

    @classmethod
    def isolated(cls, history_limit: int = DEFAULT_HISTORY_LIMIT) -> OperationRegistry:
        """A new, empty registry of your own, apart from the process-wide one.

        Nothing is listed in it but what you `register()` yourself: `register_globally=True`
        lists operations in the process-wide registry only. Useful in tests, or to wrap in a
        `ThreadSafeRegistry`.

        Args:
            history_limit: how many finished records its history keeps (>= 0).

        Raises:
            TypeError: `history_limit` is not a whole number.
            ValueError: `history_limit` is negative.
        """
        return OperationRegistry._build(_check_limit("history_limit", history_limit))

    @staticmethod
    def _build(history_limit: int) -> OperationRegistry:
        # Around __new__, which answers with the process-wide registry.
        registry = object.__new__(OperationRegistry)
        registry._lock = allocate_lock()
        registry._operations = {}
        registry._history = deque(maxlen=history_limit)
        return registry

    def __reduce__(self) -> str | tuple[Any, ...]:
        """Refused: a copy would be rebuilt through `__new__`, onto the process-wide registry."""
        raise TypeError("an OperationRegistry cannot be copied or pickled")

    @property
    def history_limit(self) -> int:
        """How many finished operations the history keeps (the oldest go first)."""
        maxlen = self._history.maxlen
        assert maxlen is not None
        return maxlen

    @history_limit.setter
    def history_limit(self, value: int) -> None:
        limit = _check_limit("history_limit", value)
        with self._lock:
            self._history = deque(self._history, maxlen=limit)

    # -- sync, thread-safe -------------------------------------------------------------------

    def register_sync(self, operation: Cancelable) -> None:
        """List `operation` as running (done for you by `register_globally=True`)."""
        if not _is_registered(operation):
            raise TypeError(f"operation must be a Cancelable, got {operation!r}")
        from weakref import ref  # the registry's first use: not worth importing for everybody

        key = id(operation)
        operations = self._operations
        # Dropped, not kept alive: the entry goes when the operation is garbage collected.
        entry = ref(operation, lambda _: operations.pop(key, None))
        with self._lock:
            operations[key] = entry

    def unregister_sync(self, operation_id: str) -> None:
        """Stop listing the operation(s) with this id; those that ended join the history."""
        _check_id(operation_id)
        with self._lock:
            for operation in self._live():
                if operation.operation_id == operation_id:
                    del self._operations[id(operation)]
                    if operation.context.is_terminal:
                        self._history.append(_snapshot(operation.context))

    def _unregister(self, operation: Registered) -> None:
        # As its block ends: this very operation, whatever else shares its id.
        with self._lock:
            self._operations.pop(id(operation), None)
            self._history.append(_snapshot(operation.context))

    def _live(self) -> list[Cancelable]:
        # Under the lock; entries whose operation is gone are skipped.
        return [op for entry in list(self._operations.values()) if (op := entry()) is not None]

    def get_operation_sync(self, operation_id: str) -> Cancelable | None:
        """The running operation with this id (the latest registered, if several), or None."""
        _check_id(operation_id)
        with self._lock:
            matching = [op for op in self._live() if op.operation_id == operation_id]
        return matching[-1] if matching else None

    def list_operations_sync(
        self,
        status: OperationStatus | None = None,
        parent_id: str | None = None,
        name_pattern: str | None = None,
    ) -> list[OperationContext]:
        """Snapshots of the running operations' records, filtered.

        Args:
            status: only operations with this status.
            parent_id: only the children of the operation with this id.
            name_pattern: only operations whose name contains it (`"fetch"`) or, if it has a
                wildcard (`*`, `?`, `[`), whose whole name matches it as a shell-style pattern
                (`"fetch-*"`); case is ignored either way.

        A filter that is None or `""` selects every operation.
        """
        wanted = _record_filter(status, parent_id, name_pattern)
        with self._lock:
            operations = self._live()
        return [_snapshot(op.context) for op in operations if wanted(op.context)]

    def cancel_operation_sync(
        self,
        operation_id: str,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """Request the cancellation of one operation; True if it runs and this came first."""
        _check_id(operation_id)
        reason, message = check_reason(reason), check_message(message)
        operation = self.get_operation_sync(operation_id)
        return operation is not None and operation.cancel_sync(reason, message)

    def cancel_all_sync(
        self,
        status: OperationStatus | None = None,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> int:
        """Request the cancellation of every listed operation (of `status`); how many took it.

        The message is `"Bulk cancelation"` when none is given.
        """
        _check_status(status)
        reason, message = check_reason(reason), check_message(message)
        if message is None:
            message = BULK_MESSAGE
        with self._lock:
            operations = self._live()
        return sum(
            1
            for op in operations
            if (status is None or op.context.status is status) and op.cancel_sync(reason, message)
        )

    def get_history_sync(
        self,
        limit: int | None = None,
        status: OperationStatus | None = None,
        since: datetime | None = None,
    ) -> list[OperationContext]:
        """Records of finished operations, oldest first: the last `limit` that match.

        `limit` is a whole number >= 1, or None for every match.
        """
        from datetime import datetime

        limit = _check_history_limit(limit)
        _check_status(status)
        if since is not None and not isinstance(since, datetime):
            raise TypeError(f"since must be a datetime or None, got {since!r}")
        with self._lock:
            history = list(self._history)
        matching = [
            context
            for context in history
            if (status is None or context.status is status)
            and (since is None or (context.end_time is not None and context.end_time >= since))
        ]
        return matching if limit is None else matching[len(matching) - limit :]

    def cleanup_completed_sync(
        self, older_than: timedelta | float | None = None, keep_failed: bool = True
    ) -> int:
        """Forget finished operations; how many were forgotten.

        Forgets the records in the history, and the ended operations still listed (registered
        by hand and never unregistered), that ended more than `older_than` ago (a `timedelta`
        or seconds; None: whenever they ended). Failed ones are kept unless `keep_failed` is
        False, so the failures stay at hand for a post-mortem.
        """
        keep_failed = check_bool("keep_failed", keep_failed)
        try:
            cutoff = _cutoff(older_than)
        except OverflowError:  # before the year 1: nothing ended that long ago
            return 0

        def forgotten(context: OperationContext) -> bool:
            if keep_failed and context.status is OperationStatus.FAILED:
                return False
            end = context.end_time
            return cutoff is None or end is None or end <= cutoff

        with self._lock:
            ended = [op for op in self._live() if op.context.is_terminal and forgotten(op.context)]
            for operation in ended:
                del self._operations[id(operation)]
            kept = [context for context in self._history if not forgotten(context)]
            count = len(ended) + len(self._history) - len(kept)
            self._history = deque(kept, maxlen=self._history.maxlen)
        return count

    def get_statistics_sync(self) -> dict[str, Any]:
        """Counts of running operations by status and of finished ones by outcome, and the
        mean duration of the completed ones (0.0 when there are none)."""
        with self._lock:
            running = [op.context.status for op in self._live()]
            history = list(self._history)
        durations = [
            c.duration_seconds
            for c in history
            if c.status is OperationStatus.COMPLETED and c.duration_seconds is not None
        ]
        by_status = {status.value: 0 for status in OperationStatus}
        for status in running:
            by_status[status.value] += 1
        outcomes = {status.value: 0 for status in OperationStatus if status in _ENDINGS}
        for context in history:
            outcomes[context.status.value] += 1
        return {
            "active_operations": len(running),
            "active_by_status": by_status,
            "history_size": len(history),
            "history_by_status": outcomes,
            "total_completed": outcomes[OperationStatus.COMPLETED.value],
            "total_cancelled": outcomes[OperationStatus.CANCELLED.value],
            "total_failed": outcomes[OperationStatus.FAILED.value],
            "average_duration_seconds": sum(durations) / len(durations) if durations else 0.0,
        }

    def clear_all_sync(self) -> None:
        """Forget every listed operation and the whole history (for tests)."""
        with self._lock:
            self._operations.clear()
            self._history.clear()

    # -- async faces ---------------------------------------------------------------------------

    async def register(self, operation: Cancelable) -> None:
        """See `register_sync`."""
        self.register_sync(operation)

    async def unregister(self, operation_id: str) -> None:
        """See `unregister_sync`."""
        self.unregister_sync(operation_id)

    async def get_operation(self, operation_id: str) -> Cancelable | None:
        """See `get_operation_sync`."""
        return self.get_operation_sync(operation_id)

    async def list_operations(
        self,
        status: OperationStatus | None = None,
        parent_id: str | None = None,
        name_pattern: str | None = None,
    ) -> list[OperationContext]:
        """See `list_operations_sync`."""
        return self.list_operations_sync(status, parent_id, name_pattern)

    async def cancel_operation(
        self,
        operation_id: str,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """See `cancel_operation_sync`."""
        return self.cancel_operation_sync(operation_id, reason, message)

    async def cancel_all(
        self,
        status: OperationStatus | None = None,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> int:
        """See `cancel_all_sync`."""
        return self.cancel_all_sync(status, reason, message)

    async def get_history(
        self,
        limit: int | None = None,
        status: OperationStatus | None = None,
        since: datetime | None = None,
    ) -> list[OperationContext]:
        """See `get_history_sync`."""
        return self.get_history_sync(limit, status, since)

    async def cleanup_completed(
        self, older_than: timedelta | float | None = None, keep_failed: bool = True
    ) -> int:
        """See `cleanup_completed_sync`."""
        return self.cleanup_completed_sync(older_than, keep_failed)

    async def get_statistics(self) -> dict[str, Any]:
        """See `get_statistics_sync`."""
        return self.get_statistics_sync()

    async def clear_all(self) -> None:
        """See `clear_all_sync`."""
        self.clear_all_sync()


_ENDINGS = frozenset({OperationStatus.COMPLETED, OperationStatus.CANCELLED, OperationStatus.FAILED})


class ThreadSafeRegistry:
    """The registry's face for plain threads: the same calls, without `await` or `_sync`.

    `ThreadSafeRegistry()` wraps the process-wide registry, and `ThreadSafeRegistry(registry)`
    the one given (from `OperationRegistry.isolated()`, say).

    ```python
    registry = ThreadSafeRegistry()
    for record in registry.list_operations(status=OperationStatus.RUNNING):
        registry.cancel_operation(record.id, message="shutting down")
    ```
    """

    __slots__ = ("_registry",)

    _instance: ClassVar[ThreadSafeRegistry | None] = None
    _instance_lock: ClassVar[threading.Lock] = allocate_lock()

    def __init__(self, registry: OperationRegistry | None = None) -> None:
        if registry is not None and not isinstance(registry, OperationRegistry):
            raise TypeError(f"registry must be an OperationRegistry or None, got {registry!r}")
        self._registry = registry if registry is not None else OperationRegistry.get_instance()

    @classmethod
    def get_instance(cls) -> ThreadSafeRegistry:
        """Deprecated: use `ThreadSafeRegistry()`, which wraps the same process-wide registry.

        Kept from 0.11: returns the same `ThreadSafeRegistry` every time, with a
        `DeprecationWarning`.
        """
        import warnings

        warnings.warn(
            "ThreadSafeRegistry.get_instance() is deprecated: use ThreadSafeRegistry(), "
            "which wraps the same process-wide registry",
            DeprecationWarning,
            stacklevel=2,
        )
        with ThreadSafeRegistry._instance_lock:
            if ThreadSafeRegistry._instance is None:
                ThreadSafeRegistry._instance = ThreadSafeRegistry()
            return ThreadSafeRegistry._instance

    def get_operation(self, operation_id: str) -> Cancelable | None:
        """See `OperationRegistry.get_operation_sync`."""
        return self._registry.get_operation_sync(operation_id)

    def list_operations(
        self,
        status: OperationStatus | None = None,
        parent_id: str | None = None,
        name_pattern: str | None = None,
    ) -> list[OperationContext]:
        """See `OperationRegistry.list_operations_sync`."""
        return self._registry.list_operations_sync(status, parent_id, name_pattern)

    def cancel_operation(
        self,
        operation_id: str,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """See `OperationRegistry.cancel_operation_sync`."""
        return self._registry.cancel_operation_sync(operation_id, reason, message)

    def cancel_all(
        self,
        status: OperationStatus | None = None,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> int:
        """See `OperationRegistry.cancel_all_sync`."""
        return self._registry.cancel_all_sync(status, reason, message)

    def get_history(
        self,
        limit: int | None = None,
        status: OperationStatus | None = None,
        since: datetime | None = None,
    ) -> list[OperationContext]:
        """See `OperationRegistry.get_history_sync`."""
        return self._registry.get_history_sync(limit, status, since)

    def get_statistics(self) -> dict[str, Any]:
        """See `OperationRegistry.get_statistics_sync`."""
        return self._registry.get_statistics_sync()
