"""Condition and resource sources (SPEC section 4), on every backend."""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
import time
from typing import Any

import anyio
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    ConditionCancelation,
    ConditionSource,
    OperationStatus,
    ResourceConditionSource,
    SignalCancelation,
)


async def test_sync_predicate_cancels_once_true() -> None:
    start = time.monotonic()

    def queue_full() -> bool:
        return time.monotonic() - start > 0.1

    with pytest.raises(ConditionCancelation) as info:
        async with Cancelable.with_condition(queue_full, check_interval=0.01) as cancel:
            await anyio.sleep(10)
    assert 0.09 <= time.monotonic() - start < 2
    assert info.value.condition_name == "queue_full"
    assert info.value.__context__ is None
    assert cancel.context.cancel_reason is CancelationReason.CONDITION
    assert cancel.context.cancel_message == "condition 'queue_full' met"


async def test_async_predicate_and_a_given_name() -> None:
    event = anyio.Event()

    async def is_set() -> bool:
        await anyio.lowlevel.checkpoint()
        return event.is_set()

    async def set_later() -> None:
        await anyio.sleep(0.05)
        event.set()

    with pytest.raises(ConditionCancelation) as info:
        async with (
            Cancelable.with_condition(is_set, 0.01, condition_name="stop flag"),
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(set_later)
            await anyio.sleep(10)
    assert info.value.condition_name == "stop flag"


async def test_predicate_true_at_start_cancels_at_the_first_checkpoint() -> None:
    with pytest.raises(ConditionCancelation):
        async with Cancelable.with_condition(lambda: True, check_interval=5):
            await anyio.sleep(10)


async def test_quiet_condition() -> None:
    async with Cancelable.with_condition(lambda: True, raise_on_cancel=False) as cancel:
        await anyio.sleep(10)
    assert cancel.context.cancel_reason is CancelationReason.CONDITION


async def test_raising_predicate_is_logged_once_and_polling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    def flaky() -> bool:
        nonlocal calls
        calls += 1
        if calls < 5:
            raise OSError("sensor offline")
        return True

    caplog.set_level(logging.DEBUG, logger="hother.cancelable")
    with pytest.raises(ConditionCancelation):
        async with Cancelable.with_condition(flaky, check_interval=0.01):
            await anyio.sleep(10)
    assert calls == 5
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "treated as not met" in errors[0].getMessage()


async def test_predicate_that_always_raises_never_ends_the_operation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> bool:
        raise ZeroDivisionError("bug")

    async with Cancelable.with_condition(broken, check_interval=0.005) as cancel:
        await anyio.sleep(0.05)
    assert cancel.context.status is OperationStatus.COMPLETED
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


async def test_two_conditions_and_a_signal_source_first_to_fire_wins() -> None:
    from hother.cancelable import SignalSource

    start = time.monotonic()
    with pytest.raises(ConditionCancelation) as info:
        async with (
            Cancelable()
            .add_source(ConditionSource(lambda: time.monotonic() - start > 5, 0.01, "late"))
            .add_source(ConditionSource(lambda: time.monotonic() - start > 0.05, 0.01, "soon"))
            .add_source(SignalSource())
        ):
            await anyio.sleep(10)
    assert info.value.condition_name == "soon"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_signal_beats_conditions_when_it_comes_first() -> None:
    import signal

    from hother.cancelable import SignalSource

    with pytest.raises(SignalCancelation):
        async with (
            Cancelable()
            .add_source(ConditionSource(lambda: False, 0.01, "never"))
            .add_source(SignalSource(signal.SIGUSR1))
        ):
            signal.raise_signal(signal.SIGUSR1)
            await anyio.sleep(10)


async def test_sources_in_nested_operations() -> None:
    start = time.monotonic()
    with pytest.raises(ConditionCancelation) as info:
        async with Cancelable.with_condition(lambda: time.monotonic() - start > 0.1, 0.01, "outer"):
            with pytest.raises(ConditionCancelation) as inner_info:
                async with Cancelable.with_condition(
                    lambda: time.monotonic() - start > 0.03, 0.01, "inner"
                ):
                    await anyio.sleep(10)
            await anyio.sleep(10)
    assert inner_info.value.condition_name == "inner"
    assert info.value.condition_name == "outer"


BAD_CONDITIONS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"predicate": 5}, TypeError, r"^predicate must be callable, got 5$"),
    ({"check_interval": 0}, ValueError, r"^check_interval must be .*, got 0$"),
    ({"check_interval": -1}, ValueError, r"^check_interval must be .*, got -1$"),
    ({"check_interval": math.nan}, ValueError, r"^check_interval must be .*, got nan$"),
    ({"check_interval": "1"}, TypeError, r"^check_interval must be .*, got '1'$"),
    ({"condition_name": 3}, TypeError, r"^condition_name must be a str or None, got 3$"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_CONDITIONS)
def test_bad_condition_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {"predicate": lambda: False, **kwargs}
    with pytest.raises(error, match=message):
        ConditionSource(**arguments)
    with pytest.raises(error, match=message):
        Cancelable.with_condition(**arguments)


# -- resources -----------------------------------------------------------------------------


async def test_process_memory_threshold_fires() -> None:
    source = ResourceConditionSource(process_memory_threshold=1, check_interval=0.01)
    with pytest.raises(ConditionCancelation) as info:
        async with Cancelable().add_source(source) as cancel:
            await anyio.sleep(10)
    assert info.value.condition_name == "resources"
    assert cancel.context.cancel_message is not None
    assert cancel.context.cancel_message.startswith("process memory ")


async def test_disk_threshold_on_a_given_path_fires(tmp_path: Any) -> None:
    source = ResourceConditionSource(disk_threshold=0, disk_path=tmp_path, name="disk")
    with pytest.raises(ConditionCancelation, match=f"disk use of {tmp_path}") as info:
        async with Cancelable().add_source(source):
            await anyio.sleep(10)
    assert info.value.condition_name == "disk"


async def test_thresholds_that_are_not_crossed_let_the_block_finish() -> None:
    source = ResourceConditionSource(
        memory_threshold=100,
        cpu_threshold=100,
        disk_threshold=100,
        available_memory_threshold=1,
        check_interval=0.01,
    )
    async with Cancelable().add_source(source) as cancel:
        await anyio.sleep(0.05)
    assert cancel.context.status is OperationStatus.COMPLETED


async def test_available_memory_and_cpu_thresholds_fire() -> None:
    low = ResourceConditionSource(available_memory_threshold=2**62, check_interval=0.01)
    with pytest.raises(ConditionCancelation, match="available memory"):
        async with Cancelable().add_source(low):
            await anyio.sleep(10)
    busy = ResourceConditionSource(cpu_threshold=0, check_interval=0.01)
    with pytest.raises(ConditionCancelation, match="CPU use"):
        async with Cancelable().add_source(busy):
            await anyio.sleep(10)


async def test_resource_checks_never_block_the_loop() -> None:
    source = ResourceConditionSource(
        memory_threshold=100, cpu_threshold=100, disk_threshold=100, check_interval=0.05
    )
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await anyio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with Cancelable().add_source(source), anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.5)
        tg.cancel_scope.cancel()
    assert len(gaps) > 20
    assert max(gaps) < 0.020


BAD_RESOURCES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"memory_threshold": 101}, ValueError, r"^memory_threshold must be a percentage .*, got 101$"),
    ({"cpu_threshold": -1}, ValueError, r"^cpu_threshold must be a percentage .*, got -1$"),
    ({"disk_threshold": math.nan}, ValueError, r"^disk_threshold must be .*, got nan$"),
    ({"memory_threshold": "90"}, TypeError, r"^memory_threshold must be .*, got '90'$"),
    ({"process_memory_threshold": 0}, ValueError, r"^process_memory_threshold must be .*, got 0$"),
    ({"process_memory_threshold": 1.5}, TypeError, r"^process_memory_threshold must be .*1.5$"),
    ({"available_memory_threshold": -5}, ValueError, r"^available_memory_threshold .*, got -5$"),
    ({"memory_threshold": 90, "check_interval": 0}, ValueError, r"^check_interval must be"),
    ({"memory_threshold": 90, "disk_path": 3}, TypeError, r"^disk_path must be a path, got 3$"),
    ({}, ValueError, r"^ResourceConditionSource needs at least one threshold, got none$"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_RESOURCES)
def test_bad_resource_thresholds(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ResourceConditionSource(**kwargs)


def test_missing_psutil_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(ImportError, match=r"pip install 'hother-cancelable\[resources\]'"):
        ResourceConditionSource(memory_threshold=90)


async def test_resource_messages_give_readable_sizes() -> None:
    source = ResourceConditionSource(process_memory_threshold=1024**2, check_interval=0.01)
    with pytest.raises(ConditionCancelation, match=r"^process memory \d+\.\d MiB > 1\.0 MiB$"):
        async with Cancelable().add_source(source):
            await anyio.sleep(10)


async def test_memory_threshold_fires_with_the_share_in_use() -> None:
    source = ResourceConditionSource(memory_threshold=0, check_interval=0.01)
    with pytest.raises(ConditionCancelation, match=r"^memory use \d+\.\d% > 0%$") as info:
        async with Cancelable().add_source(source):
            await anyio.sleep(10)
    assert info.value.condition_name == "resources"


def test_a_sample_under_every_threshold_finds_nothing() -> None:
    source = ResourceConditionSource(memory_threshold=100, process_memory_threshold=2**62)
    assert source.check() is None


# -- growth over the RSS at entry ----------------------------------------------------------

MiB = 1024**2
GROWTH = re.compile(
    r"^process memory grew by (?P<grown>\d+\.\d) MiB > 40\.0 MiB "
    r"\(from (?P<baseline>\d+\.\d) MiB at entry\)$"
)


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class CountedChecks(ResourceConditionSource):
    """The library's source, counting the samples it took so a test can wait for some."""

    def __init__(self, **thresholds: Any) -> None:
        super().__init__(**thresholds)
        self.checks = 0
        self._wanted = 0
        self._enough = threading.Event()

    def check(self) -> str | None:
        breach = super().check()
        self.checks += 1
        if self.checks >= self._wanted:
            self._enough.set()
        return breach

    async def more_samples(self, count: int) -> None:
        """Wait until this source has taken `count` more samples (5 s at most)."""
        self._wanted = self.checks + count
        self._enough.clear()  # a sample that set it meanwhile is followed by others
        assert await anyio.to_thread.run_sync(self._enough.wait, 5), f"{self.checks} samples"


async def test_memory_growth_past_the_budget_cancels_the_block() -> None:
    source = ResourceConditionSource(process_memory_growth=40 * MiB, check_interval=0.02)
    assert source.baseline_rss is None
    before = rss()
    start = time.monotonic()
    with pytest.raises(ConditionCancelation) as info:
        async with Cancelable().add_source(source) as cancel:
            # Before the first await: the baseline was read as the block was entered.
            allocation = bytearray(60 * MiB)
            await anyio.sleep(10)
    del allocation
    assert time.monotonic() - start < 5
    assert info.value.condition_name == "resources"
    assert info.value.reason is CancelationReason.CONDITION
    assert cancel.context.status is OperationStatus.CANCELLED
    found = GROWTH.match(info.value.message or "")
    assert found is not None, info.value.message
    assert 40 < float(found["grown"]) < 100
    assert source.baseline_rss is not None
    assert abs(source.baseline_rss - before) < 20 * MiB
    assert found["baseline"] == f"{source.baseline_rss / MiB:.1f}"


async def test_memory_growth_within_the_budget_lets_the_block_finish() -> None:
    source = CountedChecks(process_memory_growth=200 * MiB, check_interval=0.02)
    async with Cancelable().add_source(source) as cancel:
        allocation = bytearray(20 * MiB)
        await source.more_samples(5)  # taken with the allocation in place
    del allocation
    assert cancel.context.status is OperationStatus.COMPLETED


async def test_a_reused_source_measures_a_new_baseline_at_each_entry() -> None:
    source = CountedChecks(process_memory_growth=40 * MiB, check_interval=0.02)
    with pytest.raises(ConditionCancelation):
        async with Cancelable().add_source(source):
            allocation = bytearray(60 * MiB)
            await anyio.sleep(10)
    first = source.baseline_rss
    assert first is not None
    # The allocation is still there: counted from the first baseline it is over the budget.
    async with Cancelable().add_source(source) as cancel:
        assert source.baseline_rss is not None
        assert source.baseline_rss - first > 50 * MiB
        await source.more_samples(5)
    del allocation
    assert cancel.context.status is OperationStatus.COMPLETED


async def test_a_check_by_hand_before_entry_takes_the_baseline_until_a_block_is_entered() -> None:
    source = CountedChecks(process_memory_growth=40 * MiB, check_interval=0.02)
    assert source.check() is None
    by_hand = source.baseline_rss
    assert by_hand is not None
    assert abs(by_hand - rss()) < 20 * MiB
    allocation = bytearray(60 * MiB)
    found = GROWTH.match(source.check() or "")
    assert found is not None
    assert found["baseline"] == f"{by_hand / MiB:.1f}"
    # Entering a block measures its own baseline, with the allocation already in place.
    async with Cancelable().add_source(source) as cancel:
        assert source.baseline_rss is not None
        assert source.baseline_rss - by_hand > 50 * MiB
        await source.more_samples(5)
    del allocation
    assert cancel.context.status is OperationStatus.COMPLETED


def test_without_a_growth_budget_there_is_no_baseline() -> None:
    source = ResourceConditionSource(process_memory_threshold=2**62)
    assert source.check() is None
    assert source.baseline_rss is None


@pytest.mark.parametrize(
    ("value", "error", "shown"),
    [
        (0, ValueError, "0"),
        (-1, ValueError, "-1"),
        (1.5, TypeError, "1.5"),
        (True, TypeError, "True"),
        ("10", TypeError, "'10'"),
    ],
)
def test_bad_memory_growth_budget_is_refused(
    value: object, error: type[Exception], shown: str
) -> None:
    with pytest.raises(error, match=rf"^process_memory_growth must be .* bytes, got {shown}$"):
        ResourceConditionSource(process_memory_growth=value)  # pyright: ignore[reportArgumentType]
