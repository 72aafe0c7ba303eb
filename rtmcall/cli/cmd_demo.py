"""``rtmcall demo``: argument handling only (see :mod:`.demo`)."""

from __future__ import annotations

from typing import Annotated

import typer


def demo(
    speed: Annotated[
        float,
        typer.Option(
            metavar="FACTOR",
            min=0.1,
            max=10,
            help="Timer scale: 2 plays twice as fast, 0.5 half as fast.",
        ),
    ] = 1.0,
    only: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="Play only this scenario (repeatable)."),
    ] = None,
) -> None:
    """Start a server and several users in one process and play every outcome.

    Accept, refuse, cancel, offline peer, no response, expiry, accept not confirmed, several
    invitations at once, and cancel racing accept — with short timers, showing the live
    table, then a summary of expected vs actual outcome per scenario. Exits 1 if any
    outcome differs from the expected one.

    \b
    Examples:
      rtmcall demo
      rtmcall demo --speed 2
      rtmcall demo --only accept --only refuse
    """
    from .demo import run_demo

    raise typer.Exit(run_demo(speed=speed, only=only or []))
