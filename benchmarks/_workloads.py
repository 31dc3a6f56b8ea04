"""The measurements that run inside one event loop: ours and the anyio floor, side by side.

`bench.py --worker BACKEND` runs `measure_all` in its own process and prints the samples as
JSON. Every sample is in seconds (times) or bytes (memory); `bench.py` takes the medians.
Each timed pair alternates its two sides inside a round (the order flips every other round), so
that a drift of the machine's speed falls on both sides alike. Only the public API is imported,
so that `bench.py --baseline REF` can run the same measurements on an earlier version.
The remote cancel latency, given a Redis server, also runs `_requester.py` in a process of its
own, which asks for the cancellations through a registry of its own.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from time import monotonic, perf_counter, sleep
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.buffered import BufferedByteReceiveStream

from hother.cancelable import Cancelable, CancelationToken

if TYPE_CHECKING:  # imported when measured: a `--baseline` may predate it, coredis be absent
    from hother.cancelable.integrations.redis import RedisRegistry

__all__ = ["FULL", "MEASUREMENTS", "QUICK", "Sizes", "measure_all"]

Series = dict[str, list[float]]


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each measurement does."""

    rounds: int  # rounds of every timed pair
    enter_exit: int  # enter+exit per batch
    stream_items: int  # items per stream
    latency_samples: int  # cancellations per latency measurement and side
    fanout_tasks: int  # tasks of the fan-out
    memory_rounds: int  # traced fan-outs per side
    overshoot_samples: int  # timeouts per side
    remote_samples: int  # cancellations through Redis per side


FULL = Sizes(
    rounds=7,
    enter_exit=20_000,
    stream_items=20_000,
    latency_samples=300,
    fanout_tasks=10_000,
    memory_rounds=2,
    overshoot_samples=20,
    remote_samples=300,
)
QUICK = Sizes(
    rounds=3,
    enter_exit=2_000,
    stream_items=2_000,
    latency_samples=30,
    fanout_tasks=1_000,
    memory_rounds=1,
    overshoot_samples=5,
    remote_samples=30,
)

OVERSHOOT_DELAY = 0.05
THREAD_IDLE = 0.001  # the calling thread waits this long first, so the loop is idle in its poll


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


Measure = Callable[[], Awaitable[float]]


async def _alternate(rounds: int, pairs: list[tuple[str, Measure]]) -> Series:
    """Run every named measurement once per round, reversing the order every other round."""
    series: Series = {name: [] for name, _ in pairs}
    for index in range(rounds):
        for name, measure in pairs if index % 2 == 0 else pairs[::-1]:
            gc.collect()
            series[name].append(await measure())
    return series


# -- enter+exit, per operation: one function per variant, so no dispatch is timed -----------


async def _cancel_scope(n: int) -> float:
    start = perf_counter()
    for _ in range(n):
        with anyio.CancelScope():  # noqa: ASYNC100 - entering and leaving is what is timed
            pass
    return (perf_counter() - start) / n


async def _fail_after(n: int) -> float:
    start = perf_counter()
    for _ in range(n):
        with anyio.fail_after(30):  # noqa: ASYNC100 - entering and leaving is what is timed
            pass
    return (perf_counter() - start) / n


async def _cancelable(n: int) -> float:
    start = perf_counter()
    for _ in range(n):
        async with Cancelable():
            pass
    return (perf_counter() - start) / n


async def _cancelable_timeout(n: int) -> float:
    start = perf_counter()
    for _ in range(n):
        async with Cancelable.with_timeout(30):
            pass
    return (perf_counter() - start) / n


async def _cancelable_token(n: int, token: CancelationToken) -> float:
    start = perf_counter()
    for _ in range(n):
        async with Cancelable.with_token(token):
            pass
    return (perf_counter() - start) / n


async def _cancelable_logging_hook(n: int) -> float:
    """`Cancelable()` with the logging hook set, its logger at WARNING: the hook's calls alone."""
    import logging

    from hother.cancelable.instrumentation import LoggingHook, get_hooks, set_hooks

    quiet = logging.getLogger("bench.hother.cancelable")
    quiet.setLevel(logging.WARNING)  # a completed operation is logged at DEBUG: nothing written
    before = get_hooks()
    set_hooks([LoggingHook(quiet)])
    try:
        return await _cancelable(n)
    finally:
        set_hooks(before)


def _has_instrumentation() -> bool:
    """Is there a hooks module (not in a `--baseline` older than it)?"""
    import importlib.util

    return importlib.util.find_spec("hother.cancelable.instrumentation") is not None


async def enter_exit(sizes: Sizes) -> Series:
    n = sizes.enter_exit
    token = CancelationToken()  # long-lived: every operation registers on it and leaves it
    pairs: list[tuple[str, Measure]] = [
        ("enter_exit/CancelScope()", lambda: _cancel_scope(n)),
        ("enter_exit/Cancelable()", lambda: _cancelable(n)),
        ("enter_exit/fail_after(30)", lambda: _fail_after(n)),
        ("enter_exit/with_timeout(30)", lambda: _cancelable_timeout(n)),
        ("enter_exit/with_token(tok)", lambda: _cancelable_token(n, token)),
    ]
    if _has_instrumentation():
        pairs.append(("enter_exit/Cancelable()+LoggingHook", lambda: _cancelable_logging_hook(n)))
    for _, measure in pairs:  # warm up
        await measure()
    series = await _alternate(sizes.rounds, pairs)
    assert token.callback_count == 0, "a Cancelable left its callback on the token"
    return series


# -- streams, per item ----------------------------------------------------------------------


async def _items(n: int) -> AsyncIterator[int]:
    for item in range(n):
        yield item


async def _items_checkpoint(n: int) -> AsyncIterator[int]:
    for item in range(n):
        await anyio.lowlevel.checkpoint()
        yield item


Source = Callable[[int], AsyncIterator[int]]


async def _raw(source: Source, n: int) -> float:
    start = perf_counter()
    async for _ in source(n):
        pass
    return (perf_counter() - start) / n


async def _reyield(source: AsyncIterator[int]) -> AsyncIterator[int]:
    """The least any wrapper that sees each item can cost: an async generator that re-yields."""
    async for item in source:
        yield item


async def _reyielded(source: Source, n: int) -> float:
    start = perf_counter()
    async for _ in _reyield(source(n)):
        pass
    return (perf_counter() - start) / n


async def _streamed(source: Source, n: int, buffer_partial: bool) -> float:
    start = perf_counter()
    async with Cancelable() as cancel:
        async for _ in cancel.stream(source(n), buffer_partial=buffer_partial):
            pass
    return (perf_counter() - start) / n


def _stream_pairs(label: str, source: Source, n: int) -> list[tuple[str, Measure]]:
    return [
        (f"stream/{label}/raw", lambda: _raw(source, n)),
        (f"stream/{label}/reyield", lambda: _reyielded(source, n)),
        (f"stream/{label}/default", lambda: _streamed(source, n, True)),
        (f"stream/{label}/no_buffer", lambda: _streamed(source, n, False)),
    ]


async def streams(sizes: Sizes) -> Series:
    n = sizes.stream_items
    series: Series = {}
    for label, source in (("no_await", _items), ("checkpoint", _items_checkpoint)):
        pairs = _stream_pairs(label, source, n)
        for _, measure in pairs:
            await measure()
        series |= await _alternate(sizes.rounds, pairs)
    return series


# -- cancellation latency -------------------------------------------------------------------


class _Span:
    """From just before a cancellation is asked for to just after the block is left."""

    __slots__ = ("end", "start")

    def __init__(self) -> None:
        self.start = self.end = 0.0

    @property
    def seconds(self) -> float:
        return self.end - self.start


async def _sit_in_cancelable(
    token: CancelationToken, span: _Span, *, task_status: anyio.abc.TaskStatus[None]
) -> None:
    async with Cancelable.with_token(token, raise_on_cancel=False):
        task_status.started()
        await anyio.sleep_forever()
    span.end = perf_counter()


async def _sit_in_scope(
    span: _Span, *, task_status: anyio.abc.TaskStatus[anyio.CancelScope]
) -> None:
    with anyio.CancelScope() as scope:
        task_status.started(scope)
        await anyio.sleep_forever()
    span.end = perf_counter()


async def _token_cancel() -> float:
    token, span = CancelationToken(), _Span()
    async with anyio.create_task_group() as tg:
        await tg.start(_sit_in_cancelable, token, span)  # returns once it waits
        span.start = perf_counter()
        await token.cancel()
    return span.seconds


async def _scope_cancel() -> float:
    span = _Span()
    async with anyio.create_task_group() as tg:
        scope: anyio.CancelScope = await tg.start(_sit_in_scope, span)
        span.start = perf_counter()
        scope.cancel()
    return span.seconds


def _no_call() -> None:
    pass


class _Call:
    """A call for the caller thread to make, timed from just before it."""

    __slots__ = ("done", "fn", "span")

    def __init__(self, fn: Callable[[], object], span: _Span) -> None:
        self.fn = fn
        self.span = span
        self.done = threading.Event()

    def finished(self) -> float:
        """Wait for the call to return; the span's seconds.

        The call returns right after it acted on the loop (cancel_sync never blocks, run_sync
        returns once the loop ran it), so this wait is short and cannot deadlock.
        """
        if not self.done.wait(10):
            raise RuntimeError("the caller thread did not finish its call")
        return self.span.seconds


class _Caller:
    """A plain thread (not an anyio worker) that makes the calls it is handed, one by one."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bench caller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            sleep(THREAD_IDLE)
            call.span.start = perf_counter()
            call.fn()
            call.done.set()

    def submit(self, call: _Call) -> None:
        self._calls.put(call)

    def stop(self) -> None:
        self._calls.put(None)
        self._thread.join()


async def _thread_token_cancel(caller: _Caller) -> float:
    token, span = CancelationToken(), _Span()
    call = _Call(token.cancel_sync, span)
    async with anyio.create_task_group() as tg:
        await tg.start(_sit_in_cancelable, token, span)
        caller.submit(call)
    return call.finished()


async def _thread_scope_cancel(caller: _Caller) -> float:
    span, loop = _Span(), anyio.lowlevel.current_token()
    call = _Call(_no_call, span)
    async with anyio.create_task_group() as tg:
        scope: anyio.CancelScope = await tg.start(_sit_in_scope, span)

        def cancel_from_thread() -> None:
            anyio.from_thread.run_sync(scope.cancel, token=loop)

        call.fn = cancel_from_thread
        caller.submit(call)
    return call.finished()


async def latency(sizes: Sizes) -> Series:
    caller = _Caller()
    try:
        pairs: list[tuple[str, Measure]] = [
            ("latency/scope.cancel()", _scope_cancel),
            ("latency/token.cancel()", _token_cancel),
            ("latency/from_thread.run_sync", lambda: _thread_scope_cancel(caller)),
            ("latency/cancel_sync()", lambda: _thread_token_cancel(caller)),
        ]
        for _ in range(10):
            for _, measure in pairs:
                await measure()
        # Samples are single cancellations: alternate them one by one, not in batches.
        return await _alternate(sizes.latency_samples, pairs)
    finally:
        caller.stop()


# -- remote cancel latency: through Redis, from another process --------------------------------

REQUESTER = Path(__file__).resolve().parent / "_requester.py"
REMOTE_TIMEOUT = 10.0  # seconds any one step may take before the measurement fails
LISTED_POLL = 0.0005  # seconds between two looks for the operation's entry in Redis


def has_redis_registry() -> bool:
    """Is there a Redis registry (not in a `--baseline` older than it)?"""
    import importlib.util

    return importlib.util.find_spec("hother.cancelable.integrations.redis") is not None


def _backend_key() -> str:
    """This loop, as `bench.py --worker` and `_requester.py` name backends."""
    name = _loop_name()
    if name.startswith("trio"):
        return "trio"
    return "uvloop" if name.startswith("uvloop") else "asyncio"


class _Requester:
    """`_requester.py` in a process of its own: it is sent ids, and answers with its clock."""

    def __init__(self, process: anyio.abc.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout)

    async def line(self) -> str:
        try:
            with anyio.fail_after(REMOTE_TIMEOUT):
                return (await self._stdout.receive_until(b"\n", 4096)).decode()
        except (anyio.EndOfStream, anyio.IncompleteRead, TimeoutError):
            raise RuntimeError(
                f"{REQUESTER.name} (pid {self.process.pid}) stopped answering; its error, if "
                "any, is above"
            ) from None

    async def ask(self, operation_id: str) -> None:
        await self._stdin.send(f"{operation_id}\n".encode())

    async def stop(self) -> None:
        """Close its input, so that it leaves its registry and exits; kill it if it does not."""
        with anyio.CancelScope(shield=True):
            await self._stdin.aclose()
            with anyio.move_on_after(REMOTE_TIMEOUT) as waited:
                await self.process.wait()
            if waited.cancelled_caught:
                self.process.kill()
            await self.process.aclose()


class _Remote:
    """A remote cancellation, on time.monotonic(): the worker's readings and the requester's."""

    __slots__ = ("end", "returned", "sent", "start")

    def __init__(self) -> None:
        self.sent = 0.0  # the worker, just before it sends the id to the requester
        self.start = 0.0  # the requester, just before `cancel_operation(id)`
        self.returned = 0.0  # the requester, just after `cancel_operation(id)` returned
        self.end = 0.0  # the worker, just after the block was left

    def check(self) -> None:
        """Fail unless the two processes' readings come in the order the events did."""
        if not self.sent <= self.start <= self.end:
            raise RuntimeError(
                "time.monotonic() is not comparable across processes here: the id was sent at "
                f"{self.sent!r}, the request made at {self.start!r} (in the other process), "
                f"the block left at {self.end!r}"
            )


async def _sit_listed(
    registry: RedisRegistry,
    operation_id: str,
    token: CancelationToken,
    span: _Remote,
    *,
    task_status: anyio.abc.TaskStatus[None],
) -> None:
    """The operation: a token of its own, and the registry's source, which lists it by id."""
    cancelable = Cancelable.with_token(token, operation_id, raise_on_cancel=False)
    async with cancelable.add_source(registry.source()):
        task_status.started()
        await anyio.sleep_forever()
    span.end = monotonic()


async def _remote_cancel(registry: RedisRegistry, requester: _Requester) -> _Remote:
    operation_id, span = f"bench-{uuid.uuid4().hex}", _Remote()
    async with anyio.create_task_group() as tg:
        await tg.start(_sit_listed, registry, operation_id, CancelationToken(), span)
        await _until_listed(registry, operation_id)
        span.sent = monotonic()
        await requester.ask(operation_id)
    start, returned, live = (await requester.line()).split()
    span.start, span.returned = float(start), float(returned)
    span.check()
    if live != "1":
        raise RuntimeError(f"cancel_operation({operation_id!r}) did not find it listed")
    return span


async def _local_cancel(registry: RedisRegistry) -> float:
    """The same block, listed alike, cancelled by `await token.cancel()` from the worker."""
    operation_id, token, span = f"bench-{uuid.uuid4().hex}", CancelationToken(), _Remote()
    async with anyio.create_task_group() as tg:
        await tg.start(_sit_listed, registry, operation_id, token, span)
        await _until_listed(registry, operation_id)
        span.start = monotonic()
        await token.cancel()
    return span.end - span.start


async def _until_listed(registry: RedisRegistry, operation_id: str) -> None:
    """Wait until Redis lists the operation, as a requester that learned its id would.

    Its registry lists it from a background task, a little after its block began.
    """
    with anyio.fail_after(REMOTE_TIMEOUT):
        while await registry.get_operation(operation_id) is None:  # noqa: ASYNC110 - Redis
            await anyio.sleep(LISTED_POLL)  # is polled: nothing here is told of the listing


async def remote_latency(sizes: Sizes, url: str) -> Series:
    """`cancel_operation(id)` in the requester's process, to the exit of the block here.

    Beside it, the same block (a `Cancelable` with a token and the registry's source, listed
    in Redis) cancelled by `await token.cancel()` in this process, timed the same way. Also
    kept, for the JSON: how long the requester's `cancel_operation()` call itself took.
    """
    from hother.cancelable.integrations.redis import RedisRegistry

    namespace = f"bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # nothing else meets it there
    command = [sys.executable, str(REQUESTER), _backend_key(), namespace]
    calls: list[float] = []

    async def remote(registry: RedisRegistry, requester: _Requester) -> float:
        span = await _remote_cancel(registry, requester)
        calls.append(span.returned - span.start)
        return span.end - span.start

    env = {**os.environ, "REDIS_URL": url}  # not on its command line, which `ps` shows
    process = await anyio.open_process(command, env=env, stderr=None)  # its errors go to ours
    requester = _Requester(process)
    try:
        async with RedisRegistry(url, namespace=namespace) as registry:
            ready = (await requester.line()).strip()
            if ready != "ready":
                raise RuntimeError(f"{REQUESTER.name} said {ready!r} instead of 'ready'")
            pairs: list[tuple[str, Measure]] = [
                ("remote/token.cancel()", lambda: _local_cancel(registry)),
                ("remote/cancel_operation()", lambda: remote(registry, requester)),
            ]
            for _ in range(10):  # warm up both processes and their connections
                for _, measure in pairs:
                    await measure()
            calls.clear()
            series = await _alternate(sizes.remote_samples, pairs)
    finally:
        await requester.stop()
    series["remote/cancel_operation() call"] = calls
    return series


# -- fan-out: many operations on one token ----------------------------------------------------

Probe = Callable[[], None]


def _no_probe() -> None:
    pass


async def _fanout_cancelable(n: int, probe: Probe) -> tuple[float, float, int]:
    """(seconds to spawn and enter all, seconds from cancel to all finished, callbacks left)."""
    shared = CancelationToken()
    entered = 0
    all_in = anyio.Event()

    async def operation() -> None:
        nonlocal entered
        async with Cancelable.with_token(shared, raise_on_cancel=False):
            entered += 1
            if entered == n:
                all_in.set()
            await anyio.sleep_forever()

    spawn, cancel = _Span(), _Span()
    spawn.start = perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(operation)
        await all_in.wait()
        spawn.end = perf_counter()
        probe()
        cancel.start = perf_counter()
        await shared.cancel()
    cancel.end = perf_counter()
    return spawn.seconds, cancel.seconds, shared.callback_count


async def _fanout_scopes(n: int, probe: Probe) -> tuple[float, float, int]:
    return await _fanout_bare(n, probe, set_variable=False)


_variable: ContextVar[anyio.CancelScope | None] = ContextVar("bench", default=None)


async def _fanout_scopes_variable(n: int, probe: Probe) -> tuple[float, float, int]:
    """Bare scopes that each set and reset a context variable: what `current_operation()`
    costs any library, as a reference. Setting one allocates three objects the collector
    tracks (a mapping, its node, the reset token), which moves where its full passes land."""
    return await _fanout_bare(n, probe, set_variable=True)


async def _fanout_bare(n: int, probe: Probe, set_variable: bool) -> tuple[float, float, int]:
    scopes: list[anyio.CancelScope] = []
    entered = 0
    all_in = anyio.Event()

    async def operation() -> None:
        nonlocal entered
        with anyio.CancelScope() as scope:
            reset = _variable.set(scope) if set_variable else None
            scopes.append(scope)
            entered += 1
            if entered == n:
                all_in.set()
            try:
                await anyio.sleep_forever()
            finally:
                if reset is not None:
                    _variable.reset(reset)

    spawn, cancel = _Span(), _Span()
    spawn.start = perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(operation)
        await all_in.wait()
        spawn.end = perf_counter()
        probe()
        cancel.start = perf_counter()
        for scope in scopes:
            scope.cancel()
    cancel.end = perf_counter()
    return spawn.seconds, cancel.seconds, 0


class _Traced:
    """Traced memory while all operations are live, above what was traced before they began."""

    __slots__ = ("baseline", "live")

    def __init__(self) -> None:
        self.baseline = 0
        self.live = 0

    def probe(self) -> None:
        gc.collect()
        self.live = tracemalloc.get_traced_memory()[0] - self.baseline


async def fanout(sizes: Sizes) -> Series:
    """Timed with the garbage collector on (what programs run with) and, for reference, off.

    With n tasks alive, the collector's passes over them cost more the more objects each
    operation keeps, so the gap between the two shows what allocations cost beyond themselves.
    """
    n = sizes.fanout_tasks
    sides = [
        (f"{name}{suffix}", run, collect)
        for suffix, collect in (("", True), ("/gc_off", False))
        for name, run in (("CancelScope", _fanout_scopes), ("Cancelable", _fanout_cancelable))
    ]
    sides.append(("CancelScope+ContextVar", _fanout_scopes_variable, True))
    series: Series = {}
    for run in (_fanout_scopes, _fanout_cancelable, _fanout_scopes_variable):  # warm up, and
        await run(n, _no_probe)  # fill whatever caches the loop keeps
    for index in range(sizes.rounds):
        for side, run, collect in sides if index % 2 == 0 else sides[::-1]:
            gc.collect()
            if not collect:
                gc.disable()
            try:
                spawn, cancel, left = await run(n, _no_probe)
            finally:
                gc.enable()
            series.setdefault(f"fanout/spawn/{side}", []).append(spawn)
            series.setdefault(f"fanout/cancel/{side}", []).append(cancel)
            series.setdefault(f"fanout/total/{side}", []).append(spawn + cancel)
            series.setdefault(f"fanout/callbacks_left/{side}", []).append(left)

    # Memory, traced in runs of its own: tracemalloc slows everything down. Each side runs
    # once traced before it is measured: what that first run leaves (containers of the loop
    # that grew to hold n tasks) is capacity, not a leak.
    gc.collect()
    tracemalloc.start()
    try:
        for _, run, _ in sides[:2]:
            await run(n, _no_probe)
        for index in range(sizes.memory_rounds):
            for side, run, _ in sides[:2] if index % 2 == 0 else sides[1::-1]:
                traced = _Traced()
                gc.collect()
                traced.baseline = tracemalloc.get_traced_memory()[0]
                await run(n, traced.probe)
                gc.collect()
                left = tracemalloc.get_traced_memory()[0] - traced.baseline
                series.setdefault(f"fanout/live_bytes/{side}", []).append(traced.live / n)
                series.setdefault(f"fanout/left_bytes/{side}", []).append(left / n)
    finally:
        tracemalloc.stop()
    return series


# -- timeout overshoot ----------------------------------------------------------------------


async def _overshoot_cancelable() -> float:
    start = perf_counter()
    try:
        async with Cancelable.with_timeout(OVERSHOOT_DELAY):
            await anyio.sleep_forever()
    except TimeoutError:  # TimeoutCancelation is one
        pass
    return perf_counter() - start - OVERSHOOT_DELAY


async def _overshoot_fail_after() -> float:
    start = perf_counter()
    try:
        with anyio.fail_after(OVERSHOOT_DELAY):
            await anyio.sleep_forever()
    except TimeoutError:
        pass
    return perf_counter() - start - OVERSHOOT_DELAY


async def overshoot(sizes: Sizes) -> Series:
    pairs: list[tuple[str, Measure]] = [
        ("overshoot/fail_after", _overshoot_fail_after),
        ("overshoot/with_timeout", _overshoot_cancelable),
    ]
    return await _alternate(sizes.overshoot_samples, pairs)


# -- all of it ------------------------------------------------------------------------------


def _loop_name() -> str:
    asyncio = sys.modules.get("asyncio")
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        return f"trio {trio.__version__}"
    assert asyncio is not None
    loop = asyncio.get_running_loop()
    return f"{type(loop).__module__}.{type(loop).__qualname__}"


# The measurements, by the name `bench.py --only` knows them: (progress label, function).
MEASUREMENTS: dict[str, tuple[str, Callable[[Sizes], Awaitable[Series]]]] = {
    "enter_exit": ("enter+exit", enter_exit),
    "streams": ("streams", streams),
    "latency": ("latency", latency),
    "fanout": ("fan-out", fanout),
    "overshoot": ("timeout overshoot", overshoot),
}
REMOTE = "remote"  # the remote cancel latency: it needs a Redis server


async def measure_all(
    sizes: Sizes, only: frozenset[str] | None = None, redis_url: str | None = None
) -> dict[str, Any]:
    """The in-loop measurements `only` names (all if None), the remote one given a Redis URL.

    Returns {"loop": ..., "series": {name: [samples]}, "notes": [what was skipped, and why]}.
    """
    series: Series = {}
    notes: list[str] = []
    for key, (label, measurement) in MEASUREMENTS.items():
        if only is None or key in only:
            _progress(label)
            series |= await measurement(sizes)
    if (only is None or REMOTE in only) and redis_url is not None:  # else bench.py says why
        if not has_redis_registry():
            notes.append("remote cancel latency skipped: this library has no Redis registry")
        else:
            _progress("remote cancel latency, through Redis")
            series |= await remote_latency(sizes, redis_url)
    return {"loop": _loop_name(), "series": series, "notes": notes}
