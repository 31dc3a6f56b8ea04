"""Stress: threads cancel tokens while thousands of operations enter and exit on the loop.

Eight threads call `cancel_sync()` on shared tokens and on the private tokens of operations
that 50 tasks keep entering and exiting, 10,000 in all. No wake-up may be lost (an operation
waiting on a cancelled token ends CANCELLED within `BOUND` seconds), nothing may fail inside
the loop or the threads, nothing may deadlock, and no operation may report a cancellation that
none of its tokens asked for. Once a loop has finished, `cancel_sync()` on a token it used
returns quietly.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationStatus,
    cancelable_stream,
    current_operation,
)

OPERATIONS = 10_000
THREADS = 8
TASKS = 200  # tasks entering and exiting operations side by side
SHARED = 4  # shared tokens at a time; a cancelled one is replaced by a fresh one
BOUND = 5.0  # seconds an operation may wait once one of its tokens is cancelled
TOTAL_BOUND = 30.0  # seconds for all: a lost wake-up or a deadlock ends the test here
MODES = ("private", "shared", "both", "racing")


@dataclass
class Outcome:
    mode: str
    operation: Cancelable
    tokens: tuple[CancelationToken, ...]
    cancelled_at_entry: bool
    error: BaseException | None
    status: OperationStatus  # as the block ended; must not change afterwards


class Cancellers:
    """Threads that cancel private tokens handed to them, and shared tokens at random."""

    def __init__(self) -> None:
        self._private: deque[CancelationToken] = deque()  # append and popleft are atomic
        self._handed = threading.Semaphore(0)  # one release per private token handed over
        self.shared = [CancelationToken() for _ in range(SHARED)]
        self.every_shared = list(self.shared)
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(THREADS)
        ]

    def __enter__(self) -> Cancellers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(BOUND)
        assert not any(thread.is_alive() for thread in self._threads), "a canceller hangs"

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not self._stop.is_set():
                if rng.random() < 0.1:
                    rng.choice(self.shared).cancel_sync(message="shared")
                if self._handed.acquire(timeout=0.001):
                    self._private.popleft().cancel_sync(message="private")
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.errors.append(exc)

    def hand_over(self, token: CancelationToken) -> None:
        """Have a thread cancel `token` soon."""
        self._private.append(token)
        self._handed.release()

    def shared_token(self, index: int) -> CancelationToken:
        # On the loop: swap cancelled shared tokens for fresh ones (a list swap is atomic).
        if any(token.is_cancelled for token in self.shared):
            fresh = [CancelationToken() if t.is_cancelled else t for t in self.shared]
            self.every_shared.extend(t for t in fresh if t not in self.shared)
            self.shared = fresh
        return self.shared[index % SHARED]


async def run_operation(
    index: int, cancellers: Cancellers, in_flight: dict[int, tuple[CancelationToken, ...]]
) -> Outcome:
    mode = MODES[index % len(MODES)]
    private = CancelationToken()
    shared = cancellers.shared_token(index)
    if mode == "private":
        tokens: tuple[CancelationToken, ...] = (private,)
        operation = Cancelable.with_token(private)
    elif mode == "shared":
        tokens = (shared,)
        operation = Cancelable.with_token(shared)
    else:
        tokens = (private, shared)
        operation = Cancelable.with_token(private).combine(Cancelable.with_token(shared))
    cancelled_at_entry = any(token.is_cancelled for token in tokens)
    error: BaseException | None = None
    in_flight[index] = tokens
    try:
        async with operation:
            if private in tokens:
                cancellers.hand_over(private)
            if mode == "racing":  # exits while a thread may be cancelling its tokens
                await anyio.lowlevel.checkpoint()
            else:
                await anyio.sleep_forever()
    except Exception as exc:
        error = exc
    del in_flight[index]
    return Outcome(mode, operation, tokens, cancelled_at_entry, error, operation.context.status)


def check(outcome: Outcome) -> None:
    context = outcome.operation.context
    assert context.status is outcome.status, "a finished operation changed"
    if outcome.mode != "racing" or outcome.cancelled_at_entry:
        assert outcome.status is OperationStatus.CANCELLED, outcome
    if outcome.status is OperationStatus.COMPLETED:
        assert outcome.error is None
        return
    # Woken within the bound: from the first cancel of one of its tokens to the block's end.
    first = min(t.cancelled_at for t in outcome.tokens if t.cancelled_at is not None)
    assert context.end_time is not None
    assert (context.end_time - first).total_seconds() < BOUND, f"woken late: {outcome}"
    assert outcome.status is OperationStatus.CANCELLED, outcome
    assert isinstance(outcome.error, ManualCancelation), outcome
    assert outcome.error.context is context
    assert context.cancel_reason is CancelationReason.MANUAL
    # Never a lie: the message is that of one of its own tokens, which was cancelled.
    assert context.cancel_message in {t.message for t in outcome.tokens if t.is_cancelled}
    if outcome.mode == "private":
        assert context.cancel_message == "private"
    elif outcome.mode == "shared":
        assert context.cancel_message == "shared"


async def test_threads_cancelling_tokens_while_operations_enter_and_exit(
    anyio_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    loop_errors: list[dict[str, Any]] = []
    if anyio_backend[0] == "asyncio":
        import asyncio

        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(lambda loop, context: loop_errors.append(context))
    outcomes: list[Outcome] = []
    in_flight: dict[int, tuple[CancelationToken, ...]] = {}
    indexes = iter(range(OPERATIONS))

    async def enter_and_exit(cancellers: Cancellers) -> None:
        for index in indexes:
            outcomes.append(await run_operation(index, cancellers, in_flight))

    try:
        with Cancellers() as cancellers:
            with anyio.move_on_after(TOTAL_BOUND) as bound:
                async with anyio.create_task_group() as task_group:
                    for _ in range(TASKS):
                        task_group.start_soon(enter_and_exit, cancellers)
            lost = [i for i, tokens in in_flight.items() if any(t.is_cancelled for t in tokens)]
            assert not bound.cancelled_caught, (
                f"still waiting after {TOTAL_BOUND} s: {len(in_flight)} operations, "
                f"{len(lost)} of them on a cancelled token (lost wake-ups)"
            )
            await anyio.sleep(0.01)  # let wake-ups queued by late cancels run, then look
    finally:
        if anyio_backend[0] == "asyncio":
            loop.set_exception_handler(previous_handler)

    assert len(outcomes) == OPERATIONS
    for outcome in outcomes:
        check(outcome)
    by_status = dict.fromkeys(OperationStatus, 0)
    for outcome in outcomes:
        by_status[outcome.status] += 1
    assert by_status[OperationStatus.CANCELLED] >= OPERATIONS * 3 // 4  # all but `racing`
    assert cancellers.errors == []
    assert loop_errors == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    tokens = {token for outcome in outcomes for token in outcome.tokens}
    assert sum(token.callback_count for token in tokens | set(cancellers.every_shared)) == 0
    assert current_operation() is None


async def endless() -> Any:
    while True:
        yield "item"
        await anyio.lowlevel.checkpoint()


def test_cancel_sync_on_a_token_whose_loop_has_finished_returns_quietly(
    anyio_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    backend, options = anyio_backend
    token = CancelationToken()
    left_behind: list[Any] = []

    async def leave_a_listener_bound_to_this_loop() -> None:
        # An operation run step by step by a stream, left mid-way: it still listens to the
        # token, through this loop, once the loop has finished.
        items = cancelable_stream(endless(), token=token)
        left_behind.append(items)
        assert await items.__anext__() == "item"

    anyio.run(leave_a_listener_bound_to_this_loop, backend=backend, backend_options=options)
    assert token.callback_count == 1

    # Another loop, in another thread, waits on the same token meanwhile.
    waiting = threading.Event()
    ended: list[Any] = []

    async def wait_on_the_token() -> None:
        with anyio.fail_after(BOUND):
            try:
                async with Cancelable.with_token(token) as cancel:
                    waiting.set()
                    await anyio.sleep_forever()
            except ManualCancelation:
                ended.append(cancel.context.status)

    other_loop = threading.Thread(
        target=anyio.run,
        args=(wait_on_the_token,),
        kwargs={"backend": backend, "backend_options": options},
    )
    other_loop.start()
    assert waiting.wait(BOUND)
    results: list[bool] = []
    canceller = threading.Thread(target=lambda: results.append(token.cancel_sync()))
    canceller.start()
    canceller.join(BOUND)
    other_loop.join(BOUND)
    assert not canceller.is_alive()
    assert not other_loop.is_alive()
    assert results == [True]
    assert ended == [OperationStatus.CANCELLED]
    assert token.cancel_sync() is False  # and again, from this thread: quiet
    assert token.callback_count == 0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
