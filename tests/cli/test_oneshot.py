"""One-shot ``rtmcall call`` / ``rtmcall answer`` as scripts use them: their exit codes."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from .conftest import REPO, RTMCALL, cli_env, kill
from .procs import Pipe


def run(args: list[str], config: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*RTMCALL, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=cli_env(config, **env),
        cwd=REPO,
    )


def answering(server_url: str, config: Path, user: str, *flags: str) -> Pipe:
    """``rtmcall answer --json`` for ``user``, once it is logged in."""
    pipe = Pipe(["answer", "--user", user, "--server", server_url, "--json", *flags], config)
    pipe.expect("LoginSuccess", user=user)
    return pipe


def test_accepted_call_exits_0_and_both_report_it(server_url: str, config_dir: Path) -> None:
    answer = answering(server_url, config_dir, "os-bob1", "--response", "hi")
    call = None
    try:
        call = run(["call", "os-bob1", "--user", "os-alice1", "--server", server_url], config_dir)
        out, _ = call.communicate(timeout=10)
        assert call.returncode == 0, out
        assert "ACCEPTED" in out and "'hi'" in out
        assert answer.finish() == 0
        answer.expect("RemoteInvitationAccepted", response="hi")
    finally:
        answer.kill()
        if call:
            kill(call)


def test_refused_call_exits_1(server_url: str, config_dir: Path) -> None:
    answer = answering(server_url, config_dir, "os-bob2", "--refuse")
    call = None
    try:
        args = ["call", "os-bob2", "--user", "os-alice2", "--server", server_url, "--json"]
        call = run(args, config_dir)
        out, _ = call.communicate(timeout=10)
        assert call.returncode == 1, out
        assert '"LocalInvitationRefused"' in out
        assert answer.finish() == 0  # it refused, as asked
    finally:
        answer.kill()
        if call:
            kill(call)


def test_call_to_offline_peer_exits_1(server_url: str, config_dir: Path) -> None:
    call = run(
        ["call", "os-ghost", "--user", "os-alice3", "--server", server_url,
         "--no-response-timeout", "0.5"],
        config_dir,
    )  # fmt: skip
    try:
        out, _ = call.communicate(timeout=10)
        assert call.returncode == 1
        assert "PEER_OFFLINE" in out
    finally:
        kill(call)


def test_ctrl_c_cancels_the_call_and_exits_1(server_url: str, config_dir: Path) -> None:
    bob = Pipe(["login", "os-bob4", "--server", server_url, "--json"], config_dir)
    call = None
    try:
        bob.expect("LoginSuccess")
        call = run(["call", "os-bob4", "--user", "os-alice4", "--server", server_url], config_dir)
        received = bob.expect("RemoteInvitationReceived")
        call.send_signal(signal.SIGINT)
        out, _ = call.communicate(timeout=10)
        assert call.returncode == 1
        assert "canceled" in out
        bob.expect("RemoteInvitationCanceled", id=received["id"])
    finally:
        bob.kill()
        if call:
            kill(call)


def test_answer_gives_up_after_its_timeout(server_url: str, config_dir: Path) -> None:
    answer = answering(server_url, config_dir, "os-bob5", "--timeout", "0.3")
    try:
        assert answer.finish() == 1
    finally:
        answer.kill()


def test_call_uses_the_remembered_login(server_url: str, config_dir: Path) -> None:
    # `rtmcall login os-carol6` remembers it and the server; `call` then needs neither.
    login = Pipe(["login", "os-carol6", "--server", server_url], config_dir)
    assert login.finish() == 0
    call = run(["call", "os-nobody6", "--no-response-timeout", "0.3"], config_dir)
    try:
        out, err = call.communicate(timeout=10)
        assert call.returncode == 1, err  # reached the server as carol6; the peer is offline
        assert "PEER_OFFLINE" in out
    finally:
        kill(call)


def test_answer_count_answers_calls_ringing_at_once(server_url: str, config_dir: Path) -> None:
    answer = answering(server_url, config_dir, "os-bob7", "--count", "2", "--delay", "0.2")
    alice = Pipe(["login", "os-alice7", "--server", server_url, "--json"], config_dir)
    try:
        alice.expect("LoginSuccess")
        alice.send("call os-bob7 os-bob7 --content twice")  # two invitations, same callee
        first = alice.expect("LocalInvitationSent")["id"]
        second = alice.expect("LocalInvitationSent")["id"]
        accepted = {alice.expect("LocalInvitationAccepted")["id"] for _ in range(2)}
        assert accepted == {first, second}  # in either order
        assert answer.finish() == 0
        assert alice.finish() == 0
    finally:
        answer.kill()
        alice.kill()
