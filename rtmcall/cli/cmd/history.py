"""``rtmcall history``: the call history (SPEC §6), newest first. Imports only typer here."""

from __future__ import annotations

from typing import Annotated

import typer

from ..options import JsonOpt, UserOpt


def history(
    user: UserOpt = None,
    missed: Annotated[
        bool, typer.Option("--missed", help="Only missed calls (incoming, never answered).")
    ] = False,
    peer: Annotated[
        str | None, typer.Option("--peer", metavar="P", help="Only calls with P.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, help="At most N calls.")
    ] = 50,
    json_output: JsonOpt = False,
) -> None:
    """List your calls, newest first: direction, peer, outcome, when, how long.

    Every invitation and call a softphone (login, call, answer) of yours saw is kept in
    calls.sqlite3 in the config directory. A missed call is an incoming invitation that
    ended without your accept or refuse (the caller canceled, it expired, the caller went
    offline). Without --user: every user of this OS account's rtmcall.

    \b
    Examples:
      rtmcall history
      rtmcall history --user bob --missed
      rtmcall history --peer alice --limit 5 --json
    """
    import json
    import sys

    from ..history.store import HistoryError, HistoryStore, as_json, history_path
    from ..options import check_user

    if user is not None:
        check_user(user, "--user")
    path = history_path()
    if not path.exists():
        rows: list[dict] = []
    else:
        try:
            store = HistoryStore(path).open()
            try:
                rows = store.query(user=user, missed=missed, peer=peer, limit=limit)
            finally:
                store.close()
        except HistoryError as exc:
            print(f"rtmcall: {exc}", file=sys.stderr, flush=True)
            raise typer.Exit(1) from None
    if json_output:
        for row in rows:
            sys.stdout.write(json.dumps(as_json(row), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    if not rows:
        typer.echo("no calls in the history" + (" (missed)" if missed else ""))
        return
    from rich.console import Console

    from ..history.view import history_table

    console = Console(highlight=False)
    table = history_table(rows, show_user=user is None)
    if not console.is_terminal:
        # Into a pipe or a file: the whole table (a terminal's width would cut peers and
        # ids to "ca…"; Rich assumes 80 columns without one).
        wide = console.options.update_width(10_000)
        console.width = max(console.width, console.measure(table, options=wide).maximum)
    console.print(table)
