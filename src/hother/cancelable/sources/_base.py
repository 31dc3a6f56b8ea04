"""The base class of every cancellation source that must wait or poll."""

from __future__ import annotations

import abc
from collections.abc import Callable, Generator, Iterable
from typing import Any, ClassVar, overload

from hother.cancelable._callbacks import logger
from hother.cancelable._checks import check_message
from hother.cancelable._context import CancelationReason

__all__ = ["CancelationSource", "Sink", "attach_all", "detach_all"]

_RESERVED = frozenset({"reason", "context", "message"})
_INF = float("inf")

# Where a source reports that it fired: (the source, message, details) -> first request?
Sink = Callable[["CancelationSource", "str | None", "dict[str, Any]"], bool]


class CancelationSource(abc.ABC):
    """A source of cancellation that runs as a task while an operation's block runs.

    Subclass it and implement `watch()`: wait or poll until the condition holds, then call
    `trigger_cancelation(message)`. The operation starts `watch()` in the task group it owns
    when its block is entered and cancels it when the block is left, however it ended.

    ```python
    class FileAppears(CancelationSource):
        def __init__(self, path: str) -> None:
            super().__init__(name=f"file {path}")
            self.path = path

        async def watch(self) -> None:
            while not await anyio.Path(self.path).exists():
                await anyio.sleep(0.1)
            self.trigger_cancelation(f"{self.path} appeared")
    ```

    A source watches one operation at a time.

    Attributes:
        reason: the `CancelationReason` reported when this source cancels the operation
            (`CONDITION` unless a subclass says otherwise).
        name: a name for logs and messages.
    """

    reason: ClassVar[CancelationReason] = CancelationReason.CONDITION

    @overload
    def __init__(self, name: str | None = None) -> None: ...

    @overload
    def __init__(self, reason: CancelationReason, name: str | None = None) -> None: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) == 1 and not kwargs:  # the common forms first: (name) or ()
            name = args[0]
        elif not args and set(kwargs) <= {"name"}:
            name = kwargs.get("name")
        else:
            name = _legacy_init(self, args, kwargs)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        self.name: str = name if name is not None else type(self).__name__
        self._sink: Sink | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "start_monitoring" in cls.__dict__ and getattr(cls.watch, "__isabstractmethod__", False):
            _adapt_legacy_class(cls)

    @abc.abstractmethod
    async def watch(self) -> None:
        """Wait or poll until the condition holds, then call `trigger_cancelation()`.

        It runs as a task in the operation's task group, inside the operation's block, and
        is cancelled when the block is left. An exception escaping it is logged and stops
        this source only; the operation goes on.
        """

    def fires_by(self) -> float:
        """The instant, on anyio's clock, by which this source will have fired, if it knows.

        `math.inf` (the default) when it cannot tell. `cancel.remaining` counts it, so code
        that hands the operation's budget on (a driver's timeout, the next service) sees a
        source that fires at a known time, as a timeout source does.
        """
        return _INF

    def trigger_cancelation(self, message: str | None = None, **details: Any) -> bool:
        """Cancel the operation this source watches; True if this was the first request.

        Safe from `watch()`, from other threads and from signal handlers: the request is
        recorded at once and the operation's scope is cancelled on its own event loop, at its
        next turn. `message` becomes
        `context.cancel_message`; `details` become attributes of the exception that leaves
        the block (for instance `condition_name=...` on `ConditionCancelation`).
        """
        check_message(message)
        reserved = _RESERVED.intersection(details)
        if reserved:
            raise TypeError(
                f"details must not be named {', '.join(sorted(reserved))}: the exception "
                "already has those attributes"
            )
        sink = self._sink
        return False if sink is None else sink(self, message, details)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- 0.11's protocol, for sources written for it -----------------------------------------

    async def start_monitoring(self, scope: Any) -> None:
        """0.11's hook, kept for sources written for it: keeps `scope` as `self.scope`.

        A subclass that implements `start_monitoring()` (and `stop_monitoring()`) instead of
        `watch()` still works, with a `DeprecationWarning`: it runs inside a task of the
        operation, with a scope of its own; `trigger_cancelation()` (awaited or not) or
        cancelling that scope cancels the operation.
        """
        self.scope = scope

    async def stop_monitoring(self) -> None:
        """0.11's hook, kept for sources written for it: cancels `self._monitoring_task`."""
        task = getattr(self, "_monitoring_task", None)
        if task is not None:
            task.cancel()

    # -- driven by the operation, or by a composite source -------------------------------------

    def _attach(self, sink: Sink) -> None:
        """Start watching for `sink`; at block entry, on the loop thread, before any task.

        Subclasses that must act at once (install a signal handler) extend it; raising here
        refuses the block before anything else was set up.
        """
        if self._sink is not None:
            raise RuntimeError(f"{self!r} already watches another operation")
        self._sink = sink

    def _detach(self) -> None:
        """Stop watching; at block exit, after the task has ended, whatever ended the block."""
        self._sink = None

    async def _run(self) -> None:
        try:
            await self.watch()
        except Exception:
            # A broken source must not crash the operation it watches; it stops watching.
            logger().exception("hother.cancelable: source %r failed and stopped watching", self)


# -- 0.11's protocol: start_monitoring(scope) / stop_monitoring(), adapted to watch() --------


def _warn(message: str, stacklevel: int) -> None:
    import warnings

    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel)


def _legacy_init(source: CancelationSource, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """0.11's `CancelationSource.__init__(reason, name=None)`: the name it gives, or raises."""
    names = ("reason", "name")
    given = dict(zip(names, args, strict=False))
    reason = kwargs.pop("reason", given.get("reason"))
    name = kwargs.pop("name", given.get("name"))
    if len(args) > 2 or kwargs or not isinstance(reason, CancelationReason):
        raise TypeError(
            "CancelationSource.__init__ takes name=, or 0.11's (reason, name=None); got "
            f"{args!r} and {kwargs!r}"
        )
    _warn(
        f"{type(source).__name__}: CancelationSource.__init__(reason, name) is 0.11's form, "
        "deprecated: call super().__init__(name=...) and set `reason` as a class attribute",
        stacklevel=4,
    )
    object.__setattr__(source, "reason", reason)  # this source's own, as 0.11 kept it
    return name


class _Requested:
    """What 0.11's `await self.trigger_cancelation(...)` awaits: the request is made already."""

    __slots__ = ("first",)

    def __init__(self, first: bool) -> None:
        self.first = first

    def __bool__(self) -> bool:
        return self.first

    def __await__(self) -> Generator[None, None, bool]:
        return self.first
        yield  # an awaitable that never suspends


def _adapt_legacy_class(cls: type[CancelationSource]) -> None:
    _warn(
        f"{cls.__name__} implements 0.11's start_monitoring()/stop_monitoring(), deprecated: "
        "implement async def watch(self), which runs as a task while the block runs "
        "(see docs/custom_sources.md)",
        stacklevel=5,  # the class statement: through __init_subclass__ and ABCMeta.__new__
    )
    cls.watch = _legacy_watch  # type: ignore[method-assign]
    trigger = cls.trigger_cancelation

    def trigger_cancelation(
        self: CancelationSource, message: str | None = None, **details: Any
    ) -> Any:
        object.__setattr__(self, "triggered", True)  # 0.11's flag
        return _Requested(trigger(self, message, **details))

    cls.trigger_cancelation = trigger_cancelation  # type: ignore[method-assign]


async def _legacy_watch(self: Any) -> None:
    """Run a 0.11 source: hand it a scope of its own; its cancellation is the trigger.

    The source may enter a task group of its own in `start_monitoring()` and leave it in
    `stop_monitoring()`: both run inside that scope, in this task, in that order.
    """
    import anyio

    self.triggered = False
    with anyio.CancelScope() as scope:
        try:
            await self.start_monitoring(scope)
            await anyio.sleep_forever()
        finally:
            # Not in a scope of ours: it may leave a task group entered in start_monitoring().
            await self.stop_monitoring()
    # The source cancelled (or set a deadline on) the scope it was given, as 0.11 sources
    # may: it fired.
    self.trigger_cancelation(f"{self.name} cancelled its scope")


def attach_all(sources: Iterable[CancelationSource], sink: Sink) -> None:
    """Attach every source to `sink`, or none: on failure the attached ones are detached."""
    attached: list[CancelationSource] = []
    try:
        for source in sources:
            source._attach(sink)  # pyright: ignore[reportPrivateUsage]  # the hook sources extend
            attached.append(source)
    except BaseException:
        detach_all(attached)
        raise


def detach_all(sources: Iterable[CancelationSource]) -> None:
    """Detach every source; one that fails to is logged and the others still are."""
    for source in sources:
        try:
            source._detach()  # pyright: ignore[reportPrivateUsage]  # the hook sources extend
        except Exception:
            logger().exception("hother.cancelable: detaching %r failed", source)
