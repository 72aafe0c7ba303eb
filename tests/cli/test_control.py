"""SPEC §7, one user in many terminals: with ``rtmcall login alice`` running, ``rtmcall call``
and ``rtmcall answer`` as alice go through that softphone (its control socket) instead of
logging in again and kicking it. Real processes against a real server: a pipe-mode
softphone and one-shots, as a user would run them in two terminals.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from rtmcall.cli import commands as c
from rtmcall.cli.control.wire import command_line, event_from_json, event_json
from rtmcall.cli.local_files import control_dirs, socket_name
from rtmcall.engine.codes import CallEndReason, LocalInvitationError, LocalInvitationState
from rtmcall.engine.events import (
    CallEnded,
    CallInfo,
    CallStarted,
    LocalInvitationFailure,
    LocalInvitationInfo,
)

from .conftest import REPO, RTMCALL, cli_env, kill
from .procs import Pipe

_names = itertools.count()


def user(name: str) -> str:
    return f"ctl-{name}{next(_names)}"


def sock_path(who: str, url: str) -> Path:
    (folder,) = control_dirs()  # RTMCALL_CONFIG_DIR is set: the tests' own run/ folder
    return folder / socket_name(who, url)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str] | Pipe]]:
    started: list[subprocess.Popen[str] | Pipe] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.kill() if isinstance(proc, Pipe) else kill(proc)


def softphone(procs: list, url: str, config: Path, who: str) -> Pipe:  # type: ignore[type-arg]
    """``rtmcall login WHO --json`` in pipe mode, logged in and serving its socket."""
    phone = Pipe(["login", who, "--server", url, "--json"], config)
    procs.append(phone)
    phone.expect("LoginSuccess", user=who)
    # It serves the socket right after its login line; wait until it listens.
    path = sock_path(who, url)
    deadline = time.monotonic() + 5
    while not listens(path):
        assert time.monotonic() < deadline, "the softphone serves no control socket"
        time.sleep(0.05)
    return phone


def listens(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def one_shot(procs: list, config: Path, *args: str) -> subprocess.Popen[str]:  # type: ignore[type-arg]
    proc = subprocess.Popen(
        [*RTMCALL, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=cli_env(config),
        cwd=REPO,
    )
    procs.append(proc)
    return proc


def not_kicked(phone: Pipe) -> None:
    """The softphone is still logged in: it answers a command, and it was never aborted."""
    phone.send("online nobody-at-all")
    phone.expect("PeersOnlineStatus")
    assert not any(json.loads(line).get("state") == "ABORTED" for line in phone.lines), phone.lines


def test_call_goes_through_the_running_softphone(procs, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = user("alice"), user("bob")
    alice = softphone(procs, server_url, config_dir, a)
    bob = Pipe(["login", b, "--server", server_url, "--json"], config_dir)
    procs.append(bob)
    bob.expect("LoginSuccess")

    # Accepted: exit 0, the same lines as standalone, and the call in alice's softphone.
    call = one_shot(procs, config_dir, "call", b, "--user", a, "--server", server_url,
                    "--content", "lunch?")  # fmt: skip
    inv = bob.expect("RemoteInvitationReceived", caller=a, content="lunch?")["id"]
    bob.send(f"accept {inv} --response 'on my way'")
    out, err = call.communicate(timeout=15)
    assert call.returncode == 0, (out, err)
    lines = out.splitlines()
    assert lines[0].startswith(f"{a} → {b}") and "through the softphone" in lines[0]
    assert f"call {inv[:6]} to {b}: sent" in out
    assert f"call {inv[:6]} to {b}: ACCEPTED" in out and "on my way" in out
    assert alice.expect("LocalInvitationSent", id=inv)["content"] == "lunch?"
    alice.expect("LocalInvitationAccepted", id=inv, response="on my way")

    # Refused: exit 1, in JSON this time (the first line says who calls, as standalone).
    call = one_shot(procs, config_dir, "call", b, "--user", a, "--server", server_url, "--json")
    inv = bob.expect("RemoteInvitationReceived", caller=a)["id"]
    bob.send(f"refuse {inv} --response busy")
    out, err = call.communicate(timeout=15)
    assert call.returncode == 1, (out, err)
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0] == {"event": "LoginSuccess", "user": a, "server": server_url,
                         "via": "softphone"}  # fmt: skip
    assert [e["event"] for e in events[1:]] == [
        "LocalInvitationSent", "LocalInvitationReceivedByPeer", "LocalInvitationRefused",
    ]  # fmt: skip
    assert events[-1]["response"] == "busy" and events[-1]["id"] == inv
    alice.expect("LocalInvitationRefused", id=inv)

    not_kicked(alice)
    path = sock_path(a, server_url)
    assert alice.finish() == 0
    assert not path.exists()  # removed on exit
    assert bob.finish() == 0


@pytest.mark.parametrize("also", ["", ",ws://127.0.0.1:9"], ids=["same-url", "one-of-its-list"])
def test_answer_goes_through_the_softphone(
    procs, server_url: str, config_dir: Path, also: str
) -> None:  # type: ignore[no-untyped-def]
    # one-of-its-list: the softphone fails over between two nodes of one deployment and the
    # one-shot names one of them: it must go through the softphone, not log in and kick it.
    a, b = user("alice"), user("bob")
    bob = softphone(procs, server_url + also, config_dir, b)
    answer = Pipe(["answer", "--user", b, "--server", server_url, "--json", "--response", "ok"],
                  config_dir)  # fmt: skip
    procs.append(answer)
    assert answer.expect("LoginSuccess", user=b)["via"] == "softphone"
    alice = Pipe(["login", a, "--server", server_url, "--json"], config_dir)
    procs.append(alice)
    alice.expect("LoginSuccess")
    alice.send(f"call {b}")
    inv = alice.expect("LocalInvitationSent")["id"]
    alice.expect("LocalInvitationAccepted", id=inv, response="ok")
    assert answer.finish() == 0
    answer.expect("RemoteInvitationReceived", id=inv)
    answer.expect("RemoteInvitationAccepted", id=inv)
    bob.expect("RemoteInvitationAccepted", id=inv)  # the softphone's own lines show it
    not_kicked(bob)
    assert bob.finish() == 0 and alice.finish() == 0


def test_a_call_through_the_softphone_is_on_held_and_hung_up_as_standalone(
    procs, server_url: str, config_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    """The one-shot's call shows ``in call`` and is hung up when it exits (as the
    standalone one-shot's logout does); ``--hangup-after`` holds it that long first, for
    ``call`` and for ``answer`` alike; the softphone stays logged in."""
    a, b = user("alice"), user("bob")
    alice = softphone(procs, server_url, config_dir, a)
    bob = Pipe(["login", b, "--server", server_url, "--json"], config_dir)
    procs.append(bob)
    bob.expect("LoginSuccess")
    for hold in ([], ["--hangup-after", "1"]):
        call = one_shot(procs, config_dir, "call", b, "--user", a, "--server", server_url, *hold)
        inv = bob.expect("RemoteInvitationReceived", caller=a)["id"]
        bob.send(f"accept {inv}")
        out, err = call.communicate(timeout=15)
        assert call.returncode == 0, (out, err)
        assert f"call {inv[:6]} with {b}: in call" in out, out
        assert f"call {inv[:6]} with {b} ended: you hung up" in out, out
        ended = bob.expect("CallEnded", id=inv)
        assert ended["reason"] == "HANGUP_REMOTE" and ended["duration"] >= (1 if hold else 0)
        alice.expect("CallEnded", id=inv, reason="HANGUP_LOCAL")

    answer = one_shot(procs, config_dir, "answer", "--user", a, "--server", server_url,
                      "--hangup-after", "1")  # fmt: skip
    time.sleep(0.5)  # (it asks the softphone for incoming calls)
    bob.send(f"call {a}")
    inv = bob.expect("LocalInvitationSent")["id"]
    bob.expect("LocalInvitationAccepted", id=inv)
    out, err = answer.communicate(timeout=15)
    assert answer.returncode == 0, (out, err)
    assert f"call {inv[:6]} with {b} ended: you hung up" in out, out
    ended = bob.expect("CallEnded", id=inv)
    assert ended["reason"] == "HANGUP_REMOTE" and ended["duration"] >= 1

    # A one-shot killed while its call is on leaves no call on either.
    call = one_shot(procs, config_dir, "call", b, "--user", a, "--server", server_url,
                    "--hangup-after", "60")  # fmt: skip
    inv = bob.expect("RemoteInvitationReceived", caller=a)["id"]
    bob.send(f"accept {inv}")
    bob.expect("CallStarted", id=inv)
    call.kill()
    assert bob.expect("CallEnded", id=inv)["reason"] == "HANGUP_REMOTE"
    not_kicked(alice)


def test_a_softphone_that_goes_under_a_held_call_ends_the_one_shot_at_once(
    procs, server_url: str, config_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    """``call --hangup-after 60`` through a softphone that goes while the call is on: the
    one-shot exits at once rather than holding a call that is gone for the rest of the
    minute — 1 when the softphone quit (it hung the call up: not held as asked), 3 with
    why when it was killed (the call went with its session)."""
    a, b = user("alice"), user("bob")
    bob = Pipe(["login", b, "--server", server_url, "--json"], config_dir)
    procs.append(bob)
    bob.expect("LoginSuccess")
    for how, code in (("quit", 1), ("killed", 3)):
        alice = softphone(procs, server_url, config_dir, a)
        call = one_shot(procs, config_dir, "call", b, "--user", a, "--server", server_url,
                        "--hangup-after", "60")  # fmt: skip
        inv = bob.expect("RemoteInvitationReceived", caller=a)["id"]
        bob.send(f"accept {inv}")
        bob.expect("CallStarted", id=inv)
        time.sleep(0.3)  # (the one-shot hears of the call)
        started = time.monotonic()
        if how == "quit":
            assert alice.finish() == 0  # its stdin ends: it hangs up, logs out and quits
        else:
            alice.kill()
        out, err = call.communicate(timeout=15)
        assert call.returncode == code, (how, out, err)
        assert time.monotonic() - started < 8
        if how == "quit":
            assert bob.expect("CallEnded", id=inv)["reason"] == "HANGUP_REMOTE"
        else:  # (bob's call ends once the server gives the killed session up)
            assert "the softphone ended before the outcome" in out + err


def test_a_call_the_softphone_s_user_answers_is_not_the_one_shot_s() -> None:
    """``answer`` through a softphone watches every incoming invitation, but a call the
    softphone's own user accepted is not its own: it gets no events of it, and does not
    hang it up when it exits."""
    from rtmcall.cli.control.client import RemotePhone
    from rtmcall.cli.control.endpoint import _Client, _note_accept
    from rtmcall.engine.codes import RemoteInvitationError, RemoteInvitationState
    from rtmcall.engine.events import RemoteInvitationAccepted, RemoteInvitationInfo

    def accepted(inv_id: str) -> RemoteInvitationAccepted:
        info = RemoteInvitationInfo(
            id=inv_id, caller="carol", callee="alice", content="", channel_id="",
            response="", state=RemoteInvitationState.ACCEPTED,
            error=RemoteInvitationError.OK, lifetime=None,
        )  # fmt: skip
        return RemoteInvitationAccepted(info)

    client = _Client(None, "answer")  # type: ignore[arg-type]
    client.own.update({"mine1", "theirs"})
    _note_accept(client, "accept mine")  # (a prefix of the id does)
    call = CallInfo(id="theirs", caller="carol", callee="alice", direction="in")
    assert not client.wants(CallStarted(call))
    assert client.wants(CallStarted(replace(call, id="mine1")))

    class Quiet:
        def event(self, ev: object) -> None:
            pass

    phone = RemotePhone(None, None, Quiet())  # type: ignore[arg-type]
    phone._mine.add("mine1")
    for inv_id in ("theirs", "mine1"):
        phone._dispatch({"op": "event", "event": event_json(accepted(inv_id))})
    assert list(phone.calls) == ["mine1"]


def test_ctrl_c_of_the_one_shot_cancels_its_call(procs, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = user("alice"), user("bob")
    alice = softphone(procs, server_url, config_dir, a)
    bob = Pipe(["login", b, "--server", server_url, "--json"], config_dir)
    procs.append(bob)
    bob.expect("LoginSuccess")
    call = one_shot(procs, config_dir, "call", b, "--user", a, "--server", server_url)
    inv = bob.expect("RemoteInvitationReceived", caller=a)["id"]
    call.send_signal(signal.SIGINT)
    out, _ = call.communicate(timeout=10)
    assert call.returncode == 1
    assert f"call {inv[:6]} to {b}: canceled" in out
    bob.expect("RemoteInvitationCanceled", id=inv)
    alice.expect("LocalInvitationCanceled", id=inv)

    # A one-shot that is killed outright leaves nothing ringing either.
    call = one_shot(procs, config_dir, "call", b, "--user", a, "--server", server_url)
    inv = bob.expect("RemoteInvitationReceived", caller=a)["id"]
    call.kill()
    bob.expect("RemoteInvitationCanceled", id=inv)
    not_kicked(alice)


def test_no_softphone_and_a_stale_socket(procs, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a = user("alice")
    path = sock_path(a, server_url)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # What a killed softphone leaves behind: a socket file nobody listens on.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)

    # The one-shot sees it is stale and logs in by itself.
    call = one_shot(procs, config_dir, "call", "ctl-ghost", "--user", a, "--server", server_url,
                    "--no-response-timeout", "0.3")  # fmt: skip
    out, err = call.communicate(timeout=10)
    assert call.returncode == 1, err
    assert out.splitlines()[0] == f"{a} → ctl-ghost"  # standalone: no "through"
    assert "PEER_OFFLINE" in out

    # A softphone replaces the stale file with its own live socket.
    phone = softphone(procs, server_url, config_dir, a)  # returns once it listens there
    assert listens(path)
    assert phone.finish() == 0
    assert not path.exists()


def test_only_its_os_user_can_open_the_socket(procs, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a = user("alice")
    phone = softphone(procs, server_url, config_dir, a)
    path = sock_path(a, server_url)
    folder = os.lstat(path.parent)
    assert stat.S_IMODE(folder.st_mode) == 0o700 and folder.st_uid == os.getuid()
    sock = os.lstat(path)
    assert stat.S_IMODE(sock.st_mode) == 0o600 and sock.st_uid == os.getuid()
    if os.getuid() == 0:
        # Root can try it for real: a child that becomes "nobody" is refused at the door.
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 3
            try:
                os.setgid(65534)
                os.setuid(65534)
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                probe.connect(str(path))
                code = 0
            except PermissionError:
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 1, "another user could connect"
    assert phone.finish() == 0


# --- the wire format, without processes ---------------------------------------------


def test_commands_cross_the_socket_unchanged() -> None:
    for cmd in (
        c.Call(("bob", "--odd peer"), 'it\'s #1 "now"', "room 1", 20.5),
        c.Call(("bob",)),
        c.Cancel("8cc51f"),
        c.Cancel(),
        c.Accept("8cc51f", "on my way"),
        c.Refuse(None, "busy; later"),
        c.Hangup("8cc51f"),
        c.Hangup(),
    ):
        assert c.parse(command_line(cmd)) == cmd


def test_events_cross_the_socket_unchanged() -> None:
    info = LocalInvitationInfo(
        id="ab" * 16, caller="alice", callee="bob", content="hi", channel_id="c",
        response="", state=LocalInvitationState.FAILURE,
        error=LocalInvitationError.PEER_OFFLINE, lifetime=None,
    )  # fmt: skip
    ev = LocalInvitationFailure(info, LocalInvitationError.PEER_OFFLINE)
    wire = json.loads(json.dumps(event_json(ev)))
    assert event_from_json(wire) == ev
    assert event_from_json({"name": "SomethingNewer", "invitation": {}}) is None
    call = CallInfo(id="ab" * 16, caller="alice", callee="bob", direction="out")
    for ev in (
        CallStarted(call),
        CallEnded(
            replace(call, reason=CallEndReason.HANGUP_REMOTE), CallEndReason.HANGUP_REMOTE, 2.5
        ),
    ):
        assert event_from_json(json.loads(json.dumps(event_json(ev)))) == ev


def test_interactive_softphone_shows_a_one_shot(procs, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    pexpect = pytest.importorskip("pexpect")
    a, b = user("alice"), user("bob")
    env = cli_env(config_dir, NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    args = ["-m", "rtmcall.cli", "login", a, "--server", server_url, "--no-response-timeout", "2"]
    alice = pexpect.spawn(
        sys.executable, args, env=env, cwd=str(REPO), dimensions=(40, 150), encoding="utf-8",
        timeout=8,
    )  # fmt: skip
    try:
        alice.expect_exact(f"{a}>")
        deadline = time.monotonic() + 5
        while not listens(sock_path(a, server_url)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        call = one_shot(procs, config_dir, "call", b, "--user", a, "--server", server_url,
                        "--no-response-timeout", "9")  # fmt: skip
        alice.expect_exact(f"rtmcall call (another terminal): call {b}")  # its log says so
        alice.expect(f"waiting for {b}")  # and its table shows the call
        alice.expect("failed: peer offline")  # after the softphone's own 2 s window
        out, err = call.communicate(timeout=15)
        assert call.returncode == 1, (out, err)
        assert "through the softphone" in out and "PEER_OFFLINE" in out
        assert "--no-response-timeout is ignored" in err  # the softphone's window applies
        alice.send("quit\r")
        alice.expect("logged out")
        alice.expect(pexpect.EOF)
        assert not sock_path(a, server_url).exists()  # removed on exit
    finally:
        alice.close(force=True)


def test_a_second_softphone_takes_over(procs, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # Two `rtmcall login alice`: the second kicks the first (SPEC §3) and serves the socket;
    # the first, on its way out, must not remove the second's.
    a, b = user("alice"), user("bob")
    first = softphone(procs, server_url, config_dir, a)
    second = softphone(procs, server_url, config_dir, a)
    first.expect("ConnectionStateChanged", state="ABORTED")
    assert first.finish() == 3
    assert listens(sock_path(a, server_url))
    call = one_shot(procs, config_dir, "call", b, "--user", a, "--server", server_url,
                    "--json")  # fmt: skip
    second.expect("LocalInvitationSent", callee=b)  # it went through the second one
    call.send_signal(signal.SIGINT)
    out, _ = call.communicate(timeout=10)
    assert call.returncode == 1
    assert '"via":"softphone"' in out.splitlines()[0]
    second.expect("LocalInvitationCanceled")
    assert second.finish() == 0
    assert not sock_path(a, server_url).exists()


def test_kicked_softphone_one_shot_exits_3(procs, server_url: str, config_dir: Path) -> None:  # type: ignore[no-untyped-def]
    a = user("alice")
    first = softphone(procs, server_url, config_dir, a)
    call = one_shot(procs, config_dir, "call", "ctl-nobody", "--user", a, "--server", server_url)
    first.expect("LocalInvitationSent", callee="ctl-nobody")
    second = Pipe(["login", a, "--server", server_url, "--json"], config_dir)  # kicks it
    procs.append(second)
    second.expect("LoginSuccess")
    out, err = call.communicate(timeout=10)
    assert call.returncode == 3, (out, err)  # as a standalone one-shot that is kicked
    assert "logged in somewhere else" in err and "REMOTE_LOGIN" in err
    assert first.finish() == 3
    assert second.finish() == 0
