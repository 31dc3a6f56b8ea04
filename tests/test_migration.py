"""Code written for hother-cancelable 0.11, run as an upgrading user would run it ([3/6]).

Each test is 0.11 user code: it either works as it did (with a `DeprecationWarning` naming
the new form where there is a better one) or fails at the call with a clear error. Nothing
0.11 accepted is silently reinterpreted.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationSource,
    CancelationToken,
    ConditionCancelation,
    ManualCancelation,
    ParentCancelation,
    TimeoutCancelation,
    cancelable_stream,
    chunked_cancelable_stream,
)


async def numbers(count: int) -> Any:
    for number in range(count):
        await anyio.lowlevel.checkpoint()
        yield number


# -- cancel(propagate_to_children=) and is_cancelation_requested() ------------------------------


@pytest.mark.parametrize("propagate", [True, False])
async def test_cancel_with_propagate_to_children_warns_and_cancels_the_children(
    propagate: bool,
) -> None:
    parent = Cancelable(name="parent")
    errors: list[BaseException] = []

    async def child() -> None:
        try:
            async with Cancelable(name="child", parent=parent):
                await anyio.sleep(10)
        except ParentCancelation as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(child)
        with pytest.raises(ManualCancelation, match=r"^stop$"):  # the parent's own error
            async with parent:
                await anyio.sleep(0.01)
                with pytest.warns(
                    DeprecationWarning, match=r"propagate_to_children=.* is deprecated"
                ) as caught:
                    assert await parent.cancel(
                        CancelationReason.MANUAL, "stop", propagate_to_children=propagate
                    )
                assert caught[0].filename == __file__
                await anyio.sleep(10)
    assert len(errors) == 1  # children follow their parent whatever was asked, as in 0.11


def test_is_cancelation_requested_warns_and_answers() -> None:
    token = CancelationToken()
    with pytest.warns(DeprecationWarning, match=r"read token\.is_cancelled$"):
        assert token.is_cancelation_requested() is False
    token.cancel_sync()
    with pytest.warns(DeprecationWarning, match="is_cancelation_requested"):
        assert token.is_cancelation_requested() is True


# -- streams: 0.11's progress callbacks ----------------------------------------------------------


async def test_cancelable_stream_on_progress_with_0_11s_count_and_item() -> None:
    seen: list[tuple[int, int]] = []
    with pytest.warns(DeprecationWarning, match=r"0\.11's form, deprecated") as caught:
        stream = cancelable_stream(
            numbers(7),
            report_interval=3,
            on_progress=lambda count, item: seen.append((count, item)),
        )
    assert caught[0].filename == __file__
    assert [n async for n in stream] == list(range(7))
    assert seen == [(3, 2), (6, 5)]


async def test_cancelable_stream_on_progress_with_three_arguments_is_not_adapted() -> None:
    seen: list[Any] = []
    stream = cancelable_stream(
        numbers(4), report_interval=2, on_progress=lambda op_id, message, meta: seen.append(message)
    )
    assert [n async for n in stream] == [0, 1, 2, 3]
    assert seen == ["Processed 2 items", "Processed 4 items"]


async def test_chunked_stream_reports_each_chunk_as_in_0_11() -> None:
    reports: list[tuple[str, Any]] = []
    async with Cancelable() as cancel:
        cancel.on_progress(lambda op_id, message, meta: reports.append((message, meta)))
        chunks = [chunk async for chunk in chunked_cancelable_stream(numbers(7), 3, cancel)]
    assert chunks == [[0, 1, 2], [3, 4, 5], [6]]
    assert reports == [
        ("Processed chunk of 3 items", {"count": 3, "chunk_size": 3}),
        ("Processed chunk of 3 items", {"count": 6, "chunk_size": 3}),
        ("Processed final chunk of 1 items", {"count": 7, "chunk_size": 1}),
    ]


# -- exceptions raised by 0.11 code --------------------------------------------------------------


async def test_a_011_test_raising_timeout_cancelation_with_its_seconds() -> None:
    with pytest.raises(TimeoutCancelation) as info:
        async with Cancelable(name="job") as cancel:
            raise TimeoutCancelation(30.0, "took too long", cancel.context)
    assert info.value.timeout_seconds == 30.0
    assert cancel.context.cancel_message == "took too long"


# -- custom sources written for 0.11 -------------------------------------------------------------


def make_011_source() -> type[CancelationSource]:
    with pytest.warns(DeprecationWarning, match=r"implements 0\.11's start_monitoring") as caught:

        class QueueFull(CancelationSource):
            def __init__(self, queue: list[int], limit: int) -> None:
                super().__init__(CancelationReason.CONDITION, "queue-full")
                self.queue, self.limit = queue, limit

            async def start_monitoring(self, scope: anyio.CancelScope) -> None:
                await super().start_monitoring(scope)
                self._tg = anyio.create_task_group()
                await self._tg.__aenter__()
                self._tg.start_soon(self._monitor)

            async def stop_monitoring(self) -> None:
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(None, None, None)

            async def _monitor(self) -> None:
                while len(self.queue) < self.limit:  # noqa: ASYNC110  # 0.11 user code polls
                    await anyio.sleep(0.01)
                await self.trigger_cancelation(f"{len(self.queue)} items waiting")

    assert caught[0].filename == __file__
    return QueueFull


async def test_a_011_source_with_start_and_stop_monitoring_still_cancels() -> None:
    queue_full = make_011_source()
    queue: list[int] = []
    with pytest.warns(DeprecationWarning, match=r"__init__\(reason, name\) is 0\.11's form"):
        source = queue_full(queue, 3)  # type: ignore[call-arg]
    assert source.name == "queue-full"
    with pytest.raises(ConditionCancelation, match=r"^3 items waiting$"):
        async with Cancelable().add_source(source):
            for item in range(100):
                queue.append(item)
                await anyio.sleep(0.02)
    assert source.triggered  # type: ignore[attr-defined]


async def test_a_011_source_that_sets_a_deadline_on_its_scope_fires() -> None:
    with pytest.warns(DeprecationWarning, match="start_monitoring"):

        class Deadline(CancelationSource):
            def __init__(self) -> None:
                super().__init__(CancelationReason.TIMEOUT, name="deadline")

            async def start_monitoring(self, scope: anyio.CancelScope) -> None:
                await super().start_monitoring(scope)
                scope.deadline = anyio.current_time() + 0.03

    with pytest.warns(DeprecationWarning, match=r"__init__\(reason, name\)"):
        source = Deadline()
    with pytest.raises(TimeoutCancelation, match=r"^deadline cancelled its scope$"):
        async with Cancelable().add_source(source):
            await anyio.sleep(10)


def test_a_source_init_that_is_neither_form_is_refused() -> None:
    class Plain(CancelationSource):
        async def watch(self) -> None:
            await anyio.sleep_forever()

    with pytest.raises(TypeError, match=r"takes name=, or 0\.11's \(reason, name=None\)"):
        Plain("a", "b")  # type: ignore[call-overload]


# -- logging -------------------------------------------------------------------------------------


def run_011_script(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_app_without_logging_configuration_sees_no_output_from_the_library() -> None:
    # A failing callback is logged; with no handler configured, nothing reaches stderr.
    result = run_011_script(
        """
        import anyio
        from hother.cancelable import Cancelable

        def broken(context):
            raise RuntimeError("dashboard down")

        async def main():
            async with Cancelable(name="job").on_complete(broken):
                pass
            print("done")

        anyio.run(main)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert result.stderr == ""


def test_an_app_with_logging_configured_sees_the_librarys_records() -> None:
    result = run_011_script(
        """
        import logging
        import anyio
        from hother.cancelable import Cancelable

        logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")

        def broken(context):
            raise RuntimeError("dashboard down")

        async def main():
            async with Cancelable(name="job").on_complete(broken):
                pass

        anyio.run(main)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "hother.cancelable ERROR hother.cancelable: callback" in result.stderr
    assert "RuntimeError: dashboard down" in result.stderr
