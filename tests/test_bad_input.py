"""Bad input (SPEC section 6): an error naming the argument and the value, nothing left behind.

One table, `CASES`, holds every public entry point of `hother.cancelable`, `.sources`,
`.streaming` and `.testing` against wrong types, negative, zero, NaN and infinite numbers, empty
lists and unknown signals. Each row is checked the same way: the call raises `TypeError` or
`ValueError`, the message contains the argument's name and the value, and nothing was left behind
(no callback on a token passed in, nothing in a registry, no signal handler changed, no coroutine
left unclosed, the operation passed in untouched).

Entering a Cancelable twice and exiting it in another task raise `RuntimeError`; they are in
tests/test_cancelable.py (test_entering_twice_is_refused_and_harmless,
test_exit_in_another_task_is_refused_and_corrupts_nothing) and tests/test_faults.py.
"""

from __future__ import annotations

import inspect
import math
import signal
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import hother.cancelable
from hother.cancelable import (
    AllOfSource,
    AnyioBridge,
    AnyOfSource,
    Cancelable,
    CancelableAsyncIterator,
    CancelationReason,
    CancelationSource,
    CancelationToken,
    CompositeSource,
    ConditionSource,
    LinkedCancelationToken,
    OperationRegistry,
    ResourceConditionSource,
    SignalSource,
    ThreadSafeRegistry,
    TimeoutSource,
    call_soon_threadsafe,
    cancel_on_signals,
    cancelable,
    cancelable_combine,
    cancelable_method,
    cancelable_stream,
    cancelable_with_condition,
    cancelable_with_signal,
    cancelable_with_token,
    chunked_cancelable_stream,
    current_operation,
    ensure_cancelable,
    streaming,
    testing,
    with_cancelable,
    with_current_operation,
    with_timeout,
)
from hother.cancelable import sources as sources_module
from hother.cancelable.streaming import StreamConfig, simulate_stream
from hother.cancelable.testing import (
    CancelationScenario,
    MockCancelationToken,
    OperationRecorder,
    assert_cancelation_within,
    create_slow_stream,
)

# -- the environment each row runs in, and what "nothing left behind" means ------------------


class Env:
    """Fresh objects for one row: what a row may pass in, and must leave as it found."""

    def __init__(self) -> None:
        self.token = CancelationToken()
        self.linked = LinkedCancelationToken()
        self.mock = MockCancelationToken()
        self.operation = Cancelable(name="passed in", register_globally=True)
        self.registry = OperationRegistry.isolated()
        self.recorder = OperationRecorder()
        self.scenario = CancelationScenario()
        self.coroutines: list[Coroutine[Any, Any, Any]] = []

    def coroutine(self) -> Coroutine[Any, Any, None]:
        async def never_awaited() -> None:
            raise AssertionError("must not run")

        made = never_awaited()
        self.coroutines.append(made)
        return made

    def state(self) -> dict[str, Any]:
        shared = OperationRegistry.get_instance()
        return {
            "tokens": [
                (token.callback_count, token.is_cancelled)
                for token in (self.token, self.linked, self.mock)
            ],
            "operation": (self.operation.context.status, self.operation.is_cancelled),
            "registries": [
                ([c.id for c in r.list_operations_sync()], len(r.get_history_sync()))
                for r in (shared, self.registry)
            ],
            "signal handlers": {s: signal.getsignal(s) for s in signal.valid_signals()},
            "recorded events": len(self.recorder.events),
            "scenario": repr(self.scenario),
            "current operation": current_operation(),
            "threads": threading.active_count(),
        }


class Items:
    """A valid async iterable that gives nothing (no async generator to finalize)."""

    def __aiter__(self) -> Items:
        return self

    async def __anext__(self) -> Any:
        raise StopAsyncIteration


class Watcher(CancelationSource):
    async def watch(self) -> None:
        raise AssertionError("must not run")


def not_async(cancelable: Any = None) -> None:
    """A plain function where an `async def` one is required."""


async def without_parameter() -> None:
    """An async function without the `cancelable` parameter that ensure_cancelable needs."""


async def body(cancel: Cancelable) -> None:
    """A valid scenario body."""


# -- the table ---------------------------------------------------------------------------------

CATCHABLE = getattr(signal, "SIGUSR1", signal.SIGINT)  # only named here: nothing is installed
UNCATCHABLE = [
    (getattr(signal, name), ValueError, name)
    for name in ("SIGKILL", "SIGSTOP")
    if hasattr(signal, name)
]


@dataclass(frozen=True)
class Case:
    entry: str  # the public name called, as users spell it
    argument: str  # what the message must name
    value: Any  # the bad value
    call: Callable[[Env, Any], object]
    error: type[Exception]
    shown: str  # how the message must show the value
    awaited: bool = False  # the entry point is a coroutine function

    def param(self) -> Any:
        shown = "10**400" if self.value is HUGE else self.shown
        return pytest.param(self, id=f"{self.entry}-{self.argument}={shown}")


CASES: list[Case] = []

Call = Callable[[Env, Any], object]


def row(
    entry: str,
    argument: str,
    value: Any,
    error: type[Exception],
    call: Call,
    *,
    shown: str | None = None,
    awaited: bool = False,
) -> None:
    shown = repr(value) if shown is None else shown
    CASES.append(Case(entry, argument, value, call, error, shown, awaited))


def rows(
    entry: str,
    argument: str,
    values: list[tuple[Any, type[Exception]]],
    call: Call,
    *,
    awaited: bool = False,
) -> None:
    for value, error in values:
        row(entry, argument, value, error, call, awaited=awaited)


NEGATIVE_NAN_INF: list[tuple[Any, type[Exception]]] = [
    (-1, ValueError),
    (-0.5, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
]
NOT_NUMBERS: list[tuple[Any, type[Exception]]] = [("1", TypeError), (True, TypeError)]
# Finite, but beyond any float: refused like infinity, not let out as an OverflowError.
HUGE = 10**400


def durations(
    entry: str,
    argument: str,
    call: Call,
    *,
    zero_ok: bool = False,
    none_ok: bool = False,
    timedelta_ok: bool = False,
    huge_ok: bool = False,
    awaited: bool = False,
) -> None:
    """Seconds: negative, NaN, infinite, not a number (and zero, None, timedeltas if refused),
    and a whole number beyond any float unless it is accepted (`huge_ok`)."""
    values = [*NEGATIVE_NAN_INF, *NOT_NUMBERS, ([1], TypeError)]
    if not huge_ok:
        values.append((HUGE, ValueError))
    if not zero_ok:
        values += [(0, ValueError), (0.0, ValueError)]
    if not none_ok:
        values.append((None, TypeError))
    if timedelta_ok:
        values += [(timedelta(0), ValueError), (timedelta(seconds=-5), ValueError)]
    else:
        values.append((timedelta(seconds=1), TypeError))
    rows(entry, argument, values, call, awaited=awaited)


def counts(entry: str, argument: str, call: Call, *, minimum: int, none_ok: bool = False) -> None:
    """Whole numbers >= minimum: below it, fractions, NaN, infinities, strings, bools."""
    values: list[tuple[Any, type[Exception]]] = [
        (minimum - 1, ValueError),
        (-5, ValueError),
        (1.5, TypeError),
        (math.nan, TypeError),
        (math.inf, TypeError),
        *NOT_NUMBERS,
    ]
    if not none_ok:
        values.append((None, TypeError))
    rows(entry, argument, values, call)


def fractions(entry: str, argument: str, call: Call, *, high: float) -> None:
    """Numbers between 0 and `high`: outside, NaN, infinities, not numbers."""
    values = [
        (-1, ValueError),
        (high + 0.5, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (-math.inf, ValueError),
        ("50", TypeError),
        (True, TypeError),
        ([50], TypeError),
    ]
    rows(entry, argument, values, call)


def optional_strs(entry: str, argument: str, call: Call) -> None:
    rows(entry, argument, [(42, TypeError), (b"bytes", TypeError)], call)


def bools(entry: str, argument: str, call: Call, *, awaited: bool = False) -> None:
    rows(
        entry,
        argument,
        [("yes", TypeError), (1, TypeError), (None, TypeError)],
        call,
        awaited=awaited,
    )


def callables(entry: str, argument: str, call: Call, *, awaited: bool = False) -> None:
    rows(
        entry,
        argument,
        [("print", TypeError), (None, TypeError), (3, TypeError)],
        call,
        awaited=awaited,
    )


def reasons_and_messages(
    entry: str, call: Callable[[Env, Any, Any], object], *, awaited: bool = False
) -> None:
    """`reason` must be a CancelationReason and `message` a str or None."""
    manual = CancelationReason.MANUAL
    for value in ("manual", 1, None):
        row(entry, "reason", value, TypeError, lambda env, v: call(env, v, None), awaited=awaited)
    for value in (42, b"bytes"):
        row(
            entry, "message", value, TypeError, lambda env, v: call(env, manual, v), awaited=awaited
        )


def signals(entry: str, call: Callable[[Env, tuple[Any, ...]], object]) -> None:
    """Unknown, uncatchable and non-number signals, first or later in the list."""
    for value, error, shown in [
        (999, ValueError, "999"),
        (0, ValueError, "0"),
        (-1, ValueError, "-1"),
        *UNCATCHABLE,
        ("SIGINT", TypeError, "'SIGINT'"),
        (2.0, TypeError, "2.0"),
        (True, TypeError, "True"),
        (None, TypeError, "None"),
    ]:
        row(entry, "signals[0]", value, error, lambda env, v: call(env, (v,)), shown=shown)
    row(entry, "signals[1]", 999, ValueError, lambda env, v: call(env, (CATCHABLE, v)))


def empty(entry: str, argument: str, value: Any, call: Call, *, shown: str = "none") -> None:
    row(entry, argument, value, ValueError, call, shown=shown)


BAD_CONSTRUCTOR_ARGS: list[tuple[str, Any]] = [
    ("operation_id", 42),
    ("name", b"bytes"),
    ("parent", "not an operation"),
    ("metadata", [("k", "v")]),
    ("register_globally", "yes"),
    ("raise_on_cancel", 0),
]

# -- Cancelable ----------------------------------------------------------------------------------

for argument, value in BAD_CONSTRUCTOR_ARGS:
    row("Cancelable", argument, value, TypeError, lambda env, v, a=argument: Cancelable(**{a: v}))
    # The factories pass their keywords through the same checks, before anything is linked.
    row(
        "Cancelable.with_timeout",
        argument,
        value,
        TypeError,
        lambda env, v, a=argument: Cancelable.with_timeout(1, **{a: v}),
    )
    row(
        "Cancelable.with_token",
        argument,
        value,
        TypeError,
        lambda env, v, a=argument: Cancelable.with_token(env.token, **{a: v}),
    )
    row(
        "Cancelable.with_signal",
        argument,
        value,
        TypeError,
        lambda env, v, a=argument: Cancelable.with_signal(CATCHABLE, **{a: v}),
    )
durations(
    "Cancelable.with_timeout",
    "timeout",
    lambda env, v: Cancelable.with_timeout(v),
    timedelta_ok=True,
)
row(
    "Cancelable.with_timeout",
    "timeout",
    0,
    ValueError,
    lambda env, v: Cancelable.with_timeout(v, register_globally=True),
)
rows(
    "Cancelable.with_token",
    "token",
    [("abc", TypeError), (None, TypeError), (Cancelable, TypeError)],
    lambda env, v: Cancelable.with_token(v),
)
signals("Cancelable.with_signal", lambda env, s: Cancelable.with_signal(*s, register_globally=True))
callables("Cancelable.with_condition", "predicate", lambda env, v: Cancelable.with_condition(v))
durations(
    "Cancelable.with_condition",
    "check_interval",
    lambda env, v: Cancelable.with_condition(bool, v),
    timedelta_ok=True,
)
optional_strs(
    "Cancelable.with_condition",
    "condition_name",
    lambda env, v: Cancelable.with_condition(bool, 1, v),
)
rows(
    "Cancelable.add_source",
    "source",
    [(5, TypeError), (None, TypeError), (Watcher, TypeError)],
    lambda env, v: env.operation.add_source(v),
)
rows(
    "Cancelable.add_token",
    "token",
    [(5, TypeError), (None, TypeError), (Cancelable(), TypeError)],
    lambda env, v: env.operation.add_token(v),
)
row(
    "Cancelable.add_token",
    "token",
    "its own",
    ValueError,
    lambda env, v: env.operation.add_token(env.operation.token),
    shown="own token",
)
bools(
    "Cancelable.on_progress",
    "include_children",
    lambda env, v: env.operation.on_progress(print, include_children=v),
)
row(
    "Cancelable.combine",
    "others[1]",
    5,
    TypeError,
    lambda env, v: env.operation.combine(Cancelable(), v),
)
row("Cancelable.combine", "others[0]", None, TypeError, lambda env, v: env.operation.combine(v))
optional_strs(
    "Cancelable.combine",
    "operation_id",
    lambda env, v: env.operation.combine(Cancelable(), operation_id=v),
)
for method in ("on_start", "on_complete", "on_cancel", "on_error", "on_progress"):
    callables(
        f"Cancelable.{method}", "callback", lambda env, v, m=method: getattr(env.operation, m)(v)
    )
reasons_and_messages("Cancelable.cancel_sync", lambda env, r, m: env.operation.cancel_sync(r, m))
reasons_and_messages(
    "Cancelable.cancel", lambda env, r, m: env.operation.cancel(r, m), awaited=True
)
callables("Cancelable.wrap", "fn", lambda env, v: env.operation.wrap(v))
callables(
    "Cancelable.run_in_thread", "fn", lambda env, v: env.operation.run_in_thread(v), awaited=True
)
bools(
    "Cancelable.run_in_thread",
    "abandon_on_cancel",
    lambda env, v: env.operation.run_in_thread(print, abandon_on_cancel=v),
    awaited=True,
)
row(
    "Cancelable.report_progress",
    "metadata",
    5,
    TypeError,
    lambda env, v: env.operation.report_progress("halfway", v),
    awaited=True,
)
rows(
    "Cancelable.stream",
    "iterator",
    # A plain iterable is a stream ([2/6]); one str or bytes is not.
    [(5, TypeError), ("ab", TypeError), (b"ab", TypeError), (None, TypeError)],
    lambda env, v: env.operation.stream(v),
)
bools(
    "Cancelable.stream",
    "in_thread",
    lambda env, v: env.operation.stream([1, 2], in_thread=v),
)
counts(
    "Cancelable.stream",
    "report_interval",
    lambda env, v: env.operation.stream(Items(), report_interval=v),
    minimum=1,
    none_ok=True,
)
bools(
    "Cancelable.stream",
    "buffer_partial",
    lambda env, v: env.operation.stream(Items(), buffer_partial=v),
)
counts(
    "Cancelable.stream",
    "buffer_limit",
    lambda env, v: env.operation.stream(Items(), buffer_limit=v),
    minimum=1,
)

# -- tokens --------------------------------------------------------------------------------------

reasons_and_messages("CancelationToken.cancel_sync", lambda env, r, m: env.token.cancel_sync(r, m))
reasons_and_messages(
    "CancelationToken.cancel", lambda env, r, m: env.token.cancel(r, m), awaited=True
)
durations(
    "CancelationToken.wait_sync",
    "timeout",
    lambda env, v: env.token.wait_sync(v),
    zero_ok=True,
    none_ok=True,
    huge_ok=True,  # it waits: tests/test_token.py::test_wait_sync_longer_than_threads_can_wait...
)
callables(
    "CancelationToken.register_callback", "callback", lambda env, v: env.token.register_callback(v)
)
rows(
    "LinkedCancelationToken.link",
    "token",
    [("x", TypeError), (None, TypeError)],
    lambda env, v: env.linked.link(v),
)
row(
    "LinkedCancelationToken.link",
    "token",
    "itself",
    ValueError,
    lambda env, v: env.linked.link(env.linked),
    shown="this token itself",
)
row(
    "LinkedCancelationToken.link",
    "preserve_reason",
    "yes",
    TypeError,
    lambda env, v: env.linked.link(env.token, preserve_reason=v),
)

# -- sources -------------------------------------------------------------------------------------

optional_strs("CancelationSource", "name", lambda env, v: Watcher(name=v))
row(
    "CancelationSource.trigger_cancelation",
    "details",
    "reason",
    TypeError,
    lambda env, v: Watcher().trigger_cancelation("stop", **{v: 1}),
    shown="reason",
)
row(
    "CancelationSource.trigger_cancelation",
    "message",
    5,
    TypeError,
    lambda env, v: Watcher().trigger_cancelation(v),
)
durations("TimeoutSource", "timeout", lambda env, v: TimeoutSource(v), timedelta_ok=True)
optional_strs("TimeoutSource", "name", lambda env, v: TimeoutSource(1, name=v))
GROUPS: dict[str, type[CancelationSource]] = {
    "AnyOfSource": AnyOfSource,
    "AllOfSource": AllOfSource,
    "CompositeSource": CompositeSource,  # AnyOfSource under its 0.11 name
}
for entry, group in GROUPS.items():
    rows(
        entry,
        "sources",
        [(5, TypeError), ("ab", TypeError), (None, TypeError)],
        lambda env, v, g=group: g(v),
    )
    empty(entry, "sources", [], lambda env, v, g=group: g(v))
    empty(entry, "sources", (), lambda env, v, g=group: g(v))
    row(entry, "sources[1]", 5, TypeError, lambda env, v, g=group: g([TimeoutSource(1), v]))
    repeated = TimeoutSource(1, name="repeated")
    row(
        entry,
        "sources",
        repeated,
        ValueError,
        lambda env, v, g=group: g([v, v]),
    )
    optional_strs(entry, "name", lambda env, v, g=group: g([TimeoutSource(1)], name=v))
callables("ConditionSource", "predicate", lambda env, v: ConditionSource(v))
durations(
    "ConditionSource", "check_interval", lambda env, v: ConditionSource(bool, v), timedelta_ok=True
)
optional_strs("ConditionSource", "condition_name", lambda env, v: ConditionSource(bool, 1, v))
for threshold in ("memory_threshold", "cpu_threshold", "disk_threshold"):
    fractions(
        "ResourceConditionSource",
        threshold,
        lambda env, v, t=threshold: ResourceConditionSource(**{t: v}),
        high=100,
    )
for threshold in (
    "process_memory_threshold",
    "available_memory_threshold",
    "process_memory_growth",
):
    counts(
        "ResourceConditionSource",
        threshold,
        lambda env, v, t=threshold: ResourceConditionSource(**{t: v}),
        minimum=1,
        none_ok=True,
    )
durations(
    "ResourceConditionSource",
    "check_interval",
    lambda env, v: ResourceConditionSource(memory_threshold=90, check_interval=v),
    timedelta_ok=True,
)
rows(
    "ResourceConditionSource",
    "disk_path",
    [(5, TypeError), (None, TypeError)],
    lambda env, v: ResourceConditionSource(disk_threshold=90, disk_path=v),
)
optional_strs(
    "ResourceConditionSource",
    "name",
    lambda env, v: ResourceConditionSource(cpu_threshold=90, name=v),
)
empty("ResourceConditionSource", "threshold", None, lambda env, v: ResourceConditionSource())
signals("SignalSource", lambda env, s: SignalSource(*s))
optional_strs("SignalSource", "name", lambda env, v: SignalSource(name=v))
signals("cancel_on_signals", lambda env, s: cancel_on_signals(env.token, *s))
rows(
    "cancel_on_signals",
    "token",
    [("abc", TypeError), (None, TypeError), (Cancelable, TypeError)],
    lambda env, v: cancel_on_signals(v),
)

# -- streams -------------------------------------------------------------------------------------

rows(
    "CancelableAsyncIterator",
    "iterator",
    [(5, TypeError), (b"1", TypeError)],
    lambda env, v: CancelableAsyncIterator(v, env.operation),
)
bools(
    "CancelableAsyncIterator",
    "in_thread",
    lambda env, v: CancelableAsyncIterator([1], env.operation, in_thread=v),
)
rows(
    "CancelableAsyncIterator",
    "cancelable",
    [(5, TypeError), (None, TypeError)],
    lambda env, v: CancelableAsyncIterator(Items(), v),
)
counts(
    "CancelableAsyncIterator",
    "buffer_limit",
    lambda env, v: CancelableAsyncIterator(Items(), env.operation, buffer_limit=v),
    minimum=1,
)
rows(
    "cancelable_stream",
    "stream",
    [(5, TypeError), ("abc", TypeError)],
    lambda env, v: cancelable_stream(v, token=env.token),
)
durations(
    "cancelable_stream",
    "timeout",
    lambda env, v: cancelable_stream(Items(), timeout=v, token=env.token),
    none_ok=True,
    timedelta_ok=True,
)
rows(
    "cancelable_stream",
    "token",
    [("x", TypeError), (Cancelable, TypeError)],
    lambda env, v: cancelable_stream(Items(), token=v),
)
counts(
    "cancelable_stream",
    "report_interval",
    lambda env, v: cancelable_stream(Items(), token=env.token, report_interval=v),
    minimum=1,
    none_ok=True,
)
row(
    "cancelable_stream",
    "on_progress",
    5,
    TypeError,
    lambda env, v: cancelable_stream(Items(), token=env.token, on_progress=v),
)
bools(
    "cancelable_stream",
    "buffer_partial",
    lambda env, v: cancelable_stream(Items(), token=env.token, buffer_partial=v),
)
bools(
    "cancelable_stream",
    "in_thread",
    lambda env, v: cancelable_stream([1], token=env.token, in_thread=v),
)
optional_strs(
    "cancelable_stream",
    "operation_id",
    lambda env, v: cancelable_stream(Items(), token=env.token, operation_id=v),
)
optional_strs(
    "cancelable_stream", "name", lambda env, v: cancelable_stream(Items(), token=env.token, name=v)
)
counts(
    "chunked_cancelable_stream",
    "chunk_size",
    lambda env, v: chunked_cancelable_stream(Items(), v, env.operation),
    minimum=1,
)
rows(
    "chunked_cancelable_stream",
    "cancelable",
    [(5, TypeError), (None, TypeError)],
    lambda env, v: chunked_cancelable_stream(Items(), 2, v),
)
rows(
    "chunked_cancelable_stream",
    "stream",
    [(5, TypeError), ("abc", TypeError)],
    lambda env, v: chunked_cancelable_stream(v, 2, env.operation),
)
bools(
    "chunked_cancelable_stream",
    "in_thread",
    lambda env, v: chunked_cancelable_stream([1], 2, env.operation, in_thread=v),
)
row(
    "chunked_cancelable_stream",
    "stream",
    5,
    TypeError,
    lambda env, v: chunked_cancelable_stream(v, 2, env.operation),
)

# -- registry ------------------------------------------------------------------------------------

counts(
    "OperationRegistry.isolated",
    "history_limit",
    lambda env, v: OperationRegistry.isolated(v),
    minimum=0,
)
row(
    "OperationRegistry.history_limit",
    "history_limit",
    -1,
    ValueError,
    lambda env, v: setattr(env.registry, "history_limit", v),
)
rows(
    "OperationRegistry.register_sync",
    "operation",
    [(5, TypeError), ("op-1", TypeError)],
    lambda env, v: env.registry.register_sync(v),
)
rows(
    "OperationRegistry.register",
    "operation",
    [(5, TypeError)],
    lambda env, v: env.registry.register(v),
    awaited=True,
)
STATUS_USERS: dict[str, Call] = {
    "list_operations_sync": lambda env, v: env.registry.list_operations_sync(status=v),
    "cancel_all_sync": lambda env, v: env.registry.cancel_all_sync(status=v),
    "get_history_sync": lambda env, v: env.registry.get_history_sync(status=v),
}
for method, status_call in STATUS_USERS.items():
    rows(
        f"OperationRegistry.{method}",
        "status",
        [("running", TypeError), (1, TypeError)],
        status_call,
    )
rows(
    "OperationRegistry.list_operations",
    "status",
    [("running", TypeError)],
    lambda env, v: env.registry.list_operations(status=v),
    awaited=True,
)
reasons_and_messages(
    "OperationRegistry.cancel_operation_sync",
    lambda env, r, m: env.registry.cancel_operation_sync("op-1", r, m),
)
reasons_and_messages(
    "OperationRegistry.cancel_all_sync", lambda env, r, m: env.registry.cancel_all_sync(None, r, m)
)
reasons_and_messages(
    "OperationRegistry.cancel_all",
    lambda env, r, m: env.registry.cancel_all(None, r, m),
    awaited=True,
)
counts(
    "OperationRegistry.get_history_sync",
    "limit",
    lambda env, v: env.registry.get_history_sync(limit=v),
    minimum=0,
    none_ok=True,
)
rows(
    "OperationRegistry.get_history",
    "limit",
    [(-1, ValueError)],
    lambda env, v: env.registry.get_history(limit=v),
    awaited=True,
)
rows(
    "OperationRegistry.get_history_sync",
    "since",
    [(5, TypeError), ("2024-01-01", TypeError)],
    lambda env, v: env.registry.get_history_sync(since=v),
)
rows(
    "OperationRegistry.cleanup_completed_sync",
    "older_than",
    [(-1, ValueError), (-0.5, ValueError), ("1", TypeError), (True, TypeError), ([1], TypeError)],
    lambda env, v: env.registry.cleanup_completed_sync(v),
)
rows(
    "OperationRegistry.cleanup_completed_sync",
    "older_than",
    [(math.nan, ValueError), (math.inf, ValueError), (timedelta(seconds=-5), ValueError)],
    lambda env, v: env.registry.cleanup_completed_sync(v),
)
rows(
    "OperationRegistry.cleanup_completed",
    "older_than",
    [("1", TypeError)],
    lambda env, v: env.registry.cleanup_completed(v),
    awaited=True,
)
bools(
    "OperationRegistry.cleanup_completed_sync",
    "keep_failed",
    lambda env, v: env.registry.cleanup_completed_sync(keep_failed=v),
)
ID_TAKERS: dict[str, Call] = {
    "get_operation_sync": lambda env, v: env.registry.get_operation_sync(v),
    "cancel_operation_sync": lambda env, v: env.registry.cancel_operation_sync(v),
    "unregister_sync": lambda env, v: env.registry.unregister_sync(v),
}
for method, id_call in ID_TAKERS.items():
    row(
        f"OperationRegistry.{method}",
        "operation_id",
        42,
        TypeError,
        id_call,
    )
row(
    "OperationRegistry.list_operations_sync",
    "parent_id",
    42,
    TypeError,
    lambda env, v: env.registry.list_operations_sync(parent_id=v),
)
row(
    "OperationRegistry.list_operations_sync",
    "name_pattern",
    42,
    TypeError,
    lambda env, v: env.registry.list_operations_sync(name_pattern=v),
)
row(
    "ThreadSafeRegistry",
    "registry",
    5,
    TypeError,
    lambda env, v: ThreadSafeRegistry(v),
)
rows(
    "ThreadSafeRegistry.list_operations",
    "status",
    [("running", TypeError)],
    lambda env, v: ThreadSafeRegistry(env.registry).list_operations(status=v),
)
reasons_and_messages(
    "ThreadSafeRegistry.cancel_all",
    lambda env, r, m: ThreadSafeRegistry(env.registry).cancel_all(None, r, m),
)

# -- threads -------------------------------------------------------------------------------------

row(
    "call_soon_threadsafe",
    "callback",
    5,
    TypeError,
    lambda env, v: call_soon_threadsafe(v),
)
row(
    "AnyioBridge.call_soon_threadsafe",
    "callback",
    5,
    TypeError,
    lambda env, v: AnyioBridge().call_soon_threadsafe(v),
)

# -- decorators ----------------------------------------------------------------------------------

DECORATORS: dict[str, Callable[..., Any]] = {
    "cancelable": lambda env, **kw: cancelable(**kw),
    "cancelable_method": lambda env, **kw: cancelable_method(**kw),
    "cancelable_with_token": lambda env, **kw: cancelable_with_token(env.token, **kw),
    "cancelable_with_signal": lambda env, **kw: cancelable_with_signal(CATCHABLE, **kw),
    "cancelable_with_condition": lambda env, **kw: cancelable_with_condition(bool, **kw),
    "cancelable_combine": lambda env, **kw: cancelable_combine(env.operation, **kw),
}
for entry, decorator in DECORATORS.items():
    optional_strs(entry, "operation_id", lambda env, v, d=decorator: d(env, operation_id=v))
    optional_strs(entry, "name", lambda env, v, d=decorator: d(env, name=v))
    bools(entry, "register_globally", lambda env, v, d=decorator: d(env, register_globally=v))
    rows(
        entry,
        "inject_param",
        [("1x", TypeError), (5, TypeError), (b"cancel", TypeError)],  # None, "": injection off
        lambda env, v, d=decorator: d(env, inject_param=v),
    )
    row(
        entry,
        "decorated function",
        not_async,
        TypeError,
        lambda env, v, d=decorator: d(env)(v),
        shown="not_async",
    )
durations(
    "cancelable", "timeout", lambda env, v: cancelable(timeout=v), none_ok=True, timedelta_ok=True
)
rows(
    "cancelable_with_token",
    "token",
    [(5, TypeError), (None, TypeError)],
    lambda env, v: cancelable_with_token(v),
)
signals("cancelable_with_signal", lambda env, s: cancelable_with_signal(*s))
callables("cancelable_with_condition", "predicate", lambda env, v: cancelable_with_condition(v))
durations(
    "cancelable_with_condition",
    "check_interval",
    lambda env, v: cancelable_with_condition(bool, v),
    timedelta_ok=True,
)
optional_strs(
    "cancelable_with_condition",
    "condition_name",
    lambda env, v: cancelable_with_condition(bool, 1, v),
)
rows(  # 0.11's name for the predicate: a bad value is refused before any warning
    "cancelable_with_condition",
    "condition",
    [("print", TypeError), (3, TypeError)],
    lambda env, v: cancelable_with_condition(condition=v),
)
row(
    "cancelable_with_condition",
    "condition",
    bool,
    TypeError,
    lambda env, v: cancelable_with_condition(bool, condition=v),
)
empty("cancelable_combine", "cancelables", (), lambda env, v: cancelable_combine(*v))
rows(
    "cancelable_combine",
    "cancelables[1]",
    [(5, TypeError), (None, TypeError)],
    lambda env, v: cancelable_combine(env.operation, v),
)
rows(
    "with_cancelable",
    "cancel",
    [(5, TypeError), (None, TypeError), (Cancelable, TypeError)],
    lambda env, v: with_cancelable(v),
)
bools("with_cancelable", "inject", lambda env, v: with_cancelable(env.operation, inject=v))
rows(
    "with_cancelable",
    "inject_param",
    [("1x", TypeError), (5, TypeError)],
    lambda env, v: with_cancelable(env.operation, inject=True, inject_param=v),
)
rows(
    "with_current_operation",
    "inject_param",
    [(5, TypeError), ("not a name", TypeError)],
    lambda env, v: with_current_operation(v),
)
row(
    "with_current_operation",
    "decorated function",
    not_async,
    TypeError,
    lambda env, v: with_current_operation()(v),
    shown="not_async",
)
durations(
    "with_timeout",
    "timeout",
    lambda env, v: with_timeout(v, env.coroutine()),
    timedelta_ok=True,
    awaited=True,
)
row("with_timeout", "coro", 5, TypeError, lambda env, v: with_timeout(1, v), awaited=True)
for keyword in ("operation_id", "name"):
    rows(
        "with_timeout",
        keyword,
        [(42, TypeError), (b"bytes", TypeError)],
        lambda env, v, k=keyword: with_timeout(1, env.coroutine(), **{k: v}),
        awaited=True,
    )
row(
    "with_timeout",
    "coro",
    not_async,
    TypeError,
    lambda env, v: with_timeout(1, v),
    shown="not_async",
    awaited=True,
)
row(
    "ensure_cancelable",
    "decorated function",
    not_async,
    TypeError,
    lambda env, v: ensure_cancelable(v),
    shown="not_async",
)
row(
    "ensure_cancelable",
    "`async def` function",
    5,
    TypeError,
    lambda env, v: ensure_cancelable(v),
)
row(
    "ensure_cancelable",
    "`cancelable` parameter",
    without_parameter,
    TypeError,
    lambda env, v: ensure_cancelable(v),
    shown="without_parameter",
)

# -- hother.cancelable.streaming -----------------------------------------------------------------

durations(
    "StreamConfig",
    "base_delay",
    lambda env, v: StreamConfig(base_delay=v),
    zero_ok=True,
)
durations(
    "StreamConfig",
    "stall_duration",
    lambda env, v: StreamConfig(stall_duration=v),
    zero_ok=True,
)
for fraction in ("jitter", "burst_probability", "stall_probability"):
    fractions("StreamConfig", fraction, lambda env, v, f=fraction: StreamConfig(**{f: v}), high=1)
for whole in ("min_tokens", "burst_length"):
    counts("StreamConfig", whole, lambda env, v, w=whole: StreamConfig(**{w: v}), minimum=1)
counts(
    "StreamConfig", "max_tokens", lambda env, v: StreamConfig(min_tokens=1, max_tokens=v), minimum=1
)
row(
    "StreamConfig",
    "max_tokens",
    2,
    ValueError,
    lambda env, v: StreamConfig(min_tokens=3, max_tokens=v),
    shown="got 2",
)
rows(
    "simulate_stream",
    "text",
    [(5, TypeError), (None, TypeError)],
    lambda env, v: simulate_stream(v),
)
rows(
    "simulate_stream",
    "config",
    [(5, TypeError), ({"base_delay": 0}, TypeError)],
    lambda env, v: simulate_stream("text", config=v),
)
rows(
    "simulate_stream",
    "seed",
    [(1.5, TypeError), (True, TypeError), ("1", TypeError)],
    lambda env, v: simulate_stream("text", seed=v),
)
row(
    "simulate_stream",
    "cancelable",
    5,
    TypeError,
    lambda env, v: simulate_stream("text", cancelable=v),
)

# -- hother.cancelable.testing -------------------------------------------------------------------

counts(
    "MockCancelationToken.cancel_after_checks",
    "checks",
    lambda env, v: env.mock.cancel_after_checks(v),
    minimum=0,
)
reasons_and_messages(
    "MockCancelationToken.cancel_after_checks",
    lambda env, r, m: env.mock.cancel_after_checks(1, r, m),
)
durations(
    "MockCancelationToken.schedule_cancel",
    "delay",
    lambda env, v: env.mock.schedule_cancel(v),
    zero_ok=True,
)
reasons_and_messages(
    "MockCancelationToken.schedule_cancel", lambda env, r, m: env.mock.schedule_cancel(1, r, m)
)
reasons_and_messages(
    "MockCancelationToken.cancel", lambda env, r, m: env.mock.cancel(r, m), awaited=True
)
rows(
    "MockCancelationToken.call_count",
    "method",
    [("cancelled", ValueError), (5, ValueError)],
    lambda env, v: env.mock.call_count(v),
)
rows(
    "OperationRecorder.attach",
    "cancelable",
    [(5, TypeError), (None, TypeError)],
    lambda env, v: env.recorder.attach(v),
)
RECORDER_LOOKUPS: dict[str, Call] = {
    "events_for": lambda env, v: env.recorder.events_for(v),
    "assert_completed": lambda env, v: env.recorder.assert_completed(v),
    "assert_cancelled": lambda env, v: env.recorder.assert_cancelled(v),
    "assert_failed": lambda env, v: env.recorder.assert_failed(v),
}
for method, lookup in RECORDER_LOOKUPS.items():
    rows(f"OperationRecorder.{method}", "operation", [(5, TypeError), (None, TypeError)], lookup)
rows(
    "OperationRecorder.assert_cancelled",
    "reason",
    [("timeout", TypeError), (1, TypeError)],
    lambda env, v: env.recorder.assert_cancelled("op-1", v),
)
rows(
    "OperationRecorder.assert_failed",
    "error",
    [((), TypeError), (int, TypeError), ((ValueError, 5), TypeError), ("ValueError", TypeError)],
    lambda env, v: env.recorder.assert_failed("op-1", v),
)
durations(
    "assert_cancelation_within",
    "min_time",
    lambda env, v: assert_cancelation_within(v, 1),
    zero_ok=True,
)
durations(
    "assert_cancelation_within",
    "max_time",
    lambda env, v: assert_cancelation_within(0, v),
    zero_ok=True,
)
row(
    "assert_cancelation_within",
    "max_time",
    1,
    ValueError,
    lambda env, v: assert_cancelation_within(2, v),
    shown="got 1",
)
rows(
    "assert_cancelation_within",
    "expected",
    [
        ((), TypeError),
        (KeyboardInterrupt, TypeError),
        (5, TypeError),
        ((ValueError, int), TypeError),
    ],
    lambda env, v: assert_cancelation_within(0, 1, v),
)
durations("CancelationScenario.after", "delay", lambda env, v: env.scenario.after(v), zero_ok=True)
rows(
    "CancelationScenario.cancel_token",
    "token",
    [(5, TypeError), (None, TypeError)],
    lambda env, v: env.scenario.cancel_token(v),
)
reasons_and_messages(
    "CancelationScenario.cancel_token",
    lambda env, r, m: env.scenario.cancel_token(env.token, r, m),
)
reasons_and_messages("CancelationScenario.cancel", lambda env, r, m: env.scenario.cancel(r, m))
rows(
    "CancelationScenario.signal",
    "signum",
    [
        (999, ValueError),
        (0, ValueError),
        ("SIGINT", TypeError),
        (2.0, TypeError),
        (True, TypeError),
    ],
    lambda env, v: env.scenario.signal(v),
)
callables("CancelationScenario.check", "fn", lambda env, v: env.scenario.check(v))
optional_strs("CancelationScenario.check", "name", lambda env, v: env.scenario.check(print, v))
rows(
    "CancelationScenario.run",
    "operation",
    [(5, TypeError), (None, TypeError)],
    lambda env, v: env.scenario.run(v, body),
    awaited=True,
)
row(
    "CancelationScenario.run",
    "operation()",
    "not built",
    TypeError,
    lambda env, v: env.scenario.run(lambda: v, body),
    awaited=True,
)
callables(
    "CancelationScenario.run",
    "body",
    lambda env, v: env.scenario.run(Cancelable(), v),
    awaited=True,
)
rows(
    "create_slow_stream",
    "items",
    [(5, TypeError), (None, TypeError)],
    lambda env, v: create_slow_stream(v),
)
durations(
    "create_slow_stream", "delay", lambda env, v: create_slow_stream([1], delay=v), zero_ok=True
)
durations(
    "create_slow_stream", "jitter", lambda env, v: create_slow_stream([1], jitter=v), zero_ok=True
)

# Public names that are not entry points to feed bad input to, and why.
NOT_ENTRY_POINTS: dict[str, str] = {
    # Records and handles the library builds and hands out; checking their fields would cost
    # the hot path (every operation builds an OperationContext).
    "OperationContext": "a record the library builds",
    "CallbackRegistration": "a handle returned by register_callback()",
    "TokenCall": "a record MockCancelationToken builds",
    "OperationEvent": "a record OperationRecorder builds",
    "ScenarioResult": "a record CancelationScenario.run() builds",
    "ScenarioStep": "a record CancelationScenario.run() builds",
    "ScheduledCancel": "built by MockCancelationToken.schedule_cancel(), checked there",
    "ExpectedCancelation": "built by assert_cancelation_within(), checked there",
    # Exceptions are raised by the library and caught by users.
    "CancelationError": "an exception",
    "ConditionCancelation": "an exception",
    "ManualCancelation": "an exception",
    "ParentCancelation": "an exception",
    "SignalCancelation": "an exception",
    "TimeoutCancelation": "an exception",
    # Enums refuse unknown values by themselves.
    "CancelationReason": "an enum",
    "OperationStatus": "an enum",
    "current_operation": "takes no arguments",
    # Types for annotating callbacks: nothing calls them.
    "ErrorCallback": "a type for annotations",
    "ErrorCallbackType": "a type for annotations",
    "ProgressCallback": "a type for annotations",
    "ProgressCallbackType": "a type for annotations",
    "StatusCallback": "a type for annotations",
    "StatusCallbackType": "a type for annotations",
}

SYNC_CASES = [case.param() for case in CASES if not case.awaited]
ASYNC_CASES = [case.param() for case in CASES if case.awaited]


def check_refusal(case: Case, error: BaseException) -> None:
    assert isinstance(error, TypeError | ValueError)
    message = str(error)
    assert case.argument in message, f"{message!r} does not name {case.argument}"
    assert case.shown in message, f"{message!r} does not show {case.shown}"


def check_nothing_left(env: Env, before: dict[str, Any]) -> None:
    assert env.state() == before
    for made in env.coroutines:
        assert inspect.getcoroutinestate(made) == inspect.CORO_CLOSED


@pytest.mark.parametrize("case", SYNC_CASES)
def test_bad_input_is_refused_naming_the_argument_and_value(case: Case) -> None:
    env = Env()
    before = env.state()
    with pytest.raises(case.error) as caught:
        case.call(env, case.value)
    check_refusal(case, caught.value)
    check_nothing_left(env, before)


@pytest.mark.parametrize("case", ASYNC_CASES)
async def test_bad_input_to_coroutine_functions_is_refused_the_same_way(case: Case) -> None:
    env = Env()
    before = env.state()
    with pytest.raises(case.error) as caught:
        await case.call(env, case.value)  # type: ignore[misc]
    check_refusal(case, caught.value)
    check_nothing_left(env, before)


def test_the_table_covers_every_public_entry_point() -> None:
    covered = {case.entry.split(".")[0] for case in CASES}
    public = {
        name
        for module in (hother.cancelable, sources_module, streaming, testing)
        for name in module.__all__
    }
    assert public - covered - set(NOT_ENTRY_POINTS) == set()
    assert covered <= public
    assert covered.isdisjoint(NOT_ENTRY_POINTS)
