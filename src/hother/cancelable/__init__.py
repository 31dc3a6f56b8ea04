"""Cancel async work from many sources at once, on asyncio, uvloop and trio.

Everything public is importable from here; the modules behind it are private.
"""

from typing import TYPE_CHECKING

from ._cancelable import Cancelable, cancelable_stream
from ._compat import AnyioBridge, call_soon_threadsafe, cancelable_method
from ._context import CancelationReason, OperationContext, OperationStatus
from ._current import current_operation
from ._decorators import (
    cancelable,
    cancelable_combine,
    cancelable_with_condition,
    cancelable_with_signal,
    cancelable_with_token,
    ensure_cancelable,
    with_cancelable,
    with_current_operation,
    with_timeout,
)
from ._exceptions import (
    CancelationError,
    ConditionCancelation,
    ManualCancelation,
    ParentCancelation,
    SignalCancelation,
    TimeoutCancelation,
)
from ._legacy import (
    ErrorCallback,
    ErrorCallbackType,
    ProgressCallback,
    ProgressCallbackType,
    StatusCallback,
    StatusCallbackType,
)
from ._legacy import install as _install_old_paths
from ._legacy import version as _version
from ._registry import OperationRegistry, ThreadSafeRegistry
from ._streams import CancelableAsyncIterator, chunked_cancelable_stream
from ._token import CallbackRegistration, CancelationToken, LinkedCancelationToken
from .sources import (
    AllOfSource,
    AnyOfSource,
    CancelationSource,
    CompositeSource,
    ConditionSource,
    ResourceConditionSource,
    SignalSource,
    TimeoutSource,
    cancel_on_signals,
)

__all__ = [
    "AllOfSource",
    "AnyOfSource",
    "AnyioBridge",
    "CallbackRegistration",
    "Cancelable",
    "CancelableAsyncIterator",
    "CancelationError",
    "CancelationReason",
    "CancelationSource",
    "CancelationToken",
    "CompositeSource",
    "ConditionCancelation",
    "ConditionSource",
    "ErrorCallback",
    "ErrorCallbackType",
    "LinkedCancelationToken",
    "ManualCancelation",
    "OperationContext",
    "OperationRegistry",
    "OperationStatus",
    "ParentCancelation",
    "ProgressCallback",
    "ProgressCallbackType",
    "ResourceConditionSource",
    "SignalCancelation",
    "SignalSource",
    "StatusCallback",
    "StatusCallbackType",
    "ThreadSafeRegistry",
    "TimeoutCancelation",
    "TimeoutSource",
    "call_soon_threadsafe",
    "cancel_on_signals",
    "cancelable",
    "cancelable_combine",
    "cancelable_method",
    "cancelable_stream",
    "cancelable_with_condition",
    "cancelable_with_signal",
    "cancelable_with_token",
    "chunked_cancelable_stream",
    "current_operation",
    "ensure_cancelable",
    "with_cancelable",
    "with_current_operation",
    "with_timeout",
]

_install_old_paths()  # 0.11's module paths (`hother.cancelable.core.token`, ...) keep importing

if TYPE_CHECKING:
    __version__: str
    """The installed distribution's version ("0.0.0+unknown" when it is not installed)."""
else:

    def __getattr__(name: str) -> object:
        # importlib.metadata costs more than the whole package: read the version when asked.
        if name == "__version__":
            globals()["__version__"] = value = _version()
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
