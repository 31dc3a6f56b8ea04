"""Helpers for testing code that uses hother.cancelable, on asyncio, uvloop and trio.

- `MockCancelationToken`: a token that records how it is used and cancels itself on cue;
- `OperationRecorder`: records the life of operations and asserts how they ended;
- `assert_cancelation_within`: asserts that a block ends by a cancellation, in a time window;
- `CancelationScenario`: scripts what happens to an operation, and when;
- `create_slow_stream`: an async iterator that yields its items slowly;
- `simulate_stream` and `StreamConfig`: a text stream paced like a language model's output
  (also importable from `hother.cancelable.streaming`).

Nothing here starts a task or a thread that outlives the block or the call that started it.
Times are measured on the event loop's clock (`anyio.current_time()`), so a fake clock such
as trio's `MockClock` speeds them up too; only `TokenCall.time`, which may be taken in any
thread, is on `time.monotonic()`.
"""

from ._assertions import ExpectedCancelation, assert_cancelation_within
from ._mock_token import MockCancelationToken, ScheduledCancel, TokenCall
from ._recorder import OperationEvent, OperationRecorder
from ._scenario import CancelationScenario, ScenarioResult, ScenarioStep
from ._simulator import StreamConfig, simulate_stream
from ._streams import create_slow_stream

__all__ = [
    "CancelationScenario",
    "ExpectedCancelation",
    "MockCancelationToken",
    "OperationEvent",
    "OperationRecorder",
    "ScenarioResult",
    "ScenarioStep",
    "ScheduledCancel",
    "StreamConfig",
    "TokenCall",
    "assert_cancelation_within",
    "create_slow_stream",
    "simulate_stream",
]
