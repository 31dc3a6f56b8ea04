"""The simulated text stream of `hother.cancelable.testing`, under the name it had before.

`StreamConfig` and `simulate_stream` are the objects of `hother.cancelable.testing`; import
them from there in new code.
"""

from .testing import StreamConfig, simulate_stream

__all__ = ["StreamConfig", "simulate_stream"]
