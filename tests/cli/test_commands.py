"""The command language: one parser for the prompt and for pipe mode."""

from __future__ import annotations

import pytest

from rtmcall.cli import commands as c
from rtmcall.cli.commands import CommandError, parse


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("call bob", c.Call(("bob",))),
        ("call bob carol", c.Call(("bob", "carol"))),
        (
            'call bob --content "lunch at noon?" --channel room1 --lifetime 20',
            c.Call(("bob",), "lunch at noon?", "room1", 20.0),
        ),
        ("call bob --content=hi --lifetime=1.5", c.Call(("bob",), "hi", "", 1.5)),
        ("call 'john smith'", c.Call(("john smith",))),
        ("call -- --odd", c.Call(("--odd",))),
        ("cancel", c.Cancel()),
        ("cancel 3f2a", c.Cancel("3f2a")),
        ("accept", c.Accept()),
        ("accept 3f --response 'see you'", c.Accept("3f", "see you")),
        ("refuse --response busy", c.Refuse(None, "busy")),
        ("REFUSE ab", c.Refuse("ab")),
        ("list", c.List()),
        ("ls", c.List()),
        ("online bob carol", c.Online(("bob", "carol"))),
        ("help", c.Help()),
        ("help call", c.Help("call")),
        ("quit", c.Quit()),
        ("exit", c.Quit()),
        ("sleep 0.5", c.Sleep(0.5)),
        ("wait", c.Wait()),
        ("wait 3f --timeout 2", c.Wait("3f", timeout=2.0)),
        ("wait --incoming", c.Wait(incoming=True)),
    ],
)
def test_parse(line: str, expected: c.Command) -> None:
    assert parse(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "# a comment", "  # indented comment"])
def test_blank_lines_are_nothing(line: str) -> None:
    assert parse(line) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("dial bob", "unknown command 'dial'"),
        ("call", "at least one PEER"),
        ("call bob --colour red", "unknown option --colour"),
        ("call bob --content", "--content needs a value"),
        ("call bob --lifetime soon", "needs a number"),
        ("call bob --lifetime -3", "positive"),
        ("call 'bob", "cannot split the line"),
        ("cancel a b", "at most one invitation ID"),
        ("accept --response", "needs a value"),
        ("online", "at least one PEER"),
        ("list all", "takes no arguments"),
        ("help dial", "no command 'dial'"),
        ("sleep", "number of seconds"),
        ("wait ab --incoming", "not both"),
        ("wait --incoming=yes", "takes no value"),
    ],
)
def test_errors_are_one_line(line: str, message: str) -> None:
    with pytest.raises(CommandError) as info:
        parse(line)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_help_lists_every_command() -> None:
    text = "\n".join(c.help_lines())
    for name in ("call", "cancel", "accept", "refuse", "list", "online", "help", "quit"):
        assert f"\n{name}" in "\n" + text
    assert c.help_lines("accept") == [
        "accept [ID] [--response TEXT]  accept an incoming invitation"
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("net cut", c.Net("cut")),
        ("net cut --to 1", c.Net("cut", to=1)),
        ("net down 2", c.Net("down", 2.0)),
        ("net up", c.Net("up")),
    ],
)
def test_net_lines_of_scenario_files(line: str, expected: c.Command) -> None:
    assert parse(line, scenario=True) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("net cut --to", "takes only --to N"),
        ("net cut now", "takes only --to N"),
        ("net cut --to one", "needs a --server index"),
        ("net up 3", "takes no arguments"),
    ],
)
def test_net_errors_are_one_line(line: str, message: str) -> None:
    with pytest.raises(CommandError) as info:
        parse(line, scenario=True)
    assert message in str(info.value)
