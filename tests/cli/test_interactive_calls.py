"""The interactive softphone's calls in a pseudo-terminal (pexpect, SPEC §6): the in-call
row with its running duration, ``hangup``, ``dnd on`` in the status line, ``history``."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO, cli_env
from .procs import Pipe

pexpect = pytest.importorskip("pexpect")


@pytest.fixture
def pty_phone(server_url: str, config_dir: Path) -> Iterator:  # type: ignore[type-arg]
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


def test_in_call_row_runs_and_hangup_ends_it(pty_phone, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    alice = pty_phone("pty-calls-alice")
    bob = Pipe(["login", "pty-calls-bob", "--server", server_url, "--json"], config_dir)
    try:
        bob.expect("LoginSuccess", timeout=10)
        alice.send("call pty-calls-bob --content standup\r")
        inv = bob.expect("RemoteInvitationReceived")["id"]
        bob.send("accept")
        alice.expect("in call, type hangup")  # the log line
        alice.expect(r"in call 00:0\d")  # the table row
        # The duration runs while nothing else happens. prompt_toolkit redraws only the
        # characters that changed; a resize makes it draw the whole screen again.
        time.sleep(2.5)
        alice.setwinsize(40, 149)
        alice.expect(r"in call 00:0[2-9]")
        alice.send("dnd on\r")
        alice.expect("do not disturb is on")
        alice.expect("dnd on · type help")  # the status line
        alice.send("hangup\r")
        alice.expect(f"call {inv[:6]} with pty-calls-bob ended: you hung up \\(00:0\\d\\)")
        alice.expect(r"ended 00:0\d, hung up")  # the table row
        ended = bob.expect("CallEnded", id=inv)
        assert ended["reason"] == "HANGUP_REMOTE" and ended["duration"] >= 2
        alice.send("hangup\r")  # again: refused, one line, the prompt stays
        alice.expect(f"hangup {inv[:6]}: that call already ended \\[ALREADY_END\\]")
        alice.send("dnd off\r")
        alice.expect("do not disturb is off")
        alice.send("history\r")
        alice.expect(re.escape("→ out  pty-calls-bob  call 00:0"))
        alice.expect(r"hung up  'standup'")
        alice.expect_exact("pty-calls-alice>")
        alice.send("quit\r")
        alice.expect("logged out")
        alice.expect(pexpect.EOF)
        alice.close()
        assert alice.exitstatus == 0
    finally:
        bob.kill()


def test_quit_hangs_up_a_call_that_is_on(pty_phone, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    bob = pty_phone("pty-calls-bob2")
    alice = Pipe(["login", "pty-calls-alice2", "--server", server_url, "--json"], config_dir)
    try:
        alice.expect("LoginSuccess", timeout=10)
        alice.send("call pty-calls-bob2")
        inv = alice.expect("LocalInvitationSent")["id"]
        bob.expect("RINGING")
        bob.send("accept\r")
        bob.expect(r"in call 00:0\d")
        alice.expect("CallStarted", id=inv)
        bob.send("quit\r")
        bob.expect("logged out")
        ended = alice.expect("CallEnded", id=inv)
        assert ended["reason"] == "HANGUP_REMOTE"
    finally:
        alice.kill()
