"""Custom sources: a CancelationSource subclass runs as a task of the operation it watches."""

from __future__ import annotations

import anyio
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationSource,
    ConditionCancelation,
    OperationStatus,
    TimeoutCancelation,
)


class After(CancelationSource):
    """Cancels the operation `delay` seconds after its block starts."""

    def __init__(self, delay: float) -> None:
        super().__init__(name="after")
        self.delay = delay
        self.running = False

    async def watch(self) -> None:
        self.running = True
        try:
            await anyio.sleep(self.delay)
            self.trigger_cancelation(f"waited {self.delay} s", condition_name="after")
            await anyio.sleep_forever()
        finally:
            self.running = False


class Broken(CancelationSource):
    async def watch(self) -> None:
        raise RuntimeError("source bug")


async def test_custom_source_cancels_with_its_reason_and_message() -> None:
    source = After(0.05)
    with pytest.raises(ConditionCancelation) as info:
        async with Cancelable().add_source(source) as cancel:
            await anyio.sleep(10)
    assert info.value.condition_name == "after"
    assert info.value.__context__ is None
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.CONDITION
    assert cancel.context.cancel_message == "waited 0.05 s"
    assert not source.running  # its task ended with the block


async def test_source_task_ends_with_the_block_however_it_ended() -> None:
    source = After(10)
    async with Cancelable().add_source(source):
        await anyio.sleep(0.01)
        assert source.running
    assert not source.running

    source = After(10)
    with pytest.raises(ValueError, match="body") as info:
        async with Cancelable().add_source(source):
            await anyio.sleep(0.01)
            raise ValueError("body")
    assert type(info.value) is ValueError  # never wrapped in an ExceptionGroup
    assert not source.running

    source = After(10)
    with anyio.move_on_after(0.02) as outer:
        async with Cancelable().add_source(source) as cancel:
            await anyio.sleep(10)
    assert outer.cancelled_caught
    assert cancel.context.cancel_reason is CancelationReason.PARENT
    assert not source.running


async def test_timeout_and_source_first_one_wins() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05).add_source(After(5)):
            await anyio.sleep(10)
    with pytest.raises(ConditionCancelation):
        async with Cancelable.with_timeout(5).add_source(After(0.05)):
            await anyio.sleep(10)


async def test_broken_source_is_logged_and_the_block_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Cancelable().add_source(Broken()) as cancel:
        await anyio.sleep(0.02)
    assert cancel.context.status is OperationStatus.COMPLETED
    assert any("source bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_sources_cannot_be_added_once_entered() -> None:
    async with Cancelable() as cancel:
        with pytest.raises(RuntimeError, match="already entered"):
            cancel.add_source(After(1))


def test_add_source_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="source must be a CancelationSource, got 42"):
        Cancelable().add_source(42)  # type: ignore[arg-type]


class NamesAReservedDetail(CancelationSource):
    async def watch(self) -> None:
        self.trigger_cancelation("stop", reason="disk full")


async def test_a_detail_named_like_an_exception_attribute_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Cancelable().add_source(NamesAReservedDetail()) as cancel:
        await anyio.sleep(0.02)
    assert cancel.context.status is OperationStatus.COMPLETED
    errors = [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert errors == [
        "details must not be named reason: the exception already has those attributes"
    ]
