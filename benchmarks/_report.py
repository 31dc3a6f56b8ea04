"""The budgets of the performance issue, checked against the medians, and the table of them.

With `bench.py --baseline REF`, also the comparison of two versions of the library: every
series the budgets name, the baseline's figure beside the current one's.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUDGETS",
    "IMPORT_BACKEND",
    "Budget",
    "Change",
    "Row",
    "Samples",
    "compare",
    "evaluate",
    "render",
    "render_changes",
]

Samples = dict[str, dict[str, list[float]]]  # backend -> series name -> samples
IMPORT_BACKEND = "none"  # the import is timed in plain subprocesses, without an event loop


@dataclass(frozen=True, slots=True)
class Budget:
    """One line of the issue's budget: `ours` against `floor`, two series of the samples."""

    measurement: str
    against: str
    ours: str
    floor: str
    unit: str  # "s" or "B"
    limit: float | None  # None: shown for reference, not checked
    extra: bool = False  # the limit bounds ours - floor (in `unit`), not ours / floor
    per_op: bool = False  # a memory figure per operation
    # Time is measured as a median; memory as the smallest round, since its noise only adds
    # (a container of the loop that happened to grow during that round). "p99": the 99th
    # percentile, for the tail of a latency.
    statistic: str = "median"
    absolute: bool = False  # the limit bounds ours alone (in `unit`); the floor is beside it


_SOURCES = {"no_await": "no await", "checkpoint": "checkpoint per item"}
_WRAPPERS = (("`cancel.stream(gen)`", "default"), ("`buffer_partial=False`", "no_buffer"))
_REYIELD = "`reyield(gen)`, a bare re-yielding generator"
_STREAM_FLOORS = {"raw": "iterating `gen` directly", "reyield": _REYIELD}


def _stream(source: str, how: str, mode: str, floor: str, limit: float | None) -> Budget:
    """`cancel.stream()` per item of `source`, against iterating it ("raw") or re-yielding it."""
    return Budget(
        f"stream per item, {_SOURCES[source]}: {how}",
        _STREAM_FLOORS[floor],
        f"stream/{source}/{mode}",
        f"stream/{source}/{floor}",
        "s",
        limit,
    )


def _stream_reference(source: str) -> Budget:
    """The re-yielding generator against iterating `source` directly: the least a wrapper adds."""
    return Budget(
        f"stream per item, {_SOURCES[source]}, reference: {_REYIELD}",
        _STREAM_FLOORS["raw"],
        f"stream/{source}/reyield",
        f"stream/{source}/raw",
        "s",
        None,
    )


_CONTEXTVAR = "CancelScope+ContextVar"  # the fan-out's side of bare scopes setting a variable
_FANOUT_PHASES = {
    "spawn": "spawn and enter all",
    "cancel": "`await shared.cancel()` until all finished",
    "total": "the whole of it (spawn, enter, cancel, all finished)",
}


def _fanout(phase: str, against: str, floor: str, limit: float | None) -> Budget:
    """A phase of the fan-out with the garbage collector on, ours against the `floor` side."""
    return Budget(
        f"fan-out: {_FANOUT_PHASES[phase]}",
        against,
        f"fanout/{phase}/Cancelable",
        f"fanout/{phase}/{floor}",
        "s",
        limit,
    )


BUDGETS: tuple[Budget, ...] = (
    Budget(
        "enter+exit `Cancelable()`",
        "`anyio.CancelScope()`",
        "enter_exit/Cancelable()",
        "enter_exit/CancelScope()",
        "s",
        None,
    ),
    *(
        Budget(
            f"enter+exit `{variant}`",
            "`anyio.fail_after(30)`",
            f"enter_exit/{key}",
            "enter_exit/fail_after(30)",
            "s",
            2.0,
        )
        for variant, key in (
            ("Cancelable()", "Cancelable()"),
            ("Cancelable.with_timeout(30)", "with_timeout(30)"),
            ("Cancelable.with_token(tok)", "with_token(tok)"),
        )
    ),
    # What one hook costs every operation: the logging hook, its logger quiet for completions.
    Budget(
        "enter+exit `Cancelable()`, `LoggingHook` set (logger at WARNING)",
        "`Cancelable()`, no hooks",
        "enter_exit/Cancelable()+LoggingHook",
        "enter_exit/Cancelable()",
        "s",
        None,
    ),
    # A source that never awaits leaves the wrapper nothing to hide behind: its floor is the
    # cheapest wrapper Python has, an async generator that re-yields.
    *(_stream("no_await", how, mode, "reyield", 1.25) for how, mode in _WRAPPERS),
    *(_stream("no_await", how, mode, "raw", None) for how, mode in _WRAPPERS),
    _stream_reference("no_await"),
    *(_stream("checkpoint", how, mode, "raw", 1.15) for how, mode in _WRAPPERS),
    _stream_reference("checkpoint"),
    Budget(
        "cancel latency: `await token.cancel()`",
        "`scope.cancel()`",
        "latency/token.cancel()",
        "latency/scope.cancel()",
        "s",
        1.5,
    ),
    Budget(
        "cancel latency from a thread: `token.cancel_sync()`",
        "`anyio.from_thread.run_sync(scope.cancel)`",
        "latency/cancel_sync()",
        "latency/from_thread.run_sync",
        "s",
        1.0,
    ),
    # current_operation() is a context variable, so the floor of the fan-out is bare scopes that
    # each set one; against bare scopes alone, for reference.
    _fanout("spawn", "bare `CancelScope()`s that each set a context variable", _CONTEXTVAR, 1.3),
    _fanout(
        "cancel",
        "bare scopes that each set a context variable, cancelled one by one",
        _CONTEXTVAR,
        1.3,
    ),
    _fanout("total", "bare scopes that each set a context variable", _CONTEXTVAR, 1.15),
    _fanout("spawn", "bare `CancelScope()`s", "CancelScope", None),
    _fanout("cancel", "bare scopes cancelled one by one", "CancelScope", None),
    _fanout("total", "bare scopes", "CancelScope", None),
    Budget(
        "fan-out, reference: spawn and enter all, bare scopes that each set a context variable",
        "bare `CancelScope()`s",
        "fanout/spawn/CancelScope+ContextVar",
        "fanout/spawn/CancelScope",
        "s",
        None,
    ),
    Budget(
        "fan-out, reference: cancel all, bare scopes that each set a context variable",
        "bare scopes cancelled one by one",
        "fanout/cancel/CancelScope+ContextVar",
        "fanout/cancel/CancelScope",
        "s",
        None,
    ),
    Budget(
        "fan-out, reference: the whole of it, bare scopes that each set a context variable",
        "bare scopes",
        "fanout/total/CancelScope+ContextVar",
        "fanout/total/CancelScope",
        "s",
        None,
    ),
    Budget(
        "fan-out, garbage collector off: spawn and enter all",
        "bare `CancelScope()`s",
        "fanout/spawn/Cancelable/gc_off",
        "fanout/spawn/CancelScope/gc_off",
        "s",
        None,
    ),
    Budget(
        "fan-out, garbage collector off: `await shared.cancel()` until all finished",
        "bare scopes cancelled one by one",
        "fanout/cancel/Cancelable/gc_off",
        "fanout/cancel/CancelScope/gc_off",
        "s",
        None,
    ),
    Budget(
        "fan-out: memory per live operation",
        "bare `CancelScope()`s",
        "fanout/live_bytes/Cancelable",
        "fanout/live_bytes/CancelScope",
        "B",
        1024.0,
        extra=True,
        per_op=True,
        statistic="min",
    ),
    Budget(
        "fan-out: memory left after all finished, per operation",
        "bare `CancelScope()`s",
        "fanout/left_bytes/Cancelable",
        "fanout/left_bytes/CancelScope",
        "B",
        1.0,  # a leak of any one object per operation is at least 16 B
        extra=True,
        per_op=True,
        statistic="min",
    ),
    # Through Redis, from another process: the target is absolute. Its floor, the same block
    # cancelled by its token in its own process and timed the same way, is shown beside it.
    *(
        Budget(
            f"remote cancel latency{tail}: `registry.cancel_operation(id)` in another process",
            "`await token.cancel()` in the block's process",
            "remote/cancel_operation()",
            "remote/token.cancel()",
            "s",
            limit,
            statistic=statistic,
            absolute=True,
        )
        for tail, statistic, limit in (("", "median", 0.002), (", p99", "p99", None))
    ),
    Budget(
        "timeout overshoot: `Cancelable.with_timeout(0.05)`",
        "`anyio.fail_after(0.05)`",
        "overshoot/with_timeout",
        "overshoot/fail_after",
        "s",
        0.0002,
        extra=True,
    ),
    Budget(
        "`import hother.cancelable`",
        "`import anyio`",
        "import/hother.cancelable",
        "import/anyio",
        "s",
        1.3,
    ),
)


@dataclass(frozen=True, slots=True)
class Row:
    """A budget measured on one backend."""

    budget: Budget
    backend: str
    ours: float  # median
    floor: float  # median
    within: bool | None  # None: no budget

    @property
    def comparison(self) -> float:
        """ours / floor, or ours - floor for a budget on the difference."""
        if self.budget.extra:
            return self.ours - self.floor
        return self.ours / self.floor if self.floor else float("inf")

    def as_json(self) -> dict[str, Any]:
        budget = self.budget
        return {
            "measurement": budget.measurement,
            "against": budget.against,
            "backend": self.backend,
            "unit": budget.unit + ("/op" if budget.per_op else ""),
            "ours": self.ours,
            "floor": self.floor,
            "comparison": "difference" if budget.extra else "ratio",
            "value": self.comparison,
            "limit": budget.limit,
            "limit_on": "ours" if budget.absolute else "comparison",
            "statistic": budget.statistic,
            "within": self.within,
        }


def _pick(budget: Budget, samples: list[float]) -> float:
    if budget.statistic == "min":
        return min(samples)
    if budget.statistic == "p99":
        if len(samples) < 2:
            return max(samples)
        return statistics.quantiles(samples, n=100, method="inclusive")[98]
    return statistics.median(samples)


def evaluate(per_backend: Samples) -> list[Row]:
    """Every budget on every backend that has its series, in the order of BUDGETS."""
    rows: list[Row] = []
    for budget in BUDGETS:
        for backend, series in per_backend.items():
            if budget.ours not in series:
                continue
            ours, floor = _pick(budget, series[budget.ours]), _pick(budget, series[budget.floor])
            row = Row(budget, backend, ours, floor, None)
            checked = ours if budget.absolute else row.comparison
            within = None if budget.limit is None else checked <= budget.limit
            if budget.ours == "fanout/left_bytes/Cancelable" and within is not None:
                # No operation may leave its callback on the shared token either.
                within = within and max(series["fanout/callbacks_left/Cancelable"]) == 0
            rows.append(Row(budget, backend, ours, floor, within))
    return rows


def _number(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 100 or value == 0:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _seconds(value: float) -> str:
    magnitude = abs(value)
    if magnitude < 1e-6:
        return f"{_number(value * 1e9)} ns"
    if magnitude < 1e-3:
        return f"{_number(value * 1e6)} µs"
    if magnitude < 1:
        return f"{_number(value * 1e3)} ms"
    return f"{_number(value)} s"


def _bytes(value: float, per_op: bool) -> str:
    suffix = "/op" if per_op else ""
    if abs(value) >= 10 * 1024:
        return f"{_number(value / 1024)} KiB{suffix}"
    return f"{_number(value)} B{suffix}"


def _amount(budget: Budget, value: float) -> str:
    return _seconds(value) if budget.unit == "s" else _bytes(value, budget.per_op)


def _signed(budget: Budget, value: float) -> str:
    return ("+" if value >= 0 else "-") + _amount(budget, abs(value))


def _limit(budget: Budget) -> str:
    if budget.limit is None:
        return "—"
    if budget.absolute:
        statistic = "" if budget.statistic == "median" else f" ({budget.statistic})"
        return f"ours ≤ {_amount(budget, budget.limit)}{statistic}"
    if budget.extra:
        return "≤ " + _signed(budget, budget.limit)
    return f"≤ {budget.limit:g}x"


def render(rows: list[Row]) -> str:
    """The markdown table: one line per budget and backend."""
    lines = [
        "| measurement | against | backend | ours | floor | ours vs floor | budget | within |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        budget = row.budget
        value = row.comparison
        shown = _signed(budget, value) if budget.extra else f"{value:.2f}x"
        within = {None: "—", True: "yes", False: "**no**"}[row.within]
        lines.append(
            f"| {budget.measurement} | {budget.against} | {row.backend} "
            f"| {_amount(budget, row.ours)} | {_amount(budget, row.floor)} "
            f"| {shown} | {_limit(budget)} | {within} |"
        )
    return "\n".join(lines)


# -- two versions of the library ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One series on one backend, measured with the baseline library and with the current one."""

    series: str
    budget: Budget  # the first budget that names the series: its unit and statistic
    backend: str
    baseline: float
    current: float

    @property
    def ratio(self) -> float | None:
        """current / baseline; None when the baseline is not above zero (memory left, say)."""
        return self.current / self.baseline if self.baseline > 0 else None

    def as_json(self) -> dict[str, Any]:
        budget = self.budget
        return {
            "series": self.series,
            "backend": self.backend,
            "unit": budget.unit + ("/op" if budget.per_op else ""),
            "statistic": budget.statistic,
            "baseline": self.baseline,
            "current": self.current,
            "ratio": self.ratio,
        }


def _named_series() -> dict[str, Budget]:
    """Every series a budget compares, ours and floor, in the order of BUDGETS."""
    named: dict[str, Budget] = {}
    for budget in BUDGETS:
        named.setdefault(budget.ours, budget)
        named.setdefault(budget.floor, budget)
    return named


def compare(baseline: Samples, current: Samples) -> list[Change]:
    """Each series the budgets name, on each backend both runs have, baseline beside current.

    The floors are in it too: they run no code of the library, so their ratios show how far
    the machine alone moved the figures between the two runs.
    """
    changes: list[Change] = []
    for name, budget in _named_series().items():
        for backend, series in current.items():
            if name in series and name in baseline.get(backend, {}):
                before = _pick(budget, baseline[backend][name])
                changes.append(Change(name, budget, backend, before, _pick(budget, series[name])))
    return changes


def render_changes(changes: list[Change]) -> str:
    """The markdown table of `compare`: one line per series and backend."""
    lines = [
        "| series | backend | baseline | current | current / baseline |",
        "|---|---|---:|---:|---:|",
    ]
    for change in changes:
        budget = change.budget
        statistic = "" if budget.statistic == "median" else f" ({budget.statistic})"
        ratio = "—" if change.ratio is None else f"{change.ratio:.2f}x"
        lines.append(
            f"| `{change.series}`{statistic} | {change.backend} "
            f"| {_amount(budget, change.baseline)} | {_amount(budget, change.current)} "
            f"| {ratio} |"
        )
    return "\n".join(lines)
