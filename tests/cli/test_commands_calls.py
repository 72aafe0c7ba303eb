"""The command language's call commands (SPEC §6): hangup, dnd, history, refuse --reason."""

from __future__ import annotations

import pytest

from rtmcall.cli import commands as c


@pytest.mark.parametrize(
    ("line", "cmd"),
    [
        ("hangup", c.Hangup()),
        ("hangup 3fa2", c.Hangup("3fa2")),
        ("HANGUP abc", c.Hangup("abc")),
        ("dnd on", c.Dnd(True)),
        ("dnd OFF", c.Dnd(False)),
        ("dnd", c.Dnd(None)),
        ("when-busy refuse", c.WhenBusy("refuse")),
        ("when_busy RING", c.WhenBusy("ring")),
        ("when-busy", c.WhenBusy(None)),
        ("history", c.History()),
        ("history --missed --peer bob --limit 5", c.History(True, "bob", 5)),
        ("history --limit=3", c.History(limit=3)),
        ("refuse", c.Refuse()),
        ("refuse x --reason busy --response 'in a call'", c.Refuse("x", "in a call", "busy")),
    ],
)
def test_parses(line: str, cmd: c.Command) -> None:
    assert c.parse(line) == cmd


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("hangup a b", "at most one call ID"),
        ("hangup --now", "unknown option --now"),
        ("dnd maybe", "dnd on or dnd off"),
        ("dnd on off", "dnd on or dnd off"),
        ("when-busy always", "when-busy ring or when-busy refuse"),
        ("history --limit 0", "whole number above 0"),
        ("history --limit x", "whole number above 0"),
        ("history bob", "takes only"),
        ("refuse --reason asleep", "busy or declined"),
    ],
)
def test_bad_lines_say_why(line: str, message: str) -> None:
    with pytest.raises(c.CommandError, match=message):
        c.parse(line)


def test_help_lists_the_call_commands() -> None:
    text = "\n".join(c.help_lines())
    for usage in (
        "hangup [ID]",
        "dnd on|off",
        "when-busy ring|refuse",
        "history [--missed]",
        "--reason busy|declined",
    ):
        assert usage in text
    assert c.parse("help hangup") == c.Help("hangup")
