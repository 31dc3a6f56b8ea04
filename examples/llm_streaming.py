#!/usr/bin/env python3
"""LLM streaming: stop a model's streamed answer once the text received meets a condition.

`hother.cancelable.testing.simulate_stream` streams an answer the way a language model does:
a few words per chunk, with jitter, bursts and short stalls, the same on every run for a given
`--seed`. Like real models sometimes do, this one does not stop at the end of its answer: it
goes on to write the user's next turn, starting with "User:". The script stops it on the client
side, the way chat APIs stop on a *stop sequence* on the server.

The answer is read with `cancel.stream(...)` inside an operation with two conditions, each a
condition source polled every 0.02 s:

- `Cancelable.with_condition(..., condition_name="stop sequence")`: the text received so far
  contains `--stop` ("User:" by default);
- `ConditionSource(..., condition_name="length limit")`, added with `add_source`: the text is
  longer than `--max-chars` characters (2000 by default, so that only the stop sequence fires;
  try `--max-chars 200`).

The chunks are printed as they arrive. When a condition is met, the block raises
`ConditionCancelation` (reason CONDITION) whose `condition_name` says which one; the script
prints the answer received (cut at the stop sequence), the reason, the condition's name and
the stream's partial result, replays the stream with the same seed and no delays to show that
the chunks are the same, and exits 0. It takes about a second.

Every outcome is checked, so the script exits non-zero if the library misbehaves.
Run it with `python examples/llm_streaming.py --backend asyncio|trio [--uvloop]`.
"""

from __future__ import annotations

import argparse

import anyio

from hother.cancelable import (
    Cancelable,
    CancelationError,
    CancelationReason,
    ConditionCancelation,
    ConditionSource,
    OperationStatus,
)
from hother.cancelable.testing import StreamConfig, simulate_stream

# The helpers every script of the tour shares, from examples/_tour.py.
from _tour import exception_name, expect, parse_args, run

ANSWER = (
    "A cancel scope bounds a block of code. When it is cancelled, the next checkpoint inside "
    "it raises the backend's cancellation exception, and the scope catches that exception on "
    "the way out, so the code after the block runs on. A timeout is a scope with a deadline; "
    "a shield is a scope that ignores the cancellation of the scopes around it. Because "
    "scopes nest, a timeout set by a caller always bounds the work of its callees.\n\n"
    "User: Thanks! And how do I cancel a stream?\n\n"
    "Assistant: Iterate it inside the operation's block with cancel.stream(), so that the "
    "block's scope covers both the waits for the next item and the work on each item, and "
    "read what was consumed from context.partial_result after a cancellation. "
)
# Paced like a model: about 0.01 s between chunks, with bursts and a few short stalls.
PACE = StreamConfig(
    base_delay=0.01,
    jitter=0.5,
    min_tokens=1,
    max_tokens=4,
    burst_probability=0.05,
    burst_length=4,
    stall_probability=0.03,
    stall_duration=0.1,
)
CHECK_INTERVAL = 0.02


async def main(stop: str, max_chars: int, seed: int) -> None:
    print(f"Streaming a simulated answer (seed {seed}); the client stops it once the text")
    print(f"contains {stop!r} (condition 'stop sequence') or exceeds {max_chars} characters")
    print(f"(condition 'length limit'). Both are checked every {CHECK_INTERVAL:g} s.\n")

    received: list[str] = []
    stops = Cancelable.with_condition(
        lambda: stop in "".join(received),
        check_interval=CHECK_INTERVAL,
        condition_name="stop sequence",
        name="answer",
    ).add_source(
        ConditionSource(
            lambda: sum(map(len, received)) > max_chars,
            check_interval=CHECK_INTERVAL,
            condition_name="length limit",
        )
    )
    error: CancelationError | None = None
    start = anyio.current_time()
    try:
        async with stops as cancel:
            async for chunk in cancel.stream(simulate_stream(ANSWER, PACE, seed=seed)):
                received.append(chunk)
                print(chunk, end="", flush=True)
    except CancelationError as exc:  # a ConditionCancelation; anything else is a bug
        error = exc
    elapsed = anyio.current_time() - start
    print("\n")

    text = "".join(received)
    partial = cancel.context.partial_result
    expect(ANSWER.startswith(text), "the chunks received are not the start of the answer")
    expect(partial["count"] == len(received), f"partial_result counts {partial['count']}")
    expect(partial["buffer"] == received, "the stream's buffer differs from the chunks received")
    expect(elapsed < 3, f"the stream took {elapsed:.2f} s")

    if error is None:
        print(f"Neither condition was met: the whole answer arrived, {len(received)} chunks in")
        print(f"{elapsed:.2f} s (status={cancel.context.status.name}).")
        expect(stop not in text and len(text) <= max_chars, "a condition held, yet unnoticed")
        expect(cancel.context.status is OperationStatus.COMPLETED, "the block was not COMPLETED")
        expect(text == ANSWER and partial["completed"] is True, "the answer is incomplete")
    else:
        name = getattr(error, "condition_name", None)
        print(f"After {elapsed:.2f} s and {len(received)} chunks ({len(text)} characters), the")
        print(f"block raised {exception_name(error)}:")
        print(f"  reason: {error.reason.name}")
        print(f"  condition_name: {name!r}")
        print(f"  message: {error.message!r}")
        print(f"  partial_result: count={partial['count']}, completed={partial['completed']}")
        expect(isinstance(error, ConditionCancelation), f"{exception_name(error)} left the block")
        expect(error.reason is CancelationReason.CONDITION, "err.reason is not CONDITION")
        expect(cancel.context.status is OperationStatus.CANCELLED, "the block was not CANCELLED")
        expect(partial["completed"] is False, "completed is True after a cancellation")
        expect(len(text) < len(ANSWER), "the whole answer arrived, yet the block was cancelled")
        if name == "stop sequence":
            expect(stop in text, f"{stop!r} is not in the text received")
            answer, _, after = text.partition(stop)
            answer = answer.rstrip()
            last_sentence = answer.rpartition(". ")[2]
            print(f"\nThe answer is the {len(answer)} characters before the stop sequence, up to")
            print(f"its last sentence: {last_sentence!r}")
            print(f"The {len(stop) + len(after)} characters from the stop sequence on arrived")
            print("before the condition was next checked, and are dropped.")
        else:
            expect(name == "length limit", f"condition_name is {name!r}")
            expect(len(text) > max_chars, f"{len(text)} characters is within the limit")
            print(f"\nThe text grew past {max_chars} characters; it is kept as it arrived.")

    # The same seed gives the same chunks: replayed without any delay, the stream starts with
    # exactly the chunks received above (the random draws do not depend on the delays).
    instant = StreamConfig(
        base_delay=0,
        jitter=PACE.jitter,
        min_tokens=PACE.min_tokens,
        max_tokens=PACE.max_tokens,
        burst_probability=PACE.burst_probability,
        burst_length=PACE.burst_length,
        stall_probability=PACE.stall_probability,
        stall_duration=0,
    )
    replay = [chunk async for chunk in simulate_stream(ANSWER, instant, seed=seed)]
    same = replay[: len(received)] == received
    joined = "".join(replay) == ANSWER
    print(f"\nReplayed with seed {seed} and no delays: the same {len(received)} first chunks")
    print(f"({same}), and all {len(replay)} chunks joined are the whole text ({joined}).")
    expect(same, "the same seed gave different chunks")
    expect(joined, "the chunks joined are not the text")


def options(parser: argparse.ArgumentParser) -> None:
    """This script's own options, beside --backend and --uvloop."""
    parser.add_argument("--stop", default="User:", help="the stop sequence (default: %(default)r)")
    parser.add_argument(
        "--max-chars",
        type=int,
        default=2000,
        metavar="N",
        help="stop once the text is longer than N characters (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=2024, help="the simulation's seed (default: %(default)s)"
    )


if __name__ == "__main__":
    args = parse_args(__doc__, add_arguments=options)
    run(main, args, args.stop, args.max_chars, args.seed)
