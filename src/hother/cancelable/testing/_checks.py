"""Argument checks shared by several helpers; the others come from the library's `_checks`."""

from __future__ import annotations

__all__ = ["check_exception_types", "check_whole"]


def check_whole(name: str, value: object, low: int = 0) -> int:
    """`value` as a whole number >= `low`, or a TypeError/ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return value


def check_exception_types(name: str, value: object, base: type[BaseException]) -> None:
    """`value` is a subclass of `base` or a non-empty tuple of them, or a TypeError."""
    types: tuple[object, ...] = value if isinstance(value, tuple) else (value,)  # pyright: ignore[reportUnknownVariableType]
    if not types or not all(isinstance(t, type) and issubclass(t, base) for t in types):
        raise TypeError(
            f"{name} must be a subclass of {base.__name__} or a tuple of them, got {value!r}"
        )
