"""What every script of the tour shares: the checks, the names it prints, and how it starts.

Not an example itself (its name starts with `_`, so `nox -s examples` and the smoke test skip
it). Each script imports from it with `from _tour import ...`, which works because Python puts
the script's own folder first on `sys.path` when it runs `python examples/NAME.py`.

- `expect(condition, what)`: stop with a non-zero exit code and an `unexpected: ...` line when
  the library did not do `what`;
- `describe(cancel)` and `exception_name(exc)`: how the scripts print an outcome;
- `parse_args(__doc__)`: the `--backend asyncio|trio` and `--uvloop` options every script takes,
  plus the script's own ones if it passes `add_arguments`;
- `run(main, args, ...)`: print the backend and run `main` on it with `anyio.run`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from hother.cancelable import Cancelable


def expect(condition: bool, what: str) -> None:
    """Stop the tour with a non-zero exit code when the library did not do `what`."""
    if not condition:
        sys.exit(f"unexpected: {what}")


def describe(cancel: Cancelable) -> str:
    context = cancel.context
    reason = context.cancel_reason.name if context.cancel_reason is not None else None
    return f"status={context.status.name}, reason={reason}, message={context.cancel_message!r}"


def exception_name(exc: BaseException | None) -> str:
    if exc is None:
        return "nothing"
    cls = type(exc)
    # The library's exceptions by their public path, the backend's by their own.
    module = "hother.cancelable" if cls.__module__.startswith("hother.") else cls.__module__
    return f"{module}.{cls.__qualname__}"


def parse_args(
    description: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The command line: `--backend` and `--uvloop`, then whatever `add_arguments` adds."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--uvloop", action="store_true", help="run asyncio on uvloop")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    if args.uvloop and args.backend != "asyncio":
        parser.error("--uvloop needs --backend asyncio")
    return args


def run(main: Callable[..., Awaitable[Any]], args: argparse.Namespace, *main_args: Any) -> None:
    """Print the backend chosen in `args` and run `main(*main_args)` on it."""
    options = {"use_uvloop": True} if args.uvloop else {}
    print(f"Backend: {args.backend}{' (uvloop)' if args.uvloop else ''}\n")
    anyio.run(main, *main_args, backend=args.backend, backend_options=options)
