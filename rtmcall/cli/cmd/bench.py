"""``rtmcall bench``: argument handling only; the work is :mod:`rtmcall.bench`'s."""

from __future__ import annotations

from typing import Annotated

import typer


def bench(
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            "-s",
            metavar="URL",
            help="Server to load. [default: start one in a subprocess]",
            show_default=False,
        ),
    ] = None,
    pairs: Annotated[
        int, typer.Option(min=1, help="Caller/callee pairs, one invitation in flight each.")
    ] = 10,
    duration: Annotated[
        float, typer.Option(metavar="S", min=0.1, help="Seconds to measure.")
    ] = 5.0,
    calls: Annotated[
        int | None,
        typer.Option(min=1, help="Make this many invitations instead of --duration."),
    ] = None,
    mode: Annotated[
        str, typer.Option(metavar="MODE", help="How callees answer: accept, refuse or cancel.")
    ] = ("accept"),
    idle: Annotated[int, typer.Option(min=0, help="Extra logged-in idle users.")] = 0,
    rate: Annotated[
        float | None,
        typer.Option(metavar="N", min=0.001, help="Offered invitations/s. [default: closed loop]"),
    ] = None,
    warmup: Annotated[
        float, typer.Option(metavar="S", min=0, help="Seconds of load before measuring.")
    ] = 0.0,
    server_pid: Annotated[
        int | None,
        typer.Option(metavar="PID", help="The server's pid, to report its CPU per handshake."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = (
        False
    ),
) -> None:
    """Load a server with call setups and report throughput, latency and errors.

    Every pair is a real caller and callee on the real protocol. The result has
    handshakes/s, latency percentiles (send to ReceivedByPeer, send to Accepted), errors
    by kind and outcomes that were not the expected one (exit 1 unless that is 0).

    \b
    Examples:
      rtmcall bench
      rtmcall bench --pairs 50 --duration 10 --idle 1000
      rtmcall bench --server ws://10.0.0.5:8765 --mode refuse --calls 5000 --json
    """
    from rtmcall.bench.command import bench_command

    raise typer.Exit(
        bench_command(
            server=server,
            pairs=pairs,
            duration=duration,
            calls=calls,
            mode=mode,
            idle=idle,
            json=json_output,
            rate=rate,
            warmup=warmup,
            server_pid=server_pid,
        )
    )
