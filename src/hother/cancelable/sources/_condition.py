"""Conditions polled on the loop, and system resources polled in a worker thread."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from hother.cancelable._callbacks import logger
from hother.cancelable._checks import check_optional_str, check_timeout

from ._base import CancelationSource, Sink

if TYPE_CHECKING:  # at run time anyio imports its submodules on first use
    import anyio.to_thread

__all__ = ["ConditionSource", "ResourceConditionSource"]

Predicate = Callable[[], object]  # its result (awaited if awaitable) is taken as true or false


class ConditionSource(CancelationSource):
    """Cancels the operation once `predicate()` returns true, checked every `check_interval` s.

    The predicate may be sync (keep it quick: it runs on the event loop) or async. It is first
    checked as the block starts. The block then raises `ConditionCancelation` with
    `condition_name`, reason `CONDITION`.

    A predicate that raises does not end the operation: the failure is logged (with its
    traceback the first time, and each time the error changes), counts as "not met", and the
    predicate is checked again at the next interval.

    Args:
        predicate: a callable without arguments returning a truthy value when the operation
            must stop, or an awaitable of one.
        check_interval: seconds between checks (positive, finite).
        condition_name: the name reported in the exception and message; by default the
            predicate's `__name__`.

    Raises:
        TypeError: `predicate` is not callable, or an argument has the wrong type.
        ValueError: `check_interval` is not a positive, finite number.
    """

    def __init__(
        self,
        predicate: Predicate,
        check_interval: float = 0.1,
        condition_name: str | None = None,
    ) -> None:
        if not callable(predicate):
            raise TypeError(f"predicate must be callable, got {predicate!r}")
        self.check_interval: float = check_timeout(check_interval, "check_interval")
        check_optional_str("condition_name", condition_name)
        self.predicate = predicate
        self.condition_name: str = condition_name or getattr(predicate, "__name__", "condition")
        super().__init__(name=self.condition_name)
        self._last_failure: str | None = None

    async def watch(self) -> None:
        self._last_failure = None
        # Polling is the point: a predicate has no event to wait on.
        while not await self._holds():  # noqa: ASYNC110
            await anyio.sleep(self.check_interval)
        self.trigger_cancelation(
            f"condition {self.condition_name!r} met", condition_name=self.condition_name
        )

    async def _holds(self) -> bool:
        try:
            result: Any = self.predicate()
            if inspect.isawaitable(result):
                result = await result
            return bool(result)
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"
            if failure != self._last_failure:
                self._last_failure = failure
                logger().exception(
                    "hother.cancelable: condition %r raised; treated as not met",
                    self.condition_name,
                )
            else:
                logger().debug("condition %r raised again: %s", self.condition_name, failure)
            return False


def _size(count: int) -> str:
    """Bytes for a person: `512 B`, `3.4 KiB`, `66.8 MiB`, `1.5 GiB`."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:
        raise ImportError(
            "ResourceConditionSource needs psutil, which comes with the 'resources' extra: "
            "pip install 'hother-cancelable[resources]'"
        ) from None
    return psutil


def _check_percent(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a percentage between 0 and 100, got {value!r}")
    if not 0 <= value <= 100:  # NaN fails every comparison
        raise ValueError(f"{name} must be a percentage between 0 and 100, got {value!r}")
    return float(value)


def _check_bytes(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number of bytes, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive number of bytes, got {value!r}")
    return value


class ResourceConditionSource(CancelationSource):
    """Cancels the operation when the machine or this process runs short of resources.

    Each threshold is optional and is the most allowed: the first one exceeded cancels the
    operation with reason `CONDITION` and a message saying which and by how much (100% can
    never be exceeded, so a threshold of 100 never fires). Samples are taken with psutil (the
    `resources` extra) in a worker thread, so a slow read never blocks the event loop; CPU
    usage is measured between two consecutive checks of this source.

    `process_memory_growth` is a budget relative to the block: each block this source watches
    reads this process's RSS as it is entered (before the body's first line, so what the body
    allocates before its first `await` counts too) and is cancelled once the RSS has grown by
    more than the budget over that baseline. That one read, of this process's own counters, is
    taken on the event loop; it cannot stall on a file system or the network.

    Args:
        memory_threshold: system memory in use, in percent (0-100).
        cpu_threshold: system CPU use since the previous check, in percent (0-100).
        disk_threshold: disk space in use on `disk_path`, in percent (0-100).
        check_interval: seconds between checks (positive, finite).
        name: the name reported as `condition_name`; `"resources"` by default.
        disk_path: the path whose file system `disk_threshold` watches.
        process_memory_threshold: this process's resident memory (RSS), in bytes.
        available_memory_threshold: cancel when the system's available memory falls below
            this many bytes.
        process_memory_growth: how many bytes this process's RSS may grow by over its value
            when the block was entered (see `baseline_rss`).

    Raises:
        ImportError: psutil is not installed.
        TypeError, ValueError: a threshold is of the wrong type or out of range, or none
            is given.
    """

    def __init__(
        self,
        memory_threshold: float | None = None,
        cpu_threshold: float | None = None,
        disk_threshold: float | None = None,
        check_interval: float = 5.0,
        name: str | None = None,
        *,
        disk_path: str | os.PathLike[str] = "/",
        process_memory_threshold: int | None = None,
        available_memory_threshold: int | None = None,
        process_memory_growth: int | None = None,
    ) -> None:
        self.memory_threshold: float | None = _check_percent("memory_threshold", memory_threshold)
        self.cpu_threshold: float | None = _check_percent("cpu_threshold", cpu_threshold)
        self.disk_threshold: float | None = _check_percent("disk_threshold", disk_threshold)
        self.process_memory_threshold: int | None = _check_bytes(
            "process_memory_threshold", process_memory_threshold
        )
        self.available_memory_threshold: int | None = _check_bytes(
            "available_memory_threshold", available_memory_threshold
        )
        self.process_memory_growth: int | None = _check_bytes(
            "process_memory_growth", process_memory_growth
        )
        self.check_interval: float = check_timeout(check_interval, "check_interval")
        if not isinstance(disk_path, str | os.PathLike):
            raise TypeError(f"disk_path must be a path, got {disk_path!r}")
        self.disk_path: str = os.fspath(disk_path)
        thresholds = (
            self.memory_threshold,
            self.cpu_threshold,
            self.disk_threshold,
            self.process_memory_threshold,
            self.available_memory_threshold,
            self.process_memory_growth,
        )
        if all(threshold is None for threshold in thresholds):
            raise ValueError("ResourceConditionSource needs at least one threshold, got none")
        check_optional_str("name", name)
        self._psutil = _psutil()
        super().__init__(name=name or "resources")
        self._cpu_times: Any = None
        self._baseline_rss: int | None = None

    @property
    def baseline_rss(self) -> int | None:
        """The RSS, in bytes, that `process_memory_growth` counts from; None until measured.

        Measured as each block this source watches is entered, so a source used for several
        blocks, one after another, counts each block's growth from its own entry; it keeps
        its value after the block, until the next one is entered. `check()` called by hand
        before any block takes its first sample as the baseline. Always None without
        `process_memory_growth`.
        """
        return self._baseline_rss

    async def watch(self) -> None:
        while True:
            # Abandoned on cancellation: a hung read (a dead network mount) cannot hold up
            # the block's exit; the thread finishes that one sample and its result is dropped.
            breach = await anyio.to_thread.run_sync(self.check, abandon_on_cancel=True)
            if breach is not None:
                self.trigger_cancelation(breach, condition_name=self.name)
                return
            await anyio.sleep(self.check_interval)

    def check(self) -> str | None:
        """Take one sample; a message naming the threshold crossed, or None. Blocking.

        With `process_memory_growth`, a call made before any block was entered has no
        baseline to count from: its sample becomes the baseline (so it finds no growth), and
        later calls count from it until a block is entered.
        """
        return (
            self._system_memory_breach()
            or self._cpu_breach()
            or self._disk_breach()
            or self._process_memory_breach()
        )

    def _attach(self, sink: Sink) -> None:
        # Here, not in watch(): its task starts only at the body's first checkpoint.
        baseline = None if self.process_memory_growth is None else self._rss()
        super()._attach(sink)  # refuses a second operation before the first one's baseline moves
        if baseline is not None:
            self._baseline_rss = baseline

    def _rss(self) -> int:
        return self._psutil.Process().memory_info().rss

    def _system_memory_breach(self) -> str | None:
        if self.memory_threshold is None and self.available_memory_threshold is None:
            return None
        memory = self._psutil.virtual_memory()
        if self.memory_threshold is not None and memory.percent > self.memory_threshold:
            return f"memory use {memory.percent:.1f}% > {self.memory_threshold:g}%"
        limit = self.available_memory_threshold
        if limit is not None and memory.available < limit:
            return f"available memory {_size(memory.available)} < {_size(limit)}"
        return None

    def _cpu_breach(self) -> str | None:
        if self.cpu_threshold is None:
            return None
        percent = self._cpu_percent()
        if percent is not None and percent > self.cpu_threshold:
            return f"CPU use {percent:.1f}% > {self.cpu_threshold:g}%"
        return None

    def _disk_breach(self) -> str | None:
        if self.disk_threshold is None:
            return None
        disk = self._psutil.disk_usage(self.disk_path)
        if disk.percent > self.disk_threshold:
            return f"disk use of {self.disk_path} {disk.percent:.1f}% > {self.disk_threshold:g}%"
        return None

    def _process_memory_breach(self) -> str | None:
        limit, budget = self.process_memory_threshold, self.process_memory_growth
        if limit is None and budget is None:
            return None
        rss = self._rss()
        if limit is not None and rss > limit:
            return f"process memory {_size(rss)} > {_size(limit)}"
        if budget is not None:
            baseline = self._baseline_rss
            if baseline is None:
                self._baseline_rss = rss
            elif rss - baseline > budget:
                return (
                    f"process memory grew by {_size(rss - baseline)} > {_size(budget)} "
                    f"(from {_size(baseline)} at entry)"
                )
        return None

    def _cpu_percent(self) -> float | None:
        # Our own two samples, so sources do not disturb each other or psutil.cpu_percent().
        now = self._psutil.cpu_times()
        previous, self._cpu_times = self._cpu_times, now
        if previous is None:
            return None
        idle_fields = ("idle", "iowait")
        total = sum(now) - sum(previous)
        idle = sum(getattr(now, f, 0) - getattr(previous, f, 0) for f in idle_fields)
        return 0.0 if total <= 0 else max(0.0, min(100.0, 100.0 * (total - idle) / total))
