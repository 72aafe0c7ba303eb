"""The demo's two tables, as pure functions of snapshots (like :func:`.table.build_table`):
the live table with both ends of every invitation, and the closing summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.table import Table
from rich.text import Text

from rtmcall.engine.events import InvitationInfo

from .states import describe


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


def build_live_table(
    rows: Sequence[DemoRow], now: float, *, max_rows: int | None = None, width: int = 120
) -> Table:
    """Both ends of every invitation; below 100 columns without content and response."""
    wide = width >= 100
    table = Table(
        title="rtmcall demo",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        header_style="bold",
        pad_edge=False,
        collapse_padding=True,
    )
    # No id column: the demo's ids are not typed by anyone, and width is precious.
    state_width = 22 if wide else 18
    table.add_column("scenario", no_wrap=True, overflow="ellipsis", max_width=20 if wide else 14)
    table.add_column("call", no_wrap=True, min_width=13)
    table.add_column("caller sees", no_wrap=True, overflow="ellipsis", max_width=state_width)
    table.add_column("callee sees", no_wrap=True, overflow="ellipsis", max_width=state_width)
    if wide:  # free text is the first to go when the terminal is narrow
        table.add_column("content", no_wrap=True, overflow="ellipsis", max_width=12)
        table.add_column("response", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("left", justify="right", no_wrap=True, min_width=4)
    shown = list(rows)
    if max_rows is not None and len(shown) > max_rows:
        shown = shown[len(shown) - max_rows :]
    for row in shown:
        info = row.caller_side
        left = "" if row.deadline is None else f"{max(0.0, row.deadline - now):.1f}s"
        cells: list[str | Text] = [
            row.scenario,
            f"{info.caller} → {info.callee}",
            _state(info),
            _state(row.callee_side),
        ]
        if wide:
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
