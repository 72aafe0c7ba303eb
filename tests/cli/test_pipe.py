"""Pipe mode against a real server subprocess: the JSON-lines contract of SPEC §4, key by
key, over real processes and real time (short timers passed as flags)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from .procs import Pipe

INVITATION_KEYS = [
    "event", "id", "caller", "callee", "state", "state_code", "content", "channel_id", "response",
]  # fmt: skip
_names = itertools.count()


@pytest.fixture
def login(server_url: str, config_dir: Path) -> Iterator:  # type: ignore[type-arg]
    """login(user, *flags) -> a Pipe running ``rtmcall login USER --json``; all killed after."""
    pipes: list[Pipe] = []

    def start(user: str, *flags: str, json: bool = True) -> Pipe:
        args = ["login", user, "--server", server_url, *flags]
        pipe = Pipe([*args, "--json"] if json else args, config_dir)
        pipes.append(pipe)
        return pipe

    try:
        yield start
    finally:
        for pipe in pipes:
            pipe.kill()


def user(name: str) -> str:
    """A user id unique to this test session (tests share one server per test)."""
    return f"{name}{next(_names)}"


def test_accept_key_by_key(login, server_url: str) -> None:  # type: ignore[no-untyped-def]
    a, b = user("alice"), user("bob")
    bob = login(b)
    assert bob.expect("LoginSuccess") == {
        "event": "LoginSuccess",
        "user": b,
        "server": server_url,
    }
    alice = login(a)
    alice.expect("LoginSuccess", user=a)
    alice.send(f"call {b} --content 'lunch at noon?' --channel room1")

    sent = alice.expect("LocalInvitationSent")
    assert list(sent) == [*INVITATION_KEYS, "peer_online"]
    inv = sent["id"]
    assert isinstance(inv, str) and inv
    assert sent == {
        "event": "LocalInvitationSent", "id": inv, "caller": a, "callee": b,
        "state": "SENT_TO_REMOTE", "state_code": 1,
        "content": "lunch at noon?", "channel_id": "room1", "response": "",
        "peer_online": True,
    }  # fmt: skip

    got = bob.expect("RemoteInvitationReceived")
    assert got == {
        "event": "RemoteInvitationReceived", "id": inv, "caller": a, "callee": b,
        "state": "INVITATION_RECEIVED", "state_code": 1,
        "content": "lunch at noon?", "channel_id": "room1", "response": "",
    }  # fmt: skip
    ringing = alice.expect("LocalInvitationReceivedByPeer")
    assert list(ringing) == INVITATION_KEYS
    assert (ringing["id"], ringing["state"], ringing["state_code"]) == (
        inv,
        "RECEIVED_BY_REMOTE",
        2,
    )

    bob.send(f"accept {inv[:6]} --response 'on my way'")
    accepted = alice.expect("LocalInvitationAccepted")
    assert list(accepted) == INVITATION_KEYS
    assert (accepted["id"], accepted["state"], accepted["state_code"]) == (
        inv,
        "ACCEPTED_BY_REMOTE",
        3,
    )
    assert accepted["response"] == "on my way"
    done = bob.expect("RemoteInvitationAccepted")
    assert (done["id"], done["state"], done["state_code"], done["response"]) == (
        inv,
        "ACCEPTED",
        4,
        "on my way",
    )

    # Refused commands answer with ApiCallError and change nothing.
    alice.send(f"cancel {inv}")
    err = alice.expect("ApiCallError")
    assert (err["error"], err["error_code"]) == ("ALREADY_END", 3)
    assert (err["id"], err["state"], err["state_code"]) == (inv, "ACCEPTED_BY_REMOTE", 3)
    bob.send("accept")  # the newest incoming one, accepted: its lifecycle ended
    err = bob.expect("ApiCallError")
    assert (err["error"], err["error_code"]) == ("ALREADY_END", 3)

    # A refused command is a failed line: exit 1 (SPEC §4 as the README words it).
    assert alice.finish() == 1 and bob.finish() == 1
    last = alice.json_lines()[-1]
    assert (last["event"], last["state"], last["reason"]) == (
        "ConnectionStateChanged",
        "DISCONNECTED",
        "LOGOUT",
    )


def test_refuse_and_peer_offline(login) -> None:  # type: ignore[no-untyped-def]
    a, b = user("alice"), user("bob")
    bob = login(b)
    bob.expect("LoginSuccess")
    alice = login(a, "--no-response-timeout", "0.5")
    alice.send(f"call {b}")
    inv = alice.expect("LocalInvitationSent")["id"]
    bob.expect("RemoteInvitationReceived", id=inv)
    bob.send("refuse --response busy")
    refused = alice.expect("LocalInvitationRefused", id=inv)
    assert (refused["state"], refused["state_code"], refused["response"]) == (
        "REFUSED_BY_REMOTE",
        4,
        "busy",
    )
    assert "error" not in refused
    mine = bob.expect("RemoteInvitationRefused", id=inv)
    assert (mine["state"], mine["state_code"]) == ("REFUSED", 3)

    alice.send("call nobody-here")
    lost = alice.expect("LocalInvitationFailure", timeout=5)
    assert list(lost) == [*INVITATION_KEYS, "error", "error_code"]
    assert (lost["callee"], lost["state"], lost["state_code"]) == ("nobody-here", "FAILURE", 6)
    assert (lost["error"], lost["error_code"]) == ("PEER_OFFLINE", 1)
    assert alice.finish() == 0 and bob.finish() == 0


def test_expiry_on_both_sides(login) -> None:  # type: ignore[no-untyped-def]
    a, b = user("alice"), user("bob")
    bob = login(b)
    bob.expect("LoginSuccess")
    alice = login(a)
    alice.send(f"call {b} --lifetime 0.6")
    inv = alice.expect("LocalInvitationSent")["id"]
    theirs = bob.expect("RemoteInvitationFailure", id=inv, timeout=5)
    assert (theirs["error"], theirs["error_code"]) == ("INVITATION_EXPIRE", 3)
    mine = alice.expect("LocalInvitationFailure", id=inv, timeout=5)
    assert (mine["error"], mine["error_code"]) == ("INVITATION_EXPIRE", 3)
    assert alice.finish() == 0 and bob.finish() == 0


def test_end_of_input_cancels_pending_calls(login) -> None:  # type: ignore[no-untyped-def]
    a, b = user("alice"), user("bob")
    bob = login(b)
    bob.expect("LoginSuccess")
    alice = login(a)
    alice.send(f"call {b}")
    alice.send(f"call {b} --content second")
    first = alice.expect("LocalInvitationSent")["id"]
    second = alice.expect("LocalInvitationSent")["id"]
    assert first != second
    assert {bob.expect("RemoteInvitationReceived")["id"] for _ in range(2)} == {first, second}
    assert alice.finish() == 0  # end of input
    events = [(o["event"], o.get("id")) for o in alice.json_lines()]
    assert ("LocalInvitationCanceled", first) in events
    assert ("LocalInvitationCanceled", second) in events
    assert {bob.expect("RemoteInvitationCanceled")["id"] for _ in range(2)} == {first, second}
    assert bob.finish() == 0


def test_bad_lines_are_errors_and_the_session_goes_on(login) -> None:  # type: ignore[no-untyped-def]
    alice = login(user("alice"))
    alice.expect("LoginSuccess")
    alice.send("dial bob")
    assert alice.expect("Error")["message"].startswith("unknown command 'dial'")
    alice.send("accept")
    assert "no call to accept" in alice.expect("Error")["message"]
    alice.send("call 'bad/peer'")
    err = alice.expect("ApiCallError")
    assert (err["error"], err["error_code"], err["callee"], err["id"]) == (
        "INVALID_ARGUMENT",
        1,
        "bad/peer",
        None,
    )
    alice.send("cancel ffff")
    assert alice.expect("ApiCallError")["error"] == "INVALID_ARGUMENT"
    alice.send("online nobody-here")
    online = alice.expect("PeersOnlineStatus")
    assert online["peers"] == {"nobody-here": "OFFLINE"}
    alice.send("help")
    assert any("call PEER" in line for line in alice.expect("Help")["lines"])
    assert alice.finish() == 1  # some lines failed
    assert "4 command lines failed" in alice.stderr()


def test_readable_lines_without_json(login) -> None:  # type: ignore[no-untyped-def]
    a, b = user("alice"), user("bob")
    bob = login(b, json=False)
    bob.expect_line(lambda line: "logged in" in line)
    alice = login(a, json=False)
    alice.expect_line(lambda line: "logged in" in line)
    alice.send(f"call {b} --content hi")
    sent = alice.expect_line(lambda line: "sent" in line)
    short = sent.split()[1]
    bob.expect_line(lambda line: f"incoming call {short} from {a}" in line and "RINGING" in line)
    bob.send("refuse --response later")
    alice.expect_line(lambda line: "REFUSED" in line and "later" in line)
    assert alice.finish() == 0 and bob.finish() == 0


def test_a_second_login_kicks_the_first(login) -> None:  # type: ignore[no-untyped-def]
    a = user("alice")
    first = login(a)
    first.expect("LoginSuccess")
    second = login(a)
    second.expect("LoginSuccess")
    kicked = first.expect("ConnectionStateChanged", state="ABORTED")
    assert (kicked["reason"], kicked["reason_code"]) == ("REMOTE_LOGIN", 8)
    assert "logged in somewhere else" in first.expect("Error")["message"]
    assert first.finish() == 3
    assert second.finish() == 0


def test_unreachable_server_exits_3(config_dir: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"ws://127.0.0.1:{port}"
    pipe = Pipe(["login", "alice", "--server", url, "--json"], config_dir)
    try:
        assert pipe.finish() == 3
        err = pipe.stderr().strip().splitlines()
        assert len(err) == 1 and url in err[0] and "Traceback" not in err[0]
        fail = pipe.json_lines()[-1]
        assert (fail["event"], fail["server"]) == ("LoginFailure", url)
    finally:
        pipe.kill()


@pytest.mark.parametrize("as_json", [True, False])
@pytest.mark.parametrize(
    "failing",
    [
        "dial bob",  # not a command
        "cancel ffff",  # refused: no such call (ApiCallError)
        "accept",  # nothing to accept (Error)
        "wait --incoming --timeout 0.3",  # timed out
        "call 'bad/peer'",  # refused: invalid user id
    ],
)
def test_a_failed_line_makes_the_exit_status_1(login, failing: str, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    a = user("alice")
    good = login(a, json=as_json)
    for line in ("online nobody-here", "list", "help", "sleep 0.1", "wait --timeout 1"):
        good.send(line)
    assert good.finish() == 0  # every line did what it said
    bad = login(user("alice"), json=as_json)
    bad.send("online nobody-here")
    bad.send(failing)
    bad.send("list")  # the session goes on after the failed line
    assert bad.finish() == 1
    err = bad.stderr()
    assert "1 command line failed" in err and "Traceback" not in err
    if as_json:
        failed = [o for o in bad.json_lines() if o["event"] in ("Error", "ApiCallError")]
        assert len(failed) == 1


def test_kicked_is_3_even_after_failed_lines(login) -> None:  # type: ignore[no-untyped-def]
    a = user("alice")
    first = login(a)
    first.expect("LoginSuccess")
    first.send("dial bob")
    first.expect("Error")
    second = login(a)
    second.expect("LoginSuccess")
    first.expect("ConnectionStateChanged", state="ABORTED")
    assert first.finish() == 3
    assert second.finish() == 0
