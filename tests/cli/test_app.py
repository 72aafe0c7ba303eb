"""The typer app in-process (CliRunner): help, version, usage errors and their exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from unittest.mock import patch

import pytest
from typer.testing import CliRunner

from rtmcall import __version__
from rtmcall.cli import config
from rtmcall.cli._help import ROOT_HELP, render
from rtmcall.cli.app import app, main
from rtmcall.server.tokens import verify_token

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"rtmcall {__version__}"


def test_stored_help_is_what_typer_prints() -> None:
    # `rtmcall --help` prints ROOT_HELP without importing typer (start-up time); if this
    # fails, run `python -m rtmcall.cli._help` to store the new text.
    assert ROOT_HELP == render()


def test_fast_paths_print_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expected in ((["--help"], ROOT_HELP), (["--version"], f"rtmcall {__version__}\n")):
        with patch.object(sys, "argv", ["rtmcall", *argv]):
            main()
        assert capsys.readouterr().out == expected


def test_help_starts_without_typer() -> None:
    code = "import sys; sys.argv=['rtmcall','--help']; from rtmcall.cli.app import main; main(); "
    code += "assert 'typer' not in sys.modules and 'trio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=30)


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "Commands:" in result.output and "login" in result.output


@pytest.mark.parametrize(
    "command", ["server", "login", "call", "answer", "history", "token", "demo", "bench"]
)
def test_every_command_has_help_with_examples(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert f"rtmcall {command}" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["login", "null"],
        ["login", " alice"],
        ["login", "a/b"],
        ["login", "x" * 65],
        ["call", "bad/peer", "--user", "alice"],
        ["call", "bob", "--user", "no*way"],
        ["call", "bob", "alice", "--user", "alice"],  # yourself
        ["call", "bob", "--user", "alice", "--content", "x" * 8193],
        ["call", "bob", "--user", "alice", "--channel", "c" * 65],
        ["call", "bob"],  # no user anywhere
        ["answer"],  # no user anywhere
        ["login", "alice", "--server", "http://example.com"],
        ["login", "alice", "--lifetime", "0"],
        ["call", "bob", "--user", "alice", "--lifetime", "-1"],
        ["token", "alice"],  # no secret
        ["token", "null", "--secret", "s"],
        ["server", "--cert", "c.pem"],  # --key missing
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output


def test_invalid_user_id_message_names_the_problem() -> None:
    result = runner.invoke(app, ["login", "null"])
    assert "may not be 'null'" in result.output


def test_token_mints_a_verifiable_token(tmp_path: Path) -> None:
    result = runner.invoke(app, ["token", "alice", "--secret", "s3cret", "--ttl", "600"])
    assert result.exit_code == 0
    left = verify_token("s3cret", result.stdout.strip(), "alice")
    assert 590 < left <= 600
    key = tmp_path / "key"
    key.write_text("from-a-file\n")
    result = runner.invoke(app, ["token", "bob", "--secret-file", str(key)])
    assert result.exit_code == 0
    assert verify_token("from-a-file", result.stdout.strip(), "bob") > 3000
    result = runner.invoke(app, ["token", "carol"], env={"RTMCALL_SECRET": "env-secret"})
    assert verify_token("env-secret", result.stdout.strip(), "carol") > 0


@pytest.mark.parametrize(
    ("secret", "warned"), [("abcde", True), ("x" * 31, True), ("x" * 32, False), ("é" * 16, False)]
)
def test_a_short_secret_is_warned_about(secret: str, warned: bool) -> None:
    result = runner.invoke(app, ["token", "alice", "--secret", secret])
    assert result.exit_code == 0
    assert verify_token(secret, result.stdout.strip(), "alice") > 0  # stdout: the token only
    size = len(secret.encode())
    assert (f"the secret is {size} bytes" in result.stderr) is warned
    assert ("RFC 7518" in result.stderr) is warned


def test_token_ttl_is_capped_at_a_day() -> None:
    assert runner.invoke(app, ["token", "a", "--secret", "s", "--ttl", "90000"]).exit_code == 2


def test_unreachable_server_exits_3_with_one_line(unused_port: int) -> None:
    url = f"ws://127.0.0.1:{unused_port}"
    result = runner.invoke(app, ["call", "bob", "--user", "alice", "--server", url])
    assert result.exit_code == 3
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and url in lines[0] and "Traceback" not in result.output


def test_a_list_of_servers_uses_the_first_that_answers(
    server_url: str, config_dir: Path, unused_port: int
) -> None:
    dead = f"ws://127.0.0.1:{unused_port}"
    result = runner.invoke(
        app,
        ["call", "nobody", "-u", "alice", "--server", f"{dead},{server_url}", "--json",
         "--no-response-timeout", "0.5"],
    )  # fmt: skip
    events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert events[0] == "LoginSuccess" and "LocalInvitationFailure" in events, result.output
    # Pipe mode says which node answered.
    result = runner.invoke(
        app, ["login", "bob", "--server", f"{dead},{server_url}", "--json"], input=""
    )
    first = json.loads(result.stdout.splitlines()[0])
    assert first == {"event": "LoginSuccess", "user": "bob", "server": server_url}, result.output
    result = runner.invoke(app, ["call", "bob", "--user", "alice", "--server", f"{dead},{dead}"])
    assert result.exit_code == 3 and dead in result.output
    result = runner.invoke(
        app, ["call", "bob", "-u", "alice", "--server", f"{server_url},http://x"]
    )
    assert result.exit_code == 2 and "not a ws:// or wss:// URL: 'http://x'" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["call", "bob", "-u", "alice"],
        ["login", "alice"],
        ["health"],
    ],
)
def test_port_0_is_a_usage_error_not_a_dial_to_port_80(args: list[str]) -> None:
    url = "ws://127.0.0.1:0"
    result = runner.invoke(app, [*args, "--server", url], input="")
    assert result.exit_code == 2, result.output
    assert "port 0" in result.output and url in result.output


def test_remembered_user_and_server_are_used(config_dir: Path, unused_port: int) -> None:
    url = f"ws://127.0.0.1:{unused_port}"
    config.remember(user="alice", server=url)
    assert json.loads((config_dir / "config.json").read_text()) == {"user": "alice", "server": url}
    result = runner.invoke(app, ["call", "bob"])  # no --user, no --server: from the file
    assert result.exit_code == 3 and url in result.output
    # a flag wins over the file, and so does the environment
    other = f"ws://127.0.0.1:{unused_port}/other"
    result = runner.invoke(app, ["call", "bob"], env={"RTMCALL_SERVER": other})
    assert other in result.output


def test_unreadable_config_is_ignored(config_dir: Path) -> None:
    config_dir.mkdir(parents=True)
    (config_dir / "config.json").write_text("{not json")
    assert config.load() == {}
    config.remember(user="bob")
    assert config.load() == {"user": "bob"}


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
