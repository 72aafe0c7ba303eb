"""``rtmcall demo``: argument handling only (see :mod:`..demo.run`)."""

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
    list_: Annotated[
        bool, typer.Option("--list", help="List the demo's scenarios and where their files are.")
    ] = False,
) -> None:
    """Play every outcome: the scenario files shipped with rtmcall, each with a server and
    its users in this process.

    Accept, refuse, cancel, offline peer, late login, no response, expiry, several
    invitations at once, cancel racing accept, caller gone, and an accept never confirmed —
    with short timers, showing the live table, then a summary of expected vs actual outcome
    per invitation. Exits 1 if any outcome differs from the expected one. Each scenario is a
    file in the format of `rtmcall scenario`: copy one to start your own (--list).

    \b
    Examples:
      rtmcall demo
      rtmcall demo --speed 2
      rtmcall demo --only accept --only refuse
      rtmcall demo --list
    """
    from ..demo.run import list_demo, run_demo

    if list_:
        raise typer.Exit(list_demo())
    raise typer.Exit(run_demo(speed=speed, only=only or []))
