"""``rtmcall top``: a live dashboard of server nodes, read from their ``/metrics``."""

from __future__ import annotations

from typing import Annotated

import typer

from ..options import DEFAULT_SERVER


def top(
    server: Annotated[
        list[str] | None,
        typer.Option(
            "--server",
            "-s",
            metavar="URL",
            help="A node: its ws:// or wss:// URL (metrics on its port), or the http(s):// "
            f"URL of its metrics (repeatable). [default: $RTMCALL_SERVER, else {DEFAULT_SERVER}]",
            show_default=False,
        ),
    ] = None,
    interval: Annotated[
        float, typer.Option(metavar="S", min=0.1, help="Seconds between readings.")
    ] = 2.0,
    timeout: Annotated[
        float, typer.Option(metavar="S", min=0.1, help="Give up on a reading after S.")
    ] = 3.0,
    once: Annotated[
        bool, typer.Option("--once", help="Print one snapshot and exit (also when not a tty).")
    ] = False,
) -> None:
    """Watch server nodes: users online, calls/s, outcomes, call-setup p50/p99, Redis and
    the webhook backlog, one row per node. The servers need --metrics (or --metrics-port).

    On a terminal it refreshes every --interval; q (or Ctrl-C) quits. Otherwise (or with
    --once) it reads every node twice, --interval apart, prints one plain-text snapshot
    and exits: 0 when every node answered, 3 when one could not be read.

    \b
    Examples:
      rtmcall top --server ws://127.0.0.1:8765
      rtmcall top -s ws://10.0.0.5:8765 -s ws://10.0.0.6:8765
      rtmcall top -s http://10.0.0.5:9100/metrics --once
    """
    import os

    from ..options import run_trio

    given = server or [os.environ.get("RTMCALL_SERVER") or DEFAULT_SERVER]
    # (A comma-separated list, as the other commands take, is that many nodes.)
    from rtmcall.client.websocket import split_list

    urls = [url for one in given for url in split_list(one)]
    if not urls:
        from ..options import usage_error

        raise usage_error("no URL given", "--server")
    targets = []
    for url in urls:
        target = metrics_url(url)
        if target is None:
            from ..options import usage_error

            raise usage_error(
                f"not a ws://, wss://, http:// or https:// URL with a host and a valid"
                f" port: {url!r}",
                "--server",
            )
        targets.append(target)
    from ..top.run import run_top

    raise typer.Exit(run_trio(run_top, targets, interval, timeout, once))


def metrics_url(url: str) -> str | None:
    """The metrics address of a ``--server`` value (None: not a URL we can read)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not rest:
        return None
    scheme = {"ws": "http", "wss": "https", "http": "http", "https": "https"}.get(scheme.lower())
    if scheme is None:
        return None
    host, slash, path = rest.partition("/")
    if not host:
        return None
    target = f"{scheme}://{host}/{path if slash and path else 'metrics'}"
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - it raises for a port out of range or not a number
    except ValueError:
        return None
    return target if parts.hostname else None
