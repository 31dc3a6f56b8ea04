"""Instrumentation: see every operation start and end in the tools a service already runs.

```python
from hother.cancelable.instrumentation import LoggingHook, set_hooks

set_hooks([LoggingHook()])
```

A hook is any object with `on_start(context)` and `on_end(context, error)` (see
`OperationHook`): it is told of every operation's start and end, with its `OperationContext`
(id, name, parent id, status, reason, message, duration), and never changes what the block
does; an exception in a hook is logged and dropped. Three hooks are built in, each needing
only its own library, imported when the hook is made:

- `LoggingHook`: the library's logger (`hother.cancelable`); a cancellation at INFO, with its
  reason and message, a failure at WARNING, a completed operation at DEBUG;
- `StructlogHook`: the same as structlog key-value events (the `structlog` extra);
- `OpenTelemetryHook`: one span per operation, nested as the operations are (the
  `opentelemetry` extra).

With no hooks set (the default), an operation's start and end cost what they cost without
this module.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._callbacks import logger as library_logger
from ._context import CANCELLED, FAILED, OperationContext
from ._hooks import OperationHook, active

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

__all__ = [
    "LoggingHook",
    "OpenTelemetryHook",
    "OperationHook",
    "StructlogHook",
    "get_hooks",
    "set_hooks",
]


def set_hooks(hooks: Iterable[OperationHook]) -> None:
    """Use `hooks`, in this order, for every operation that starts from now on.

    Replaces the hooks set before; `set_hooks([])` turns instrumentation off. An operation
    that runs while the hooks change is told of its end by the hooks set at that moment.

    Raises:
        TypeError: `hooks` is not an iterable of objects with callable `on_start` and
            `on_end`; nothing is changed then.
    """
    if isinstance(hooks, str | bytes) or not isinstance(hooks, Iterable):
        raise TypeError(f"hooks must be an iterable of hooks, got {hooks!r}")
    checked = list(hooks)
    for index, hook in enumerate(checked):
        if not (
            callable(getattr(hook, "on_start", None)) and callable(getattr(hook, "on_end", None))
        ):
            raise TypeError(
                f"hooks[{index}] must have on_start(context) and on_end(context, error) "
                f"methods, got {hook!r}"
            )
    active[:] = checked  # in place: the core holds this very list


def get_hooks() -> tuple[OperationHook, ...]:
    """The hooks in use, in the order they are called at a start."""
    return tuple(active)


def _describe(context: OperationContext) -> str:
    name = f"{context.name!r} " if context.name else ""
    return f"operation {name}({context.id})"


def _fields(context: OperationContext) -> dict[str, Any]:
    return {
        "operation_id": context.id,
        "operation_name": context.name,
        "parent_id": context.parent_id,
        "status": context.status.value,
        "cancel_reason": None if context.cancel_reason is None else context.cancel_reason.value,
        "cancel_message": context.cancel_message,
        "error": context.error,
        "duration_seconds": context.duration_seconds,
    }


def _ending(context: OperationContext) -> tuple[int, str]:
    """The log level of an operation's end, and the word for it: one rule for every hook."""
    if context.status is FAILED:
        return logging.WARNING, "failed"
    if context.status is CANCELLED:
        return logging.INFO, "cancelled"
    return logging.DEBUG, "completed"


class LoggingHook:
    """Log each operation's end on a standard `logging` logger.

    A cancellation at INFO, with the reason and the message (`operation 'GET /report' (id)
    cancelled after 0.30 s: timeout, operation timed out after 0.3 s`); a failure at
    WARNING, with the error; a completed operation at DEBUG. Starts are logged at DEBUG.
    Each record carries the operation's fields in `extra` (`operation_id`,
    `operation_name`, `parent_id`, `status`, `cancel_reason`, `cancel_message`, `error`,
    `duration_seconds`), for formatters that read them.

    Args:
        logger: where to log; the library's own logger, `hother.cancelable`, by default.
    """

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger | None = None) -> None:
        if logger is not None and not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a logging.Logger or None, got {logger!r}")
        self.logger: logging.Logger = library_logger() if logger is None else logger

    def on_start(self, context: OperationContext) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("%s started", _describe(context), extra=_fields(context))

    def on_end(self, context: OperationContext, error: BaseException | None) -> None:
        level, ended = _ending(context)
        if not self.logger.isEnabledFor(level):
            return
        what = f"{ended} after {context.duration_seconds or 0.0:.2f} s"
        if context.status is FAILED:
            what += f": {context.error}"
        elif context.status is CANCELLED:
            reason = None if context.cancel_reason is None else context.cancel_reason.value
            message = f", {context.cancel_message}" if context.cancel_message else ""
            what += f": {reason}{message}"
        self.logger.log(level, "%s %s", _describe(context), what, extra=_fields(context))

    def __repr__(self) -> str:
        return f"LoggingHook({self.logger.name!r})"


class StructlogHook:
    """Log each operation's end as a structlog event, with its fields as keys.

    The event is `"operation cancelled"` (INFO), `"operation failed"` (WARNING) or
    `"operation completed"` (DEBUG), with `operation_id`, `operation_name`, `parent_id`,
    `status`, `cancel_reason`, `cancel_message`, `error` and `duration_seconds`; starts are
    `"operation started"` at DEBUG. Needs structlog (the `structlog` extra).

    Args:
        logger: a structlog logger; `structlog.get_logger("hother.cancelable")` by default.

    Raises:
        ImportError: structlog is not installed.
    """

    __slots__ = ("logger",)

    def __init__(self, logger: Any = None) -> None:
        try:
            import structlog
        except ImportError as missing:
            raise ImportError(
                "StructlogHook needs structlog, which is not installed: "
                "pip install 'hother-cancelable[structlog]'"
            ) from missing
        self.logger: Any = structlog.get_logger("hother.cancelable") if logger is None else logger

    def on_start(self, context: OperationContext) -> None:
        self.logger.debug("operation started", **_fields(context))

    def on_end(self, context: OperationContext, error: BaseException | None) -> None:
        level, ended = _ending(context)
        self.logger.log(level, f"operation {ended}", **_fields(context))

    def __repr__(self) -> str:
        return "StructlogHook()"


class OpenTelemetryHook:
    """One OpenTelemetry span per operation, current while its block runs.

    The span is named after the operation (`"operation"` when it has no name) and started
    as the block begins, in the block's task, so operations nested in it, and any span made
    inside it, are its children; the span of a FastAPI request's operation is a child of the
    server's request span when the app is instrumented. Attributes:
    `cancelable.operation_id`, `cancelable.parent_id`, and at the end `cancelable.status`,
    `cancelable.cancel_reason`, `cancelable.cancel_message`. A failure sets the span status
    to ERROR and records the exception; a cancellation leaves it UNSET (a cancellation is no
    error), with the reason and message as attributes. Needs the OpenTelemetry API (the
    `opentelemetry` extra), and an SDK configured by the application to export anything.

    Args:
        tracer: the tracer to start spans with; `trace.get_tracer("hother.cancelable")` by
            default.

    Raises:
        ImportError: the OpenTelemetry API is not installed.
    """

    __slots__ = ("_open", "_tracer")

    def __init__(self, tracer: Tracer | None = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError as missing:
            raise ImportError(
                "OpenTelemetryHook needs the OpenTelemetry API, which is not installed: "
                "pip install 'hother-cancelable[opentelemetry]'"
            ) from missing
        self._tracer: Tracer = trace.get_tracer("hother.cancelable") if tracer is None else tracer
        self._open: dict[str, tuple[Any, object]] = {}  # operation id: (span, context token)

    def on_start(self, context: OperationContext) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        attributes = {"cancelable.operation_id": context.id}
        if context.parent_id is not None:
            attributes["cancelable.parent_id"] = context.parent_id
        span = self._tracer.start_span(context.name or "operation", attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        self._open[context.id] = (span, token)

    def on_end(self, context: OperationContext, error: BaseException | None) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import Status, StatusCode

        opened = self._open.pop(context.id, None)
        if opened is None:
            return  # started before this hook was set
        span, token = opened
        span.set_attribute("cancelable.status", context.status.value)
        if context.cancel_reason is not None:
            span.set_attribute("cancelable.cancel_reason", context.cancel_reason.value)
        if context.cancel_message is not None:
            span.set_attribute("cancelable.cancel_message", context.cancel_message)
        if context.status is FAILED:
            if error is not None:
                span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, context.error))
        span.end()
        try:
            otel_context.detach(token)  # pyright: ignore[reportArgumentType]
        except Exception:  # ended in another context (a stream's last step): the span is done
            library_logger().debug("hother.cancelable: span context not detached", exc_info=True)

    def __repr__(self) -> str:
        return "OpenTelemetryHook()"
