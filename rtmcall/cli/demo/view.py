"""The demo's two tables, as pure functions of snapshots (like :func:`..console.table.build_table`):
the live table with both ends of every invitation, and the closing summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from rtmcall.engine.events import InvitationInfo

from ..formats.states import describe


@dataclass(frozen=True, slots=True)
class DemoRow:
    """One invitation seen from both ends (``callee_side`` None: the callee never got it)."""

    scenario: str
    caller_side: InvitationInfo
    callee_side: InvitationInfo | None
    #: When the caller's current timer fires, in the base of ``now``; None when none runs.
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class Result:
    scenario: str
    expected: tuple[str, ...]
    actual: str

    @property
    def ok(self) -> bool:
        return self.actual in self.expected


def outcome(info: InvitationInfo | None) -> str:
    """A state as the summary compares it: ``FAILURE(PEER_OFFLINE)``, ``ACCEPTED``, ``—``."""
    if info is None:
        return "—"
    if info.error:
        return f"{info.state.name}({info.error.name})"
    return info.state.name


def pair(caller: InvitationInfo | None, callee: InvitationInfo | None) -> str:
    return f"{outcome(caller)} / {outcome(callee)}"


def _state(info: InvitationInfo | None) -> Text:
    if info is None:
        return Text("—", style="dim")
    words, style = describe(info.state, info.error)
    return Text(words, style=style)


#: Fixed column widths of the live table (scenario, call, each side's state, left), wide
#: and narrow: fixed, so that the columns never move as rows arrive. The state columns fit
#: every state the demo shows ("failed: caller offline").
_WIDE = (20, 13, 22, 4)
_NARROW = (10, 13, 22, 4)
#: Space between two columns (rich's padding, collapsed, no padding at the edges).
_GAP = 2


def _left(seconds: float) -> str:
    """At most 4 characters: ``9.9s``, ``42s``, ``120s``."""
    return f"{seconds:.1f}s" if seconds < 9.95 else f"{seconds:.0f}s"


def _text_widths(width: int) -> tuple[int, int] | None:
    """(content, response) widths for a table ``width`` wide, or None when there is no room
    for them (below 100 columns): what the fixed columns leave, the larger share to the
    response (it is what the callee said)."""
    if width < 100:
        return None
    scenario, call, state, left = _WIDE
    room = width - (scenario + call + 2 * state + left) - 6 * _GAP
    if room < 16:
        return None
    response = max(8, room * 3 // 5)
    return room - response, response


def build_live_table(
    rows: Sequence[DemoRow], now: float, *, max_rows: int | None = None, width: int = 120
) -> Table:
    """Both ends of every invitation; below 100 columns without content and response.

    Every column's width depends on ``width`` only, never on the rows: the table does not
    re-lay itself as rows arrive. Content and response share what is left of ``width``."""
    texts = _text_widths(width)
    wide = texts is not None
    table = Table(
        title="rtmcall demo",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        header_style="bold",
        pad_edge=False,
        collapse_padding=True,
    )
    # No id column: the demo's ids are not typed by anyone, and width is precious.
    scenario_width, call_width, state_width, left_width = _WIDE if wide else _NARROW

    def column(header: str, size: int, **kw: Any) -> None:
        table.add_column(header, no_wrap=True, overflow="ellipsis", width=size, **kw)

    column("scenario", scenario_width)
    column("call", call_width)
    column("caller sees", state_width)
    column("callee sees", state_width)
    if texts is not None:  # free text is the first to go when the terminal is narrow
        column("content", texts[0])
        column("response", texts[1])
    column("left", left_width, justify="right")
    shown = list(rows)
    if max_rows is not None and len(shown) > max_rows:
        shown = shown[len(shown) - max_rows :]
    for row in shown:
        info = row.caller_side
        left = "" if row.deadline is None else _left(max(0.0, row.deadline - now))
        cells: list[str | Text] = [
            row.scenario,
            f"{info.caller} → {info.callee}",
            _state(info),
            _state(row.callee_side),
        ]
        if texts is not None:
            cells += [info.content, (row.callee_side or info).response or info.response]
        table.add_row(*cells, left)
    return table


def build_summary(results: Sequence[Result]) -> Table:
    table = Table(title="expected vs actual (caller / callee)", header_style="bold")
    table.add_column("scenario", no_wrap=True)
    table.add_column("expected")
    table.add_column("actual")
    table.add_column("", no_wrap=True)
    for r in results:
        mark = Text("✓ ok", style="bold green") if r.ok else Text("✗ DIFFERS", style="bold red")
        table.add_row(r.scenario, "\nor ".join(r.expected), r.actual, mark)
    return table
