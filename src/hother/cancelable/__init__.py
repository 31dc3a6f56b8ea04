"""Cancel async work from many sources at once, on asyncio, uvloop and trio.

Everything public is importable from here; the modules behind it are private.
"""

from ._cancelable import Cancelable, current_operation
from ._context import CancelationReason, OperationContext, OperationStatus
from ._exceptions import (
    CancelationError,
    ConditionCancelation,
    ManualCancelation,
    ParentCancelation,
    SignalCancelation,
    TimeoutCancelation,
)
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
)

__all__ = [
    "AllOfSource",
    "AnyOfSource",
    "CallbackRegistration",
    "Cancelable",
    "CancelationError",
    "CancelationReason",
    "CancelationSource",
    "CancelationToken",
    "CompositeSource",
    "ConditionCancelation",
    "ConditionSource",
    "LinkedCancelationToken",
    "ManualCancelation",
    "OperationContext",
    "OperationStatus",
    "ParentCancelation",
    "ResourceConditionSource",
    "SignalCancelation",
    "SignalSource",
    "TimeoutCancelation",
    "TimeoutSource",
    "current_operation",
]
