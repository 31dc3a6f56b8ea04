"""OS signals as a cancellation source, with the previous handlers put back on exit."""

from __future__ import annotations

from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from hother.cancelable._context import CancelationReason

from ._base import CancelationSource, Sink

if TYPE_CHECKING:  # imported by the first signal source, not by every user of the library
    import signal

__all__ = ["SignalSource"]


def _signal() -> Any:
    import signal

    return signal


def _default_signals() -> tuple[signal.Signals, ...]:
    signals = _signal().Signals
    wanted = ("SIGINT", "SIGTERM")
    return tuple(getattr(signals, name) for name in wanted if hasattr(signals, name))


class _SignalHub:
    """One Python handler per signal number, shared by every operation that waits for it.

    The first watcher of a signal installs the handler and keeps the one it replaced; the
    last one to leave puts that one back, exactly. While watched, a signal goes to the
    watchers only: SIGINT raises no KeyboardInterrupt then.
    """

    def __init__(self) -> None:
        self._watchers: dict[int, list[Callable[[int], None]]] = {}
        self._previous: dict[int, Any] = {}

    def add(self, signum: int, watcher: Callable[[int], None]) -> None:
        watchers = self._watchers.get(signum)
        if watchers is not None:
            watchers.append(watcher)
            return
        self._previous[signum] = _signal().signal(signum, self._handle)
        self._watchers[signum] = [watcher]

    def remove(self, signum: int, watcher: Callable[[int], None]) -> None:
        watchers = self._watchers[signum]
        watchers.remove(watcher)
        if not watchers:
            del self._watchers[signum]
            previous = self._previous.pop(signum)
            # None: the handler was not installed from Python; the default is the best guess.
            signal = _signal()
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def watched(self) -> set[int]:
        return set(self._watchers)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        for watcher in list(self._watchers.get(signum, ())):
            watcher(signum)


_hub = _SignalHub()


class SignalSource(CancelationSource):
    """Cancels the operation when one of `signals` arrives (by default SIGINT and SIGTERM).

    The block then raises `SignalCancelation` with `signal_number`, reason `SIGNAL`. While the
    block runs, Ctrl-C becomes that cancellation instead of a `KeyboardInterrupt`; when it
    ends, the previous handlers are back exactly as they were. Several operations may wait on
    the same signal, nested or side by side: one signal cancels them all, and nothing else.

    Python runs signal handlers in the main thread only, so the block must run there (with
    `anyio.run` in the main thread); entering it elsewhere raises `RuntimeError`.

    Args:
        *signals: signal numbers or `signal.Signals` members.
        name: a name for logs.

    Raises:
        ValueError: a signal is unknown, or cannot be caught (SIGKILL, SIGSTOP).
        TypeError: a signal is not an int.
    """

    reason: ClassVar[CancelationReason] = CancelationReason.SIGNAL

    def __init__(self, *signals: int, name: str | None = None) -> None:
        checked = tuple(_check_signal(index, value) for index, value in enumerate(signals))
        self.signals: tuple[signal.Signals, ...] = checked or _default_signals()
        super().__init__(name=name or "+".join(s.name for s in self.signals))

    async def watch(self) -> None:
        await anyio.sleep_forever()  # the handler does the work; the task marks the lifetime

    def _attach(self, sink: Sink) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError(
                f"{self!r} must be entered in the main thread: Python runs signal handlers "
                f"there only, and this block runs in thread {threading.current_thread().name!r}"
            )
        super()._attach(sink)
        installed: list[signal.Signals] = []
        try:
            for signum in self.signals:
                _hub.add(signum, self._on_signal)
                installed.append(signum)
        except BaseException:
            for signum in installed:
                _hub.remove(signum, self._on_signal)
            super()._detach()
            raise

    def _detach(self) -> None:
        for signum in self.signals:
            _hub.remove(signum, self._on_signal)
        super()._detach()

    def _on_signal(self, signum: int) -> None:
        # In the signal handler: the request is recorded at once (is_cancelled is True when
        # the handler returns); the operation queues its scope's cancellation to its loop.
        name = _signal().Signals(signum).name
        self.trigger_cancelation(f"received {name}", signal_number=signum)


def _check_signal(index: int, value: object) -> signal.Signals:
    signal = _signal()
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"signals[{index}] must be a signal number, got {value!r}")
    try:
        signum = signal.Signals(value)
    except ValueError:
        raise ValueError(f"signals[{index}] is not a known signal, got {value!r}") from None
    if signum.name in ("SIGKILL", "SIGSTOP"):
        raise ValueError(f"signals[{index}] cannot be caught, got {signum.name}")
    return signum
