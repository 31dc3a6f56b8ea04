"""Redis: cancel an operation running in another process, or on another host, by its id.

Needs the `redis` extra: `pip install 'hother-cancelable[redis]'` (the client is coredis, built
on anyio, so it runs unchanged on asyncio, uvloop and trio). The library adds no server of its
own: processes meet through a Redis server that services already run (Redis 6.2 or later).

```python
async with RedisRegistry("redis://redis:6379/0") as registry:   # a worker
    async with Cancelable(operation_id="job-42").add_source(registry.source()):
        await run_job()

async with RedisRegistry("redis://redis:6379/0") as registry:   # anywhere else
    await registry.cancel_operation("job-42", message="the user aborted it")
```

What it keeps in Redis, under its namespace (`cancelable` unless told otherwise):

- `{namespace}:op:{id}`: the snapshot of a live operation (JSON), expiring after three missed
  heartbeats, so that a crashed process's entries disappear; `{namespace}:live`: the ids;
- `{namespace}:request:{id}`: a cancellation request, kept for `request_ttl` seconds, so that an
  operation that starts after it, or whose process was reconnecting, is still cancelled;
- the channel `{namespace}:requests`, on which requests are announced to every registry.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal, Self, cast
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc
import anyio.lowlevel

try:
    import coredis
    import coredis.exceptions
    from coredis.retry import NoRetryPolicy
except ImportError as _missing:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "hother.cancelable.integrations.redis needs coredis, which is not installed: "
        "pip install 'hother-cancelable[redis]'"
    ) from _missing

from hother.cancelable._callbacks import logger
from hother.cancelable._checks import check_message, check_reason, check_timeout
from hother.cancelable._context import CancelationReason, OperationContext, OperationStatus
from hother.cancelable._current import current_operation
from hother.cancelable.sources import CancelationSource
from hother.cancelable.sources._base import Sink

__all__ = ["DEFAULT_URL", "RedisRegistry"]

DEFAULT_URL: Final = "redis://localhost:6379/0"
"""The Redis server a `RedisRegistry` uses unless told otherwise."""

_MISSED_BEATS = 3  # a live entry expires after this many heartbeats without a refresh
_CONNECT_TIMEOUT = 5.0  # seconds the first connection may take, at entry
_FLUSH_TIMEOUT = 1.0  # seconds the last writes may take, at exit
_MAX_BACKOFF = 5.0  # seconds between two attempts to write, at most, while Redis is away
# What a lost or refused connection raises; anything else is a bug, and is not swallowed.
_UNAVAILABLE = (coredis.exceptions.ConnectionError, OSError)  # OSError: TimeoutError too

_Unavailable = Literal["raise", "ignore"]


class RedisRegistry:
    """The operations of every process that uses the same Redis server, namespace and all.

    An async context manager that owns its connections (one for commands, one subscription
    however many operations it watches) and its background tasks: enter it once per process,
    as the service starts (a FastAPI lifespan, the worker's `main`), and leave it at the end.

    - `source()` gives an operation a source that lists it as live while its block runs and
      cancels it when another process asks, with that process's reason and message;
    - `cancel_operation(id)` asks for the cancellation of an operation, wherever it runs;
    - `list_operations()` and `get_operation(id)` are snapshots of the live operations of every
      process, with `host` and `pid` in their metadata.

    Nothing it does delays a block or blocks the event loop: an operation is listed, and its
    requests looked up, by a background task, a few hundred microseconds after its block began,
    and its entry removed the same way when it ends. When Redis is away (restarted, the network
    down), operations run on; the registry retries with backoff, writes the live entries again
    and applies the requests sent meanwhile as soon as it is back.

    Args:
        url: the Redis server, `redis://[[user]:password@]host[:port][/db]` (or `rediss://`).
        namespace: the prefix of every key and channel it uses; registries meet only within one.
        heartbeat: seconds between two refreshes of the live entries; an entry expires after
            three missed beats (a crashed process's operations disappear then), and requests
            missed while the subscription was reconnecting are looked up at each beat.
        request_ttl: seconds a cancellation request is kept for an operation that has not
            started yet, or whose process is reconnecting.
        on_unavailable: what entering it does when Redis cannot be reached: "raise" a
            `ConnectionError` that names the URL (the default), or "ignore": log a warning once,
            let operations run unwatched, and connect as soon as Redis can be reached.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: `url` is not a Redis URL, `namespace` is empty, `heartbeat` or
            `request_ttl` is not a positive, finite number of seconds, or `on_unavailable` is
            neither "raise" nor "ignore".
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        namespace: str = "cancelable",
        heartbeat: float = 5.0,
        request_ttl: float = 60.0,
        on_unavailable: _Unavailable = "raise",
    ) -> None:
        self.url: str = _check_url(url)
        self.namespace: str = _check_namespace(namespace)
        self.heartbeat: float = check_timeout(heartbeat, "heartbeat")
        self.request_ttl: float = check_timeout(request_ttl, "request_ttl")
        if on_unavailable not in ("raise", "ignore"):
            raise ValueError(f'on_unavailable must be "raise" or "ignore", got {on_unavailable!r}')
        self.on_unavailable: _Unavailable = on_unavailable
        self._live = f"{self.namespace}:live"
        self._channel = f"{self.namespace}:requests"
        self._client: coredis.Redis[str] | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._stack: AsyncExitStack | None = None  # what __aexit__ closes
        self._closing = False
        # The sources of the operations running in this process, by operation id.
        self._table = _Table(self)
        self._reachable = True  # False from a failed attempt until a successful one
        self._subscribed = anyio.Event()

    def __repr__(self) -> str:
        return f"RedisRegistry({_redacted(self.url)!r}, namespace={self.namespace!r})"

    # -- the context manager ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None or self._closing:
            raise RuntimeError(f"{self!r} can be entered only once")
        async with AsyncExitStack() as stack:
            client: coredis.Redis[str] = coredis.Redis.from_url(
                self.url, decode_responses=True, client_name=f"{self.namespace}:{_HOST}:{_PID}"
            )
            self._client = await stack.enter_async_context(client)
            stack.callback(self._forget)
            # Not raised in here: the client's task group would wrap it in an ExceptionGroup.
            unreachable = await self._probe() or await self._ping()
            if unreachable is None or self.on_unavailable == "ignore":
                if unreachable is not None:
                    self._unreachable(unreachable, at_entry=True)
                stack.push_async_callback(self._last_writes)  # once the tasks have ended
                await self._start(await stack.enter_async_context(anyio.create_task_group()))
                self._stack = stack.pop_all()
        if unreachable is not None and self._stack is None:
            raise ConnectionError(
                f"RedisRegistry: cannot reach Redis at {_redacted(self.url)}: {unreachable}"
            ) from unreachable
        self._table.is_open = True
        return self

    async def _start(self, task_group: anyio.abc.TaskGroup) -> None:
        task_group.start_soon(self._listen, name=f"{self!r}: requests")
        task_group.start_soon(self._write, name=f"{self!r}: writes")
        task_group.start_soon(self._beat, name=f"{self!r}: heartbeat")
        self._task_group = task_group
        if self._reachable:  # a request sent once entry returned must be heard
            with anyio.move_on_after(_CONNECT_TIMEOUT):
                await self._subscribed.wait()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, task_group = self._stack, self._task_group
        assert stack is not None
        assert task_group is not None
        self._closing = True
        self._table.is_open = False
        # The tasks end first (a write cut short puts back what it had taken), then the last
        # writes go out (`_last_writes`), then the connections close.
        task_group.cancel_scope.cancel()
        # Not given the body's exception: task groups would wrap it in an ExceptionGroup.
        await stack.__aexit__(None, None, None)

    async def _last_writes(self) -> None:
        """The last removals, so that other processes stop listing what ran here."""
        client = self._client
        if client is None or not self._table.dirty:
            return
        with anyio.move_on_after(_FLUSH_TIMEOUT, shield=True):
            if not self._reachable and await self._probe() is not None:
                return  # their entries expire on their own
            try:
                await self._flush(client)
            except _UNAVAILABLE as lost:
                self._unreachable(lost)

    def _forget(self) -> None:
        self._client = self._task_group = self._stack = None

    async def _probe(self) -> BaseException | None:
        """Why Redis's address takes no connection, if it does not; None if it does.

        A plain connection, closed at once: coredis is asked to connect only when this one
        could, since coredis 6.9 leaves the memory streams of a connection it failed to open
        unclosed (anyio then warns of them, an error in test suites that turn warnings into
        errors).
        """
        parts = urlsplit(self.url)
        try:
            with anyio.fail_after(_CONNECT_TIMEOUT):
                if parts.scheme == "unix":
                    stream: anyio.abc.ByteStream = await anyio.connect_unix(parts.path)
                else:
                    host, port = parts.hostname or "localhost", parts.port or 6379
                    stream = await anyio.connect_tcp(host, port)
                await stream.aclose()
        except OSError as exc:  # TimeoutError too
            return exc
        return None

    async def _reachable_again(self) -> None:
        """Return once Redis's address takes connections, probing with backoff."""
        backoff = 0.1
        while await self._probe() is not None:
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF, self.heartbeat)

    async def _ping(self) -> BaseException | None:
        """What makes Redis unusable, if it does not answer; None if it does."""
        try:
            with anyio.fail_after(_CONNECT_TIMEOUT):
                await self._redis().ping()
        except (*_UNAVAILABLE, coredis.exceptions.RedisError) as exc:  # a wrong password too
            return exc
        return None

    # -- what operations and other processes call --------------------------------------------

    def source(self) -> CancelationSource:
        """A source that lists its operation as live and cancels it on request, by its id.

        Give it to one operation: `Cancelable(operation_id="job-42").add_source(
        registry.source())`. Any operation can take one; ids given by you are the ones other
        processes know, and a random id is listed too.
        """
        return _RedisSource(self._table)

    async def cancel_operation(
        self,
        operation_id: str,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """Ask for the cancellation of the operation `operation_id`, wherever it runs.

        The operation leaves its block with `reason` and `message`, as if cancelled in its own
        process. The request is also kept for `request_ttl` seconds, so that an operation with
        that id that starts meanwhile, or whose process was reconnecting, is cancelled too;
        the first request for an id is the one kept.

        Returns:
            True when a live operation with that id was listed, False otherwise (the request is
            kept all the same).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: `operation_id` is empty.
            RuntimeError: the registry is not open.
            ConnectionError: Redis cannot be reached; the message names the URL.
        """
        operation_id = _check_id(operation_id)
        reason, message = check_reason(reason), check_message(message)
        client = await self._usable("cancel_operation")
        request = json.dumps(
            # `sent` tells this request from an equal one sent later (see _Table.remove).
            {"id": operation_id, "reason": reason.value, "message": message, "sent": _nonce()}
        )
        keys = [self._request_key(operation_id), self._entry_key(operation_id)]
        arguments = [request, _milliseconds(self.request_ttl), self._channel]
        try:
            return bool(await client.eval(_REQUEST, keys, arguments))
        except _UNAVAILABLE as exc:
            raise self._unavailable("cancel_operation", exc) from exc

    async def list_operations(self) -> list[OperationContext]:
        """Snapshots of the live operations of every process, oldest first.

        Each is an `OperationContext` with status `RUNNING`, its id, name, parent id, start
        time and metadata, plus `host` and `pid` in the metadata.

        Raises:
            RuntimeError: the registry is not open.
            ConnectionError: Redis cannot be reached; the message names the URL.
        """
        client = await self._usable("list_operations")
        try:
            ids = sorted(await client.smembers(self._live))
            if not ids:
                return []
            entries = await client.mget([self._entry_key(i) for i in ids])
            gone = [i for i, entry in zip(ids, entries, strict=True) if entry is None]
            if gone:  # expired: their processes are gone
                await client.srem(self._live, gone)
        except _UNAVAILABLE as exc:
            raise self._unavailable("list_operations", exc) from exc
        found = [_revived(entry) for entry in entries if entry is not None]
        return sorted(found, key=lambda context: context.start_time or _EPOCH)

    async def get_operation(self, operation_id: str) -> OperationContext | None:
        """The snapshot of the live operation `operation_id`, from any process; None if none.

        Raises:
            TypeError: `operation_id` is not a str.
            ValueError: `operation_id` is empty.
            RuntimeError: the registry is not open.
            ConnectionError: Redis cannot be reached; the message names the URL.
        """
        operation_id = _check_id(operation_id)
        client = await self._usable("get_operation")
        try:
            entry = await client.get(self._entry_key(operation_id))
        except _UNAVAILABLE as exc:
            raise self._unavailable("get_operation", exc) from exc
        return None if entry is None else _revived(entry)

    # -- the background tasks ------------------------------------------------------------------

    async def _listen(self) -> None:
        """Hear the requests announced on the channel, through one subscription.

        When the connection is lost, it subscribes again once Redis takes connections; each
        (re)subscription looks up the requests that may have been sent meanwhile.
        """
        client = self._redis()
        while True:
            if not self._reachable:
                await self._reachable_again()
            try:
                async with client.pubsub(
                    channels=[self._channel], retry_policy=NoRetryPolicy()
                ) as pubsub:
                    async for message in pubsub:
                        if message["type"] == "subscribe":
                            self._subscribed.set()
                            self._back()
                            self._table.mark_all()  # entries and requests, again
                        elif message["type"] == "message":
                            self._table.apply(str(message["data"]))
            except* _UNAVAILABLE as lost:  # raised through coredis's task groups
                self._unreachable(_first(lost))
            await anyio.sleep(0.1)  # however it ended, never a busy loop

    async def _write(self) -> None:
        """Write what changed (entries added or removed) and look up the new ones' requests."""
        client = self._redis()
        table = self._table
        while True:
            await table.wake.wait()
            # One turn first: the blocks that just ended go on at once, and their writes
            # go out together.
            await anyio.lowlevel.checkpoint()
            table.wake = anyio.Event()
            if not self._reachable:  # never ask coredis to connect where nothing listens
                await self._reachable_again()
            try:
                await self._flush(client)
            except _UNAVAILABLE as exc:
                self._unreachable(exc)
                table.wake.set()  # try again, once Redis takes connections

    async def _flush(self, client: coredis.Redis[str]) -> None:
        table = self._table
        dirty, table.dirty = table.dirty, set()
        try:
            await self._sync(client, dirty)
        except BaseException:
            table.dirty |= dirty  # written at the next attempt
            raise

    async def _sync(self, client: coredis.Redis[str], ids: Iterable[str]) -> None:
        """Write the entries of `ids` watched here, remove the others, apply their requests."""
        table = self._table
        watched = [i for i in ids if i in table.entries]
        gone = [i for i in ids if i not in table.entries]
        if not watched and not gone:
            return
        consumed = {i: table.consumed[i] for i in ids if i in table.consumed}
        runs = table.runs(watched)
        ttl = _milliseconds(self.heartbeat * _MISSED_BEATS)
        async with client.pipeline(transaction=False) as pipe:
            for operation_id, request in consumed.items():  # before a new run's lookup
                pipe.eval(_CONSUME, [self._request_key(operation_id)], [request])
            for operation_id in watched:
                entry = self._snapshot(table.entries[operation_id][0].context)
                pipe.set(self._entry_key(operation_id), entry, px=ttl)
            if watched:
                pipe.sadd(self._live, watched)
            requests = pipe.mget([self._request_key(i) for i in watched]) if watched else None
            if gone:
                pipe.delete([self._entry_key(i) for i in gone])
                pipe.srem(self._live, gone)
        for operation_id, request in consumed.items():
            if table.consumed.get(operation_id) == request:
                del table.consumed[operation_id]
        self._back()
        if requests is not None:
            table.apply_found(runs, await requests)

    async def _beat(self) -> None:
        """Refresh the live entries; look up requests the subscription may have missed."""
        client = self._redis()
        while True:
            await anyio.sleep(self.heartbeat)
            ids = list(self._table.entries)
            if not ids or not self._reachable:  # the subscription's return writes them all
                continue
            try:
                await self._refresh(client, ids)
            except _UNAVAILABLE as exc:
                self._unreachable(exc)

    async def _refresh(self, client: coredis.Redis[str], ids: list[str]) -> None:
        ttl = _milliseconds(self.heartbeat * _MISSED_BEATS)
        runs = self._table.runs(ids)
        async with client.pipeline(transaction=False) as pipe:
            refreshed = [pipe.pexpire(self._entry_key(i), ttl) for i in ids]
            requests = pipe.mget([self._request_key(i) for i in ids])
        self._back()
        lost = [i for i, done in zip(ids, refreshed, strict=True) if not await done]
        for operation_id in lost:  # Redis lost them (restarted without persistence)
            self._table.mark(operation_id)  # written again
        self._table.apply_found(runs, await requests)

    # -- state and helpers ---------------------------------------------------------------------

    def _snapshot(self, context: OperationContext) -> str:
        return json.dumps(
            {
                "id": context.id,
                "name": context.name,
                "parent_id": context.parent_id,
                "started": None if context.start_time is None else context.start_time.timestamp(),
                "metadata": {**_portable(context.metadata), "host": _HOST, "pid": _PID},
            }
        )

    def _entry_key(self, operation_id: str) -> str:
        return f"{self.namespace}:op:{operation_id}"

    def _request_key(self, operation_id: str) -> str:
        return f"{self.namespace}:request:{operation_id}"

    def _redis(self, caller: str | None = None) -> coredis.Redis[str]:
        client = self._client
        if client is None:
            what = "it" if caller is None else f"{caller}()"
            raise RuntimeError(f"{self!r} is not open: call {what} inside `async with registry:`")
        return client

    async def _usable(self, caller: str) -> coredis.Redis[str]:
        """The client, once Redis is known to take connections (see `_probe`)."""
        client = self._redis(caller)
        if not self._reachable:
            failure = await self._probe()
            if failure is not None:
                raise self._unavailable(caller, failure) from failure
        return client

    def _unavailable(self, caller: str, exc: BaseException) -> ConnectionError:
        self._unreachable(exc)
        return ConnectionError(
            f"RedisRegistry.{caller}: cannot reach Redis at {_redacted(self.url)}: {exc}"
        )

    def _unreachable(self, exc: BaseException, at_entry: bool = False) -> None:
        """Note that Redis cannot be reached; a warning once per outage."""
        if not self._reachable:
            return
        self._reachable = False
        if at_entry:
            logger().warning(
                "hother.cancelable: cannot reach Redis at %s (%s): operations run unwatched "
                "until it can be reached",
                _redacted(self.url),
                exc,
            )
        else:
            logger().warning(
                "hother.cancelable: lost Redis at %s (%s): retrying; operations run on",
                _redacted(self.url),
                exc,
            )

    def _back(self) -> None:
        if not self._reachable:
            self._reachable = True
            logger().info("hother.cancelable: Redis at %s is back", _redacted(self.url))


class _RedisSource(CancelationSource):
    """Lists its operation in a `RedisRegistry` while its block runs; cancels it on request.

    Made by `RedisRegistry.source()`. Its reason is the requester's (`MANUAL` unless the
    request said otherwise), and so is the message.
    """

    reason = CancelationReason.MANUAL

    def __init__(self, table: _Table) -> None:
        super().__init__(name="redis")
        self._table = table
        self._entry: _Entry | None = None

    def _attach(self, sink: Sink) -> None:
        self._table.check_open()  # refuses the block when the registry is not open
        super()._attach(sink)

    async def watch(self) -> None:
        operation = current_operation()
        if operation is None:  # pragma: no cover - sources run inside their operation
            return
        self._entry = entry = _Entry(operation.context, self._requested)
        self._table.add(entry)
        try:
            await anyio.sleep_forever()
        finally:
            self._table.remove(entry)
            self._entry = None

    def _requested(self, reason: CancelationReason, message: str | None) -> bool:
        # This source's reason is the request's: set on the instance, as the class keeps one.
        object.__setattr__(self, "reason", reason)
        return self.trigger_cancelation(message)


class _Entry:
    """An operation of this process that a registry watches."""

    __slots__ = ("applied", "cancel", "context")

    def __init__(
        self, context: OperationContext, cancel: Callable[[CancelationReason, str | None], bool]
    ) -> None:
        self.context = context
        self.cancel = cancel  # with a request's reason and message; True if it was the first
        self.applied: str | None = None  # the request that cancelled it: goes with it


class _Table:
    """The operations of this process a registry watches, and what Redis must hear of them."""

    def __init__(self, owner: RedisRegistry) -> None:
        self.owner = owner
        self.is_open = False
        self.entries: dict[str, list[_Entry]] = {}  # by operation id
        self.dirty: set[str] = set()  # ids whose entry in Redis must be written or removed
        # The requests that cancelled operations which have ended, by id: removed from Redis.
        self.consumed: dict[str, str] = {}
        self.wake = anyio.Event()  # set when `dirty` has ids

    def check_open(self) -> None:
        if not self.is_open:
            raise RuntimeError(
                f"{self.owner!r} is not open: use its source() inside `async with registry:`"
            )

    def add(self, entry: _Entry) -> None:
        self.entries.setdefault(entry.context.id, []).append(entry)
        self.mark(entry.context.id)

    def remove(self, entry: _Entry) -> None:
        operation_id = entry.context.id
        entries = self.entries.get(operation_id, [])
        if entry in entries:
            entries.remove(entry)
        if not entries:
            self.entries.pop(operation_id, None)
        if entry.applied is not None:
            self.consumed[operation_id] = entry.applied
        self.mark(operation_id)

    def mark(self, operation_id: str) -> None:
        self.dirty.add(operation_id)
        self.wake.set()

    def mark_all(self) -> None:
        self.dirty.update(self.entries)
        self.wake.set()

    def runs(self, ids: list[str]) -> dict[str, list[_Entry]]:
        """The runs of `ids` now: a request looked up for them is for them only, not for a
        later run with the same id."""
        return {i: list(self.entries[i]) for i in ids}

    def apply_found(self, runs: dict[str, list[_Entry]], requests: Iterable[str | None]) -> None:
        """Apply the requests looked up for `runs` (None where there was none), in order."""
        for entries, request in zip(runs.values(), requests, strict=True):
            self.apply(request, entries)

    def apply(self, request: str | None, runs: list[_Entry] | None = None) -> None:
        """Cancel the operations of this process that `request` (JSON) names, if any.

        `runs`: the operations it was looked up for (those still running); None for all the
        operations with its id (a request heard on the channel is sent for those).
        """
        if request is None:
            return
        try:
            data = json.loads(request)
            operation_id = data["id"]
            reason = CancelationReason(data["reason"])
            message = data["message"]
        except (ValueError, KeyError, TypeError):
            logger().warning(
                "hother.cancelable: %r ignored a malformed request %r", self.owner, request
            )
            return
        if self.consumed.get(operation_id) == request:  # it ended a run already
            return
        running = self.entries.get(operation_id, [])
        for entry in [e for e in running if e in runs] if runs is not None else list(running):
            if entry.cancel(reason, message):
                entry.applied = request


# -- helpers -----------------------------------------------------------------------------------

# Store a request unless one is kept for that id already (the first wins), announce it if
# stored, and say whether an operation with that id is live: one round trip.
_REQUEST: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
    redis.call('PUBLISH', ARGV[3], ARGV[1])
end
return redis.call('EXISTS', KEYS[2])
"""
# Remove a request that cancelled an operation, unless another one has replaced it since.
_CONSUME: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

_HOST: Final = socket.gethostname()
_PID: Final = os.getpid()
_EPOCH: Final = datetime.fromtimestamp(0, UTC)


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {url!r}")
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"url must be a redis:// (or rediss://, unix://) URL, got {url!r}")
    return url


def _check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be a str, got {namespace!r}")
    if not namespace or namespace.isspace():
        raise ValueError(f"namespace must not be empty, got {namespace!r}")
    return namespace


def _check_id(operation_id: object) -> str:
    if not isinstance(operation_id, str):
        raise TypeError(f"operation_id must be a str, got {operation_id!r}")
    if not operation_id:
        raise ValueError(f"operation_id must not be empty, got {operation_id!r}")
    return operation_id


def _redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + ("" if parts.port is None else f":{parts.port}")
    return urlunsplit(parts._replace(netloc=netloc))


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first exception of `group` that is no group itself."""
    first: BaseException = group.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = cast("BaseExceptionGroup[BaseException]", first).exceptions[0]
    return first


def _nonce() -> str:
    return os.urandom(8).hex()


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _portable(metadata: dict[str, Any]) -> dict[str, Any]:
    """The entries of `metadata` that JSON can carry to another process."""
    portable: dict[str, Any] = {}
    for key, value in metadata.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        portable[str(key)] = value
    return portable


def _revived(entry: str) -> OperationContext:
    data = json.loads(entry)
    context = OperationContext(
        id=data["id"],
        name=data["name"],
        status=OperationStatus.RUNNING,
        metadata=data["metadata"],
        parent_id=data["parent_id"],
    )
    context._started = data["started"]  # pyright: ignore[reportPrivateUsage]  # the record it was
    return context
