"""Simulated streams for demos and tests of streaming consumers (LLM output, say)."""

from ._simulator import StreamConfig, simulate_stream

__all__ = ["StreamConfig", "simulate_stream"]
