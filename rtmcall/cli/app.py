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

#: The exit status when standard output was closed under us (``rtmcall … | head -1``): a
#: program killed by SIGPIPE gives 128 + 13 in a shell; rtmcall stops quietly with it.
STDOUT_CLOSED = 141


def main() -> None:
    """Run ``rtmcall`` with ``sys.argv``."""
    try:
        _main()
    except* BrokenPipeError:
        # The reader went away: no traceback; stdout now goes nowhere, so that the
        # interpreter's last flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(STDOUT_CLOSED)


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
