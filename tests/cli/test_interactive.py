"""The interactive softphone in a pseudo-terminal, driven like a person would (pexpect).

What is checked: the table is drawn; an incoming call shows up (with a bell) while text is
half-typed on the prompt, and the half-typed text survives; accept, refuse and cancel typed
at the prompt change both sides; bad commands leave the prompt; quit and Ctrl-D cancel
pending calls, log out and exit 0 (Ctrl-C only clears the line, as in a shell). Table words
are lowercase ("refused", "canceled by caller") and the log's are not ("REFUSED"), so a
match tells which one was drawn.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO, cli_env
from .procs import Pipe

pexpect = pytest.importorskip("pexpect")


@pytest.fixture
def phone(server_url: str, config_dir: Path) -> Iterator:  # type: ignore[type-arg]
    """phone(user, *flags) -> a pexpect child running the interactive ``rtmcall login``."""
    children = []

    def start(user: str, *flags: str):  # type: ignore[no-untyped-def]
        # NO_COLOR keeps escape codes out of the words; no CPR: pexpect is no terminal to
        # answer prompt_toolkit's cursor-position queries.
        env = cli_env(config_dir, NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
        child = pexpect.spawn(
            sys.executable,
            ["-m", "rtmcall.cli", "login", user, "--server", server_url, *flags],
            env=env,
            cwd=str(REPO),
            dimensions=(40, 150),
            encoding="utf-8",
            timeout=8,
        )
        children.append(child)
        child.expect("logged in to")
        child.expect("no invitations yet")  # the (empty) table is drawn
        child.expect_exact(f"{user}>")
        return child

    try:
        yield start
    finally:
        for child in children:
            child.close(force=True)


def ends_cleanly(child) -> None:  # type: ignore[no-untyped-def]
    child.expect("logged out")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_incoming_call_while_typing_then_accept(phone, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    alice = phone("pty-alice1", "--no-response-timeout", "1")
    bob = Pipe(["login", "pty-bob1", "--server", server_url, "--json"], config_dir)
    try:
        bob.expect("LoginSuccess")
        alice.send("call car")  # half-typed, no Enter
        time.sleep(0.3)
        bob.send("call pty-alice1 --content lunch --channel room1")
        inv = bob.expect("LocalInvitationSent")["id"]
        alice.expect("\a")  # the bell
        alice.expect(f"incoming call {inv[:6]} from pty-bob1")
        alice.expect("RINGING")  # the highlighted row in the table
        alice.expect("room1")
        # Finish the half-typed word: the command that runs is the whole line.
        alice.send("ol\r")
        alice.expect_exact("pty-alice1> call carol")
        alice.expect("to carol: sent")
        alice.send("accept --response yes\r")
        alice.expect("accepted, the call is on")
        accepted = bob.expect("LocalInvitationAccepted", id=inv)
        assert accepted["response"] == "yes"
        alice.expect("failed: peer offline")  # the call to carol, in the table
        alice.send("dial bob\r")  # a bad command: one line, and the prompt stays
        alice.expect("unknown command 'dial'")
        alice.expect_exact("pty-alice1>")
        alice.send("help call\r")
        alice.expect("call PEER")
        alice.send("quit\r")
        ends_cleanly(alice)
    finally:
        bob.kill()


def test_refuse_and_cancel_change_both_tables(phone) -> None:  # type: ignore[no-untyped-def]
    alice = phone("pty-alice2")
    bob = phone("pty-bob2")
    alice.send("call pty-bob2 --content hello\r")
    bob.expect("incoming call")
    bob.expect("RINGING")
    alice.expect("ringing at pty-bob2")
    bob.send("refuse --response busy\r")
    alice.expect("REFUSED")  # the log line
    alice.expect("refused")  # the table
    alice.expect("busy")
    bob.expect("refused")

    alice.send("call pty-bob2\r")
    bob.expect("RINGING")
    alice.expect("ringing at pty-bob2")
    alice.send("cancel\r")
    alice.expect("canceled")
    bob.expect("canceled by pty-alice2")  # the log line
    bob.expect("canceled by caller")  # the table
    bob.expect_exact("pty-bob2>")
    alice.send("list\r")
    alice.expect("invitations")
    alice.expect_exact("pty-alice2>")  # keys typed while no prompt runs are the tty's
    alice.sendcontrol("d")  # Ctrl-D on an empty line quits
    ends_cleanly(alice)
    bob.sendcontrol("c")  # Ctrl-C on an empty line says how to quit, like a shell
    bob.expect("to quit, press Ctrl-D or type quit")
    bob.send("quit\r")
    ends_cleanly(bob)


def test_quit_cancels_pending_outgoing_calls(phone, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    alice = phone("pty-alice3")
    bob = Pipe(["login", "pty-bob3", "--server", server_url, "--json"], config_dir)
    try:
        bob.expect("LoginSuccess")
        alice.send("call pty-bob3\r")
        inv = bob.expect("RemoteInvitationReceived")["id"]
        alice.send("quit\r")
        alice.expect("canceling 1 outgoing call")
        ends_cleanly(alice)
        bob.expect("RemoteInvitationCanceled", id=inv)
    finally:
        bob.kill()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_screen_keeps_the_typed_line_under_the_updated_table(
    server_url: str, config_dir: Path, tmp_path: Path
) -> None:
    """What the user actually sees (tmux renders the screen): after an incoming call the
    table has the ringing row and the prompt line still holds the half-typed text."""
    sock = f"rtmcall-test-{tmp_path.name}"
    env = cli_env(config_dir)
    cmd = f"{sys.executable} -m rtmcall.cli login pty-alice4 --server {server_url}"

    def tmux(*args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", sock, *args], capture_output=True, text=True, env=env, timeout=5
        ).stdout

    def screen_until(text: str, timeout: float = 8.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [line.rstrip() for line in tmux("capture-pane", "-p", "-t", "t").splitlines()]
            if any(text in line for line in lines):
                return [line for line in lines if line]
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never on screen:\n" + "\n".join(lines))

    bob = Pipe(["login", "pty-bob4", "--server", server_url, "--json"], config_dir)
    try:
        tmux("new-session", "-d", "-s", "t", "-x", "120", "-y", "30", "-c", str(REPO), cmd)
        screen_until("pty-alice4>")
        tmux("send-keys", "-t", "t", "-l", "call half-typ")
        screen_until("pty-alice4> call half-typ")
        bob.expect("LoginSuccess")
        bob.send("call pty-alice4 --content 'see you?'")
        lines = screen_until("← in")
        ringing = next(line for line in lines if "← in" in line)  # the table row
        assert "pty-bob4" in ringing and "see you?" in ringing and "RINGING" in ringing
        assert lines[-1] == "pty-alice4> call half-typ"  # intact, still the last line
        tmux("send-keys", "-t", "t", "C-u")
        tmux("send-keys", "-t", "t", "accept", "Enter")
        screen_until("accepted")
        bob.expect("LocalInvitationAccepted")
    finally:
        tmux("kill-server")
        bob.kill()
