"""Cancelling operations of other processes through Redis (SPEC section 9), on a real server.

Every test talks to a real redis-server that the suite starts on 127.0.0.1 (tests/redis_server.py):
the shared one of the run, under a namespace of the test's own, or one of the test's own when
it stops or restarts it. Workers and listers run in child processes, on the backend under
test; elsewhere two registries of the test process stand for two processes (each has its own
connections and subscription).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

pytest.importorskip("coredis")

import coredis

import hother.cancelable
from hother.cancelable import (
    Cancelable,
    CancelationReason,
    ConditionCancelation,
    ManualCancelation,
    OperationStatus,
    TimeoutCancelation,
)
from hother.cancelable.integrations.redis import RedisRegistry
from redis_server import RedisServer


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect what a test left at its end, so that a leak fails the test that made it.

    coredis 6.9 leaves the anyio memory streams of a connection it failed to open unclosed,
    and anyio warns of them when they are collected; the registry never asks coredis to
    connect where nothing listens (it probes first), and this keeps it honest.
    """
    yield
    gc.collect()


LIBRARY = "hother.cancelable"
SRC = str(Path(hother.cancelable.__file__).resolve().parents[2])  # the package under test
WAIT = 10.0  # seconds: how long a test waits for what should happen at once
PROMPT = 1.0  # seconds: a request reaches an operation within this, on loopback
BEAT = 0.2  # seconds: the heartbeat of registries whose tests wait for beats


# -- child processes ----------------------------------------------------------------------------

WORKER = """
import json, sys, time

import anyio

from hother.cancelable import Cancelable, CancelationError
from hother.cancelable.integrations.redis import RedisRegistry

url, namespace, operation_id, heartbeat, backend = sys.argv[1:6]
options = json.loads(sys.argv[6])


async def main() -> None:
    async with RedisRegistry(url, namespace=namespace, heartbeat=float(heartbeat)) as registry:
        try:
            source = registry.source()
            async with Cancelable(operation_id=operation_id, name="job").add_source(source):
                print("ready", flush=True)
                await anyio.sleep(60)
        except CancelationError as exc:
            at = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process
            ended = {"error": type(exc).__name__, "reason": exc.reason.value, "at": at}
            print(json.dumps({**ended, "message": exc.message}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # the registry stays until stdin closes


anyio.run(main, backend=backend, backend_options=options)
"""

LISTER = """
import json, sys

import anyio

from hother.cancelable.integrations.redis import RedisRegistry

url, namespace, backend = sys.argv[1:4]


async def main() -> None:
    async with RedisRegistry(url, namespace=namespace) as registry:
        listed = await registry.list_operations()
    print(json.dumps([
        {
            "id": context.id,
            "name": context.name,
            "status": context.status.value,
            "host": context.metadata["host"],
            "pid": context.metadata["pid"],
        }
        for context in listed
    ]))


anyio.run(main, backend=backend)
"""


class Child:
    """A Python child process running `script`, read line by line."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        self._buffer = b""

    async def line(self) -> str:
        """The next line of its output; fails the test if none comes within WAIT seconds."""
        stdout = self.process.stdout
        assert stdout is not None
        with anyio.fail_after(WAIT):
            while b"\n" not in self._buffer:
                self._buffer += await stdout.receive()
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


@asynccontextmanager
async def child(script: str, *arguments: str) -> AsyncGenerator[Child]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    process = await anyio.open_process(
        [sys.executable, "-c", script, *arguments], env=env, stderr=None
    )
    try:
        yield Child(process)
    finally:
        with anyio.CancelScope(shield=True):
            if process.stdin is not None:
                await process.stdin.aclose()
            with anyio.move_on_after(WAIT):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


def worker(
    server: RedisServer, namespace: str, operation_id: str, backend: Any, heartbeat: float = 5.0
) -> Any:
    name, options = backend
    return child(
        WORKER, server.url, namespace, operation_id, str(heartbeat), name, json.dumps(options)
    )


async def listed_elsewhere(server: RedisServer, namespace: str, backend: Any) -> list[Any]:
    """What `list_operations()` returns in a third process."""
    async with child(LISTER, server.url, namespace, backend[0]) as lister:
        return json.loads(await lister.line())


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until `check()` holds, for WAIT seconds at most."""
    with anyio.move_on_after(WAIT):
        while True:  # Redis tells nobody: ask it again and again
            if await check():
                return
            await anyio.sleep(0.01)
    pytest.fail(f"not within {WAIT} s: {what}")


def registry(server: RedisServer, namespace: str, **options: Any) -> RedisRegistry:
    return RedisRegistry(server.url, namespace=namespace, **options)


async def job(
    source_of: RedisRegistry,
    operation_id: str,
    ended: list[BaseException],
    started: anyio.Event | None = None,
) -> None:
    """An operation that waits to be cancelled; what ended it goes to `ended`."""
    try:
        async with Cancelable(operation_id=operation_id, name="job").add_source(source_of.source()):
            if started is not None:
                started.set()
            await anyio.sleep(60)
    except Exception as exc:
        ended.append(exc)


# -- across processes ---------------------------------------------------------------------------


async def test_a_worker_process_is_cancelled_by_id_from_another_process(
    redis_server: RedisServer, redis_namespace: str, anyio_backend: Any
) -> None:
    async with (
        worker(redis_server, redis_namespace, "job-42", anyio_backend) as process,
        registry(redis_server, redis_namespace) as requester,
    ):
        assert await process.line() == "ready"
        await eventually(
            lambda: _is_listed(requester, "job-42"), "the worker's operation is listed"
        )
        sent = time.monotonic()
        assert await requester.cancel_operation("job-42", message="the user aborted it") is True
        ended = json.loads(await process.line())
    assert ended["error"] == "ManualCancelation"
    assert ended["reason"] == "manual"
    assert ended["message"] == "the user aborted it"
    assert 0 <= ended["at"] - sent < PROMPT


async def test_a_request_sent_before_the_worker_starts_still_cancels_it(
    redis_server: RedisServer, redis_namespace: str, anyio_backend: Any
) -> None:
    async with registry(redis_server, redis_namespace) as requester:
        listed = await requester.cancel_operation(
            "job-7", CancelationReason.CONDITION, "the input file was deleted"
        )
        assert listed is False  # nothing runs yet: the request waits
        async with worker(redis_server, redis_namespace, "job-7", anyio_backend) as process:
            assert await process.line() == "ready"
            ended = json.loads(await process.line())
    assert ended["error"] == "ConditionCancelation"
    assert ended["reason"] == "condition"
    assert ended["message"] == "the input file was deleted"


async def test_a_third_process_lists_the_live_operation_with_host_and_pid_until_it_ends(
    redis_server: RedisServer, redis_namespace: str, anyio_backend: Any
) -> None:
    async with (
        worker(redis_server, redis_namespace, "job-9", anyio_backend) as process,
        registry(redis_server, redis_namespace) as requester,
    ):
        assert await process.line() == "ready"
        await eventually(lambda: _is_listed(requester, "job-9"), "the operation is listed")
        (entry,) = await listed_elsewhere(redis_server, redis_namespace, anyio_backend)
        assert entry == {
            "id": "job-9",
            "name": "job",
            "status": "running",
            "host": socket.gethostname(),
            "pid": process.process.pid,
        }
        await requester.cancel_operation("job-9")
        assert json.loads(await process.line())["error"] == "ManualCancelation"
        await eventually(
            lambda: _is_gone(requester, "job-9"), "the ended operation is no longer listed"
        )
        assert await listed_elsewhere(redis_server, redis_namespace, anyio_backend) == []


async def test_a_killed_worker_disappears_after_three_missed_heartbeats(
    redis_server: RedisServer, redis_namespace: str, anyio_backend: Any
) -> None:
    heartbeat = 0.5
    async with (
        worker(redis_server, redis_namespace, "job-3", anyio_backend, heartbeat) as process,
        registry(redis_server, redis_namespace) as observer,
    ):
        assert await process.line() == "ready"
        await eventually(lambda: _is_listed(observer, "job-3"), "the operation is listed")
        await anyio.sleep(heartbeat * 2)  # beats have refreshed the entry meanwhile
        assert await _is_listed(observer, "job-3")
        process.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        assert await _is_listed(observer, "job-3")  # it has at least two beats left
        await eventually(lambda: _is_gone(observer, "job-3"), "the killed worker's entry expired")
        gone_after = time.monotonic() - killed
    assert heartbeat < gone_after < heartbeat * 3 + 2.0


async def _is_listed(registry: RedisRegistry, operation_id: str) -> bool:
    return await registry.get_operation(operation_id) is not None


async def _is_gone(registry: RedisRegistry, operation_id: str) -> bool:
    listed = [context.id for context in await registry.list_operations()]
    return operation_id not in listed and await registry.get_operation(operation_id) is None


# -- in one process: two registries stand for two processes -----------------------------------


async def test_the_requester_reason_and_message_reach_the_operation(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    cases = [
        (CancelationReason.MANUAL, "stop", ManualCancelation),
        (CancelationReason.CONDITION, "disk full", ConditionCancelation),
        (CancelationReason.TIMEOUT, "the caller gave up", TimeoutCancelation),
        (CancelationReason.MANUAL, None, ManualCancelation),
    ]
    async with (
        registry(redis_server, redis_namespace) as running,
        registry(redis_server, redis_namespace) as requester,
    ):
        for number, (reason, message, error) in enumerate(cases):
            ended: list[BaseException] = []
            async with anyio.create_task_group() as group:
                group.start_soon(job, running, f"op-{number}", ended)
                await eventually(lambda: _is_listed(requester, f"op-{number}"), "listed")  # noqa: B023
                assert await requester.cancel_operation(f"op-{number}", reason, message)
            (exc,) = ended
            assert type(exc) is error
            assert exc.reason is reason
            assert exc.message == message
            assert exc.context is not None
            assert exc.context.status is OperationStatus.CANCELLED


async def test_listing_shows_running_snapshots_oldest_first_with_host_pid_and_metadata(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    async with registry(redis_server, redis_namespace) as here:
        assert await here.list_operations() == []
        assert await here.get_operation("nothing") is None
        async with anyio.create_task_group() as group:
            for name in ("first", "second"):
                operation = Cancelable(
                    operation_id=name, name=f"the {name}", metadata={"job": name, "bad": object()}
                )

                async def run(operation: Cancelable = operation) -> None:
                    async with operation.add_source(here.source()):
                        await anyio.sleep(60)

                group.start_soon(run)
                await eventually(lambda: _is_listed(here, name), name)  # noqa: B023
                await anyio.sleep(0.01)  # distinct start times
            listed = await here.list_operations()
            assert [context.id for context in listed] == ["first", "second"]
            for context in listed:
                assert context.status is OperationStatus.RUNNING
                assert context.name == f"the {context.id}"
                assert context.start_time is not None
                # What JSON cannot carry stays home; host and pid are the registry's own.
                assert context.metadata == {
                    "job": context.id,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                }
            single = await here.get_operation("second")
            assert single is not None
            assert single.name == "the second"
            assert single.start_time == listed[1].start_time
            group.cancel_scope.cancel()
        await eventually(lambda: _is_gone(here, "first"), "the first is removed")
        await eventually(lambda: _is_gone(here, "second"), "the second is removed")


async def test_a_request_is_kept_for_request_ttl_only(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    async with (
        registry(redis_server, redis_namespace) as running,
        registry(redis_server, redis_namespace, request_ttl=0.3) as requester,
    ):
        assert await requester.cancel_operation("late", message="too late") is False
        await anyio.sleep(0.6)  # the request expires: an operation starting now runs
        async with Cancelable(operation_id="late").add_source(running.source()) as operation:
            # Listed: its registration has looked for a request; a little grace to apply it.
            await eventually(lambda: _is_listed(requester, "late"), "listed")
            await anyio.sleep(0.1)
        assert operation.context.status is OperationStatus.COMPLETED


async def test_the_first_request_for_an_id_is_the_one_kept(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    async with (
        registry(redis_server, redis_namespace) as running,
        registry(redis_server, redis_namespace) as requester,
    ):
        await requester.cancel_operation("twice", CancelationReason.MANUAL, "the first")
        await requester.cancel_operation("twice", CancelationReason.CONDITION, "the second")
        with pytest.raises(ManualCancelation, match="the first"):
            async with Cancelable(operation_id="twice").add_source(running.source()):
                await anyio.sleep(WAIT)


async def test_a_request_that_cancelled_an_operation_goes_with_it(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    # A job retried under the same id is not cancelled again by the request of the first run.
    async with (
        registry(redis_server, redis_namespace) as running,
        registry(redis_server, redis_namespace) as requester,
    ):
        await requester.cancel_operation("retried", message="abort the first run")
        with pytest.raises(ManualCancelation):
            async with Cancelable(operation_id="retried").add_source(running.source()):
                await anyio.sleep(WAIT)
        await eventually(lambda: _is_gone(requester, "retried"), "the first run is removed")
        async with Cancelable(operation_id="retried").add_source(running.source()) as again:
            # Listed: its registration has looked for a request; a little grace to apply it.
            await eventually(lambda: _is_listed(requester, "retried"), "listed")
            await anyio.sleep(0.1)
        assert again.context.status is OperationStatus.COMPLETED


async def test_an_operation_that_ends_by_itself_is_removed_and_ignores_later_requests(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    async with (
        registry(redis_server, redis_namespace) as running,
        registry(redis_server, redis_namespace) as requester,
    ):
        async with Cancelable(operation_id="quick", name="quick").add_source(running.source()):
            await eventually(lambda: _is_listed(requester, "quick"), "listed")
        await eventually(lambda: _is_gone(requester, "quick"), "removed")
        assert await requester.cancel_operation("quick") is False


async def test_many_operations_share_one_subscription_and_a_few_connections(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    count = 1000
    async with registry(redis_server, redis_namespace) as here:
        ended: list[BaseException] = []
        async with anyio.create_task_group() as group:
            for number in range(count):
                group.start_soon(job, here, f"many-{number}", ended)

            async def all_listed() -> bool:
                return len(await here.list_operations()) == count

            await eventually(all_listed, f"{count} operations listed")
            async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as admin:
                clients = await admin.client_list()
                ours = [c for c in clients if c["name"].startswith(f"{redis_namespace}:")]
                subscribed = await admin.pubsub_numsub(f"{redis_namespace}:requests")
            assert subscribed == {f"{redis_namespace}:requests": 1}
            assert 1 <= len(ours) <= 5, ours
            assert await here.cancel_operation("many-500", message="just this one")
            await eventually(_counted(ended, 1), "the one operation asked ends")
            assert [exc.message for exc in ended if isinstance(exc, ManualCancelation)] == [
                "just this one"
            ]
            group.cancel_scope.cancel()


def _counted(items: list[Any], count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(items) >= count

    return check


# -- faults -------------------------------------------------------------------------------------


async def test_a_request_sent_after_a_redis_restart_still_reaches_the_operation(
    redis_namespace: str,
) -> None:
    with RedisServer() as server:
        async with registry(server, redis_namespace, heartbeat=BEAT) as running:
            ended: list[BaseException] = []
            started = anyio.Event()
            async with anyio.create_task_group() as group:
                group.start_soon(job, running, "survivor", ended, started)
                await started.wait()
                async with registry(server, redis_namespace) as observer:
                    await eventually(lambda: _is_listed(observer, "survivor"), "listed")
                await anyio.to_thread.run_sync(server.restart)  # nothing kept: no persistence
                async with registry(server, redis_namespace) as requester:
                    # Its entry is written again at the next beat, then the request lands.
                    await eventually(
                        lambda: _is_listed(requester, "survivor"), "listed again after restart"
                    )
                    sent = time.monotonic()
                    assert await requester.cancel_operation("survivor", message="after restart")
                    await eventually(_counted(ended, 1), "the operation is cancelled")
                    assert time.monotonic() - sent < PROMPT + BEAT
    (exc,) = ended
    assert isinstance(exc, ManualCancelation)
    assert exc.message == "after restart"


async def test_a_request_sent_while_the_operation_s_process_reconnects_lands_on_reconnect(
    redis_namespace: str,
) -> None:
    with RedisServer() as server:
        async with registry(server, redis_namespace, heartbeat=BEAT) as running:
            ended: list[BaseException] = []
            started = anyio.Event()
            async with anyio.create_task_group() as group:
                group.start_soon(job, running, "away", ended, started)
                await started.wait()
                await anyio.to_thread.run_sync(server.stop)
                await anyio.sleep(BEAT * 2)  # the operation's registry has lost Redis
                assert ended == []  # operations run on meanwhile
                await anyio.to_thread.run_sync(server.start)
                async with registry(server, redis_namespace) as requester:
                    # Sent before the operation's registry is back: kept for request_ttl.
                    await requester.cancel_operation("away", message="while you were away")
                    await eventually(_counted(ended, 1), "the operation is cancelled")
    (exc,) = ended
    assert isinstance(exc, ManualCancelation)
    assert exc.message == "while you were away"


async def test_entering_with_redis_unreachable_raises_a_clear_error_naming_the_url() -> None:
    with RedisServer() as server:
        url = server.url.replace("redis://", "redis://user:secret@")
    # The server is stopped: nothing listens on its port any more.
    with pytest.raises(ConnectionError) as caught:
        async with RedisRegistry(url):
            pytest.fail("entered")
    message = str(caught.value)
    assert message.startswith(
        f"RedisRegistry: cannot reach Redis at redis://user:***@127.0.0.1:{server.port}/0"
    )
    assert "secret" not in message


async def test_on_unavailable_ignore_runs_operations_unwatched_and_warns_once(
    redis_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LIBRARY)
    server = RedisServer()  # not started yet
    async with registry(server, redis_namespace, on_unavailable="ignore", heartbeat=BEAT) as here:
        for _ in range(3):
            async with Cancelable(operation_id="unwatched").add_source(here.source()) as op:
                await anyio.sleep(BEAT)
            assert op.context.status is OperationStatus.COMPLETED
        warnings = [r for r in caplog.records if r.name == LIBRARY]
        assert len(warnings) == 1
        assert warnings[0].levelno == logging.WARNING
        assert f"cannot reach Redis at {server.url}" in warnings[0].getMessage()
        # Redis comes up: the registry connects, and operations are watched again.
        await anyio.to_thread.run_sync(server.start)
        try:
            ended: list[BaseException] = []
            async with anyio.create_task_group() as group:
                group.start_soon(job, here, "watched", ended)
                async with registry(server, redis_namespace) as requester:
                    await eventually(lambda: _is_listed(requester, "watched"), "listed")
                    await requester.cancel_operation("watched", message="found you")
                    await eventually(_counted(ended, 1), "cancelled")
            assert [str(exc) for exc in ended] == ["found you"]
        finally:
            await anyio.to_thread.run_sync(server.stop)


async def test_calls_on_a_registry_that_lost_redis_raise_a_clear_error(
    redis_namespace: str,
) -> None:
    with RedisServer() as server:
        async with registry(server, redis_namespace) as here:
            await anyio.to_thread.run_sync(server.stop)
            calls: list[Callable[[], Awaitable[Any]]] = [
                lambda: here.cancel_operation("x"),
                here.list_operations,
                lambda: here.get_operation("x"),
            ]
            for call in calls:
                with pytest.raises(ConnectionError, match=f"cannot reach Redis at {server.url}"):
                    await call()


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"url": 6379}, TypeError, "url must be a str, got 6379"),
        ({"url": "http://localhost"}, ValueError, "url must be a redis://.*'http://localhost'"),
        ({"namespace": ""}, ValueError, "namespace must not be empty, got ''"),
        ({"namespace": 3}, TypeError, "namespace must be a str, got 3"),
        ({"heartbeat": 0}, ValueError, "heartbeat must be a positive, finite number .* got 0"),
        ({"heartbeat": "5"}, TypeError, "heartbeat must be a number of seconds .* got '5'"),
        ({"request_ttl": float("nan")}, ValueError, "request_ttl must be .* got nan"),
        ({"on_unavailable": "retry"}, ValueError, "on_unavailable must be .* got 'retry'"),
    ],
)
def test_bad_arguments_are_refused_by_name_and_value(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RedisRegistry(**options)


async def test_bad_requests_are_refused_before_anything_is_sent(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    async with registry(redis_server, redis_namespace) as here:
        with pytest.raises(ValueError, match="operation_id must not be empty, got ''"):
            await here.cancel_operation("")
        with pytest.raises(TypeError, match="operation_id must be a str, got 42"):
            await here.cancel_operation(42)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="reason must be a CancelationReason, got 'manual'"):
            await here.cancel_operation("x", "manual")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        with pytest.raises(TypeError, match="message must be a str or None, got 3"):
            await here.cancel_operation("x", message=3)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as admin:
            assert await admin.keys(f"{redis_namespace}:*") == set()  # nothing half-sent


async def test_a_source_of_a_registry_that_is_not_open_refuses_the_block(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    closed = registry(redis_server, redis_namespace)
    operation = Cancelable(operation_id="refused").add_source(closed.source())
    with pytest.raises(RuntimeError, match="is not open"):
        async with operation:
            pytest.fail("entered")
    with pytest.raises(RuntimeError, match=r"is not open: call list_operations\(\) inside"):
        await closed.list_operations()
    async with closed:
        pass
    with pytest.raises(RuntimeError, match="can be entered only once"):
        async with closed:
            pytest.fail("entered again")


async def test_an_exception_of_the_body_leaves_the_registry_unwrapped(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with registry(redis_server, redis_namespace):
            raise Boom


async def test_a_malformed_request_on_the_channel_is_logged_and_changes_nothing(
    redis_server: RedisServer, redis_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LIBRARY)
    async with registry(redis_server, redis_namespace) as here:
        ended: list[BaseException] = []
        async with anyio.create_task_group() as group:
            group.start_soon(job, here, "steady", ended)
            await eventually(lambda: _is_listed(here, "steady"), "listed")
            async with coredis.Redis.from_url(redis_server.url, decode_responses=True) as admin:
                channel = f"{redis_namespace}:requests"
                for garbage in ("not json", '{"id": "steady", "reason": "bogus"}'):
                    assert await admin.publish(channel, garbage) == 1

            def logged() -> list[str]:
                return [r.getMessage() for r in caplog.records if r.name == LIBRARY]

            async def both_logged() -> bool:
                return len(logged()) == 2

            await eventually(both_logged, "both requests logged")
            assert all("ignored a malformed request" in message for message in logged())
            assert ended == []  # the operation runs on
            assert await here.cancel_operation("steady", message="a real one")
            await eventually(_counted(ended, 1), "cancelled by a well-formed request")
