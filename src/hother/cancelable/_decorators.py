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
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeGuard, TypeVar, cast, overload

from ._cancelable import Cancelable
from ._checks import check_bool, check_optional_str, check_timeout
from ._context import OperationStatus
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
) -> str | None:
    """Check the keywords every decorator takes; the parameter to inject into, if any."""
    check_optional_str("operation_id", operation_id)
    check_optional_str("name", name)
    check_bool("register_globally", register_globally)
    # The user's line: above the decorator that called this function.
    return _check_inject(inject_param, stacklevel=4)


def _check_inject(inject_param: object, *, stacklevel: int) -> str | None:
    """The parameter to inject into; None turns injection off."""
    if isinstance(inject_param, str) and not inject_param:  # 0.11 tested truthiness: "" too
        warnings.warn(
            'inject_param="" is deprecated: write inject_param=None to turn injection off',
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        return None
    if inject_param is None or _is_name(inject_param):
        return inject_param
    raise TypeError(f"inject_param must be a parameter name or None, got {inject_param!r}")


def _is_name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value.isidentifier()


def _check_name(inject_param: object) -> str:
    if not _is_name(inject_param):
        raise TypeError(f"inject_param must be a parameter name, got {inject_param!r}")
    return inject_param


def cancelable(
    timeout: float | timedelta | None = None,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> Decorator[P, T]:
    """Run each call of the decorated `async def` function as an operation of its own.

    ```python
    @cancelable(timeout=30)
    async def fetch(url: str, cancelable: Cancelable) -> bytes: ...
    ```

    A call raises what the block would: `TimeoutCancelation` once `timeout` has passed. The
    operation is passed as `inject_param` if the function declares it; with
    `inject_param=None` nothing is passed, and the function finds its operation with
    `current_operation()`. `name` defaults to the function's qualified name.

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
    inject_param: str | None = "cancelable",
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
    inject_param: str | None = "cancelable",
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


@overload
def cancelable_with_condition(
    predicate: Callable[[], Any],
    check_interval: float = 0.1,
    condition_name: str | None = None,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> Decorator[P, T]: ...


@overload
def cancelable_with_condition(
    *,
    condition: Callable[[], Any],
    check_interval: float = 0.1,
    condition_name: str | None = None,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> Decorator[P, T]: ...


def cancelable_with_condition(
    predicate: Callable[[], Any] | None = None,
    check_interval: float = 0.1,
    condition_name: str | None = None,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
    *,
    condition: Callable[[], Any] | None = None,
) -> Decorator[P, T]:
    """Like `cancelable`, with each call cancelled once `predicate()` returns true.

    `condition=` is the name 0.11 gave `predicate`: still accepted, with a
    `DeprecationWarning`.

    Raises:
        TypeError, ValueError: `predicate` is not callable, both `predicate` and
            `condition` are given, or another argument is bad.
    """
    from .sources._condition import ConditionSource

    if condition is not None:
        predicate = _renamed_predicate(predicate, condition)
    elif predicate is None:
        raise TypeError("predicate must be callable, got None")
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


def _renamed_predicate(
    predicate: Callable[[], Any] | None, condition: Callable[[], Any]
) -> Callable[[], Any]:
    """The predicate given under its 0.11 name, `condition`."""
    if predicate is not None:
        raise TypeError(
            "give predicate or condition (its 0.11 name), not both: got "
            f"predicate={predicate!r} and condition={condition!r}"
        )
    if not callable(condition):
        raise TypeError(f"condition must be callable, got {condition!r}")
    warnings.warn(
        "cancelable_with_condition(condition=...) is deprecated: write "
        "cancelable_with_condition(predicate=...), or pass it first, by position",
        DeprecationWarning,
        stacklevel=3,  # the user's line, above cancelable_with_condition
    )
    return condition


def cancelable_combine(
    *cancelables: Cancelable | Callable[[], Cancelable],
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
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
        combined = Cancelable(name=name or fn.__qualname__, register_globally=register_globally)
        return combined.combine(first, *others, operation_id=operation_id)

    return _run_as_operation(make, parameter)


def with_cancelable(
    cancel: Cancelable, inject: bool = False, inject_param: str | None = "cancelable"
) -> Decorator[P, T]:
    """Run each call of the decorated function inside the block of `cancel`.

    Called inside `async with cancel:` (in the task that entered it, or a task started
    there), the call runs in that block: any number of calls share the operation, its
    timeout and its sources. Called outside, before `cancel` ever ran, the call enters it:
    the call is the operation's one block. With `inject`, `cancel` is passed as
    `inject_param` if the function declares it (and `inject_param` is not None). Called
    outside after its block ended, or while it runs in another task, the call raises
    `RuntimeError` rather than run uncancelled. If `cancel` is quiet
    (`raise_on_cancel=False`), a call that entered it and was cancelled returns None.

    Raises:
        TypeError: `cancel` is not a `Cancelable`, or another argument is bad.
        RuntimeError: (from a call) `cancel` runs in another task, or its block has ended.
    """
    if not isinstance(cancel, Cancelable):
        raise TypeError(f"cancel must be a Cancelable, got {cancel!r}")
    check_bool("inject", inject)
    parameter = _check_inject(inject_param, stacklevel=3)

    def decorate(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        _check_coroutine_function(fn)
        slot = _slot(fn, parameter) if inject and parameter is not None else None

        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            if slot is not None and not slot.given(args, kwargs):
                args, kwargs = slot.inject(cancel, args, kwargs)  # type: ignore[assignment]
            if _runs_inside(cancel):
                return await fn(*args, **kwargs)
            _check_enterable(cancel, fn)
            async with cancel:
                return await fn(*args, **kwargs)
            return cast("T", None)  # only a quiet operation (raise_on_cancel=False) gets here

        return run

    return decorate


def _runs_inside(operation: Cancelable) -> bool:
    """Does the caller run inside the block of `operation`, in its task or one started there?"""
    if not operation.is_running:
        return False
    current = current_operation()
    while current is not None and current is not operation:
        current = current._enclosing  # pyright: ignore[reportPrivateUsage]  # the blocks around the caller
    return current is operation


def _check_enterable(operation: Cancelable, fn: Callable[..., Any]) -> None:
    """Refuse a call that can neither run inside `operation` nor enter it."""
    status = operation.context.status
    if status is OperationStatus.PENDING:
        return
    where = (
        "runs in another task"
        if status is OperationStatus.RUNNING
        else "has ended: a Cancelable runs one block"
    )
    raise RuntimeError(
        f"{fn.__qualname__}() is decorated with @with_cancelable({operation!r}), whose block "
        f"{where}; call it inside `async with` that operation (or in a task started there), "
        "or decorate it with @cancelable(...) for an operation per call"
    )


def with_current_operation(inject_param: str = "operation") -> Decorator[P, T]:
    """Pass `current_operation()` (or None) as `inject_param` to the decorated function.

    Raises:
        TypeError: `inject_param` is not a parameter name, or the function is not async.
    """
    parameter = _check_name(inject_param)

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


async def with_timeout(
    timeout: float | timedelta,
    coro: Awaitable[T],
    operation_id: str | None = None,
    name: str | None = None,
) -> T:
    """Await `coro` under `Cancelable.with_timeout(timeout, operation_id, name)`.

    It returns what `coro` returns, or raises `TimeoutCancelation` once `timeout` has passed.

    Raises:
        TimeoutCancelation: `timeout` passed first.
        TypeError, ValueError: `timeout` is not a positive, finite duration, `coro` is not
            awaitable, or `operation_id` or `name` is not a str or None.
    """
    if not inspect.isawaitable(coro):
        raise TypeError(f"coro must be awaitable, got {coro!r}")
    try:
        operation = Cancelable.with_timeout(timeout, operation_id, name)
    except BaseException:
        if inspect.iscoroutine(coro):
            coro.close()  # never awaited: close it rather than leak a warning
        raise
    async with operation:
        return await coro
    raise AssertionError("unreachable")  # pragma: no cover


@overload
def ensure_cancelable(fn: AsyncFunction[P, T], /) -> AsyncFunction[P, T]: ...


@overload
def ensure_cancelable(cancelable: Cancelable | None) -> Cancelable: ...


def ensure_cancelable(cancelable: Any) -> Any:
    """Let a function with a `cancelable` parameter be called without one.

    ```python
    @ensure_cancelable
    async def download(url: str, cancelable: Cancelable | None = None) -> bytes: ...
    ```

    For library authors exposing `cancelable=None`: a caller's operation is used as given;
    without one, the call runs in a fresh `Cancelable()` of its own, named after the
    function.

    Called with a `Cancelable` or None instead of a function, it is 0.11's check,
    deprecated: it returns the operation, or raises `RuntimeError` for None.

    Raises:
        TypeError: the function is not async or does not declare `cancelable`.
        RuntimeError: (0.11's check) `cancelable` is None.
    """
    if cancelable is None or isinstance(cancelable, Cancelable):
        return _checked(cancelable)
    return _ensuring(cancelable)


def _checked(cancelable: Cancelable | None) -> Cancelable:
    """0.11's `ensure_cancelable(cancelable)`: the operation, never None."""
    warnings.warn(
        "ensure_cancelable(cancelable) is deprecated: a function decorated with "
        "@cancelable(...) or @ensure_cancelable always receives its operation, so use it as "
        "given (`assert cancelable is not None` narrows its type)",
        DeprecationWarning,
        stacklevel=3,  # the user's line, above ensure_cancelable
    )
    if cancelable is None:
        raise RuntimeError(
            "cancelable is None: the function was called without an operation; decorate it "
            "with @cancelable(...) or @ensure_cancelable, or pass one"
        )
    return cancelable


def _ensuring(fn: AsyncFunction[P, T]) -> AsyncFunction[P, T]:
    """The decorator form of `ensure_cancelable`."""
    if not callable(fn):
        raise TypeError(
            "ensure_cancelable takes an `async def` function to decorate (or, as in 0.11, a "
            f"Cancelable or None to check), got {fn!r}"
        )
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
