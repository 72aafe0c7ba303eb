"""The invitation table: a pure function from a snapshot to a :class:`rich.table.Table`.

Nothing here reads a clock or the client: callers pass rows and ``now`` in whatever time base
their deadlines use (the console uses :func:`time.monotonic`), so the function is trivially
testable by rendering into a ``Console(file=io.StringIO(), color_system=None)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from ..formats.calls import row_state
from ..formats.rows import SHORT_ID, Row, short_id
from ..formats.states import is_ringing_here

__all__ = ["Row", "build_table", "short_id"]


def _left(deadline: float | None, now: float) -> str:
    if deadline is None:
        return ""
    left = max(0.0, deadline - now)
    return f"{left:.0f}s" if left >= 10 else f"{left:.1f}s"


def _state(row: Row, now: float) -> tuple[str, str]:
    """The state column's words and style. A call to an offline callee says so, with the
    time it still has to log in (it rings if it does); calls and busy refusals as
    :func:`..formats.calls.row_state` says."""
    if row.waiting_for_peer and row.live:
        left = _left(row.deadline, now)
        return f"waiting for {row.peer}" + (f" {left}" if left else ""), "yellow"
    return row_state(row, now)


#: The free-text columns: (header, widest it gets when the terminal width is not known).
#: With a width they use the room there is, and are the first to give way when it is short.
_TEXT_COLUMNS = (("content", 24), ("channel", 16), ("response", 20))
#: Room the other columns and the gaps between all eight take, besides peer and state.
_FIXED = SHORT_ID + 5 + 4 + 7 * 2


def _text_widths(rows: Sequence[Row], width: int | None, now: float = 0.0) -> list[int]:
    """Widths for content, channel and response so the table fits in ``width``: each as
    wide as its longest text (without a width: up to its cap); when that is too wide, the
    widest gives way first, down to 4 (a header then ends in an ellipsis). So a wide
    terminal shows long texts whole, a narrow one cuts only them."""
    texts = [[r.content for r in rows], [r.channel_id for r in rows], [r.response for r in rows]]
    wants = [
        max([len(header), *(len(t) for t in column)])
        for (header, _), column in zip(_TEXT_COLUMNS, texts, strict=True)
    ]
    if width is None:
        return [min(cap, want) for (_, cap), want in zip(_TEXT_COLUMNS, wants, strict=True)]
    peer = min(16, max([4, *(len(r.peer) for r in rows)]))
    state = max([5, *(len(_state(r, now)[0]) for r in rows)])
    free = width - _FIXED - peer - state
    wants = [min(want, max(4, free)) for want in wants]  # a text of 8 KB: no long loop
    while sum(wants) > free and max(wants) > 4:
        wants[wants.index(max(wants))] -= 1
    return wants


def build_table(
    rows: Sequence[Row],
    now: float,
    *,
    max_rows: int | None = None,
    title: str | None = None,
    width: int | None = None,
) -> Table:
    """A table with one row per invitation, oldest first.

    Args:
      rows: the invitations, in the order to show them.
      now: the current time in the rows' deadline time base (for the countdown).
      max_rows: show only the newest ``max_rows`` (the console keeps the prompt on screen);
        a caption says how many were left out.
      title: shown above the table.
      width: the terminal width: the free-text columns are narrowed to fit it, so that
        nothing else is ever cut off.
    """
    # No vertical rules, one line per invitation: on an 80-column terminal only the free
    # text (content, channel, response) is shortened, with an ellipsis.
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        header_style="bold",
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("id", no_wrap=True, min_width=SHORT_ID)
    table.add_column("dir", no_wrap=True, min_width=5)
    table.add_column("peer", no_wrap=True, max_width=16, overflow="ellipsis")
    table.add_column("state", no_wrap=True)
    for (header, _), text_width in zip(_TEXT_COLUMNS, _text_widths(rows, width, now), strict=True):
        table.add_column(header, max_width=text_width, no_wrap=True, overflow="ellipsis")
    table.add_column("left", justify="right", no_wrap=True, min_width=4)
    shown = list(rows)
    if max_rows is not None and len(shown) > max_rows:
        hidden = len(shown) - max_rows
        shown = shown[hidden:] if max_rows > 0 else []
        table.caption = f"{hidden} older not shown (type list)"
    if not shown:
        table.caption = table.caption or "no invitations yet: call PEER"
    for row in shown:
        words, style = _state(row, now)
        ringing = is_ringing_here(row.state)
        table.add_row(
            short_id(row.id),
            "→ out" if row.direction == "out" else "← in",
            row.peer,
            Text(words, style=style),
            row.content,
            row.channel_id,
            row.response,
            _left(row.deadline, now) if row.live and not row.waiting_for_peer else "",
            # The row that waits for us must be impossible to miss.
            style="bold black on yellow" if ringing else ("dim" if not row.live else None),
        )
    return table
