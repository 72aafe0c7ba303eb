"""The Rich table of ``rtmcall history``: a pure function of the rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from ..formats.calls import clock
from .store import outcome_words


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


def history_table(rows: Sequence[dict[str, Any]], *, show_user: bool = True) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("when", no_wrap=True)
    if show_user:
        table.add_column("user", no_wrap=True)
    table.add_column("dir", no_wrap=True)
    table.add_column("peer", no_wrap=True, max_width=16, overflow="ellipsis")
    table.add_column("outcome", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("content", max_width=24, no_wrap=True, overflow="ellipsis")
    table.add_column("id", no_wrap=True)
    for row in rows:
        words = outcome_words(row)
        style = "bold red" if row["missed"] else ("green" if words.startswith("call") else None)
        cells = [_when(row["sent_at"] or row["rang_at"] or row["ended_at"])]
        if show_user:
            cells.append(row["user"])
        cells += [
            "→ out" if row["direction"] == "out" else "← in",
            row["peer"],
            Text(words, style=style or ""),
            clock(row["duration"]) if row["duration"] is not None else "",
            row["content"],
            row["id"][:6],
        ]
        table.add_row(*cells)
    return table
