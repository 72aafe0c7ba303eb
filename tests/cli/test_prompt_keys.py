"""The interactive prompt behaves like a shell's (pexpect, a real pseudo-terminal):

* Ctrl-C with a half-typed line drops the line; the session and its calls go on. On an
  empty line it says how to quit. Ctrl-C while a command runs (``wait``) stops only that.
* The prompt history is one per user and server: bob's Up arrow never shows alice's lines.
"""

from __future__ import annotations

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
    children = []

    def start(user: str, *flags: str):  # type: ignore[no-untyped-def]
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
        child.expect_exact(f"{user}>")
        return child

    try:
        yield start
    finally:
        for child in children:
            child.close(force=True)


def quits(child) -> None:  # type: ignore[no-untyped-def]
    child.send("quit\r")
    child.expect("logged out")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_clears_the_line_the_call_goes_on(phone, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    bob = Pipe(["login", "keys-bob1", "--server", server_url, "--json"], config_dir)
    try:
        bob.expect("LoginSuccess")
        alice = phone("keys-alice1")
        alice.send("call keys-bob1\r")
        inv = bob.expect("RemoteInvitationReceived")["id"]
        alice.expect("ringing at keys-bob1")
        alice.send("call somebody-half-ty")  # half-typed, then Ctrl-C
        alice.sendcontrol("c")
        alice.expect_exact("call somebody-half-ty^C")  # logged, like a shell's ^C
        alice.sendcontrol("c")  # on the now empty line: how to quit
        alice.expect("to quit, press Ctrl-D or type quit")
        alice.send("list\r")  # the session is alive; the line did not run
        alice.expect("invitations")
        alice.expect("ringing")
        assert "somebody-half-ty" not in "".join(bob.lines)
        # A running command is stopped by Ctrl-C, and the prompt comes back.
        alice.send("wait --timeout 30\r")
        # The log line (with its time) is written once the prompt has given the terminal
        # back; the typed line itself is echoed earlier, while Ctrl-C is still a key.
        alice.expect(r"\d\d:\d\d:\d\d keys-alice1> wait --timeout 30")
        alice.sendcontrol("c")
        # "interrupted" and the prompt, in either order: the prompt may be drawn again
        # before the log line above it is (then later redraws only move the cursor).
        alice.expect(r"interrupted[\s\S]*keys-alice1>|keys-alice1>[\s\S]*interrupted")
        alice.send("list\r")  # ... and it reads commands again
        alice.expect("invitations")
        bob.send(f"accept {inv} --response still-here")
        alice.expect("ACCEPTED")  # the call went on through both Ctrl-Cs
        bob.expect("RemoteInvitationAccepted", id=inv)
        quits(alice)
    finally:
        bob.kill()


def test_history_is_per_user_and_server(phone) -> None:  # type: ignore[no-untyped-def]
    alice = phone("keys-alice2")
    alice.send("online keys-secret-of-alice\r")
    alice.expect("keys-secret-of-alice is offline")
    quits(alice)

    bob = phone("keys-bob2")
    time.sleep(0.3)
    bob.send("\x1b[A")  # Up: bob has no history, so the line stays empty
    bob.send("list\r")
    bob.expect_exact("keys-bob2> list")  # what ran is exactly "list"
    bob.expect("invitations")
    quits(bob)

    alice = phone("keys-alice2")
    time.sleep(0.3)  # prompt_toolkit loads the history file in the background
    alice.send("\x1b[A\x1b[A")  # Up, Up: "quit", then alice's line before it
    alice.expect_exact("online keys-secret-of-alice")
    alice.send("\r")
    alice.expect("keys-secret-of-alice is offline")
    quits(alice)
