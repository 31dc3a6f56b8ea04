"""Validation of arguments at the call that received them, with messages naming both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from ._context import CancelationReason, is_timedelta

if TYPE_CHECKING:
    from datetime import datetime, timedelta

INF = float("inf")  # not math.inf: importing math costs more than the rest of this module

__all__ = [
    "check_aware_datetime",
    "check_bool",
    "check_deadline",
    "check_message",
    "check_reason",
    "check_seconds",
    "check_timeout",
    "check_wait",
]


def check_reason(reason: object) -> CancelationReason:
    if not isinstance(reason, CancelationReason):
        raise TypeError(f"reason must be a CancelationReason, got {reason!r}")
    return reason


def check_message(message: object) -> str | None:
    if message is not None and not isinstance(message, str):
        raise TypeError(f"message must be a str or None, got {message!r}")
    return message


def check_optional_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {value!r}")
    return value


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def check_metadata(value: object) -> dict[str, Any]:
    """A copy of a mapping given as metadata (None is the caller's business)."""
    if not isinstance(value, Mapping):
        raise TypeError(f"metadata must be a mapping or None, got {value!r}")
    return dict(value)  # pyright: ignore[reportUnknownArgumentType]


def check_seconds(name: str, value: object) -> float:
    """`value` as a float number of seconds >= 0, or a TypeError/ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not 0 <= value < INF:  # NaN fails every comparison
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return _as_float(name, value, "a finite number of seconds >= 0")


def check_wait(value: object) -> float | None:
    """The `timeout` of a blocking wait: None, or seconds >= 0 (None if too long to wait)."""
    if value is None:
        return None
    from threading import TIMEOUT_MAX  # plain threads only: not worth importing for everybody

    if not isinstance(value, bool) and isinstance(value, int | float) and INF > value > TIMEOUT_MAX:
        return None  # longer than a thread can block in one wait: as good as no limit
    return check_seconds("timeout", value)


def _as_float(name: str, value: int | float, what: str) -> float:
    # A whole number can be finite and still beyond any float (10**400).
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name} must be {what}, got {value!r}") from None


def check_timeout(value: object, name: str = "timeout") -> float:
    """A timeout: a positive, finite number of seconds or a positive `timedelta`."""
    if is_timedelta(value):
        seconds = cast("timedelta", value).total_seconds()
        if seconds <= 0:
            raise ValueError(f"{name} must be a positive duration, got {value!r}")
        return seconds
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or a timedelta, got {value!r}")
    if not 0 < value < INF:  # NaN fails every comparison
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return _as_float(name, value, "a positive, finite number of seconds")


def check_deadline(value: object) -> float:
    """A deadline on anyio's clock: a number, `math.inf` for none; NaN is refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"deadline must be a number (anyio's clock) or math.inf, got {value!r}")
    if value != value:  # NaN
        raise ValueError(f"deadline must not be NaN, got {value!r}")
    return float(value)


def check_aware_datetime(name: str, value: object) -> datetime:
    """An aware `datetime` (one that knows its time zone)."""
    import datetime as dt

    if not isinstance(value, dt.datetime):
        raise TypeError(f"{name} must be an aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be an aware datetime (with a time zone, as "
            f"datetime.now(timezone.utc) gives), got the naive {value!r}"
        )
    return value
