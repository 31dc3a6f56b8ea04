"""Cancellation sources: what can cancel an operation besides timeouts and tokens."""

from ._base import CancelationSource

__all__ = ["CancelationSource"]
