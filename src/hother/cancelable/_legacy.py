"""What 0.11 had and code written for it uses: its module paths, callback types and `__version__`.

0.11 spread its names over modules (`hother.cancelable.core.token`, `.utils.decorators`,
`.sources.timeout`, ...). One finder on `sys.meta_path` answers for all of those paths: it makes
the module on import, and the module's attributes are the very objects of the public modules
(`is`-identical). No file or folder exists per old path. A name 0.11 had and this version does
not raises an `ImportError` that says what to use instead.

The callback types (`ProgressCallback`, `StatusCallback`, `ErrorCallback` and their `...Type`
unions) are public again: `Cancelable.on_progress`, `on_start`, `on_complete`, `on_cancel` and
`on_error` accept any function that matches them. `__version__` is read from the installed
distribution when first asked for.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Awaitable, Callable
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias, cast

from ._context import OperationContext

if TYPE_CHECKING:
    import logging
    from collections.abc import Sequence
    from importlib.abc import Loader
    from types import ModuleType

__all__ = [
    "OLD_MODULES",
    "ErrorCallback",
    "ErrorCallbackType",
    "OldModule",
    "ProgressCallback",
    "ProgressCallbackType",
    "StatusCallback",
    "StatusCallbackType",
    "get_logger",
    "install",
    "version",
]


class ProgressCallback(Protocol):
    """A progress callback, sync or async, as `Cancelable.on_progress` calls it.

    It is called with the id of the operation that reported, the message given to
    `report_progress` and its metadata. A function matches this protocol when its
    parameters have these names and `metadata` has a default; `ProgressCallbackType`
    matches any function that takes the three arguments by position.
    """

    def __call__(
        self, operation_id: str, message: Any, metadata: dict[str, Any] | None = None
    ) -> Awaitable[None] | None:
        """Hear one progress report of operation `operation_id`."""
        ...


class StatusCallback(Protocol):
    """A callback, sync or async, for `on_start`, `on_complete` and `on_cancel`.

    It is called with the operation's `OperationContext`, whose `status` says how far the
    operation got.
    """

    def __call__(self, context: OperationContext) -> Awaitable[None] | None:
        """Hear that the operation of `context` started or ended."""
        ...


class ErrorCallback(Protocol):
    """A callback, sync or async, for `on_error`: the body of the block raised `error`.

    `error` is typed `BaseException` because `on_error` also hears an exception that is not an
    `Exception` (a `KeyboardInterrupt` raised in the body, say).
    """

    def __call__(self, context: OperationContext, error: BaseException) -> Awaitable[None] | None:
        """Hear that the body of the operation of `context` raised `error`."""
        ...


ProgressCallbackType: TypeAlias = (
    Callable[[str, Any, dict[str, Any] | None], None]
    | Callable[[str, Any, dict[str, Any] | None], Awaitable[None]]
)
"""A progress callback taking `(operation_id, message, metadata)` by position, sync or async."""

StatusCallbackType: TypeAlias = (
    Callable[[OperationContext], None] | Callable[[OperationContext], Awaitable[None]]
)
"""A start, complete or cancel callback taking the `OperationContext`, sync or async."""

ErrorCallbackType: TypeAlias = (
    Callable[[OperationContext, BaseException], None]
    | Callable[[OperationContext, BaseException], Awaitable[None]]
)
"""An error callback taking the `OperationContext` and the exception, sync or async."""


_ROOT: Final = "hother.cancelable"
_SOURCES: Final = "hother.cancelable.sources"
_TESTING: Final = "hother.cancelable.testing"
# A real module today, made a package (a `__path__`) so that 0.11's paths below it are found.
_STREAMING: Final = "hother.cancelable.streaming"

_TYPE_VARIABLE = "declare your own with typing.TypeVar or typing.ParamSpec"
_CHUNK_SIZE = (
    "chunk sizes are StreamConfig(min_tokens=..., max_tokens=...) of hother.cancelable.testing"
)


class OldModule:
    """One of 0.11's module paths: where its names live now, and those that are gone."""

    __slots__ = ("gone", "names", "note", "package", "public", "shims")

    def __init__(
        self,
        names: str = "",
        public: str = _ROOT,
        *,
        gone: dict[str, str] | None = None,
        shims: dict[str, object] | None = None,
        note: str = "",
        package: bool = False,
    ) -> None:
        self.names: tuple[str, ...] = tuple(names.split())
        self.public = public
        self.gone: dict[str, str] = gone or {}  # name -> what to use instead
        self.shims: dict[str, object] = shims or {}  # names kept working, defined here
        self.note = note
        self.package = package

    def advice(self) -> str:
        """What to write instead, for the warning."""
        parts = [f"import {', '.join(self.names)} from {self.public}"] if self.names else []
        if self.note:
            parts.append(self.note)
        parts.extend(f"{name} is gone: {hint}" for name, hint in self.gone.items())
        return "; ".join(parts)


def get_logger(name: str | None = None) -> logging.Logger:
    """0.11's `get_logger`: `logging.getLogger(name)`, by default the calling module's logger.

    Use `logging.getLogger(__name__)` instead; the library logs to the `hother.cancelable`
    logger.
    """
    import inspect
    import logging

    if name is None:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        name = caller.f_globals.get("__name__", "cancelable") if caller else "cancelable"
    return logging.getLogger(name)


OLD_MODULES: Final[dict[str, OldModule]] = {
    f"{_ROOT}.core": OldModule(package=True),
    f"{_ROOT}.core.cancelable": OldModule(
        "Cancelable current_operation",
        gone={"LinkState": "no replacement; how an operation is linked to its parent is private"},
    ),
    f"{_ROOT}.core.exceptions": OldModule(
        "CancelationError TimeoutCancelation ManualCancelation SignalCancelation "
        "ConditionCancelation ParentCancelation"
    ),
    f"{_ROOT}.core.models": OldModule("OperationStatus CancelationReason OperationContext"),
    f"{_ROOT}.core.registry": OldModule("OperationRegistry"),
    f"{_ROOT}.core.token": OldModule("CancelationToken LinkedCancelationToken"),
    f"{_ROOT}.types": OldModule(
        "ProgressCallback StatusCallback ErrorCallback ProgressCallbackType StatusCallbackType "
        "ErrorCallbackType ensure_cancelable",
        gone=dict.fromkeys(("P", "R", "T"), _TYPE_VARIABLE),
    ),
    f"{_SOURCES}.base": OldModule("CancelationSource", _SOURCES),
    f"{_SOURCES}.timeout": OldModule("TimeoutSource", _SOURCES),
    f"{_SOURCES}.signal": OldModule("SignalSource", _SOURCES),
    f"{_SOURCES}.condition": OldModule("ConditionSource ResourceConditionSource", _SOURCES),
    f"{_SOURCES}.composite": OldModule("CompositeSource AnyOfSource AllOfSource", _SOURCES),
    f"{_ROOT}.utils": OldModule(package=True),
    f"{_ROOT}.utils.decorators": OldModule(
        "cancelable with_timeout with_current_operation cancelable_method cancelable_with_token "
        "cancelable_with_signal cancelable_with_condition cancelable_combine with_cancelable"
    ),
    f"{_ROOT}.utils.streams": OldModule(
        "cancelable_stream CancelableAsyncIterator chunked_cancelable_stream"
    ),
    f"{_ROOT}.utils.anyio_bridge": OldModule("AnyioBridge call_soon_threadsafe"),
    f"{_ROOT}.utils.threading_bridge": OldModule("ThreadSafeRegistry"),
    f"{_ROOT}.utils.context_bridge": OldModule(
        gone={
            "ContextBridge": "run a function in a thread with `await cancel.run_in_thread(fn, "
            "*args)` (Cancelable.run_in_thread), which copies the context variables into the "
            "thread on every backend; contextvars.copy_context().run(fn) does it by hand"
        }
    ),
    f"{_ROOT}.utils.logging": OldModule(
        shims={"get_logger": get_logger},
        note="use logging.getLogger(__name__) instead of get_logger(); "
        "the library logs to the 'hother.cancelable' logger",
    ),
    f"{_ROOT}.utils.testing": OldModule(
        "MockCancelationToken OperationRecorder create_slow_stream assert_cancelation_within "
        "CancelationScenario",
        _TESTING,
        gone={
            "run_with_timeout_test": "use `async with assert_cancelation_within(...)` "
            "of hother.cancelable.testing",
            "sample_async_operation": "write the operation under test as an async function; "
            "create_slow_stream of hother.cancelable.testing yields items slowly",
        },
    ),
    f"{_STREAMING}.simulator": OldModule(
        "StreamConfig simulate_stream",
        _TESTING,
        gone={"get_random_chunk_size": _CHUNK_SIZE},
        package=True,
    ),
    f"{_STREAMING}.simulator.config": OldModule("StreamConfig", _TESTING),
    f"{_STREAMING}.simulator.simulator": OldModule("simulate_stream", _TESTING),
    f"{_STREAMING}.simulator.utils": OldModule(gone={"get_random_chunk_size": _CHUNK_SIZE}),
}


def _gone(module: str, gone: dict[str, str]) -> Any:
    """The old module's `__getattr__`: a name 0.11 had raises an error that says what to use."""

    def __getattr__(name: str) -> object:
        if name in gone:
            # An ImportError, not an AttributeError: `from module import name` would replace
            # an AttributeError's message by its own "cannot import name".
            raise ImportError(f"{module}.{name} is gone: {gone[name]}", name=module)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


class _PackageSource(SourceFileLoader):
    """Loads a module's source file as usual, and gives the module a `__path__` (no directory)."""

    def exec_module(self, module: ModuleType) -> None:
        module.__path__ = []
        super().exec_module(module)


class _OldPaths:
    """The finder and loader of every path of `OLD_MODULES`, on `sys.meta_path`."""

    __slots__ = ()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not fullname.startswith("hother.cancelable."):  # every other import: one test
            return None
        if fullname == _STREAMING:
            spec = PathFinder.find_spec(fullname, path)
            if spec is not None and isinstance(spec.loader, SourceFileLoader) and spec.origin:
                spec.loader = _PackageSource(fullname, spec.origin)
            return spec
        old = OLD_MODULES.get(fullname)
        if old is None:
            return None
        origin = f"0.11's path of {old.public}"
        # Not an importlib.abc.Loader (25 ms to import): the import system calls only
        # create_module and exec_module.
        return ModuleSpec(fullname, cast("Loader", self), origin=origin, is_package=old.package)

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # a plain module

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        old = OLD_MODULES[name]
        public = importlib.import_module(old.public)
        attributes = {attribute: getattr(public, attribute) for attribute in old.names}
        attributes.update(old.shims)
        module.__dict__.update(attributes, __all__=list(attributes))
        if old.gone:
            module.__dict__["__getattr__"] = _gone(name, old.gone)
        advice = old.advice()
        module.__doc__ = f"0.11's path, deprecated: {advice}." if advice else None
        if advice:  # 0.11's `core` and `utils` held no names: nothing to warn about
            # Level 2 is the import statement: warnings skips the import machinery's frames.
            warnings.warn(f"{name} is deprecated: {advice}", DeprecationWarning, 2)


_FINDER: Final = _OldPaths()


def install() -> None:
    """Put the finder of 0.11's paths first on `sys.meta_path`, once."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def version() -> str:
    """The installed distribution's version, or "0.0.0+unknown" when it is not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("hother-cancelable")
    except PackageNotFoundError:
        return "0.0.0+unknown"
