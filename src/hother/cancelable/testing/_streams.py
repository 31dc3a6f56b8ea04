"""`create_slow_stream`: an async iterator that yields its items slowly."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Iterable, Iterator
from typing import TypeVar

import anyio

from hother.cancelable._checks import check_seconds

__all__ = ["create_slow_stream"]

T = TypeVar("T")


def create_slow_stream(
    items: Iterable[T], delay: float = 0.01, jitter: float = 0.0
) -> AsyncGenerator[T]:
    """An async iterator over `items` that waits before each one, for streaming consumers.

    ```python
    async for item in create_slow_stream(["a", "b", "c"], delay=0.01):
        ...
    ```

    Each item comes `delay` seconds after the previous one, plus a random extra of up to
    `jitter` seconds. The wait is `anyio.sleep`, a checkpoint, so the stream can be
    cancelled between items. Arguments are checked here, not at the first item.

    Raises:
        TypeError: `items` is not iterable.
        TypeError, ValueError: `delay` or `jitter` is not a finite number of seconds >= 0.
    """
    try:
        iterator = iter(items)
    except TypeError:
        raise TypeError(f"items must be an iterable, got {items!r}") from None
    return _slow(iterator, check_seconds("delay", delay), check_seconds("jitter", jitter))


async def _slow(iterator: Iterator[T], delay: float, jitter: float) -> AsyncGenerator[T]:
    for item in iterator:
        await anyio.sleep(delay + random.uniform(0, jitter) if jitter else delay)
        yield item
