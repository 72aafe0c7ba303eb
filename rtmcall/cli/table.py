"""The invitation table: a pure function from a snapshot to a :class:`rich.table.Table`.

Nothing here reads a clock or the client: callers pass rows and ``now`` in whatever time base
their deadlines use (the console uses :func:`time.monotonic`), so the function is trivially
testable by rendering into a ``Console(file=io.StringIO(), color_system=None)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from .rows import Row, short_id
from .states import describe, is_ringing_here

__all__ = ["Row", "build_table", "short_id"]


def _left(deadline: float | None, now: float) -> str:
    if deadline is None:
        return ""
    left = max(0.0, deadline - now)
    return f"{left:.0f}s" if left >= 10 else f"{left:.1f}s"


def build_table(
    rows: Sequence[Row], now: float, *, max_rows: int | None = None, title: str | None = None
) -> Table:
    """A table with one row per invitation, oldest first.

    Args:
      rows: the invitations, in the order to show them.
      now: the current time in the rows' deadline time base (for the countdown).
      max_rows: show only the newest ``max_rows`` (the console keeps the prompt on screen);
        a caption says how many were left out.
      title: shown above the table.
    """
    table = Table(title=title, expand=False, header_style="bold", pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("dir", no_wrap=True)
    table.add_column("peer", no_wrap=True, max_width=20, overflow="ellipsis")
    table.add_column("state", no_wrap=True)
    table.add_column("content", max_width=24, no_wrap=True, overflow="ellipsis")
    table.add_column("channel", max_width=16, no_wrap=True, overflow="ellipsis")
    table.add_column("response", max_width=20, no_wrap=True, overflow="ellipsis")
    table.add_column("left", justify="right", no_wrap=True)
    shown = list(rows)
    if max_rows is not None and len(shown) > max_rows:
        hidden = len(shown) - max_rows
        shown = shown[hidden:] if max_rows > 0 else []
        table.caption = f"{hidden} older not shown (type list)"
    if not shown:
        table.caption = table.caption or "no invitations yet: call PEER"
    for row in shown:
        words, style = describe(row.state, row.error)
        ringing = is_ringing_here(row.state)
        table.add_row(
            short_id(row.id),
            "→ out" if row.direction == "out" else "← in",
            row.peer,
            Text(words, style=style),
            row.content,
            row.channel_id,
            row.response,
            _left(row.deadline, now) if row.live else "",
            # The row that waits for us must be impossible to miss.
            style="bold black on yellow" if ringing else ("dim" if not row.live else None),
        )
    return table
