"""Composite sources: any of, all of, and timeouts inside them (SPEC section 4)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from hother.cancelable import (
    AllOfSource,
    AnyOfSource,
    Cancelable,
    CancelationReason,
    CancelationSource,
    CompositeSource,
    ConditionCancelation,
    ConditionSource,
    OperationStatus,
    TimeoutCancelation,
    TimeoutSource,
)


class Tracked(CancelationSource):
    """Never fires; records whether its task is running."""

    def __init__(self) -> None:
        super().__init__(name="tracked")
        self.running = False

    async def watch(self) -> None:
        self.running = True
        try:
            await anyio.sleep_forever()
        finally:
            self.running = False


def after(seconds: float, name: str) -> ConditionSource:
    start = time.monotonic()
    return ConditionSource(lambda: time.monotonic() - start > seconds, 0.01, name)


async def test_any_of_a_timeout_and_a_never_true_condition_fires_at_the_timeout() -> None:
    start = time.monotonic()
    source = AnyOfSource([TimeoutSource(0.1), ConditionSource(lambda: False, 0.01, "never")])
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable().add_source(source) as cancel:
            await anyio.sleep(10)
    assert 0.09 <= time.monotonic() - start < 1.0
    assert info.value.message == "operation timed out after 0.1 s"
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT


async def test_any_of_reports_the_member_that_fired_first() -> None:
    source = CompositeSource([TimeoutSource(5), after(0.03, "soon")])
    with pytest.raises(ConditionCancelation) as info:
        async with Cancelable().add_source(source):
            await anyio.sleep(10)
    assert info.value.condition_name == "soon"
    assert CompositeSource is AnyOfSource


async def test_all_of_fires_once_every_member_fired_with_the_last_reason() -> None:
    start = time.monotonic()
    source = AllOfSource([TimeoutSource(0.03), after(0.12, "late")])
    with pytest.raises(ConditionCancelation) as info:
        async with Cancelable().add_source(source):
            await anyio.sleep(10)
    assert 0.11 <= time.monotonic() - start < 1.0
    assert info.value.condition_name == "late"
    assert info.value.message == "all 2 sources fired; last: condition 'late' met"

    source = AllOfSource([ConditionSource(lambda: True, 0.01, "now"), TimeoutSource(0.05)])
    with pytest.raises(TimeoutCancelation):
        async with Cancelable().add_source(source):
            await anyio.sleep(10)


async def test_all_of_does_not_fire_while_one_member_has_not() -> None:
    source = AllOfSource([TimeoutSource(0.01), ConditionSource(lambda: False, 0.01, "never")])
    async with Cancelable().add_source(source) as cancel:
        await anyio.sleep(0.1)
    assert cancel.context.status is OperationStatus.COMPLETED


async def test_composite_members_do_not_outlive_the_block() -> None:
    tracked = Tracked()
    with pytest.raises(ValueError, match="body") as info:
        async with Cancelable().add_source(AnyOfSource([tracked, TimeoutSource(5)])):
            await anyio.sleep(0.01)
            assert tracked.running
            raise ValueError("body")
    assert type(info.value) is ValueError
    assert not tracked.running


async def test_composite_with_an_outer_timeout() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05).add_source(
            AllOfSource([TimeoutSource(5), Tracked()])
        ):
            await anyio.sleep(10)


async def test_a_source_watches_one_operation_at_a_time() -> None:
    shared = Tracked()
    composite = AnyOfSource([shared])
    async with Cancelable().add_source(shared):
        with pytest.raises(RuntimeError, match="already watches another operation"):
            async with Cancelable().add_source(Tracked()).add_source(composite):
                pass  # pragma: no cover
        assert not any(member._sink for member in [composite])  # pyright: ignore[reportPrivateUsage]
    async with Cancelable().add_source(composite):  # free again once the first block ended
        pass


BAD_GROUPS: list[tuple[Any, type[Exception], str]] = [
    ([], ValueError, r"^sources must hold at least one CancelationSource, got none$"),
    (5, TypeError, r"^sources must be an iterable of CancelationSource, got 5$"),
    ("ab", TypeError, r"^sources must be an iterable of CancelationSource, got 'ab'$"),
    ([TimeoutSource(1), "x"], TypeError, r"^sources\[1\] must be a CancelationSource, got 'x'$"),
]


@pytest.mark.parametrize(("sources", "error", "message"), BAD_GROUPS)
@pytest.mark.parametrize("group", [AnyOfSource, AllOfSource])
def test_bad_groups_are_refused(
    group: type[AnyOfSource], sources: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        group(sources)


def test_the_same_member_twice_is_refused() -> None:
    member = TimeoutSource(1)
    with pytest.raises(ValueError, match="the same source twice"):
        AllOfSource([member, member])


@pytest.mark.parametrize("value", [0, -1, float("nan"), "1"], ids=repr)
def test_bad_timeout_source(value: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=r"^timeout must be"):
        TimeoutSource(value)
