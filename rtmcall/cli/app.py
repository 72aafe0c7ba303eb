"""The ``rtmcall`` console-script entry point (``rtmcall.cli.app:main``).

``rtmcall --help`` must start within 120 ms (issue 6), and importing typer alone takes
~75-100 ms here. So the two answers that need no parsing — the top-level help and the
version — are printed from plain strings without importing typer; everything else goes to
the typer app in :mod:`.typer_app`. ``tests/cli/test_app.py`` checks that the stored help is
exactly what typer prints, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: The exit status when standard output was closed under us (``rtmcall … | head -1``): the
#: command did not finish as asked; 1, as click says it for the commands it runs itself.
STDOUT_CLOSED = 1


def main() -> None:
    """Run ``rtmcall`` with ``sys.argv``."""
    try:
        _main()
    except BaseException as exc:  # noqa: BLE001 - only a closed stdout is handled here
        code = _stdout_closed(exc)
        if code is None:
            raise
        # The reader went away: no traceback; stdout now goes nowhere, so that the
        # interpreter's last flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(code)


def _stdout_closed(exc: BaseException) -> int | None:
    """The exit status for a run ended by a closed stdout (trio may group the
    BrokenPipeError with the exits and interrupts it caused), else None."""
    if isinstance(exc, BrokenPipeError):
        return STDOUT_CLOSED
    if not isinstance(exc, BaseExceptionGroup):
        return None
    pipes, rest = exc.split(BrokenPipeError)
    if pipes is None:
        return None
    leaves = [] if rest is None else _leaves(rest)
    if not all(isinstance(e, SystemExit | KeyboardInterrupt) for e in leaves):
        return None
    if any(isinstance(e, KeyboardInterrupt) for e in leaves):
        return 130
    exits = [e.code for e in leaves if isinstance(e, SystemExit) and isinstance(e.code, int)]
    return max(exits, default=STDOUT_CLOSED) or STDOUT_CLOSED


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _main() -> None:
    args = sys.argv[1:]
    if args in (["--help"], ["-h"]):
        from ._help import ROOT_HELP

        sys.stdout.write(ROOT_HELP)
        return
    if args == ["--version"]:
        from rtmcall import __version__

        sys.stdout.write(f"rtmcall {__version__}\n")
        return
    from .typer_app import app

    app(prog_name="rtmcall")


def __getattr__(name: str) -> Any:
    # `from rtmcall.cli.app import app` still gives the typer app, imported on demand.
    if name == "app":
        from .typer_app import app

        return app
    raise AttributeError(name)
