"""The JSON-lines contract (SPEC §4), key by key, for every kind of line."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rtmcall.cli.formats import jsonl as jsonfmt
from rtmcall.engine import events as ev
from rtmcall.engine.codes import (
    ConnectionChangeReason,
    ConnectionState,
    InvitationApiCallError,
    LocalInvitationError,
    LocalInvitationState,
    LoginError,
    PeerOnlineState,
    RemoteInvitationError,
    RemoteInvitationState,
)

BASE = ["event", "id", "caller", "callee", "state", "state_code"]
INVITATION_KEYS = [*BASE, "content", "channel_id", "response"]


def local(
    state: LocalInvitationState, error=LocalInvitationError.OK, response=""
) -> ev.LocalInvitationInfo:  # type: ignore[no-untyped-def]
    return ev.LocalInvitationInfo(
        id="inv1", caller="alice", callee="bob", content="hi", channel_id="c1",
        response=response, state=state, error=error, lifetime=None,
    )  # fmt: skip


def remote(state: RemoteInvitationState, error=RemoteInvitationError.OK) -> ev.RemoteInvitationInfo:  # type: ignore[no-untyped-def]
    return ev.RemoteInvitationInfo(
        id="inv1", caller="alice", callee="bob", content="hi", channel_id="c1",
        response="", state=state, error=error, lifetime=None,
    )  # fmt: skip


L, R = LocalInvitationState, RemoteInvitationState

CASES = [
    (ev.LocalInvitationReceivedByPeer(local(L.RECEIVED_BY_REMOTE)), "RECEIVED_BY_REMOTE", 2),
    (ev.LocalInvitationAccepted(local(L.ACCEPTED_BY_REMOTE), ""), "ACCEPTED_BY_REMOTE", 3),
    (ev.LocalInvitationRefused(local(L.REFUSED_BY_REMOTE), ""), "REFUSED_BY_REMOTE", 4),
    (ev.LocalInvitationCanceled(local(L.CANCELED)), "CANCELED", 5),
    (ev.RemoteInvitationReceived(remote(R.INVITATION_RECEIVED)), "INVITATION_RECEIVED", 1),
    (ev.RemoteInvitationAccepted(remote(R.ACCEPTED)), "ACCEPTED", 4),
    (ev.RemoteInvitationRefused(remote(R.REFUSED)), "REFUSED", 3),
    (ev.RemoteInvitationCanceled(remote(R.CANCELED)), "CANCELED", 5),
]  # fmt: skip


@pytest.mark.parametrize(("event", "state", "code"), CASES)
def test_invitation_events(event: ev.InvitationEvent, state: str, code: int) -> None:
    obj = json.loads(jsonfmt.dumps(jsonfmt.invitation_event(event)))
    # Exactly these, in this order; no error on success; a refusal says why (SPEC §6).
    refused = "Refused" in type(event).__name__
    assert list(obj) == INVITATION_KEYS + (["reason"] if refused else [])
    if refused:
        assert obj["reason"] == "declined"
    assert obj["event"] == type(event).__name__
    assert (obj["id"], obj["caller"], obj["callee"]) == ("inv1", "alice", "bob")
    assert (obj["state"], obj["state_code"]) == (state, code)
    assert (obj["content"], obj["channel_id"]) == ("hi", "c1")


def test_a_busy_refusal_says_busy() -> None:
    info = dataclasses.replace(local(L.REFUSED_BY_REMOTE), reason="busy")
    obj = jsonfmt.invitation_event(ev.LocalInvitationRefused(info, "", "busy"))
    assert obj["reason"] == "busy"


def test_call_ended_line() -> None:
    from rtmcall.cli.formats import calls as callfmt
    from rtmcall.engine.codes import CallEndReason

    call = ev.CallInfo(id="inv1", caller="alice", callee="bob", direction="out")
    obj = callfmt.call_ended_json(ev.CallEnded(call, CallEndReason.HANGUP_REMOTE, 83.25))
    assert obj == {
        "event": "CallEnded",
        "id": "inv1",
        "caller": "alice",
        "callee": "bob",
        "reason": "HANGUP_REMOTE",
        "duration": 83.25,
    }


def test_accepted_carries_the_response() -> None:
    event = ev.LocalInvitationAccepted(local(L.ACCEPTED_BY_REMOTE, response="see you"), "see you")
    assert jsonfmt.invitation_event(event)["response"] == "see you"


LE, RE = LocalInvitationError, RemoteInvitationError


def local_failure(error: LocalInvitationError) -> ev.LocalInvitationFailure:
    return ev.LocalInvitationFailure(local(L.FAILURE, error), error)


def remote_failure(error: RemoteInvitationError) -> ev.RemoteInvitationFailure:
    return ev.RemoteInvitationFailure(remote(R.FAILURE, error), error)


@pytest.mark.parametrize(
    ("event", "name", "code"),
    [
        (local_failure(LE.PEER_OFFLINE), "PEER_OFFLINE", 1),
        (local_failure(LE.PEER_NO_RESPONSE), "PEER_NO_RESPONSE", 2),
        (local_failure(LE.INVITATION_EXPIRE), "INVITATION_EXPIRE", 3),
        (local_failure(LE.NOT_LOGGEDIN), "NOT_LOGGEDIN", 4),
        (remote_failure(RE.PEER_OFFLINE), "PEER_OFFLINE", 1),
        (remote_failure(RE.ACCEPT_FAILURE), "ACCEPT_FAILURE", 2),
        (remote_failure(RE.INVITATION_EXPIRE), "INVITATION_EXPIRE", 3),
    ],
)
def test_failures_carry_error_name_and_code(
    event: ev.InvitationEvent, name: str, code: int
) -> None:
    obj = jsonfmt.invitation_event(event)
    assert list(obj) == [*INVITATION_KEYS, "error", "error_code"]
    assert (obj["state"], obj["state_code"]) == ("FAILURE", 6)
    assert (obj["error"], obj["error_code"]) == (name, code)


def test_local_invitation_sent() -> None:
    obj = jsonfmt.local_invitation_sent(local(L.SENT_TO_REMOTE), peer_online=False)
    assert list(obj) == [*INVITATION_KEYS, "peer_online"]
    assert obj["event"] == "LocalInvitationSent"
    assert (obj["id"], obj["state"], obj["state_code"]) == ("inv1", "SENT_TO_REMOTE", 1)
    assert obj["peer_online"] is False
    assert jsonfmt.local_invitation_sent(local(L.SENT_TO_REMOTE))["peer_online"] is None


def test_api_call_error_about_an_invitation() -> None:
    obj = jsonfmt.api_call_error(
        InvitationApiCallError.ALREADY_END, "too late", command="cancel",
        info=local(L.ACCEPTED_BY_REMOTE),
    )  # fmt: skip
    assert obj["event"] == "ApiCallError"
    assert (obj["id"], obj["caller"], obj["callee"]) == ("inv1", "alice", "bob")
    assert (obj["state"], obj["state_code"]) == ("ACCEPTED_BY_REMOTE", 3)
    assert (obj["error"], obj["error_code"]) == ("ALREADY_END", 3)
    assert obj["command"] == "cancel" and obj["message"] == "too late"


def test_api_call_error_before_an_invitation_exists() -> None:
    obj = jsonfmt.api_call_error(
        InvitationApiCallError.INVALID_ARGUMENT, "bad id", command="call", peer="null"
    )
    assert (obj["id"], obj["caller"], obj["callee"]) == (None, None, "null")
    assert (obj["error"], obj["error_code"]) == ("INVALID_ARGUMENT", 1)


def test_other_lines() -> None:
    assert jsonfmt.login_success("alice", "ws://h:1") == {
        "event": "LoginSuccess", "user": "alice", "server": "ws://h:1",
    }  # fmt: skip
    fail = jsonfmt.login_failure("alice", "ws://h:1", LoginError.INVALID_TOKEN, "bad")
    assert (fail["event"], fail["error"], fail["error_code"]) == (
        "LoginFailure",
        "INVALID_TOKEN",
        5,
    )
    online = jsonfmt.peers_online({"bob": PeerOnlineState.ONLINE, "zed": PeerOnlineState.OFFLINE})
    assert online == {
        "event": "PeersOnlineStatus",
        "peers": {"bob": "ONLINE", "zed": "OFFLINE"},
        "peer_codes": {"bob": 0, "zed": 2},
    }
    conn = jsonfmt.connection_state(ConnectionState.ABORTED, ConnectionChangeReason.REMOTE_LOGIN)
    assert conn == {
        "event": "ConnectionStateChanged", "state": "ABORTED", "state_code": 5,
        "reason": "REMOTE_LOGIN", "reason_code": 8,
    }  # fmt: skip
    assert jsonfmt.error("oops") == {"event": "Error", "message": "oops"}


def test_dumps_is_one_line_and_keeps_unicode() -> None:
    line = jsonfmt.dumps({"event": "X", "content": "café\nnext"})
    assert "\n" not in line and "café" in line
    assert json.loads(line)["content"] == "café\nnext"
