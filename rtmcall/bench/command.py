"""``bench_command``: what ``rtmcall bench`` runs (flags in, exit status out).

Imports only the standard library at import time, so the typer app can import it without
slowing ``rtmcall --help``; trio, the SDK and rich load when the command runs.
"""

from __future__ import annotations

import sys
from functools import partial

from .options import MODES, BenchOptions

#: Exit statuses, as the rest of the CLI: 0 all calls ended as expected, 1 errors or
#: unexpected outcomes, 2 usage error, 3 cannot reach or log in to the server.
OK, NOT_AS_ASKED, USAGE, UNREACHABLE = 0, 1, 2, 3


def bench_command(
    server: str | None = None,
    pairs: int = 10,
    duration: float = 5.0,
    calls: int | None = None,
    mode: str = "accept",
    idle: int = 0,
    json: bool = False,
    rate: float | None = None,
    warmup: float = 0.0,
    server_pid: int | None = None,
) -> int:
    """Run a bench, show progress (on a terminal) and the result; return the exit status.

    Args:
      server: ``ws://…`` to load; None starts a server subprocess.
      pairs: caller/callee pairs, one invitation in flight each.
      duration: seconds to measure (ignored with ``calls``).
      calls: total invitations instead of a duration.
      mode: accept, refuse or cancel.
      idle: extra logged-in idle users.
      json: print the result as JSON (stdout) instead of the table.
      rate: offered invitations/s over all pairs; None: closed loop.
      warmup: seconds of load before measuring.
      server_pid: the server's pid, when it runs on this machine: the result then shows
        its CPU time per handshake (needs psutil).
    """
    if mode not in MODES:
        print(f"rtmcall bench: --mode must be one of {', '.join(MODES)}", file=sys.stderr)
        return USAGE
    options = BenchOptions(
        server=server,
        pairs=pairs,
        duration=duration,
        calls=calls,
        mode=mode,  # type: ignore[arg-type]
        idle=idle,
        rate=rate,
        warmup=warmup,
        server_pid=server_pid,
    )
    problem = options.problem()
    if problem is not None:
        print(f"rtmcall bench: {problem}", file=sys.stderr)
        return USAGE
    import trio
    from rich.console import Console
    from rich.live import Live

    from rtmcall._gc import tune_for_long_running

    from .report import render_progress, render_result
    from .runner import BenchSnapshot, run_bench

    err = Console(stderr=True)
    live: Live | None = None
    if err.is_terminal:
        live = Live(console=err, auto_refresh=False, transient=True)

    def progress(snap: BenchSnapshot) -> None:
        if live is not None:
            live.update(render_progress(snap), refresh=True)

    try:
        if live is not None:
            live.start()
        try:
            tune_for_long_running()
            result = trio.run(partial(run_bench, options, progress=progress))
        finally:
            if live is not None:
                live.stop()
    except RuntimeError as exc:
        print(f"rtmcall bench: {exc}", file=sys.stderr)
        return UNREACHABLE
    except KeyboardInterrupt:
        print("rtmcall bench: interrupted", file=sys.stderr)
        return NOT_AS_ASKED
    if json:
        print(result.to_json())
    else:
        out = Console()
        # Not a terminal (a file, a CI log): no 80-column wrapping of the headline; a line
        # is a line, whatever the reader's width.
        out.print(render_result(result), soft_wrap=not out.is_terminal)
    unreachable = any(k.startswith(("ConnectFailed", "LoginFailed")) for k in result.errors)
    if unreachable and result.handshakes == 0:
        return UNREACHABLE
    return OK if result.ok else NOT_AS_ASKED
