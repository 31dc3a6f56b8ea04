"""hother.cancelable against the anyio floor, on asyncio, uvloop and trio.

Run it with `nox -s bench` (docs/performance.md says what is measured and why):

    python benchmarks/bench.py [--quick] [--json PATH] [--check] [--backends asyncio,trio]
                               [--baseline REF] [--only remote,latency] [--redis-url URL]

Each backend runs in a Python process of its own (`--worker BACKEND`); the import is timed in
fresh subprocesses. The medians are printed as a markdown table against the budgets of the
performance issue and written as JSON (to benchmarks/results/ unless `--json` is given). The
exit status is 0 whatever was measured, unless `--check` is given and a budget is missed.

`--baseline REF` also measures the library as of a git ref of this repository: its `src/` is
extracted to a scratch folder, byte-compiled and put first on PYTHONPATH, so that it runs on the
same anyio, trio and uvloop, and the same benchmark code, as the current library. Per backend,
the workers run baseline, current, current, baseline; the import times of both alternate. A
second table gives each series' baseline and current figures and their ratio.

The remote cancel latency needs a Redis server: `--redis-url`, or $REDIS_URL (`nox -s bench`
starts one). Without either, it is skipped, and the run says so; the rest is measured.
`--only` measures some of it: the names of MEASURED, comma-separated.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _report import IMPORT_BACKEND, Samples, compare, evaluate, render, render_changes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # the repository, whose history --baseline reads
RESULTS = HERE / "results"
BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}
IMPORT_ROUNDS = {"full": 15, "quick": 3}
# What `--only` selects: the workers' measurements (_workloads.MEASUREMENTS, and the remote one),
# then the import times.
MEASURED = ("enter_exit", "streams", "latency", "fanout", "overshoot", "remote", "import")
REMOTE_SKIPPED = (
    "NOTE: the remote cancel latency (through Redis) is NOT measured: no Redis server was "
    "given. Pass --redis-url redis://HOST:PORT/0 or set REDIS_URL (`nox -s bench` starts a "
    "server and does)."
)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the libraries measured --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Library:
    """A version of hother.cancelable to measure, and how a subprocess gets to import it."""

    name: str  # "current" or "baseline"
    src: Path | None = None  # put first on PYTHONPATH; None: the one the environment imports
    ref: str | None = None  # the git ref it was built from, as given
    commit: str | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.src is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(self.src), env.get("PYTHONPATH")])
            )
        return env

    def check(self, imported: str) -> None:
        """Fail unless `imported`, the file a worker imported the library from, is this one's."""
        if self.src is not None and not Path(imported).resolve().is_relative_to(self.src.resolve()):
            raise SystemExit(f"the {self.name} worker imported {imported}, not from {self.src}")


CURRENT = Library("current")


def _git(*args: str) -> bytes:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)
    if done.returncode:
        message = done.stderr.decode(errors="replace").strip()
        raise SystemExit(f"git {' '.join(args)} failed: {message}")
    return done.stdout


@contextmanager
def to_measure(baseline: str | None) -> Generator[list[Library]]:
    """The libraries to measure: the current one, after the one at `baseline` if given."""
    if baseline is None:
        yield [CURRENT]
        return
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as scratch:
        yield [build_baseline(baseline, Path(scratch)), CURRENT]


def build_baseline(ref: str, scratch: Path) -> Library:
    """The library's `src/` at `ref`, extracted into `scratch` and byte-compiled.

    Only the sources are taken, not an install: the baseline then imports this environment's
    anyio, trio and uvloop. They are compiled ahead, as pip compiles an install, in the workers'
    environment, so that the workers find the byte code where they look for it.
    """
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()
    with tarfile.open(fileobj=io.BytesIO(_git("archive", "--format=tar", commit, "src"))) as tar:
        tar.extractall(scratch, filter="data")
    src = scratch / "src"
    if not (src / "hother" / "cancelable" / "__init__.py").is_file():
        raise SystemExit(f"{ref} ({commit}) has no src/hother/cancelable/__init__.py")
    library = Library("baseline", src, ref, commit)
    compile_all = [sys.executable, "-m", "compileall", "-q", str(src)]
    subprocess.run(compile_all, env=library.env(), check=True)
    _log(f"baseline: {ref} ({commit[:12]}), in {src}")
    return library


# -- one backend, in processes of its own ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What the workers measure: sizes, which measurements, the Redis server if any."""

    quick: bool
    only: frozenset[str]
    redis_url: str | None

    def worker_arguments(self) -> list[str]:
        return ["--only", ",".join(sorted(self.only)), *(["--quick"] if self.quick else [])]

    def worker_env(self, library: Library) -> dict[str, str]:
        """The URL goes in the environment, not on command lines that `ps` shows."""
        env = library.env()
        env.pop("REDIS_URL", None)
        if self.redis_url is not None:
            env["REDIS_URL"] = self.redis_url
        return env


def worker(backend: str, plan: Plan) -> None:
    """Measure `plan` on `backend` in this process; print the samples as JSON."""
    import anyio
    from _workloads import FULL, QUICK, measure_all

    import hother.cancelable

    name, options = BACKENDS[backend]
    sizes = QUICK if plan.quick else FULL
    result = anyio.run(
        measure_all, sizes, plan.only, plan.redis_url, backend=name, backend_options=options
    )
    result["library"] = hother.cancelable.__file__
    json.dump(result, sys.stdout)


def _run_worker(backend: str, plan: Plan, library: Library) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", backend, *plan.worker_arguments()]
    env = plan.worker_env(library)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, env=env)
    result = json.loads(done.stdout)
    library.check(result["library"])
    for note in result["notes"]:
        _log(f"  NOTE ({backend}, {library.name} library): {note}")
    return result


def _process_order(libraries: list[Library]) -> list[Library]:
    """A B B A: on average both sides run as early, so a drift of the machine falls on both."""
    return [*libraries, *libraries[::-1]] if len(libraries) > 1 else libraries


def run_backends(
    backends: list[str], plan: Plan, libraries: list[Library]
) -> tuple[dict[str, Samples], dict[str, str], dict[str, str]]:
    """Every backend's samples of each library, its processes' samples pooled.

    Returns the samples by library name, the event loop of each backend and the file each
    library was imported from.
    """
    samples: dict[str, Samples] = {library.name: {} for library in libraries}
    loops: dict[str, str] = {}
    files: dict[str, str] = {}
    for backend in backends:
        for library in _process_order(libraries):
            side = f", {library.name} library" if len(libraries) > 1 else ""
            _log(f"{backend}{side}, in a process of its own:")
            result = _run_worker(backend, plan, library)
            pooled = samples[library.name].setdefault(backend, {})
            for name, values in result["series"].items():
                pooled.setdefault(name, []).extend(values)
            loops[backend] = result["loop"]
            files[library.name] = result["library"]
    return samples, loops, files


# -- import time, in fresh subprocesses --------------------------------------------------------


_TIMED_IMPORT = (
    "import time; start = time.perf_counter(); import {module}; print(time.perf_counter() - start)"
)


def _import_seconds(module: str, env: dict[str, str], cwd: str) -> float:
    command = [sys.executable, "-c", _TIMED_IMPORT.format(module=module)]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return float(done.stdout)


IMPORTED = ("anyio", "hother.cancelable")


def _import_env(library: Library, scratch: str) -> dict[str, str]:
    env = library.env()
    # Byte code must be written once and then used: this machine may forbid writing it,
    # and an installed package's own __pycache__ may be read-only or absent.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(scratch) / "pycache")
    return env


def import_times(rounds: int, libraries: list[Library]) -> dict[str, dict[str, list[float]]]:
    """Seconds to import each module in a fresh interpreter, by library; alternating, cached."""
    jobs = [(library.name, module) for library in libraries for module in IMPORTED]
    series: dict[str, dict[str, list[float]]] = {
        library.name: {f"import/{module}": [] for module in IMPORTED} for library in libraries
    }
    with tempfile.TemporaryDirectory(prefix="bench-import-") as scratch:
        envs = {library.name: _import_env(library, scratch) for library in libraries}
        for name, module in jobs:  # compile and cache everything the imports touch
            _import_seconds(module, envs[name], scratch)
        for index in range(rounds):
            for name, module in jobs if index % 2 == 0 else jobs[::-1]:
                seconds = _import_seconds(module, envs[name], scratch)
                series[name][f"import/{module}"].append(seconds)
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
            name: _version(name)
            for name in ("hother-cancelable", "anyio", "trio", "uvloop", "coredis")
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
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also measure the library at this git ref (branch, tag, commit) and compare",
    )
    parser.add_argument(
        "--only",
        default=",".join(MEASURED),
        help="comma-separated, of %(default)s (`remote`: the remote cancel latency)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or None,
        metavar="URL",
        help="the Redis server of the remote cancel latency (default: $REDIS_URL; without "
        "one, it is skipped)",
    )
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    arguments.backends = [name for name in arguments.backends.split(",") if name]
    unknown = sorted(set(arguments.backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends {unknown}; choose among {list(BACKENDS)}")
    arguments.only = frozenset(name for name in arguments.only.split(",") if name)
    unknown = sorted(arguments.only - set(MEASURED))
    if unknown or not (arguments.only or arguments.worker):
        parser.error(f"--only: unknown or none {unknown}; choose among {list(MEASURED)}")
    return arguments


def _check_redis(url: str) -> None:
    """Fail now, not after minutes of other measurements, when the Redis server is missing."""
    from importlib.util import find_spec

    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"  # no password in messages
    if find_spec("coredis") is None:
        raise SystemExit(
            f"a Redis server was given ({where}), but coredis is not installed: "
            "pip install '.[redis]' (or run `nox -s bench`)"
        )
    if parts.scheme not in ("redis", "rediss"):
        return  # a unix socket: the registry says what is wrong with it
    try:
        socket.create_connection((parts.hostname or "localhost", parts.port or 6379), 5).close()
    except OSError as exc:
        raise SystemExit(f"cannot reach the Redis server at {where}: {exc}") from None


def _medians(samples: Samples) -> dict[str, dict[str, float]]:
    return {
        backend: {name: statistics.median(values) for name, values in series.items()}
        for backend, series in samples.items()
    }


def measure(
    arguments: argparse.Namespace, measured: list[Library]
) -> tuple[dict[str, Samples], dict[str, str], dict[str, str]]:
    """Samples by library (workers and import); each backend's loop; each library's file."""
    plan = Plan(arguments.quick, arguments.only - {"import"}, arguments.redis_url)
    samples, loops, files = run_backends(arguments.backends, plan, measured)
    if "import" in arguments.only:
        _log("import time, in fresh subprocesses")
        rounds = IMPORT_ROUNDS["quick" if arguments.quick else "full"]
        for name, series in import_times(rounds, measured).items():
            samples[name][IMPORT_BACKEND] = series
    return samples, loops, files


def compared(baseline: Library, imported: str, before: Samples, after: Samples) -> dict[str, Any]:
    """Print the table of the baseline against the current library; its part of the report."""
    changes = compare(before, after)
    table = render_changes(changes)
    print(f"\nThe current library against the baseline {baseline.ref} ({baseline.commit}):\n")
    print(table)
    return {
        "baseline": {
            "ref": baseline.ref,
            "commit": baseline.commit,
            "library": imported,
            "medians": _medians(before),
            "samples": before,
        },
        "comparison": {"rows": [change.as_json() for change in changes], "table": table},
    }


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    if arguments.worker:
        worker(arguments.worker, Plan(arguments.quick, arguments.only, arguments.redis_url))
        return 0

    info = machine()
    info["quick"] = arguments.quick
    info["only"] = sorted(arguments.only)
    remote = "remote" in arguments.only
    if remote and arguments.redis_url is not None:
        _check_redis(arguments.redis_url)
    skipped = remote and arguments.redis_url is None
    info["remote_skipped"] = skipped
    _log(f"benchmarking on {info['cpus']} x {info['cpu']}, Python {platform.python_version()}")
    if skipped:
        _log(REMOTE_SKIPPED)
    with to_measure(arguments.baseline) as measured:
        samples, loops, files = measure(arguments, measured)
    info["library"] = files[CURRENT.name]
    info["loops"] = loops
    info["load_after"] = _load()

    current = samples[CURRENT.name]
    rows = evaluate(current)
    table = render(rows)
    print(table)
    if skipped:
        print(f"\n{REMOTE_SKIPPED}")
    missed = [row for row in rows if row.within is False]
    report = {
        "machine": info,
        "rows": [row.as_json() for row in rows],
        "table": table,
        "medians": _medians(current),
        "samples": current,
    }
    if arguments.baseline:
        baseline = measured[0]
        report |= compared(baseline, files[baseline.name], samples[baseline.name], current)

    path: Path = arguments.json or RESULTS / f"bench-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    _log(f"\nresults written to {path}")
    _log(f"{len(missed)} of {sum(row.within is not None for row in rows)} budget checks missed")
    if arguments.quick:
        _log("(--quick: a smoke run with small sizes; its figures are not measurements)")
    return 1 if arguments.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
