"""Leaks: thousands of enter/exit cycles keep memory flat and leave no object behind.

Each factory runs warm-up cycles, then many more; the memory traced by tracemalloc after the
warm-up and after the rest may differ by a small constant only (one leaked `object()` per cycle
is well over it), every operation is gone once collected, the long-lived token holds no callback
and no task is left. The default run does 1,000 + 10,000 cycles per factory and backend,
`pytest -m slow` 10,000 + 100,000; with_condition, which starts a task per block, and the
cancelled blocks run 10x fewer.

Requests that change nothing (a token or an operation cancelled again and again) must cost
nothing to keep either: tens of thousands of them leave memory flat.

Each block awaits one checkpoint, as real work does: without any, the backend's cancelled timers
(asyncio's, uvloop's and trio's) pile up until the loop runs again, with a bare `anyio.CancelScope`
as much as with a Cancelable.
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import anyio.lowlevel
import pytest

from hother.cancelable import Cancelable, CancelationReason, CancelationToken, ManualCancelation

WARM_UP, CYCLES = 1_000, 10_000
SLOW_WARM_UP, SLOW_CYCLES = 10_000, 100_000
TRACED_WARM_UP = 100  # the warm-up runs untraced (faster), these few traced
ALLOWANCE = 64 * 1024  # bytes: a leak of one small object per cycle is 10x that
# A condition's task sleeps with a deadline; trio keeps up to ~1,000 cancelled deadlines in its
# heap before it prunes them (about 200 KiB), and with_condition runs 10x fewer cycles.
TASK_ALLOWANCE = 512 * 1024


def never() -> bool:
    return False


async def block(make: Callable[[CancelationToken], Cancelable], token: CancelationToken) -> None:
    async with make(token):
        await anyio.lowlevel.checkpoint()


async def cancelled_block(
    make: Callable[[CancelationToken], Cancelable], token: CancelationToken
) -> None:
    private = CancelationToken()
    with pytest.raises(ManualCancelation):
        async with make(private):
            private.cancel_sync()  # lands at the loop's next turn
            await anyio.sleep_forever()


Factory = tuple[Callable[[CancelationToken], Cancelable], Callable[..., object], int, int]

# (the factory, how one cycle runs it, how many times fewer cycles it runs, the allowance)
FACTORIES = [
    pytest.param((lambda token: Cancelable(), block, 1, ALLOWANCE), id="Cancelable()"),
    pytest.param(
        (lambda token: Cancelable.with_timeout(30), block, 1, ALLOWANCE), id="with_timeout"
    ),
    pytest.param(
        (lambda token: Cancelable.with_token(token), block, 1, ALLOWANCE),
        id="with_token on one long-lived token",
    ),
    pytest.param(
        (lambda token: Cancelable.with_condition(never, 30), block, 10, TASK_ALLOWANCE),
        id="with_condition",
    ),
    pytest.param(
        (lambda token: Cancelable.with_token(token), cancelled_block, 10, ALLOWANCE),
        id="with_token, cancelled in the block",
    ),
]


async def check_cycles(factory: Factory, warm_up: int, cycles: int) -> None:
    make, run, fewer, allowance = factory
    warm_up, cycles = warm_up // fewer, cycles // fewer
    token = CancelationToken()
    made: weakref.WeakSet[Cancelable] = weakref.WeakSet()

    def tracked(token: CancelationToken) -> Cancelable:
        operation = make(token)
        made.add(operation)
        return operation

    async def repeat(count: int) -> None:
        for _ in range(count):
            await run(tracked, token)  # type: ignore[operator]

    tasks = len(anyio.get_running_tasks())
    await repeat(warm_up)
    tracing = tracemalloc.is_tracing()  # under `python -X tracemalloc`, keep it running
    if not tracing:
        tracemalloc.start()
    try:
        await repeat(TRACED_WARM_UP)  # what the steady state allocates, traced
        gc.collect()
        after_warm_up = tracemalloc.get_traced_memory()[0]
        await repeat(cycles)
        for _ in range(3):  # the backends keep the latest operation for a turn or two
            await anyio.lowlevel.checkpoint()
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - after_warm_up
    finally:
        if not tracing:
            tracemalloc.stop()
    assert growth < allowance, f"{growth} bytes more after {cycles} cycles"
    assert len(made) == 0, f"{len(made)} operations still alive"
    assert token.callback_count == 0
    assert gc.garbage == []
    assert len(anyio.get_running_tasks()) == tasks


@pytest.mark.parametrize("factory", FACTORIES)
async def test_enter_exit_cycles_keep_memory_flat_and_leave_nothing(factory: Factory) -> None:
    await check_cycles(factory, WARM_UP, CYCLES)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("factory", FACTORIES)
async def test_a_hundred_thousand_cycles_keep_memory_flat_and_leave_nothing(
    factory: Factory,
) -> None:
    await check_cycles(factory, SLOW_WARM_UP, SLOW_CYCLES)


# -- requests that change nothing cost nothing to keep -------------------------------------------

IGNORED = 50_000  # requests after the first, each ignored
IGNORED_AWAITED = 5_000  # fewer: each is a coroutine


@contextmanager
def traced_growth() -> Iterator[Callable[[], int]]:
    """`growth()`: bytes allocated and still alive since the block began, after a collection."""
    tracing = tracemalloc.is_tracing()  # under `python -X tracemalloc`, keep it running
    if not tracing:
        tracemalloc.start()
    try:
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]

        def growth() -> int:
            gc.collect()
            return tracemalloc.get_traced_memory()[0] - start

        yield growth
    finally:
        if not tracing:
            tracemalloc.stop()


async def ignored_requests(target: str, operation: Cancelable, token: CancelationToken) -> None:
    """Request again and again what was requested already: `target` says whom, and how."""
    if target == "token.cancel_sync()":
        for _ in range(IGNORED):
            token.cancel_sync(CancelationReason.TIMEOUT, "ignored")
    elif target == "await token.cancel()":
        for _ in range(IGNORED_AWAITED):
            await token.cancel(CancelationReason.TIMEOUT, "ignored")
    elif target == "cancel.cancel_sync()":
        for _ in range(IGNORED):
            operation.cancel_sync(CancelationReason.TIMEOUT, "ignored")
    elif target == "await cancel.cancel()":
        for _ in range(IGNORED_AWAITED):
            await operation.cancel(CancelationReason.TIMEOUT, "ignored")
    else:
        assert target == "cancel.token.cancel_sync()"
        for _ in range(IGNORED):
            operation.token.cancel_sync(CancelationReason.TIMEOUT, "ignored")


@pytest.mark.parametrize(
    "target",
    [
        "token.cancel_sync()",
        "await token.cancel()",
        "cancel.cancel_sync()",
        "await cancel.cancel()",
        "cancel.token.cancel_sync()",
    ],
)
async def test_ignored_cancel_requests_cost_nothing_to_keep(target: str) -> None:
    token = CancelationToken()
    assert token.cancel_sync(message="first")
    async with Cancelable(raise_on_cancel=False) as cancel:
        assert cancel.cancel_sync(message="first")
        await ignored_requests(target, cancel, token)  # warm-up, untraced
        with traced_growth() as growth:
            await ignored_requests(target, cancel, token)  # not a checkpoint: no loop turn
            grown = growth()
        assert grown < ALLOWANCE, f"{grown} bytes kept for requests that were ignored"
        await cancel.check_cancelation()  # where the first request lands: the block ends
    assert (token.reason, token.message) == (CancelationReason.MANUAL, "first")
    assert (cancel.context.cancel_reason, cancel.context.cancel_message) == (
        CancelationReason.MANUAL,
        "first",
    )
