"""Cancellation sources: what can cancel an operation besides its timeout and tokens."""

from ._base import CancelationSource
from ._composite import AllOfSource, AnyOfSource, CompositeSource, TimeoutSource
from ._condition import ConditionSource, ResourceConditionSource
from ._signal import SignalSource, cancel_on_signals

__all__ = [
    "AllOfSource",
    "AnyOfSource",
    "CancelationSource",
    "CompositeSource",
    "ConditionSource",
    "ResourceConditionSource",
    "SignalSource",
    "TimeoutSource",
    "cancel_on_signals",
]
