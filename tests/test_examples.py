"""The scripts in examples/ run, and the signal example stops on a real signal from outside.

Each script is run as a subprocess with the interpreter running the tests. Stdin is
/dev/null, so no script waits for a person at a terminal. remote_cancel.py gets the suite's
Redis server in `REDIS_URL` (tests/redis_server.py), as `nox -s examples` gives it one.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The example scripts; a module whose name starts with `_` (_tour.py) only holds their helpers.
SCRIPTS = sorted(path for path in EXAMPLES.glob("*.py") if not path.name.startswith("_"))
BACKENDS = ("asyncio", "trio")
TIMEOUT = 10  # seconds; every script ends in about one


@contextmanager
def waiting_signal_example(backend: str) -> Generator[tuple[subprocess.Popen[str], list[str]]]:
    """Start signal_handling.py with --wait and yield once it printed `ready`.

    A thread collects the output line by line, so reading never blocks the test and no line
    is lost; when the block is left, the process has ended and every line is in the list.
    """
    command = [sys.executable, str(EXAMPLES / "signal_handling.py"), "--backend", backend]
    with subprocess.Popen(
        [*command, "--wait"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        lines: list[str] = []
        ready = threading.Event()

        def collect() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.strip() == "ready":
                    ready.set()

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        try:
            if not ready.wait(TIMEOUT):
                pytest.fail(f"no `ready` line within {TIMEOUT} s:\n{''.join(lines)}")
            yield proc, lines
        finally:
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(TIMEOUT)


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("backend", BACKENDS)
def test_signal_example_stops_gracefully_on_a_real_signal(
    backend: str, signum: signal.Signals
) -> None:
    with waiting_signal_example(backend) as (proc, lines):
        proc.send_signal(signum)
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert f"signal: {signum.name} (number {int(signum)})" in output, output
    assert "reason: SIGNAL" in output, output
    assert "SignalCancelation" in output, output
    assert "unexpected" not in output, output


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_example_runs_on_asyncio(script: Path, request: pytest.FixtureRequest) -> None:
    if script.name == "resource_monitoring.py" and importlib.util.find_spec("psutil") is None:
        pytest.skip("needs psutil (the resources extra)")
    if script.name == "instrumentation.py" and importlib.util.find_spec("opentelemetry") is None:
        pytest.skip("needs the OpenTelemetry SDK")
    env = dict(os.environ)
    if script.name == "remote_cancel.py":
        env["REDIS_URL"] = request.getfixturevalue("redis_server").url
    result = subprocess.run(
        [sys.executable, str(script), "--backend", "asyncio"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
