"""hother.cancelable.testing: the helpers for users' own tests, on every backend."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    ConditionCancelation,
    ManualCancelation,
    OperationStatus,
    SignalCancelation,
    TimeoutCancelation,
)
from hother.cancelable.testing import (
    CancelationScenario,
    MockCancelationToken,
    OperationRecorder,
    ScenarioStep,
    assert_cancelation_within,
    create_slow_stream,
)

# Upper bounds are loose: a slow CI machine must not make them fail.
SLACK = 0.5


# -- MockCancelationToken ----------------------------------------------------------------------


def test_mock_token_records_cancel_calls_with_their_arguments_and_results() -> None:
    token = MockCancelationToken()
    assert isinstance(token, CancelationToken)
    assert token.cancel_sync(CancelationReason.CONDITION, "disk full")
    assert not token.cancel_sync()
    assert [(c.method, c.reason, c.message, c.result) for c in token.calls] == [
        ("cancel_sync", CancelationReason.CONDITION, "disk full", True),
        ("cancel_sync", CancelationReason.MANUAL, None, False),
    ]
    assert token.calls[0].time <= token.calls[1].time
    assert token.call_count("cancel_sync") == 2
    assert token.call_count("cancel") == 0


async def test_mock_token_records_checks_and_whether_they_raised() -> None:
    token = MockCancelationToken()
    token.check()
    await token.check_async()
    assert await token.cancel(message="stop")
    with pytest.raises(ManualCancelation, match="stop"):
        token.check()
    with pytest.raises(ManualCancelation):
        await token.check_async()
    assert [(c.method, c.reason, c.message, c.result) for c in token.calls] == [
        ("check", None, None, False),
        ("check_async", None, None, False),
        ("cancel", CancelationReason.MANUAL, "stop", True),
        ("check", CancelationReason.MANUAL, "stop", True),
        ("check_async", CancelationReason.MANUAL, "stop", True),
    ]
    assert token.check_count == 4


def test_calls_is_a_copy() -> None:
    token = MockCancelationToken()
    token.check()
    token.calls.clear()
    assert len(token.calls) == 1


def test_cancel_after_checks_lets_that_many_checks_pass() -> None:
    token = MockCancelationToken()
    token.cancel_after_checks(2, CancelationReason.CONDITION, "budget spent")
    handled: list[int] = []
    with pytest.raises(ConditionCancelation, match="budget spent"):
        for item in range(10):
            token.check()
            handled.append(item)
    assert handled == [0, 1]
    assert token.check_count == 3
    assert token.reason is CancelationReason.CONDITION
    # The cue's own cancellation is not a call of the code under test.
    assert [c.method for c in token.calls] == ["check", "check", "check"]


def test_cancel_after_checks_counts_from_the_call_and_zero_cancels_the_next_check() -> None:
    token = MockCancelationToken()
    token.check()
    token.cancel_after_checks(0)
    assert not token.is_cancelled
    with pytest.raises(ManualCancelation):
        token.check()


async def test_cancel_after_checks_counts_check_async_and_cancels_the_operation() -> None:
    token = MockCancelationToken()
    token.cancel_after_checks(3)
    handled: list[int] = []
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token) as cancel:
            for item in range(10):
                await token.check_async()
                handled.append(item)
    assert handled == [0, 1, 2]
    assert cancel.context.status is OperationStatus.CANCELLED
    assert cancel.context.cancel_reason is CancelationReason.MANUAL


async def test_schedule_cancel_cancels_the_token_after_the_delay() -> None:
    token = MockCancelationToken()
    start = anyio.current_time()
    with pytest.raises(ManualCancelation, match="stop now"):
        async with (
            token.schedule_cancel(0.05, message="stop now") as scheduled,
            Cancelable.with_token(token),
        ):
            await anyio.sleep(5)
    elapsed = anyio.current_time() - start
    assert 0.04 <= elapsed < 0.05 + SLACK
    assert scheduled.fired
    assert token.calls == []  # scheduled, not called by the code under test


async def test_schedule_cancel_inside_the_block_it_cancels() -> None:
    token = MockCancelationToken()
    with pytest.raises(TimeoutCancelation):
        async with (
            Cancelable.with_token(token) as cancel,
            token.schedule_cancel(0.02, CancelationReason.TIMEOUT),
        ):
            await anyio.sleep(5)
    assert cancel.context.cancel_reason is CancelationReason.TIMEOUT


async def test_schedule_cancel_leaves_nothing_running_when_the_block_ends_first() -> None:
    token = MockCancelationToken()
    start = anyio.current_time()
    async with token.schedule_cancel(0.1) as scheduled:
        await anyio.lowlevel.checkpoint()
    assert anyio.current_time() - start < 0.1  # the exit did not wait for the delay
    await anyio.sleep(0.15)
    assert not scheduled.fired
    assert not token.is_cancelled


async def test_schedule_cancel_lets_the_body_exception_through_unwrapped() -> None:
    token = MockCancelationToken()
    with pytest.raises(ValueError, match="boom") as info:
        async with token.schedule_cancel(1):
            raise ValueError("boom")
    assert type(info.value) is ValueError


async def test_schedule_cancel_reaches_a_worker_thread() -> None:
    token = MockCancelationToken()
    async with token.schedule_cancel(0.02):
        assert await anyio.to_thread.run_sync(token.wait_sync, 5)


async def test_schedule_cancel_lets_an_enclosing_cancellation_through() -> None:
    token = MockCancelationToken()
    with anyio.move_on_after(0.02) as outer:
        async with token.schedule_cancel(0.05) as scheduled:
            await anyio.sleep(5)
    assert outer.cancelled_caught
    await anyio.sleep(0.05)
    assert not scheduled.fired
    assert not token.is_cancelled


async def test_a_scheduled_cancel_runs_one_block() -> None:
    scheduled = MockCancelationToken().schedule_cancel(1)
    async with scheduled:
        pass
    with pytest.raises(RuntimeError, match="one block"):
        async with scheduled:
            pass


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda t: t.cancel_after_checks(-1), ValueError, r"^checks must be >= 0, got -1$"),
        (lambda t: t.cancel_after_checks(1.5), TypeError, r"^checks must be .*, got 1\.5$"),
        (lambda t: t.cancel_after_checks(True), TypeError, r"^checks must be .*, got True$"),
        (lambda t: t.cancel_after_checks(1, "manual"), TypeError, r"^reason must be .*'manual'"),
        (lambda t: t.cancel_after_checks(1, message=3), TypeError, r"^message must be .*, got 3"),
        (lambda t: t.schedule_cancel(-1), ValueError, r"^delay must be .*, got -1$"),
        (lambda t: t.schedule_cancel(math.nan), ValueError, r"^delay must be .*, got nan$"),
        (lambda t: t.schedule_cancel("1"), TypeError, r"^delay must be .*, got '1'$"),
        (lambda t: t.schedule_cancel(1, None), TypeError, r"^reason must be .*, got None$"),
        (lambda t: t.call_count("stop"), ValueError, r"^method must be one of .*, got 'stop'$"),
    ],
)
def test_mock_token_rejects_bad_input(call: Any, error: type[Exception], match: str) -> None:
    token = MockCancelationToken()
    with pytest.raises(error, match=match):
        call(token)
    assert not token.is_cancelled


# -- OperationRecorder -------------------------------------------------------------------------


async def test_recorder_records_a_completed_operation() -> None:
    recorder = OperationRecorder()
    before = anyio.current_time()
    async with recorder.attach(Cancelable(name="job")) as cancel:
        await cancel.report_progress("half", {"done": 1})
    after = anyio.current_time()
    events = recorder.events
    assert [e.kind for e in events] == ["start", "progress", "complete"]
    assert {e.operation_id for e in events} == {cancel.operation_id}
    assert {e.name for e in events} == {"job"}
    assert (events[1].message, events[1].metadata) == ("half", {"done": 1})
    assert before <= events[0].time <= events[1].time <= events[2].time <= after
    recorder.assert_completed(cancel)
    recorder.assert_completed(cancel.operation_id)
    with pytest.raises(AssertionError, match=r"'job' .* was not cancelled; events: start, prog"):
        recorder.assert_cancelled(cancel)


async def test_recorder_records_a_cancelled_operation_and_its_reason() -> None:
    recorder = OperationRecorder()
    with pytest.raises(TimeoutCancelation):
        async with recorder.attach(Cancelable.with_timeout(0.01, name="job")) as cancel:
            await anyio.sleep(5)
    recorder.assert_cancelled(cancel)
    recorder.assert_cancelled(cancel, CancelationReason.TIMEOUT)
    end = recorder.events[-1]
    assert (end.kind, end.reason, end.message) == (
        "cancel",
        CancelationReason.TIMEOUT,
        "operation timed out after 0.01 s",
    )
    with pytest.raises(AssertionError, match="reason TIMEOUT, expected MANUAL"):
        recorder.assert_cancelled(cancel, CancelationReason.MANUAL)
    with pytest.raises(AssertionError, match=r"was not completed; events: start, cancel \(TIME"):
        recorder.assert_completed(cancel)


async def test_recorder_records_a_failed_operation_and_its_error() -> None:
    recorder = OperationRecorder()
    with pytest.raises(KeyError):
        async with recorder.attach(Cancelable()) as cancel:
            raise KeyError("row")
    recorder.assert_failed(cancel)
    recorder.assert_failed(cancel, KeyError)
    recorder.assert_failed(cancel, (ValueError, LookupError))
    assert isinstance(recorder.events[-1].error, KeyError)
    with pytest.raises(AssertionError, match=r"raised KeyError\('row'\), expected"):
        recorder.assert_failed(cancel, ValueError)


async def test_recorder_tells_operations_apart() -> None:
    recorder = OperationRecorder()
    token = CancelationToken()

    async def run(name: str) -> None:
        try:
            async with recorder.attach(Cancelable.with_token(token, name=name)):
                await anyio.sleep(5 if name == "slow" else 0)
        except ManualCancelation:
            pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "fast")
        tg.start_soon(run, "slow")
        await anyio.sleep(0.02)
        await token.cancel()
    ids = {e.name: e.operation_id for e in recorder.events}
    recorder.assert_completed(ids["fast"])
    recorder.assert_cancelled(ids["slow"], CancelationReason.MANUAL)
    assert len(recorder.events) == 4


async def test_recorder_clear_forgets_events_only() -> None:
    recorder = OperationRecorder()
    cancel = recorder.attach(Cancelable())
    recorder.clear()
    async with cancel:
        pass
    assert [e.kind for e in recorder.events_for(cancel)] == ["start", "complete"]


def test_recorder_says_when_an_operation_has_no_events() -> None:
    with pytest.raises(AssertionError, match=r"no events recorded for operation nope: attach"):
        OperationRecorder().assert_completed("nope")


async def test_recorder_says_when_an_operation_has_not_ended() -> None:
    recorder = OperationRecorder()
    async with recorder.attach(Cancelable(name="job")) as cancel:
        with pytest.raises(AssertionError, match=r"'job' .* was not completed; events: start$"):
            recorder.assert_completed(cancel)
    recorder.assert_completed(cancel)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r, c: r.attach("job"), TypeError, r"^cancelable must be a Cancelable, got 'job'$"),
        (lambda r, c: r.attach(c), ValueError, r"^cancelable <Cancelable .*> is already attached"),
        (lambda r, c: r.events_for(42), TypeError, r"^operation must be .*, got 42$"),
        (lambda r, c: r.assert_completed(None), TypeError, r"^operation must be .*, got None$"),
        (lambda r, c: r.assert_cancelled(c, "timeout"), TypeError, r"^reason must be .*'timeout'"),
        (lambda r, c: r.assert_failed(c, "ValueError"), TypeError, r"^error must be a subclass"),
    ],
)
def test_recorder_rejects_bad_input(call: Any, error: type[Exception], match: str) -> None:
    recorder = OperationRecorder()
    cancel = recorder.attach(Cancelable())
    with pytest.raises(error, match=match):
        call(recorder, cancel)


# -- assert_cancelation_within -----------------------------------------------------------------


async def test_assert_cancelation_within_passes_and_keeps_the_cancellation() -> None:
    async with (
        assert_cancelation_within(0.02, 0.05 + SLACK) as caught,
        Cancelable.with_timeout(0.05),
    ):
        await anyio.sleep(5)
    assert isinstance(caught.error, TimeoutCancelation)
    assert caught.elapsed is not None
    assert 0.04 <= caught.elapsed < 0.05 + SLACK


async def test_assert_cancelation_within_fails_when_the_block_finishes() -> None:
    with pytest.raises(AssertionError, match=r"finished after 0\.\d+ s without being cancelled"):
        async with assert_cancelation_within(0, 1):
            await anyio.lowlevel.checkpoint()


async def test_assert_cancelation_within_fails_when_cancelled_too_early() -> None:
    with pytest.raises(AssertionError) as info:
        async with assert_cancelation_within(0.5, 1), Cancelable.with_timeout(0.01):
            await anyio.sleep(5)
    assert "raised TimeoutCancelation after 0.0" in str(info.value)
    assert "expected CancelationError between 0.5 and 1 s" in str(info.value)
    assert isinstance(info.value.__cause__, TimeoutCancelation)


async def test_assert_cancelation_within_stops_a_block_still_running_at_max_time() -> None:
    start = anyio.current_time()
    with pytest.raises(AssertionError, match=r"still running after 0\.05 s; expected"):
        async with assert_cancelation_within(0, 0.05):
            await anyio.sleep(5)
    assert anyio.current_time() - start < 0.05 + SLACK


async def test_assert_cancelation_within_fails_on_another_exception() -> None:
    with pytest.raises(AssertionError, match=r"raised ValueError\('no'\) after") as info:
        async with assert_cancelation_within(0, 1):
            raise ValueError("no")
    assert isinstance(info.value.__cause__, ValueError)


async def test_assert_cancelation_within_accepts_the_cancellation_you_choose() -> None:
    async with assert_cancelation_within(0, 0.02 + SLACK, expected=TimeoutError) as caught:
        with anyio.fail_after(0.02):
            await anyio.sleep(5)
    assert type(caught.error) is TimeoutError

    with pytest.raises(AssertionError, match="expected ValueError or KeyError between"):
        async with (
            assert_cancelation_within(0, 1, (ValueError, KeyError)),
            Cancelable.with_timeout(0.01),
        ):
            await anyio.sleep(5)


async def test_assert_cancelation_within_lets_an_enclosing_cancellation_through() -> None:
    with anyio.move_on_after(0.02) as outer:
        async with assert_cancelation_within(0, 5):
            await anyio.sleep(5)
    assert outer.cancelled_caught


async def test_assert_cancelation_within_runs_one_block() -> None:
    expectation = assert_cancelation_within(0, 1)
    async with expectation:
        raise ManualCancelation()
    with pytest.raises(RuntimeError, match="one block"):
        async with expectation:
            pass


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((-1, 1), ValueError, r"^min_time must be a finite number of seconds >= 0, got -1$"),
        ((0, math.inf), ValueError, r"^max_time must be .*, got inf$"),
        ((0, "1"), TypeError, r"^max_time must be a number of seconds, got '1'$"),
        ((0.5, 0.1), ValueError, r"^max_time must be >= min_time \(0\.5\), got 0\.1$"),
        ((0, 1, KeyboardInterrupt), TypeError, r"^expected must be a subclass of Exception"),
        ((0, 1, ()), TypeError, r"^expected must be .*, got \(\)$"),
        ((0, 1, CancelationError()), TypeError, r"^expected must be .*, got Cancel"),
    ],
)
def test_assert_cancelation_within_rejects_bad_input(
    args: tuple[Any, ...], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        assert_cancelation_within(*args)


def test_assert_cancelation_within_refuses_the_backend_cancellation() -> None:
    import trio

    with pytest.raises(TypeError, match="expected must be a subclass of Exception"):
        assert_cancelation_within(0, 1, trio.Cancelled)  # type: ignore[arg-type]


# -- CancelationScenario -----------------------------------------------------------------------


async def sleep_long(cancel: Cancelable) -> str:
    await anyio.sleep(5)
    return "finished"


async def test_scenario_cancels_a_token_after_a_delay() -> None:
    token = CancelationToken()
    scenario = CancelationScenario().after(0.05).cancel_token(token, message="stop")
    result = await scenario.run(lambda: Cancelable.with_token(token), sleep_long)
    assert result.status is OperationStatus.CANCELLED
    assert result.reason is CancelationReason.MANUAL
    assert result.message == "stop"
    assert isinstance(result.error, ManualCancelation)
    assert result.value is None
    assert 0.04 <= result.elapsed < 0.05 + SLACK
    assert [step.action for step in result.steps] == [f"cancel token {token.id} (MANUAL)"]
    assert 0.04 <= result.steps[0].at <= result.elapsed


async def test_scenario_cancels_the_operation_itself() -> None:
    scenario = CancelationScenario().after(0.01).cancel(CancelationReason.CONDITION, "full")
    result = await scenario.run(Cancelable(), sleep_long)
    assert (result.status, result.reason, result.message) == (
        OperationStatus.CANCELLED,
        CancelationReason.CONDITION,
        "full",
    )
    assert isinstance(result.error, ConditionCancelation)


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGUSR1 on Windows")
async def test_scenario_sends_a_signal() -> None:
    scenario = CancelationScenario().after(0.01).signal(signal.SIGUSR1)
    result = await scenario.run(lambda: Cancelable.with_signal(signal.SIGUSR1), sleep_long)
    assert result.reason is CancelationReason.SIGNAL
    assert isinstance(result.error, SignalCancelation)
    assert result.error.signal_number == signal.SIGUSR1
    assert result.steps[0].action == "raise SIGUSR1"


async def test_scenario_checks_run_at_their_time_and_see_the_operation() -> None:
    token = CancelationToken()
    seen: list[tuple[str, bool]] = []

    def before(cancel: Cancelable) -> None:
        seen.append(("before", cancel.is_cancelled))

    async def after(cancel: Cancelable) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(("after", cancel.is_cancelled))

    scenario = (
        CancelationScenario()
        .after(0.02)
        .check(before)
        .cancel_token(token)
        .check(after, name="still cancelled")
        .after(0.02)
        .check(before)  # due after the block has ended: not run
    )
    result = await scenario.run(lambda: Cancelable.with_token(token), sleep_long)
    assert seen == [("before", False), ("after", True)]
    assert [step.action for step in result.steps] == [
        "check before",
        f"cancel token {token.id} (MANUAL)",
        "check still cancelled",
    ]


async def test_scenario_steps_wait_after_the_previous_step() -> None:
    scenario = CancelationScenario().after(0.02).check(print).after(0.03).after(0.01).cancel()
    result = await scenario.run(Cancelable(), sleep_long)
    first, second = (step.at for step in result.steps)
    assert 0.02 <= first < second
    assert 0.06 <= second < 0.06 + SLACK


async def test_a_failing_check_stops_the_operation_and_is_raised() -> None:
    def fails(cancel: Cancelable) -> None:
        raise AssertionError("the cache should be warm by now")

    start = anyio.current_time()
    with pytest.raises(AssertionError, match="cache should be warm") as info:
        await CancelationScenario().after(0.01).check(fails).run(Cancelable(), sleep_long)
    assert type(info.value) is AssertionError
    assert anyio.current_time() - start < SLACK


async def test_scenario_reports_an_operation_that_ends_first() -> None:
    async def quick(cancel: Cancelable) -> int:
        await anyio.sleep(0.01)
        return 42

    token = CancelationToken()
    start = anyio.current_time()
    result = await CancelationScenario().after(1).cancel_token(token).run(Cancelable(), quick)
    assert anyio.current_time() - start < 1  # the steps left did not hold it up
    assert (result.status, result.value, result.error, result.steps) == (
        OperationStatus.COMPLETED,
        42,
        None,
        [],
    )
    assert not token.is_cancelled


async def test_scenario_reports_a_failed_operation() -> None:
    async def broken(cancel: Cancelable) -> None:
        raise KeyError("row")

    result = await CancelationScenario().run(Cancelable(), broken)
    assert result.status is OperationStatus.FAILED
    assert isinstance(result.error, KeyError)
    assert result.context.error == "'row'"


async def test_scenario_runs_again_with_a_fresh_operation() -> None:
    scenario = CancelationScenario().after(0.01).cancel(message="again")
    first = await scenario.run(Cancelable, sleep_long)
    second = await scenario.run(Cancelable, sleep_long)
    assert first.context is not second.context
    assert first.message == second.message == "again"
    assert second.steps[0] == ScenarioStep(second.steps[0].at, "cancel the operation (MANUAL)")


async def test_scenario_lets_an_enclosing_cancellation_through() -> None:
    with anyio.move_on_after(0.02) as outer:
        await CancelationScenario().after(1).cancel().run(Cancelable(), sleep_long)
    assert outer.cancelled_caught


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda s: s.after(-0.1), ValueError, r"^delay must be .*, got -0\.1$"),
        (lambda s: s.after(None), TypeError, r"^delay must be a number of seconds, got None$"),
        (lambda s: s.cancel_token("t"), TypeError, r"^token must be a CancelationToken, got 't'$"),
        (lambda s: s.cancel_token(CancelationToken(), 1), TypeError, r"^reason must be .*, got 1$"),
        (lambda s: s.cancel(message=b"x"), TypeError, r"^message must be .*, got b'x'$"),
        (lambda s: s.signal(100_000), ValueError, r"^signum must be a signal number, got 100000$"),
        (lambda s: s.signal("SIGINT"), TypeError, r"^signum must be .*, got 'SIGINT'$"),
        (lambda s: s.check(3), TypeError, r"^fn must be callable, got 3$"),
        (lambda s: s.check(print, name=3), TypeError, r"^name must be a str or None, got 3$"),
    ],
)
def test_scenario_rejects_bad_steps(build: Any, error: type[Exception], match: str) -> None:
    scenario = CancelationScenario()
    with pytest.raises(error, match=match):
        build(scenario)
    assert repr(scenario) == "<CancelationScenario []>"


@pytest.mark.parametrize(
    ("operation", "body", "match"),
    [
        ("job", sleep_long, r"^operation must be a Cancelable .*, got 'job'$"),
        (lambda: "job", sleep_long, r"^operation\(\) must be a Cancelable .*, got 'job'$"),
        (Cancelable, None, r"^body must be callable, got None$"),
    ],
)
async def test_scenario_run_rejects_bad_input(operation: Any, body: Any, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        await CancelationScenario().run(operation, body)


async def test_scenario_run_refuses_an_operation_entered_already() -> None:
    async with Cancelable() as used:
        pass
    with pytest.raises(ValueError, match=r"^operation must be a Cancelable not entered yet, got <"):
        await CancelationScenario().run(used, sleep_long)


# -- create_slow_stream ------------------------------------------------------------------------


async def test_slow_stream_yields_the_items_slowly() -> None:
    start = anyio.current_time()
    items = [item async for item in create_slow_stream("abc", delay=0.02)]
    assert items == ["a", "b", "c"]
    assert 0.05 <= anyio.current_time() - start < 0.06 + SLACK


async def test_slow_stream_adds_up_to_jitter() -> None:
    start = anyio.current_time()
    items = [item async for item in create_slow_stream(range(5), delay=0, jitter=0.01)]
    assert items == [0, 1, 2, 3, 4]
    assert anyio.current_time() - start < 0.05 + SLACK


async def test_slow_stream_feeds_a_cancelled_consumer() -> None:
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.05) as cancel:
            async for _ in cancel.stream(create_slow_stream(range(100), delay=0.02)):
                pass
    partial = cancel.context.partial_result
    assert 1 <= partial["count"] <= 3
    assert partial["completed"] is False


async def test_slow_stream_is_an_async_generator_that_closes() -> None:
    stream = create_slow_stream([1, 2, 3], delay=0)
    assert await stream.__anext__() == 1
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"items": 42}, TypeError, r"^items must be an iterable, got 42$"),
        ({"items": [], "delay": -1}, ValueError, r"^delay must be .*, got -1$"),
        ({"items": [], "delay": math.nan}, ValueError, r"^delay must be .*, got nan$"),
        ({"items": [], "jitter": "0.1"}, TypeError, r"^jitter must be .*, got '0\.1'$"),
    ],
)
def test_slow_stream_rejects_bad_input_at_the_call(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        create_slow_stream(**kwargs)


# -- fake time ---------------------------------------------------------------------------------


def test_the_helpers_follow_a_fake_trio_clock() -> None:
    from trio.testing import MockClock

    async def long_timeouts() -> tuple[float | None, float]:
        token = MockCancelationToken()
        async with assert_cancelation_within(9.9, 10.1) as caught, Cancelable.with_timeout(10):
            await anyio.sleep(100)
        async with token.schedule_cancel(30):
            scenario = CancelationScenario().after(20).cancel()
            result = await scenario.run(Cancelable(), lambda cancel: anyio.sleep(100))
        items = [item async for item in create_slow_stream(range(3), delay=50)]
        assert items == [0, 1, 2]
        return caught.elapsed, result.elapsed

    clock = MockClock(autojump_threshold=0)
    start = time.monotonic()
    elapsed = anyio.run(long_timeouts, backend="trio", backend_options={"clock": clock})
    assert elapsed == (pytest.approx(10), pytest.approx(20))
    assert time.monotonic() - start < SLACK


# -- edges of the helpers ------------------------------------------------------------------------


async def test_recorder_lists_the_error_among_the_events_it_saw() -> None:
    recorder = OperationRecorder()
    with pytest.raises(KeyError):
        async with recorder.attach(Cancelable(name="import")) as cancel:
            raise KeyError("row 7")
    with pytest.raises(
        AssertionError, match=r"'import' .* was not completed; events: start, error \(KeyError"
    ):
        recorder.assert_completed(cancel)


async def test_schedule_cancel_lets_an_enclosing_cancellation_met_at_its_exit_through() -> None:
    token = MockCancelationToken()
    ran_on: list[str] = []
    with anyio.CancelScope() as outer:
        async with token.schedule_cancel(5) as scheduled:
            outer.cancel()  # the body ends with no checkpoint: the exit meets it
        ran_on.append("the code after the block")
    assert outer.cancelled_caught
    assert ran_on == []
    assert not scheduled.fired
    assert not token.is_cancelled


async def test_a_scenario_step_before_any_after_plays_as_the_block_starts() -> None:
    seen: list[bool] = []
    scenario = CancelationScenario().check(lambda cancel: seen.append(cancel.is_running)).cancel()
    result = await scenario.run(Cancelable(), sleep_long)
    assert seen == [True]
    assert [step.action for step in result.steps] == [
        "check <lambda>",
        "cancel the operation (MANUAL)",
    ]
    assert all(0 <= step.at < SLACK for step in result.steps)
    assert result.status is OperationStatus.CANCELLED
    assert result.elapsed < SLACK


async def test_a_block_past_max_time_whose_cleanup_fails_still_fails_the_assertion() -> None:
    async def fails_when_cancelled() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            raise ValueError("cleanup failed") from None

    with pytest.raises(AssertionError, match=r"expected CancelationError between 0 and 0\.05 s"):
        async with assert_cancelation_within(0, 0.05), anyio.create_task_group() as group:
            group.start_soon(fails_when_cancelled)
            await anyio.sleep(5)


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt or SystemExit, which would stop the test run itself."""


@pytest.mark.parametrize(
    "steps_before",
    [
        pytest.param(lambda: CancelationScenario().after(0.01), id="while-the-block-runs"),
        pytest.param(lambda: CancelationScenario().after(0.01).cancel(), id="after-a-cancel-step"),
    ],
)
async def test_a_check_step_raising_an_interrupt_stops_the_run_with_that_interrupt(
    steps_before: Any,
) -> None:
    def interrupt(cancel: Cancelable) -> None:
        raise Interrupt("stop the run")

    left: BaseException | None = None
    try:
        await steps_before().check(interrupt).run(Cancelable(), sleep_long)
    except BaseException as exc:  # whatever leaves run(), kept to look at
        left = exc
    assert isinstance(left, Interrupt)


async def test_an_enclosing_cancellation_cuts_short_a_step_that_is_waiting() -> None:
    async def slow_check(cancel: Cancelable) -> None:
        await anyio.sleep(5)

    scenario = CancelationScenario().after(0.01).check(slow_check)
    start = anyio.current_time()
    with anyio.move_on_after(0.05) as outer:
        await scenario.run(Cancelable(), sleep_long)
    assert outer.cancelled_caught
    assert anyio.current_time() - start < SLACK  # neither the body nor the step held it up


# -- the package -------------------------------------------------------------------------------


def test_the_library_loads_without_its_testing_helpers() -> None:
    # In a fresh interpreter: no core module imports the helpers (so they may import the
    # package `hother.cancelable`, complete by then), and the old path of the simulator loads.
    code = (
        "import sys, hother.cancelable, hother.cancelable.sources\n"
        "assert not [m for m in sys.modules if m.startswith('hother.cancelable.testing')]\n"
        "import hother.cancelable.streaming\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
