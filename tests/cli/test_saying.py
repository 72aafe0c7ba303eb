"""Say what is happening (issue 13, items 2, 3 and 5), over real processes:

* a call to an offline user says so at once (text, JSON ``peer_online``, the table), instead
  of 30 s of silence before ``failed: peer offline``; the SPEC §2 outcome is unchanged;
* ``answer --timeout`` says why it exits 1;
* ``type accept or refuse`` only where someone types (not in pipe or one-shot output).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from rtmcall.cli.console.table import Row, build_table
from rtmcall.engine.codes import LocalInvitationError as LE
from rtmcall.engine.codes import LocalInvitationState as LS

from .conftest import REPO, RTMCALL, cli_env, kill
from .procs import Pipe


def run(args: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RTMCALL, *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        env=cli_env(config),
        cwd=REPO,
        timeout=20,
    )


def test_offline_callee_is_said_at_once_in_json_and_text(server_url: str, config_dir: Path) -> None:
    online = Pipe(["login", "say-bob1", "--server", server_url, "--json"], config_dir)
    alice = Pipe(["login", "say-alice1", "--server", server_url, "--json",
                  "--no-response-timeout", "1.5"], config_dir)  # fmt: skip
    text = Pipe(["login", "say-carol1", "--server", server_url], config_dir)
    try:
        online.expect("LoginSuccess")
        alice.expect("LoginSuccess")
        alice.send("call say-nobody1 say-bob1")
        away = alice.expect("LocalInvitationSent", callee="say-nobody1")
        assert away["peer_online"] is False
        here = alice.expect("LocalInvitationSent", callee="say-bob1")
        assert here["peer_online"] is True
        # SPEC §2 unchanged: the offline call still fails PEER_OFFLINE after the window.
        failed = alice.expect("LocalInvitationFailure", id=away["id"], timeout=5)
        assert failed["error"] == "PEER_OFFLINE"

        text.expect_line(lambda line: "logged in" in line)
        text.send("call say-nobody2")
        line = text.expect_line(lambda line: "sent" in line)
        assert "say-nobody2 is offline — it rings if say-nobody2 logs in within 30 s" in line
    finally:
        for pipe in (online, alice, text):
            pipe.kill()


def test_one_shot_call_says_offline_and_who_calls(server_url: str, config_dir: Path) -> None:
    done = run(["call", "say-nobody3", "--user", "say-alice3", "--server", server_url,
                "--no-response-timeout", "0.5"], config_dir)  # fmt: skip
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == "say-alice3 → say-nobody3"
    assert "say-nobody3 is offline — it rings if say-nobody3 logs in within 0.5 s" in lines[1]
    assert "PEER_OFFLINE" in lines[2]


def test_table_says_waiting_for_an_offline_callee() -> None:
    row = Row(id="a1" * 8, direction="out", peer="dave", state=LS.SENT_TO_REMOTE,
              error=LE.OK, deadline=128.2, waiting_for_peer=True)  # fmt: skip
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(build_table([row], 100.0))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "waiting for dave 28s" in text
    assert "calling…" not in text


def test_answer_timeout_says_why(server_url: str, config_dir: Path) -> None:
    done = run(["answer", "--user", "say-bob4", "--server", server_url, "--timeout", "0.4"],
               config_dir)  # fmt: skip
    assert done.returncode == 1
    assert "no call within 0.4 s" in done.stderr
    as_json = run(["answer", "--user", "say-bob4", "--server", server_url, "--timeout", "0.4",
                   "--json"], config_dir)  # fmt: skip
    assert as_json.returncode == 1
    assert '{"event":"Error","message":"no call within 0.4 s"}' in as_json.stdout


def test_no_typing_hint_where_nobody_types(server_url: str, config_dir: Path) -> None:
    bob = Pipe(["login", "say-bob5", "--server", server_url], config_dir)
    call = None
    try:
        bob.expect_line(lambda line: "logged in" in line)
        call = subprocess.Popen(
            [*RTMCALL, "call", "say-bob5", "--user", "say-alice5", "--server", server_url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(config_dir),
            cwd=REPO,
        )  # fmt: skip
        ringing = bob.expect_line(lambda line: "RINGING" in line)
        assert "type accept" not in ringing
        bob.send("accept")
        assert call.wait(timeout=10) == 0
    finally:
        bob.kill()
        if call:
            kill(call)


def test_table_waits_for_the_offline_callee_then_rings(server_url: str, config_dir: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    env = cli_env(config_dir, NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    alice = pexpect.spawn(
        sys.executable, ["-m", "rtmcall.cli", "login", "say-alice6", "--server", server_url],
        env=env, cwd=str(REPO), dimensions=(40, 150), encoding="utf-8", timeout=8,
    )  # fmt: skip
    dave = None
    try:
        alice.expect_exact("say-alice6>")
        alice.send("call say-dave6\r")
        alice.expect("say-dave6 is offline — it rings if say-dave6 logs in within 30 s")
        alice.expect(r"waiting for say-dave6 (29|30)s")  # the table row, counting down
        dave = Pipe(["login", "say-dave6", "--server", server_url, "--json"], config_dir)
        dave.expect("RemoteInvitationReceived", caller="say-alice6")  # it rang after all
        alice.expect("ringing at say-dave6")
        alice.send("quit\r")
        alice.expect("logged out")
        dave.expect("RemoteInvitationCanceled")
    finally:
        alice.close(force=True)
        if dave:
            dave.kill()
