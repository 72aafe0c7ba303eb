"""The server restarting while calls ring, seen from the command line (issue 13 item 4).

A real ``rtmcall server`` process is stopped and started again on the same port while
real ``rtmcall`` processes are logged in. The caller's call ends NOT_LOGGEDIN (the code
stays Agora's) and says "connection lost", never "not logged in": in the one-shot's
output, in pipe mode's JSON (the code) and text, and in the interactive table. An
``accept`` typed while the softphone reconnects says that it waits for the connection.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO, RTMCALL, cli_env, kill
from .procs import Pipe

pexpect = pytest.importorskip("pexpect")


class ServerProcess:
    """``rtmcall server`` that can be stopped and started again on its port."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*RTMCALL, "server", "--port", str(self.port), "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=cli_env(self.config),
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        match = re.search(r"ws://127\.0\.0\.1:(\d+)", self.proc.stdout.readline())
        assert match, "the server did not start"
        self.port = int(match[1])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=10)

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


@pytest.fixture
def server(config_dir: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(config_dir)
    srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None:
            kill(srv.proc)


def pipe(server: ServerProcess, config: Path, user: str, *flags: str) -> Pipe:
    p = Pipe(["login", user, "--server", server.url, *flags], config)
    return p


def test_one_shot_call_says_connection_lost(server: ServerProcess, config_dir: Path) -> None:
    bob = pipe(server, config_dir, "rs-bob1", "--json")
    call = None
    try:
        bob.expect("LoginSuccess")
        call = subprocess.Popen(
            [*RTMCALL, "call", "rs-bob1", "--user", "rs-alice1", "--server", server.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=cli_env(config_dir),
            cwd=REPO,
        )
        bob.expect("RemoteInvitationReceived", timeout=10)
        server.restart()
        out, err = call.communicate(timeout=20)
        assert call.returncode == 1, (out, err)
        assert "FAILED, connection lost (NOT_LOGGEDIN)" in out, out
        assert "not logged in" not in out + err
    finally:
        bob.kill()
        if call is not None:
            kill(call)


def test_pipe_mode_keeps_the_code_and_says_connection_lost(
    server: ServerProcess, config_dir: Path
) -> None:
    bob = pipe(server, config_dir, "rs-bob2", "--json")
    alice_json = pipe(server, config_dir, "rs-alice2", "--json")
    try:
        bob.expect("LoginSuccess")
        alice_json.expect("LoginSuccess")
        alice_json.send("call rs-bob2")
        inv = alice_json.expect("LocalInvitationSent")["id"]
        bob.expect("RemoteInvitationReceived", id=inv, timeout=10)
        server.restart()
        failed = alice_json.expect("LocalInvitationFailure", id=inv, timeout=20)
        assert (failed["error"], failed["error_code"]) == ("NOT_LOGGEDIN", 4)
        alice_text = pipe(server, config_dir, "rs-alice3")
        alice_text.expect_line(lambda line: "logged in" in line, timeout=10)
        alice_text.send("call rs-bob2")
        alice_text.expect_line(lambda line: "to rs-bob2: sent" in line, timeout=10)
        bob.expect("RemoteInvitationReceived", timeout=10)
        server.restart()
        line = alice_text.expect_line(lambda line: "FAILED" in line, timeout=20)
        assert line.endswith(": FAILED, connection lost (NOT_LOGGEDIN)"), line
        alice_text.kill()
    finally:
        bob.kill()
        alice_json.kill()


def spawn_phone(server: ServerProcess, config: Path, user: str):  # type: ignore[no-untyped-def]
    env = cli_env(config, NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "rtmcall.cli", "login", user, "--server", server.url],
        env=env,
        cwd=str(REPO),
        dimensions=(40, 150),
        encoding="utf-8",
        timeout=15,
    )
    child.expect("logged in to")
    child.expect_exact(f"{user}>")
    return child


def test_the_table_says_connection_lost(server: ServerProcess, config_dir: Path) -> None:
    bob = pipe(server, config_dir, "rs-bob4", "--json")
    alice = spawn_phone(server, config_dir, "rs-alice4")
    try:
        bob.expect("LoginSuccess")
        alice.send("call rs-bob4\r")
        alice.expect("ringing")
        server.restart()
        alice.expect("failed: connection lost")  # the table's words
        alice.send("quit\r")
        alice.expect(pexpect.EOF)
    finally:
        alice.close(force=True)
        bob.kill()


def test_accept_while_reconnecting_says_it_waits(server: ServerProcess, config_dir: Path) -> None:
    alice = pipe(server, config_dir, "rs-alice5", "--json")
    bob = spawn_phone(server, config_dir, "rs-bob5")
    try:
        alice.expect("LoginSuccess")
        alice.send("call rs-bob5")
        bob.expect("RINGING")
        server.stop(signal.SIGKILL)  # gone at once, no goodbye
        bob.expect("RECONNECTING")
        bob.send("accept\r")
        bob.expect_exact("accept: waiting for the connection to the server (reconnecting")
        time.sleep(1)
        server.start()
        bob.expect_exact("accept: connected again")
        # A restarted server has no sessions: the call ended under the accept.
        bob.expect("ALREADY_END")
        bob.send("quit\r")
        bob.expect(pexpect.EOF)
    finally:
        bob.close(force=True)
        alice.kill()
