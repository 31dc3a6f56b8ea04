"""A deadline (the one a block's timeout sets): read on the loop's clock, or from any thread."""

from __future__ import annotations

import anyio
import anyio.to_thread

from hother.cancelable import CancelationReason
from hother.cancelable._deadline import Deadline


async def test_a_deadline_counts_from_when_it_is_made_on_the_loops_clock() -> None:
    deadline = Deadline(30)
    assert 29 < deadline.when - anyio.current_time() <= 30
    assert not deadline.passed()
    assert 29 < deadline.remaining <= 30
    assert deadline.on_this_loop() == deadline.when


async def test_a_deadline_that_passed_says_so_and_leaves_nothing_remaining() -> None:
    deadline = Deadline(0.01)
    await anyio.sleep(0.05)
    assert deadline.passed()
    assert deadline.remaining == 0.0  # never negative


async def test_another_thread_reads_the_same_deadline_on_its_own_clock() -> None:
    soon, later = Deadline(0.01), Deadline(30)
    await anyio.sleep(0.05)
    passed = await anyio.to_thread.run_sync(lambda: (soon.passed(), later.passed()))
    remaining = await anyio.to_thread.run_sync(lambda: later.remaining)
    assert passed == (True, False)
    assert 29 < remaining <= 30


async def test_a_deadline_makes_the_timeout_request_naming_the_timeout() -> None:
    request = Deadline(2.5).request()
    assert request.reason is CancelationReason.TIMEOUT
    assert request.message == "operation timed out after 2.5 s"
