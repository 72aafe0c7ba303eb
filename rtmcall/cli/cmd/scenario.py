"""``rtmcall scenario``: argument handling only (see :mod:`rtmcall.scenario.suite`)."""

from __future__ import annotations

from typing import Annotated

import typer


def scenario(
    paths: Annotated[
        list[str],
        typer.Argument(metavar="PATH", help="Scenario files (.yaml, .yml) or folders of them."),
    ],
    server: Annotated[
        list[str] | None,
        typer.Option(
            metavar="URL",
            help="Play against this server instead of an embedded one (repeatable: the "
            "actors are spread over them, and an actor whose server refuses connections "
            "reconnects to the next).",
        ),
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME=VALUE", help="Set ${NAME} in the step lines (repeatable)."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="Play only this scenario; a shell pattern works too."),
    ] = None,
    repeat: Annotated[
        int, typer.Option(metavar="N", min=1, help="Play each scenario N times (${i} is 1…N).")
    ] = 1,
    junit: Annotated[
        str | None, typer.Option(metavar="FILE", help="Write a JUnit XML report for CI.")
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="One JSON object per step and per scenario.")
    ] = False,
    list_: Annotated[
        bool, typer.Option("--list", help="List the scenarios in the files and exit.")
    ] = False,
) -> None:
    """Play multi-user call flows from scenario files, with expectations and faults.

    Each actor is a real client behind its own fault proxy, against an embedded server
    (or --server). Prints PASS or FAIL per scenario run; exits 0 when all passed, 1 when
    any failed, 2 for an invalid file or option (nothing is started then).

    \b
    Examples:
      rtmcall scenario examples/scenarios
      rtmcall scenario race.yaml --repeat 20 --junit report.xml
      rtmcall scenario calls.yaml --server ws://node1:8765 --server ws://node2:8765
    """
    from rtmcall.client.websocket import split_list
    from rtmcall.scenario.suite import SuiteOptions, run_suite

    servers = [url for one in server or [] for url in split_list(one)]
    if server and not servers:
        from ..options import usage_error

        raise usage_error("no URL given", "--server")
    opts = SuiteOptions(
        paths=paths,
        # (A comma-separated list counts as that many --server options.)
        servers=servers,
        variables=var or [],
        only=only or [],
        repeat=repeat,
        junit=junit,
        as_json=json,
        list_only=list_,
    )
    raise typer.Exit(run_suite(opts))
