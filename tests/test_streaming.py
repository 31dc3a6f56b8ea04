"""The stream simulator (hother.cancelable.testing, re-exported by .streaming), on every backend."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from hother.cancelable import Cancelable, ConditionCancelation, streaming, testing
from hother.cancelable.testing import StreamConfig, simulate_stream

TEXT = "The quick brown fox jumps over the lazy dog. " * 4
FAST = StreamConfig(base_delay=0.001, stall_probability=0, burst_probability=0.2)


async def collect(**kwargs: Any) -> list[str]:
    return [chunk async for chunk in simulate_stream(TEXT, **kwargs)]


async def test_chunks_join_into_the_text() -> None:
    chunks = await collect(config=FAST, seed=3)
    assert "".join(chunks) == TEXT
    assert len(chunks) > 1


async def test_a_seed_makes_it_reproducible() -> None:
    assert await collect(config=FAST, seed=7) == await collect(config=FAST, seed=7)
    assert await collect(config=FAST, seed=7) != await collect(config=FAST, seed=8)


async def test_chunk_sizes_follow_the_config() -> None:
    config = StreamConfig(base_delay=0, min_tokens=2, max_tokens=2, stall_probability=0)
    chunks = await collect(config=config, seed=1)
    # Two tokens each (a word and a space), the last one possibly shorter.
    assert all(len(chunk.split()) == 1 for chunk in chunks)


async def test_stalls_and_delays_take_time() -> None:
    config = StreamConfig(base_delay=0.01, jitter=0, stall_probability=1, stall_duration=0.02)
    start = time.monotonic()
    chunks = [c async for c in simulate_stream("a b c", config=config, seed=1)]
    elapsed = time.monotonic() - start
    assert len(chunks) >= 1
    assert elapsed >= len(chunks) * 0.03 * 0.9


async def test_progress_is_reported_and_cancellation_stops_the_stream() -> None:
    received: list[str] = []
    reports: list[dict[str, Any]] = []
    with pytest.raises(ConditionCancelation):
        async with Cancelable.with_condition(
            lambda: "fox" in "".join(received), check_interval=0.001
        ).on_progress(lambda op_id, message, meta: reports.append(meta)) as cancel:
            async for chunk in simulate_stream(TEXT, config=FAST, cancelable=cancel, seed=2):
                received.append(chunk)
    text = "".join(received)
    assert "fox" in text
    assert len(text) < len(TEXT)
    assert reports
    assert reports[-1]["total_chars"] == len(TEXT)
    assert reports[-1]["chars_sent"] <= len(TEXT)


BAD_CONFIGS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"base_delay": -1}, ValueError, r"^base_delay must be >= 0 and finite, got -1$"),
    ({"base_delay": math.nan}, ValueError, r"^base_delay must be >= 0 and finite, got nan$"),
    ({"jitter": 2}, ValueError, r"^jitter must be between 0 and 1, got 2$"),
    ({"min_tokens": 0}, ValueError, r"^min_tokens must be >= 1, got 0$"),
    ({"max_tokens": 1.5}, TypeError, r"^max_tokens must be a whole number, got 1.5$"),
    ({"min_tokens": 3, "max_tokens": 2}, ValueError, r"^max_tokens must be >= min_tokens"),
    ({"burst_probability": -0.1}, ValueError, r"^burst_probability must be between 0 and 1"),
    ({"burst_length": 0}, ValueError, r"^burst_length must be >= 1, got 0$"),
    ({"stall_probability": "x"}, TypeError, r"^stall_probability must be a number, got 'x'$"),
    ({"stall_duration": -2}, ValueError, r"^stall_duration must be >= 0 and finite, got -2$"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_CONFIGS)
def test_stream_config_is_validated(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        StreamConfig(**kwargs)


def test_bad_simulator_arguments_are_refused_at_the_call() -> None:
    with pytest.raises(TypeError, match=r"^text must be a str, got 5$"):
        simulate_stream(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^config must be a StreamConfig or None"):
        simulate_stream("a", config={"base_delay": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^seed must be an int or None, got '1'$"):
        simulate_stream("a", seed="1")  # type: ignore[arg-type]


def test_the_streaming_module_re_exports_the_simulator_of_the_testing_package() -> None:
    assert streaming.simulate_stream is testing.simulate_stream
    assert streaming.StreamConfig is testing.StreamConfig
    assert sorted(streaming.__all__) == ["StreamConfig", "simulate_stream"]
