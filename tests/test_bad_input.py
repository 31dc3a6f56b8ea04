"""Bad input (SPEC section 6): an error naming the argument and the value, nothing left behind."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from hother.cancelable import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    LinkedCancelationToken,
)

BAD_TIMEOUTS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (0.0, ValueError),
    (-1, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
    (timedelta(0), ValueError),
    (timedelta(seconds=-5), ValueError),
    ("30", TypeError),
    (None, TypeError),
    (True, TypeError),
    ([1], TypeError),
]


@pytest.mark.parametrize(("value", "error"), BAD_TIMEOUTS, ids=repr)
def test_with_timeout_rejects_bad_timeouts(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"^timeout must be .*, got " + _escaped(value)):
        Cancelable.with_timeout(value)


def _escaped(value: Any) -> str:
    import re

    return re.escape(repr(value))


CONSTRUCTOR_ARGS: list[tuple[str, Any]] = [
    ("operation_id", 42),
    ("name", b"bytes"),
    ("parent", "not an operation"),
    ("metadata", [("k", "v")]),
    ("register_globally", "yes"),
    ("raise_on_cancel", 0),
]


@pytest.mark.parametrize(("argument", "value"), CONSTRUCTOR_ARGS)
def test_constructor_names_the_bad_argument(argument: str, value: Any) -> None:
    with pytest.raises(TypeError, match=rf"^{argument} must be .*, got {_escaped(value)}$"):
        Cancelable(**{argument: value})


@pytest.mark.parametrize(("argument", "value"), CONSTRUCTOR_ARGS)
def test_factories_pass_keywords_through_the_same_checks(argument: str, value: Any) -> None:
    with pytest.raises(TypeError, match=rf"^{argument} must be"):
        Cancelable.with_timeout(1, **{argument: value})


def test_with_token_rejects_a_non_token_and_registers_nothing() -> None:
    with pytest.raises(TypeError, match=r"^token must be a CancelationToken, got 'abc'$"):
        Cancelable.with_token("abc")  # type: ignore[arg-type]


def test_with_token_bad_keyword_leaves_the_token_untouched() -> None:
    token = CancelationToken()
    with pytest.raises(TypeError, match="name must be"):
        Cancelable.with_token(token, name=1)  # type: ignore[arg-type]
    assert token.callback_count == 0


REGISTRARS: list[str] = ["on_start", "on_complete", "on_cancel", "on_error", "on_progress"]


@pytest.mark.parametrize("method", REGISTRARS)
def test_callback_registrars_reject_non_callables(method: str) -> None:
    cancel = Cancelable()
    with pytest.raises(TypeError, match=r"^callback must be callable, got 'print'$"):
        getattr(cancel, method)("print")


def test_register_callback_rejects_non_callables_and_keeps_nothing() -> None:
    token = CancelationToken()
    with pytest.raises(TypeError, match=r"^callback must be callable, got None$"):
        token.register_callback(None)  # type: ignore[arg-type]
    assert token.callback_count == 0


def test_wrap_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match=r"^fn must be callable, got 3$"):
        Cancelable().wrap(3)  # type: ignore[arg-type]


REQUESTERS: list[Callable[..., Any]] = [
    lambda reason, message: CancelationToken().cancel_sync(reason, message),
    lambda reason, message: Cancelable().cancel_sync(reason, message),
]


@pytest.mark.parametrize("request_cancel", REQUESTERS)
def test_cancel_rejects_a_bad_reason_or_message(request_cancel: Callable[..., Any]) -> None:
    with pytest.raises(TypeError, match=r"^reason must be a CancelationReason, got 'manual'$"):
        request_cancel("manual", None)
    with pytest.raises(TypeError, match=r"^message must be a str or None, got 42$"):
        request_cancel(CancelationReason.MANUAL, 42)


async def test_async_cancel_rejects_a_bad_reason_and_stays_uncancelled() -> None:
    token = CancelationToken()
    with pytest.raises(TypeError, match="reason must be"):
        await token.cancel("timeout")  # type: ignore[arg-type]
    cancel = Cancelable()
    with pytest.raises(TypeError, match="message must be"):
        await cancel.cancel(message=object())  # type: ignore[arg-type]
    assert not token.is_cancelled
    assert not cancel.is_cancelled


def test_combine_rejects_non_operations() -> None:
    with pytest.raises(TypeError, match=r"^others\[1\] must be a Cancelable, got 5$"):
        Cancelable().combine(Cancelable(), 5)  # type: ignore[arg-type]


def test_link_rejects_non_tokens_and_itself() -> None:
    linked = LinkedCancelationToken()
    with pytest.raises(TypeError, match=r"^token must be a CancelationToken, got 'x'$"):
        linked.link("x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^token must be another token"):
        linked.link(linked)
    assert linked.callback_count == 0


@pytest.mark.parametrize("value", [-1, math.nan, math.inf, "1"], ids=repr)
def test_wait_sync_rejects_bad_timeouts(value: Any) -> None:
    with pytest.raises((TypeError, ValueError), match=r"^timeout must be"):
        CancelationToken().wait_sync(value)
