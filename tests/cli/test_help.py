"""Every command's --help reads like a man page (issue 13, item 9): no typer artifacts
(``{PEER}...``, ``<list[str]>``, ``<str>``, ``<int range>``, ``[default: no-insecure]``),
every option says what it does, no option name cut at its hyphen, and the user-id
alphabet is quoted. Rendered by the app itself, at several widths, and by the real program."""

from __future__ import annotations

import re
import subprocess

import pytest
import typer
from typer.testing import CliRunner

from rtmcall.cli.typer_app import app
from rtmcall.engine.frames import user_id_problem

from .conftest import REPO, RTMCALL

COMMANDS = ["server", "login", "call", "answer", "token", "demo", "bench", "health"]
ARTIFACTS = re.compile(r"<[a-z][a-z \[\],|]*>|\{[A-Z.]+\}|no-insecure|\.\.\.\.|x[<>]=|<=x")
runner = CliRunner()


def _help(command: str, width: int) -> str:
    result = runner.invoke(app, [command, "--help"], prog_name="rtmcall", terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("width", [60, 80, 200])
@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_no_typer_artifacts(command: str, width: int) -> None:
    text = _help(command, width)
    assert not ARTIFACTS.search(text), ARTIFACTS.findall(text)
    # An option name is never split at its hyphen by the wrapping.
    assert not re.search(r"--[a-z-]*[a-z]-\n", text), text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_and_argument_says_what_it_does(command: str) -> None:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    for param in click_command.params:
        assert (getattr(param, "help", None) or "").strip(), f"{command}: {param.name} has no help"
        if param.param_type_name == "option" and not getattr(param, "is_flag", False):
            assert param.metavar, f"{command}: {param.name} shows no metavar"


def test_usage_lines_read_like_click() -> None:
    assert "Usage: rtmcall call [OPTIONS] PEER...\n" in _help("call", 80)
    assert "Usage: rtmcall login [OPTIONS] USER\n" in _help("login", 80)
    call = _help("call", 80)
    assert re.search(r"^  PEER\.\.\. +Who to call", call, re.M)
    assert re.search(r"^  -s, --server URL +Server URL", call, re.M)
    assert re.search(r"^  --content TEXT +Text sent", call, re.M)
    server = _help("server", 80)
    assert re.search(r"^  --port PORT +Port; 0 picks", server, re.M)
    assert re.search(r"^  --rate-messages-per S +That window \(for --rate-messages\)", server, re.M)
    assert re.search(r"^  --insecure +Allow", server, re.M)
    assert re.search(r"^  --count N +Answer this many", _help("answer", 80), re.M)
    assert "[default: 8765; 0 to 65535]" in _help("server", 200)  # ranges in words


def test_the_user_id_alphabet_is_quoted() -> None:
    problem = user_id_problem("bad/peer")
    assert problem is not None
    assert problem.endswith('space and "!#$%&()+-:;<=.>?@[]^_{}|~,"')


def test_the_real_program_prints_the_same_help() -> None:
    done = subprocess.run(
        [*RTMCALL, "call", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    assert done.returncode == 0
    assert "Usage: rtmcall call [OPTIONS] PEER..." in done.stdout
    assert not ARTIFACTS.search(done.stdout)
