"""The README's state diagrams are the transition tables' (docs cannot drift from code)."""

from __future__ import annotations

from pathlib import Path

from rtmcall.engine.call import CALL_TRANSITIONS
from rtmcall.engine.diagram import call_diagram, callee_diagram, caller_diagram
from rtmcall.engine.invitation import CALLEE_TRANSITIONS, CALLER_TRANSITIONS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_shows_the_current_state_machines() -> None:
    text = README.read_text(encoding="utf-8")
    assert caller_diagram() in text, "run: python -m rtmcall.engine.diagram, paste into README"
    assert callee_diagram() in text, "run: python -m rtmcall.engine.diagram, paste into README"
    assert call_diagram() in text, "run: python -m rtmcall.engine.diagram, paste into README"


def test_every_transition_is_drawn() -> None:
    for drawn, table in (
        (caller_diagram(), CALLER_TRANSITIONS),
        (callee_diagram(), CALLEE_TRANSITIONS),
        (call_diagram(), CALL_TRANSITIONS),
    ):
        for phase, moves in table.items():
            for what, new in moves.items():
                line = next(
                    ln
                    for ln in drawn.splitlines()
                    if ln.strip().startswith(f"{phase.name} --> {new.name}:")
                )
                assert what in line
