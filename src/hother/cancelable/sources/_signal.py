"""OS signals as a cancellation source or a token's canceller, with the previous handlers put
back on exit, and a second Ctrl-C that forces the exit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import anyio

from hother.cancelable._context import CancelationReason
from hother.cancelable._request import Request
from hother.cancelable._token import CancelationToken, request_sync
from hother.cancelable._wakeup import LoopWaker, current_waker

from ._base import CancelationSource, Sink

if TYPE_CHECKING:  # imported by the first signal source, not by every user of the library
    import signal

__all__ = ["SignalSource", "cancel_on_signals"]


def _signal() -> Any:
    import signal

    return signal


def _is_trios(handler: Callable[..., object]) -> bool:
    # Looked at, not imported: only the wake-up module may import trio.
    module = getattr(handler, "__module__", None) or ""
    return module == "trio" or module.startswith("trio.")


def _keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def _raise_on_asyncio_loop() -> bool:
    """Queue a KeyboardInterrupt to the asyncio loop running here; False if none runs."""
    try:
        waker = current_waker()
    except RuntimeError:
        return False
    # Never on trio: an exception from a run_sync_soon callback crashes trio.
    return waker.loop is not None and waker.call_soon(_keyboard_interrupt)


def _default_signals() -> tuple[signal.Signals, ...]:
    signals = _signal().Signals
    wanted = ("SIGINT", "SIGTERM")
    return tuple(getattr(signals, name) for name in wanted if hasattr(signals, name))


class _SignalHub:
    """One Python handler per signal number, shared by every operation that waits for it.

    The first watcher of a signal installs the handler and keeps the one it replaced; the
    last one to leave puts that one back, exactly. While watched, a signal goes to the
    watchers only: SIGINT raises no KeyboardInterrupt then. A SIGINT that reaches a watcher
    which already had one (its block is still running) forces the exit instead.

    While a watcher entered on asyncio's loop watches, a signal also wakes that loop: one
    that came just as the loop went to wait would otherwise be handled only at its next
    wake-up (see `LoopWaker.wake_on_signals`).
    """

    def __init__(self) -> None:
        self._watchers: dict[int, list[Callable[[int], None]]] = {}
        self._previous: dict[int, Any] = {}
        self._interrupted: list[Callable[[int], None]] = []  # watchers a SIGINT has reached
        self._forced = False  # a KeyboardInterrupt was sent for them already
        self._woken: LoopWaker | None = None  # the loop a signal wakes, for `_waking`
        self._waking: list[Callable[[int], None]] = []  # watchers entered on that loop

    def add_all(self, signums: Iterable[int], watcher: Callable[[int], None]) -> None:
        """Watch every signal of `signums`, or none: on failure the added ones are removed."""
        added: list[int] = []
        try:
            for signum in signums:
                self.add(signum, watcher)
                added.append(signum)
            self._wake(watcher)
        except BaseException:
            self.remove_all(added, watcher)
            raise

    def remove_all(self, signums: Iterable[int], watcher: Callable[[int], None]) -> None:
        for signum in signums:
            self.remove(signum, watcher)
        self._unwake(watcher)

    def _wake(self, watcher: Callable[[int], None]) -> None:
        """While `watcher` watches, a signal wakes the event loop running here at once."""
        try:
            waker = current_waker()
        except RuntimeError:
            return  # no loop runs here: nothing waits in select() for the handler to run
        if self._woken is None and waker.wake_on_signals():
            self._woken = waker
        if self._woken is not None and self._woken.loop is waker.loop:
            self._waking.append(watcher)

    def _unwake(self, watcher: Callable[[int], None]) -> None:
        """`watcher` no longer watches: the last one entered on the woken loop undoes `_wake`."""
        waking = self._waking
        if watcher not in waking:
            return
        waking.remove(watcher)
        if not waking and self._woken is not None:
            self._woken.stop_waking_on_signals()
            self._woken = None

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
        interrupted = self._interrupted
        while watcher in interrupted:
            interrupted.remove(watcher)
        if not interrupted:
            self._forced = False
        if not watchers:
            del self._watchers[signum]
            previous = self._previous.pop(signum)
            # None: the handler was not installed from Python; the default is the best guess.
            signal = _signal()
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def watched(self) -> set[int]:
        return set(self._watchers)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        watchers = list(self._watchers.get(signum, ()))
        if signum == _signal().SIGINT:
            interrupted = self._interrupted
            if any(watcher in interrupted for watcher in watchers):
                self._force_exit(frame)
                return
            interrupted.extend(watchers)
        for watcher in watchers:
            watcher(signum)

    def _force_exit(self, frame: FrameType | None) -> None:
        """Raise KeyboardInterrupt for a second Ctrl-C, where the event loop can take it.

        Raised in this handler, it would land wherever the program was: inside the event
        loop's or anyio's bookkeeping, which it can leave half done (a task group then waits
        forever for a task that ended). So the second one is delivered at a safe point: on
        asyncio, raised by a callback at the loop's next turn, which ends `run()` and
        cancels every task, shielded or not; on trio, by trio's own handler (the one
        replaced), told nothing of where it landed, which raises it in the main task, at
        once if it waits, else at its next checkpoint. A third one, should the second not
        get through (the loop is blocked), is raised at once, as Python's default handler does.
        """
        at_once, self._forced = self._forced, True
        signal = _signal()
        previous = self._previous.get(signal.SIGINT)
        if callable(previous) and _is_trios(previous):
            previous(signal.SIGINT, frame if at_once else None)
        elif at_once or not _raise_on_asyncio_loop():
            raise KeyboardInterrupt


_hub = _SignalHub()


class SignalSource(CancelationSource):
    """Cancels the operation when one of `signals` arrives (by default SIGINT and SIGTERM).

    The block then raises `SignalCancelation` with `signal_number`, reason `SIGNAL`. While the
    block runs, Ctrl-C becomes that cancellation instead of a `KeyboardInterrupt`; when it
    ends, the previous handlers are back exactly as they were. Several operations may wait on
    the same signal, nested or side by side: one signal cancels them all, and nothing else.

    A second Ctrl-C while the cancelled block is still running (its cleanup is slow, or
    stuck) raises `KeyboardInterrupt`, as asyncio's and trio's runners do. A second SIGTERM
    changes nothing.

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
        self.signals: tuple[signal.Signals, ...] = _check_signals(signals)
        super().__init__(name=name or "+".join(s.name for s in self.signals))

    async def watch(self) -> None:
        await anyio.sleep_forever()  # the handler does the work; the task marks the lifetime

    def _attach(self, sink: Sink) -> None:
        _require_main_thread(self)
        super()._attach(sink)
        try:
            _hub.add_all(self.signals, self._on_signal)
        except BaseException:
            super()._detach()
            raise

    def _detach(self) -> None:
        _hub.remove_all(self.signals, self._on_signal)
        super()._detach()

    def _on_signal(self, signum: int) -> None:
        # In the signal handler: the request is recorded at once (is_cancelled is True when
        # the handler returns); the operation queues its scope's cancellation to its loop.
        self.trigger_cancelation(_message(signum), signal_number=signum)


class cancel_on_signals:  # lower case: used like a function, as contextlib.suppress is
    """Cancel `token` when one of `signals` arrives, for the length of a `with` block.

    For code that hands one token to many tasks, workers or threads: while the block runs,
    Ctrl-C (or another of `signals`, by default SIGINT and SIGTERM) cancels `token` with
    reason `SIGNAL` and a message such as `"received SIGINT"`, instead of raising
    `KeyboardInterrupt`. Whatever then checks the token raises `SignalCancelation` with
    `signal_number`: `token.check()`, `await token.check_async()`, and a
    `Cancelable.with_token(token)` block. When the block ends, however it ends, the
    previous handlers are back exactly as they were.

    ```python
    token = CancelationToken()
    with cancel_on_signals(token):  # SIGINT and SIGTERM
        async with anyio.create_task_group() as tg:
            for url in urls:
                tg.start_soon(download, url, token)
    ```

    A second Ctrl-C while the block still runs (the first one cancelled the token, and the
    cleanup is slow, or stuck) raises `KeyboardInterrupt`, as asyncio's and trio's runners
    do. A second SIGTERM changes nothing.

    It may also be entered with `async with`; entering returns `token`. It shares its
    handlers with `SignalSource`, and like it must be entered in the main thread.

    Args:
        token: the token to cancel.
        *signals: signal numbers or `signal.Signals` members.

    Raises:
        TypeError: `token` is not a `CancelationToken`, or a signal is not an int.
        ValueError: a signal is unknown, or cannot be caught (SIGKILL, SIGSTOP).
        RuntimeError: entered outside the main thread, or entered while already entered.

    Attributes:
        token: the token it cancels.
        signals: the signals it watches.
    """

    __slots__ = ("_entered", "signals", "token")

    def __init__(self, token: CancelationToken, *signals: int) -> None:
        if not isinstance(token, CancelationToken):
            raise TypeError(f"token must be a CancelationToken, got {token!r}")
        self.token: CancelationToken = token
        self.signals: tuple[signal.Signals, ...] = _check_signals(signals)
        self._entered = False

    def __repr__(self) -> str:
        names = "+".join(s.name for s in self.signals)
        return f"<cancel_on_signals {names} for token {self.token.id}>"

    def __enter__(self) -> CancelationToken:
        _require_main_thread(self)
        if self._entered:
            raise RuntimeError(f"{self!r} is already entered")
        _hub.add_all(self.signals, self._on_signal)
        self._entered = True
        return self.token

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._entered = False
        _hub.remove_all(self.signals, self._on_signal)

    async def __aenter__(self) -> CancelationToken:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def _on_signal(self, signum: int) -> None:
        # In the signal handler, where cancel_sync is safe; the number goes with the request.
        details = {"signal_number": signum}
        request_sync(self.token, Request(CancelationReason.SIGNAL, _message(signum), details))


def _message(signum: int) -> str:
    return f"received {_signal().Signals(signum).name}"


def _require_main_thread(user: object) -> None:
    import threading

    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            f"{user!r} must be entered in the main thread: Python runs signal handlers "
            f"there only, and this block runs in thread {threading.current_thread().name!r}"
        )


def _check_signals(signals: tuple[object, ...]) -> tuple[signal.Signals, ...]:
    """The signals, checked; SIGINT and SIGTERM when none is given."""
    checked = tuple(_check_signal(index, value) for index, value in enumerate(signals))
    return checked or _default_signals()


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
