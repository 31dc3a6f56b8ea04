"""hother.cancelable against the anyio floor, on asyncio, uvloop and trio.

Run it with `nox -s bench` (docs/performance.md says what is measured and why):

    python benchmarks/bench.py [--quick] [--json PATH] [--check] [--backends asyncio,trio]

Each backend runs in a Python process of its own (`--worker BACKEND`); the import is timed in
fresh subprocesses. The medians are printed as a markdown table against the budgets of the
performance issue and written as JSON (to benchmarks/results/ unless `--json` is given). The
exit status is 0 whatever was measured, unless `--check` is given and a budget is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from _report import evaluate, render

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}
IMPORT_ROUNDS = {"full": 15, "quick": 3}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- one backend, in this process --------------------------------------------------------------


def worker(backend: str, quick: bool) -> None:
    """Measure everything on `backend` in this process; print the samples as JSON."""
    import anyio
    from _workloads import FULL, QUICK, measure_all

    import hother.cancelable

    name, options = BACKENDS[backend]
    result = anyio.run(measure_all, QUICK if quick else FULL, backend=name, backend_options=options)
    result["library"] = hother.cancelable.__file__
    json.dump(result, sys.stdout)


def _run_worker(backend: str, quick: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", backend, *(["--quick"] if quick else [])]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout)


# -- import time, in fresh subprocesses --------------------------------------------------------


_TIMED_IMPORT = (
    "import time; start = time.perf_counter(); import {module}; print(time.perf_counter() - start)"
)


def _import_seconds(module: str, env: dict[str, str], cwd: str) -> float:
    command = [sys.executable, "-c", _TIMED_IMPORT.format(module=module)]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return float(done.stdout)


def import_times(rounds: int) -> dict[str, list[float]]:
    """Seconds to import each module in a fresh interpreter, alternating, byte code cached."""
    modules = ("anyio", "hother.cancelable")
    series: dict[str, list[float]] = {f"import/{module}": [] for module in modules}
    with tempfile.TemporaryDirectory(prefix="bench-import-") as scratch:
        env = dict(os.environ)
        # Byte code must be written once and then used: this machine may forbid writing it,
        # and an installed package's own __pycache__ may be read-only or absent.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(scratch) / "pycache")
        for module in modules:  # compile and cache everything both imports touch
            _import_seconds(module, env, scratch)
        for index in range(rounds):
            for module in modules if index % 2 == 0 else modules[::-1]:
                series[f"import/{module}"].append(_import_seconds(module, env, scratch))
    return series


# -- the machine -------------------------------------------------------------------------------


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version,
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "load_before": _load(),
        "versions": {
            name: _version(name) for name in ("hother-cancelable", "anyio", "trio", "uvloop")
        },
    }


# -- all of it ---------------------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="hother.cancelable against the anyio floor.")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run, not a measurement")
    parser.add_argument("--json", type=Path, help="where to write the results")
    parser.add_argument("--check", action="store_true", help="exit 1 if a budget is missed")
    parser.add_argument(
        "--backends",
        default=",".join(name for name in BACKENDS if name != "uvloop" or sys.platform != "win32"),
        help="comma-separated, of %(default)s",
    )
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    arguments.backends = [name for name in arguments.backends.split(",") if name]
    unknown = sorted(set(arguments.backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends {unknown}; choose among {list(BACKENDS)}")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    if arguments.worker:
        worker(arguments.worker, arguments.quick)
        return 0

    info = machine()
    info["quick"] = arguments.quick
    _log(f"benchmarking on {info['cpus']} x {info['cpu']}, Python {platform.python_version()}")
    per_backend: dict[str, dict[str, list[float]]] = {}
    loops: dict[str, str] = {}
    for backend in arguments.backends:
        _log(f"{backend}, in a process of its own:")
        result = _run_worker(backend, arguments.quick)
        per_backend[backend] = result["series"]
        loops[backend] = result["loop"]
        info["library"] = result["library"]
    _log("import time, in fresh subprocesses")
    rounds = IMPORT_ROUNDS["quick" if arguments.quick else "full"]
    per_backend["none"] = import_times(rounds)
    info["loops"] = loops
    info["load_after"] = _load()

    rows = evaluate(per_backend)
    table = render(rows)
    print(table)
    missed = [row for row in rows if row.within is False]

    path: Path = arguments.json or RESULTS / f"bench-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": info,
        "rows": [row.as_json() for row in rows],
        "table": table,
        "medians": {
            backend: {name: statistics.median(samples) for name, samples in series.items()}
            for backend, series in per_backend.items()
        },
        "samples": per_backend,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    _log(f"\nresults written to {path}")
    _log(f"{len(missed)} of {sum(row.within is not None for row in rows)} budget checks missed")
    if arguments.quick:
        _log("(--quick: a smoke run with small sizes; its figures are not measurements)")
    return 1 if arguments.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
