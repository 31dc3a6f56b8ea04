"""Decorators that run a coroutine function as an operation, and inject that operation.

A decorated function keeps its name, docstring and signature (`inspect.signature` follows
`__wrapped__`), so frameworks that read signatures see the original parameters. The
operation is passed only to a function that declares the parameter (`cancelable` unless
told otherwise), and only when the caller did not pass one, by position or by keyword (an
explicit None counts as not passed).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from ._cancelable import Cancelable
from ._checks import check_bool, check_optional_str, check_timeout
from ._current import current_operation
from ._token import CancelationToken

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = [
    "cancelable",
    "cancelable_combine",
    "cancelable_with_condition",
    "cancelable_with_signal",
    "cancelable_with_token",
    "ensure_cancelable",
    "with_cancelable",
    "with_current_operation",
    "with_timeout",
]

P = ParamSpec("P")
T = TypeVar("T")

AsyncFunction = Callable[P, Coroutine[Any, Any, T]]
Decorator = Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]


def _check_coroutine_function(fn: object) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"the decorated function must be an `async def` function, got {fn!r}")


class _Slot:
    """Where a call may give the parameter an operation is injected into."""

    __slots__ = ("defaults", "index", "name")

    def __init__(self, name: str, index: int, defaults: tuple[Any, ...] | None) -> None:
        self.name = name
        self.index = index  # its position; -1: keyword-only
        # Positional-only: the defaults of the positional parameters before it, to pass
        # positionally when the caller left them out. None: it can be passed by keyword.
        self.defaults = defaults

    def given(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Did the caller pass it (None counts as not passed)?"""
        if 0 <= self.index < len(args):
            return args[self.index] is not None
        return kwargs.get(self.name) is not None

    def inject(
        self, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        index = self.index
        if 0 <= index < len(args):  # passed positionally, as None
            return (*args[:index], value, *args[index + 1 :]), kwargs
        if self.defaults is not None:  # positional-only: fill the gap with the defaults
            gap = self.defaults[len(args) :]
            if inspect.Parameter.empty in gap:  # a required one is missing: Python says so
                return args, kwargs
            return (*args, *gap, value), kwargs
        return args, {**kwargs, self.name: value}


def _slot(fn: Callable[..., Any], parameter: str) -> _Slot | None:
    """Where `fn` takes `parameter`; None if it does not."""
    parameters = list(inspect.signature(fn).parameters.values())
    for index, candidate in enumerate(parameters):
        if candidate.name != parameter:
            continue
        if candidate.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            return _Slot(parameter, index, None)
        if candidate.kind is inspect.Parameter.POSITIONAL_ONLY:
            before = tuple(p.default for p in parameters[:index])
            return _Slot(parameter, index, before)
        return _Slot(parameter, -1, None)  # keyword-only
    return None


def _run_as_operation(
    make: Callable[[Callable[..., Any]], Cancelable], inject_param: str | None
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """The decorator that runs each call inside a fresh operation from `make(fn)`."""

    def decorate(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        _check_coroutine_function(fn)
        slot = None if inject_param is None else _slot(fn, inject_param)

        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            async with make(fn) as operation:
                if slot is not None and not slot.given(args, kwargs):
                    args, kwargs = slot.inject(operation, args, kwargs)  # type: ignore[assignment]
                return await fn(*args, **kwargs)
            return cast("T", None)  # only a quiet operation (raise_on_cancel=False) gets here

        return run

    return decorate


def _check_common(
    operation_id: object, name: object, register_globally: object, inject_param: object
) -> str:
    """Check the keywords every decorator takes; the parameter to inject into."""
    check_optional_str("operation_id", operation_id)
    check_optional_str("name", name)
    check_bool("register_globally", register_globally)
    return _check_inject(inject_param)


def _check_inject(inject_param: object) -> str:
    if not isinstance(inject_param, str) or not inject_param.isidentifier():
        raise TypeError(f"inject_param must be a parameter name, got {inject_param!r}")
    return inject_param


def cancelable(
    timeout: float | timedelta | None = None,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str = "cancelable",
) -> Decorator[P, T]:
    """Run each call of the decorated `async def` function as an operation of its own.

    ```python
    @cancelable(timeout=30)
    async def fetch(url: str, cancelable: Cancelable) -> bytes: ...
    ```

    A call raises what the block would: `TimeoutCancelation` once `timeout` has passed. The
    operation is passed as `inject_param` if the function declares it. `name` defaults to
    the function's qualified name.

    Raises:
        TypeError, ValueError: a bad argument, or a decorated function that is not async.
    """
    seconds = None if timeout is None else check_timeout(timeout)
    parameter = _check_common(operation_id, name, register_globally, inject_param)

    def make(fn: Callable[..., Any]) -> Cancelable:
        label = name or fn.__qualname__
        if seconds is None:
            return Cancelable(operation_id, label, register_globally=register_globally)
        return Cancelable.with_timeout(
            seconds, operation_id, label, register_globally=register_globally
        )

    return _run_as_operation(make, parameter)


def cancelable_with_token(
    token: CancelationToken,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str = "cancelable",
) -> Decorator[P, T]:
    """Like `cancelable`, with each call cancelled when `token` is.

    Raises:
        TypeError: `token` is not a `CancelationToken`, or another argument is bad.
    """
    if not isinstance(token, CancelationToken):
        raise TypeError(f"token must be a CancelationToken, got {token!r}")
    parameter = _check_common(operation_id, name, register_globally, inject_param)

    def make(fn: Callable[..., Any]) -> Cancelable:
        return Cancelable.with_token(
            token, operation_id, name or fn.__qualname__, register_globally=register_globally
        )

    return _run_as_operation(make, parameter)


def cancelable_with_signal(
    *signals: int,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str = "cancelable",
) -> Decorator[P, T]:
    """Like `cancelable`, with each call cancelled by one of `signals` (SIGINT, SIGTERM).

    Raises:
        TypeError, ValueError: a signal is unknown or uncatchable, or another argument is bad.
    """
    from .sources._signal import SignalSource

    SignalSource(*signals)  # check them now, at the decorator
    parameter = _check_common(operation_id, name, register_globally, inject_param)

    def make(fn: Callable[..., Any]) -> Cancelable:
        return Cancelable.with_signal(
            *signals,
            operation_id=operation_id,
            name=name or fn.__qualname__,
            register_globally=register_globally,
        )

    return _run_as_operation(make, parameter)


def cancelable_with_condition(
    predicate: Callable[[], Any],
    check_interval: float = 0.1,
    condition_name: str | None = None,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str = "cancelable",
) -> Decorator[P, T]:
    """Like `cancelable`, with each call cancelled once `predicate()` returns true.

    Raises:
        TypeError, ValueError: `predicate` is not callable, or another argument is bad.
    """
    from .sources._condition import ConditionSource

    ConditionSource(predicate, check_interval, condition_name)  # check them now
    parameter = _check_common(operation_id, name, register_globally, inject_param)

    def make(fn: Callable[..., Any]) -> Cancelable:
        return Cancelable.with_condition(
            predicate,
            check_interval,
            condition_name,
            operation_id,
            name or fn.__qualname__,
            register_globally=register_globally,
        )

    return _run_as_operation(make, parameter)


def cancelable_combine(
    *cancelables: Cancelable | Callable[[], Cancelable],
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str = "cancelable",
) -> Decorator[P, T]:
    """Like `cancelable`, with each call cancelled by any of `cancelables`, with its reason.

    Give factories (`lambda: Cancelable.with_signal()`), which build fresh operations, and
    each call combines what they build; every timeout, token and source applies, and the
    earliest timeout wins. Operations given as such serve as templates: their timeouts and
    tokens apply to each call, and their sources too, but a source watches one call at a
    time, so use factories when calls may overlap.

    Raises:
        TypeError, ValueError: nothing to combine, or an argument of the wrong type.
    """
    if not cancelables:
        raise ValueError("cancelables must hold at least one Cancelable or factory, got none")
    for index, item in enumerate(cancelables):
        if not isinstance(item, Cancelable) and not callable(item):
            raise TypeError(
                f"cancelables[{index}] must be a Cancelable or a factory of one, got {item!r}"
            )
    parameter = _check_common(operation_id, name, register_globally, inject_param)

    def build(item: Cancelable | Callable[[], Cancelable]) -> Cancelable:
        made = item if isinstance(item, Cancelable) else item()
        if not isinstance(made, Cancelable):
            raise TypeError(f"a cancelable factory must return a Cancelable, got {made!r}")
        return made

    def make(fn: Callable[..., Any]) -> Cancelable:
        first, *others = (build(item) for item in cancelables)
        combined = Cancelable(
            operation_id, name or fn.__qualname__, register_globally=register_globally
        )
        return combined.combine(first, *others)

    return _run_as_operation(make, parameter)


def with_cancelable(cancel: Cancelable, inject: bool = False) -> Decorator[P, T]:
    """Run the decorated function's call inside the block of `cancel` (one call: one block).

    With `inject`, `cancel` is passed as the `cancelable` parameter if declared. If `cancel`
    is quiet (`raise_on_cancel=False`), a cancelled call returns None.

    Raises:
        TypeError: `cancel` is not a `Cancelable`.
    """
    if not isinstance(cancel, Cancelable):
        raise TypeError(f"cancel must be a Cancelable, got {cancel!r}")
    check_bool("inject", inject)
    return _run_as_operation(lambda fn: cancel, "cancelable" if inject else None)


def with_current_operation(inject_param: str = "operation") -> Decorator[P, T]:
    """Pass `current_operation()` (or None) as `inject_param` to the decorated function.

    Raises:
        TypeError: `inject_param` is not a parameter name, or the function is not async.
    """
    parameter = _check_inject(inject_param)

    def decorate(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        _check_coroutine_function(fn)
        slot = _slot(fn, parameter)

        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            if slot is not None and not slot.given(args, kwargs):
                args, kwargs = slot.inject(current_operation(), args, kwargs)  # type: ignore[assignment]
            return await fn(*args, **kwargs)

        return run

    return decorate


async def with_timeout(timeout: float | timedelta, coro: Awaitable[T]) -> T:
    """Await `coro` under `Cancelable.with_timeout(timeout)`: its result, or the timeout.

    Raises:
        TimeoutCancelation: `timeout` passed first.
        TypeError, ValueError: `timeout` is not a positive, finite duration, or `coro` is
            not awaitable.
    """
    if not inspect.isawaitable(coro):
        raise TypeError(f"coro must be awaitable, got {coro!r}")
    try:
        operation = Cancelable.with_timeout(timeout)
    except BaseException:
        if inspect.iscoroutine(coro):
            coro.close()  # never awaited: close it rather than leak a warning
        raise
    async with operation:
        return await coro
    raise AssertionError("unreachable")  # pragma: no cover


def ensure_cancelable(fn: AsyncFunction[P, T]) -> AsyncFunction[P, T]:
    """Let a function with a `cancelable` parameter be called without one.

    For library authors exposing `cancelable=None`: a caller's operation is used as given;
    without one, the call runs in a fresh `Cancelable()` of its own.

    Raises:
        TypeError: the function is not async or does not declare `cancelable`.
    """
    _check_coroutine_function(fn)
    slot = _slot(fn, "cancelable")
    if slot is None:
        raise TypeError(f"{fn.__qualname__} must declare a `cancelable` parameter")

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        if slot.given(args, kwargs):
            return await fn(*args, **kwargs)
        async with Cancelable(name=fn.__qualname__) as operation:
            args, kwargs = slot.inject(operation, args, kwargs)  # type: ignore[assignment]
            return await fn(*args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    return run
