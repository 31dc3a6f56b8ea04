"""`simulate_stream`: a realistic, reproducible chunked text stream, paced like a model's output."""

from __future__ import annotations

import math
import random
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from hother.cancelable import Cancelable

from ._checks import check_whole

__all__ = ["StreamConfig", "simulate_stream"]

_TOKENS = re.compile(r"\s+|[^\s]+")


def _number(name: str, value: object, *, low: float, high: float = math.inf) -> None:
    """A finite number in [low, high] (NaN fails every comparison, infinity the last)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # a whole number beyond any float (10**400)
        number = math.inf
    if not (low <= number <= high and number < math.inf):
        bounds = f"between {low:g} and {high:g}" if high != math.inf else f">= {low:g} and finite"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """How `simulate_stream` paces its chunks. Every field is checked when it is built.

    Attributes:
        base_delay: seconds between two chunks, before jitter.
        jitter: each delay varies by up to this fraction of `base_delay`, either way (0-1).
        min_tokens: fewest tokens (words or runs of white space) in a chunk.
        max_tokens: most tokens in a chunk.
        burst_probability: chance (0-1) that a burst starts after a chunk.
        burst_length: how many chunks a burst delivers without any delay.
        stall_probability: chance (0-1) that the stream stalls after a chunk.
        stall_duration: seconds a stall lasts.
    """

    base_delay: float = 0.02
    jitter: float = 0.5
    min_tokens: int = 1
    max_tokens: int = 4
    burst_probability: float = 0.05
    burst_length: int = 5
    stall_probability: float = 0.02
    stall_duration: float = 0.3

    def __post_init__(self) -> None:
        _number("base_delay", self.base_delay, low=0)
        _number("jitter", self.jitter, low=0, high=1)
        check_whole("min_tokens", self.min_tokens, low=1)
        check_whole("max_tokens", self.max_tokens, low=1)
        if self.max_tokens < self.min_tokens:
            raise ValueError(
                f"max_tokens must be >= min_tokens ({self.min_tokens}), got {self.max_tokens}"
            )
        _number("burst_probability", self.burst_probability, low=0, high=1)
        check_whole("burst_length", self.burst_length, low=1)
        _number("stall_probability", self.stall_probability, low=0, high=1)
        _number("stall_duration", self.stall_duration, low=0)


def simulate_stream(
    text: str,
    config: StreamConfig | None = None,
    cancelable: Cancelable | None = None,
    seed: int | None = None,
) -> AsyncGenerator[str]:
    """Yield `text` in chunks paced like a model's output; joined, they are `text`.

    With a `seed`, the chunks and delays are the same on every run. With a `cancelable`,
    each chunk is reported as progress (`"chunk N"` with `{"chunk", "chars_sent",
    "total_chars"}`), and once that operation is cancelled the stream raises its
    cancellation (so the block ends as cancelled even if it reaches no other checkpoint).

    Raises:
        TypeError: `text` is not a str, `config` not a `StreamConfig`, `cancelable` not a
            `Cancelable`, or `seed` not an int.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {text!r}")
    config = StreamConfig() if config is None else config
    if not isinstance(config, StreamConfig):
        raise TypeError(f"config must be a StreamConfig or None, got {config!r}")
    if cancelable is not None and not isinstance(cancelable, Cancelable):
        raise TypeError(f"cancelable must be a Cancelable or None, got {cancelable!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return _chunks(text, config, cancelable, random.Random(seed))


async def _chunks(
    text: str, config: StreamConfig, cancelable: Cancelable | None, rng: random.Random
) -> AsyncGenerator[str]:
    tokens = _TOKENS.findall(text)
    sent = 0
    burst_left = 0
    index = 0
    chunk_number = 0
    while index < len(tokens):
        if cancelable is not None and cancelable.is_cancelled:
            await cancelable.check_cancelation()  # raises the operation's cancellation
        take = rng.randint(config.min_tokens, config.max_tokens)
        chunk = "".join(tokens[index : index + take])
        index += take
        if burst_left:
            burst_left -= 1
            await anyio.lowlevel.checkpoint()
        else:
            spread = config.base_delay * config.jitter
            await anyio.sleep(max(0.0, config.base_delay + rng.uniform(-spread, spread)))
            if rng.random() < config.stall_probability:
                await anyio.sleep(config.stall_duration)
            if rng.random() < config.burst_probability:
                burst_left = config.burst_length
        chunk_number += 1
        sent += len(chunk)
        if cancelable is not None:
            await cancelable.report_progress(
                f"chunk {chunk_number}",
                {"chunk": chunk_number, "chars_sent": sent, "total_chars": len(text)},
            )
        yield chunk
