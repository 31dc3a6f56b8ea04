"""httpx: send an operation's remaining budget with each request it makes.

Needs the `httpx` extra: `pip install 'hother-cancelable[httpx]'`.

`DeadlineTransport` wraps the transport of an `httpx.AsyncClient`. A request sent inside an
operation (`current_operation()`) with a deadline carries the operation's remaining budget,
in milliseconds, in the `Request-Timeout-Ms` header, so the next service can stop when nobody
waits for its answer any more; the request's own httpx timeouts are capped to that budget.
Outside an operation, or in one without a deadline, requests go out unchanged. It runs
unchanged on asyncio, uvloop and trio.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import TracebackType

import anyio

try:
    import httpx
except ImportError as _missing:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "hother.cancelable.integrations.httpx needs httpx, which is not installed: "
        "pip install 'hother-cancelable[httpx]'"
    ) from _missing

from hother.cancelable._checks import check_seconds
from hother.cancelable._current import current_operation

__all__ = ["DEFAULT_DEADLINE_HEADER", "DeadlineTransport"]

DEFAULT_DEADLINE_HEADER = "Request-Timeout-Ms"
"""The header that carries the remaining budget, in whole milliseconds, unless told otherwise."""

# RFC 9110 token characters: what an HTTP field name may be made of.
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TIMEOUTS = ("connect", "read", "write", "pool")  # the phases httpx times, in extensions


class DeadlineTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends the current operation's remaining budget with each request.

    ```python
    client = httpx.AsyncClient(transport=DeadlineTransport())
    ```

    For each request, it reads `current_operation()` in the task that sends it. When that
    operation's `remaining` is finite (its own deadline, a parent's, or an enclosing scope's):

    - the request carries `ceil(remaining * 1000)` in the header (`Request-Timeout-Ms`): a
      relative budget, so the clocks of the two hosts need not agree. If the caller set that
      header already, the smaller of the two values goes out (the caller's is a budget too); a
      caller's value that is not a whole number of milliseconds is replaced;
    - each of the request's httpx timeouts (connect, read, write, pool) is capped to
      `remaining`, so even a call that the operation's cancellation cannot reach (in a shielded
      scope) gives up when the budget is spent;
    - when the budget is spent already (`remaining` is 0), nothing is sent: the operation's
      cancellation, which is due, ends the call (`TimeoutCancelation` at the operation's
      block). In a shielded scope, code that runs on past the operation's end on purpose (a
      cleanup call), the request goes out with the shield's own deadline as its budget, or
      unchanged if the shield has none.

    With no operation, or one that nothing bounds in time (`remaining` is `math.inf`), the
    request goes out exactly as the caller built it. The caller's `httpx.Request` is never
    modified: what is sent is a copy. The operation's cancellation stops a request in flight
    as it stops any other call: the connection is closed, and the server sees the client
    leave.

    With `reserve`, the budget sent is that many seconds less than `remaining` (0 at least),
    while the request's timeouts stay capped to `remaining`: this service keeps the time it
    needs to use the answer, or to answer its own caller when the next service gives up.
    The next service then stops first, reports its own `TIMEOUT` and answers, instead of
    seeing this one leave at the same moment (a budget grows by the time it travels).

    Args:
        transport: the transport that sends the requests; `httpx.AsyncHTTPTransport()` when
            None. Closing this one closes it.
        header: the name of the header that carries the budget.
        reserve: seconds kept back from the budget sent (0 by default).

    Raises:
        TypeError: `transport` is not an `httpx.AsyncBaseTransport`, `header` is not a str,
            or `reserve` not a number.
        ValueError: `header` is not a valid HTTP header name, or `reserve` is negative, NaN
            or infinite.
    """

    __slots__ = ("_header", "_reserve", "_transport")

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        header: str = DEFAULT_DEADLINE_HEADER,
        reserve: float = 0.0,
    ) -> None:
        self._header = _check_header(header)
        self._reserve = check_seconds("reserve", reserve)
        if transport is None:
            transport = httpx.AsyncHTTPTransport()
        elif not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(
                f"transport must be an httpx.AsyncBaseTransport (httpx.AsyncHTTPTransport, "
                f"httpx.ASGITransport, ...) or None, got {transport!r}"
            )
        self._transport = transport

    def __repr__(self) -> str:
        return (
            f"DeadlineTransport({self._transport!r}, header={self._header!r}, "
            f"reserve={self._reserve!r})"
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` through the wrapped transport, with the budget when there is one."""
        budget = await _budget()
        if budget * 1000 < math.inf:  # too long for milliseconds (1e306 s) is as good as none
            request = _with_budget(request, self._header, budget, self._reserve)
        return await self._transport.handle_async_request(request)

    async def __aenter__(self) -> DeadlineTransport:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._transport.aclose()


def _check_header(header: object) -> str:
    if not isinstance(header, str):
        raise TypeError(f"header must be a str, got {header!r}")
    if _FIELD_NAME.fullmatch(header) is None:
        raise ValueError(
            "header must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~), "
            f"got {header!r}"
        )
    return header


async def _budget() -> float:
    """Seconds the request may take: `math.inf` when nothing bounds it."""
    operation = current_operation()
    remaining = math.inf if operation is None else operation.remaining
    if remaining > 0:
        return remaining
    # Spent: unless a shield keeps this code running, the operation's cancellation is due.
    left = anyio.current_effective_deadline() - anyio.current_time()
    if left <= 0:
        await anyio.sleep_forever()  # a passed deadline cancels at this checkpoint
    return left


def _with_budget(
    request: httpx.Request, header: str, budget: float, reserve: float
) -> httpx.Request:
    """A copy of `request` that carries `budget` less `reserve` (seconds) and times out
    within `budget`."""
    milliseconds = math.ceil(max(budget - reserve, 0.0) * 1000)
    for value in request.headers.get_list(header):  # the caller's own budget, if any
        value = value.strip()
        if value.isascii() and value.isdigit():
            milliseconds = min(milliseconds, int(value))
    headers = request.headers.copy()
    headers[header] = str(milliseconds)  # one value, replacing any the caller set
    timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
    capped = {phase: _capped(timeouts.get(phase), budget) for phase in _TIMEOUTS}
    # The same stream: httpx copies requests this way for redirects.
    return httpx.Request(
        request.method,
        request.url,
        headers=headers,
        stream=request.stream,
        extensions={**request.extensions, "timeout": capped},
    )


def _capped(timeout: float | None, budget: float) -> float:
    return budget if timeout is None else min(timeout, budget)
