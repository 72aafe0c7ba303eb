"""Calls (SPEC §6): hang-up from each side, hang-up races, drops, lost frames, the busy
policy, do-not-disturb and the refuse reason, pumped between engines (no sockets, no
clock)."""

from __future__ import annotations

import pytest

from rtmcall.engine import (
    EngineConfig,
    InvitationApiCallError,
    LocalInvitationState,
    RemoteInvitationState,
)
from rtmcall.engine import frames as f
from rtmcall.engine.call import CALL_TRANSITIONS, HANGUP_TRIES, CallPhase
from rtmcall.engine.codes import CallEndReason
from rtmcall.engine.events import (
    ApiCallError,
    CallEnded,
    CallStarted,
    LocalInvitationRefused,
    RemoteInvitationRefused,
    SendPeer,
)

from .network import Network

LS = LocalInvitationState
RS = RemoteInvitationState
R = CallEndReason
API = InvitationApiCallError


def make(config: EngineConfig | None = None, users=("alice", "bob")) -> Network:
    net = Network(config)
    for u in users:
        net.add(u)
    return net


@pytest.fixture
def net() -> Network:
    return make()


def connect(net: Network, caller: str = "alice", callee: str = "bob") -> str:
    inv = net.nodes[caller].engine.create_local_invitation(callee)
    net.call(caller, "send", inv)
    net.pump()
    net.call(callee, "accept", inv.id)
    net.pump()
    assert inv.state is LS.ACCEPTED_BY_REMOTE
    return inv.id


def ended(net: Network, user: str) -> list[CallEnded]:
    return [e for e in net.nodes[user].call_events if isinstance(e, CallEnded)]


def test_an_accepted_invitation_is_a_call_on_both_sides(net: Network) -> None:
    cid = connect(net)
    for user, direction, peer in (("alice", "out", "bob"), ("bob", "in", "alice")):
        started = [e for e in net.nodes[user].call_events if isinstance(e, CallStarted)]
        assert [(e.call.id, e.call.direction, e.call.peer) for e in started] == [
            (cid, direction, peer)
        ]
        assert net.names(user)[-1] in ("LocalInvitationAccepted", "RemoteInvitationAccepted")
        assert net.nodes[user].engine.calls[cid].active


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_hangup_from_either_side_ends_both(net: Network, who: str) -> None:
    cid = connect(net)
    other = "bob" if who == "alice" else "alice"
    net.call(who, "hangup", cid)
    # At once on our side: no waiting for the peer.
    assert [e.reason for e in ended(net, who)] == [R.HANGUP_LOCAL]
    assert net.nodes[who].engine.calls[cid].phase is CallPhase.HANGING_UP
    net.pump()
    assert [e.reason for e in ended(net, other)] == [R.HANGUP_REMOTE]
    for user in (who, other):
        assert net.nodes[user].engine.calls[cid].phase is CallPhase.ENDED
        assert not net.nodes[user].timers
        assert not net.nodes[user].engine.live_calls()
    # The invitation states of SPEC §2 are unchanged by the call.
    eng = net.nodes["alice"].engine
    assert eng.local[cid].state is LS.ACCEPTED_BY_REMOTE
    assert net.nodes["bob"].engine.remote[cid].state is RS.ACCEPTED


def test_hangup_racing_hangup_ends_both_once(net: Network) -> None:
    cid = connect(net)
    net.call("alice", "hangup", cid)
    net.call("bob", "hangup", cid)
    net.pump()
    assert [e.reason for e in ended(net, "alice")] == [R.HANGUP_LOCAL]
    assert [e.reason for e in ended(net, "bob")] == [R.HANGUP_LOCAL]
    for user in ("alice", "bob"):
        assert net.nodes[user].engine.calls[cid].phase is CallPhase.ENDED
        assert not net.nodes[user].timers


def test_hangup_api_misuse_changes_nothing(net: Network) -> None:
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    with pytest.raises(ApiCallError) as exc:
        net.call("alice", "hangup", inv.id)  # created, never sent
    assert exc.value.code is API.NOT_STARTED
    net.call("alice", "send", inv)
    net.pump()
    for user in ("alice", "bob"):  # ringing: not a call yet
        with pytest.raises(ApiCallError) as exc:
            net.call(user, "hangup", inv.id)
        assert exc.value.code is API.NOT_STARTED
        assert "IDLE" not in exc.value.message
    net.call("bob", "refuse", inv.id)
    net.pump()
    with pytest.raises(ApiCallError) as exc:  # refused: it never connected
        net.call("alice", "hangup", inv.id)
    assert exc.value.code is API.NOT_STARTED
    with pytest.raises(ApiCallError) as exc:
        net.call("alice", "hangup", "no-such-id")
    assert exc.value.code is API.INVALID_ARGUMENT
    cid = connect(net)
    net.call("alice", "hangup", cid)
    net.pump()
    before = (list(net.nodes["alice"].call_events), dict(net.nodes["alice"].timers))
    for user in ("alice", "bob"):
        with pytest.raises(ApiCallError) as exc:
            net.call(user, "hangup", cid)
        assert exc.value.code is API.ALREADY_END
    assert (list(net.nodes["alice"].call_events), dict(net.nodes["alice"].timers)) == before
    assert not any(net.wire.values())


def test_peer_offline_mid_call(net: Network) -> None:
    cid = connect(net)
    net.set_online("bob", False)  # beyond its resume window
    assert [e.reason for e in ended(net, "alice")] == [R.PEER_OFFLINE]
    assert [e.reason for e in ended(net, "bob")] == [R.SESSION_LOST]
    assert not net.nodes["alice"].engine.live_calls()
    assert not net.nodes["bob"].engine.live_calls()
    assert cid in net.nodes["alice"].engine.calls


def test_hangup_lost_with_the_connection_still_ends_both(net: Network) -> None:
    cid = connect(net)
    net.call("alice", "hangup", cid)
    net.set_online("alice", False)  # the Hangup never left: the wire is cleared
    assert [e.reason for e in ended(net, "bob")] == [R.PEER_OFFLINE]
    assert [e.reason for e in ended(net, "alice")] == [R.HANGUP_LOCAL]
    assert not net.nodes["alice"].timers


def test_a_lost_hangup_is_sent_again_until_acknowledged(net: Network) -> None:
    cid = connect(net)
    net.call("alice", "hangup", cid)
    net.wire[("alice", "bob")].clear()  # lost (say, Redis pub/sub between nodes)
    assert net.nodes["alice"].timers == {("hangup", f"C:{cid}"): 5.0}
    net.fire("alice", "hangup")
    assert isinstance(net.wire[("alice", "bob")][0], f.Hangup)
    net.pump()
    assert [e.reason for e in ended(net, "bob")] == [R.HANGUP_REMOTE]
    assert net.nodes["alice"].engine.calls[cid].phase is CallPhase.ENDED
    assert not net.nodes["alice"].timers
    assert len(ended(net, "alice")) == 1


def test_the_hanger_up_gives_up_after_a_few_tries(net: Network) -> None:
    cid = connect(net)
    net.call("alice", "hangup", cid)
    sent = 1
    while net.nodes["alice"].timers:
        net.wire[("alice", "bob")].clear()
        net.fire("alice", "hangup")
        sent += 1
    assert sent == HANGUP_TRIES + 1  # the last firing only stops the waiting
    assert net.nodes["alice"].engine.calls[cid].phase is CallPhase.ENDED
    assert len(ended(net, "alice")) == 1


def test_hangup_overtaking_a_lost_confirm_implies_it(net: Network) -> None:
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.pump()
    net.call("bob", "accept", inv.id)
    net.deliver_one("bob", "alice")  # alice: accepted, sends Confirm
    confirm = net.wire[("alice", "bob")].popleft()
    assert isinstance(confirm, f.Confirm)
    net.call("alice", "hangup", inv.id)
    net.pump()
    rinv = net.nodes["bob"].engine.remote[inv.id]
    assert rinv.state is RS.ACCEPTED
    assert [e.reason for e in ended(net, "bob")] == [R.HANGUP_REMOTE]
    assert net.names("bob")[-1] == "RemoteInvitationAccepted"
    assert [e.name for e in net.nodes["bob"].call_events] == ["CallStarted", "CallEnded"]


def test_callee_that_never_got_the_confirm_ends_the_callers_call(net: Network) -> None:
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.pump()
    net.call("bob", "accept", inv.id)
    net.deliver_one("bob", "alice")
    net.wire[("alice", "bob")].clear()  # the Confirm is lost
    net.fire("bob", "confirm")  # ACCEPT_FAILURE: bob sends End
    net.pump()
    assert [e.reason for e in ended(net, "alice")] == [R.PEER_OFFLINE]
    assert not ended(net, "bob")  # bob never had a call


def busy_net(when_busy: str) -> Network:
    return make(EngineConfig(when_busy=when_busy), users=("alice", "bob", "carol"))


def test_when_busy_refuse_while_in_a_call() -> None:
    net = busy_net("refuse")
    connect(net, "alice", "bob")
    inv = net.nodes["carol"].engine.create_local_invitation("bob")
    net.call("carol", "send", inv)
    net.pump()
    assert inv.state is LS.REFUSED_BY_REMOTE and inv.reason == "busy"
    refused = [e for e in net.nodes["carol"].events if isinstance(e, LocalInvitationRefused)]
    assert [e.reason for e in refused] == ["busy"]
    mine = [e for e in net.nodes["bob"].events if isinstance(e, RemoteInvitationRefused)]
    assert [e.invitation.reason for e in mine] == ["busy"]
    # The call goes on.
    assert len(net.nodes["bob"].engine.active_calls()) == 1


def test_when_busy_refuse_while_another_rings() -> None:
    net = busy_net("refuse")
    first = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", first)
    net.pump()
    second = net.nodes["carol"].engine.create_local_invitation("bob")
    net.call("carol", "send", second)
    net.pump()
    assert second.state is LS.REFUSED_BY_REMOTE and second.reason == "busy"
    assert first.state is LS.RECEIVED_BY_REMOTE  # the first still rings


def test_when_busy_ring_rings_and_a_hung_up_call_is_not_busy() -> None:
    net = busy_net("ring")
    connect(net, "alice", "bob")
    inv = net.nodes["carol"].engine.create_local_invitation("bob")
    net.call("carol", "send", inv)
    net.pump()
    assert inv.state is LS.RECEIVED_BY_REMOTE
    net2 = busy_net("refuse")
    cid = connect(net2, "alice", "bob")
    net2.call("bob", "hangup", cid)  # HANGING_UP until alice acks: the call is over
    inv2 = net2.nodes["carol"].engine.create_local_invitation("bob")
    net2.call("carol", "send", inv2)
    net2.pump()
    assert inv2.state is LS.RECEIVED_BY_REMOTE


def test_dnd_refuses_everything_as_busy(net: Network) -> None:
    net.nodes["bob"].engine.set_dnd(True)
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.pump()
    assert (inv.state, inv.reason) == (LS.REFUSED_BY_REMOTE, "busy")
    net.nodes["bob"].engine.set_dnd(False)
    again = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", again)
    net.pump()
    assert again.state is LS.RECEIVED_BY_REMOTE


def test_refuse_reason_defaults_to_declined_and_is_checked(net: Network) -> None:
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.pump()
    with pytest.raises(ApiCallError) as exc:
        net.call("bob", "refuse", inv.id, "", "asleep")
    assert exc.value.code is API.INVALID_ARGUMENT
    net.call("bob", "refuse", inv.id, "later")
    net.pump()
    assert (inv.state, inv.response, inv.reason) == (LS.REFUSED_BY_REMOTE, "later", "declined")
    # On the wire a declined refuse carries no reason field (Agora's frame, unchanged).
    assert f.encode(f.Refuse(id="x")) == b'{"k":"refuse","id":"x"}'
    assert f.peer_msg_decoder.decode(b'{"k":"refuse","id":"x","reason":"busy"}').reason == "busy"


def test_call_frames_are_strict() -> None:
    for bad in (
        b'{"k":"hangup"}',
        b'{"k":"hangup","id":"x","why":1}',
        b'{"k":"hangup_ack","id":""}',
        b'{"k":"refuse","id":"x","reason":"asleep"}',
    ):
        with pytest.raises((f.msgspec.ValidationError, f.msgspec.DecodeError)):
            f.peer_msg_decoder.decode(bad)


def test_frames_about_a_call_from_a_stranger_are_ignored() -> None:
    net = make(users=("alice", "bob", "mallory"))
    cid = connect(net)
    out = net.nodes["bob"].engine.receive("mallory", f.Hangup(id=cid))
    assert out == [] and net.nodes["bob"].engine.calls[cid].active


def test_every_call_transition_is_reachable() -> None:
    # Each input of the table names something the engine feeds it; a typo would leave a
    # transition dead. The tests above drive each one; this checks the table's shape.
    inputs = {what for moves in CALL_TRANSITIONS.values() for what in moves}
    assert inputs == {
        "hangup",
        "hangup_msg",
        "hangup_ack",
        "hangup_timeout",
        "hangup_give_up",
        "peer_gone",
        "peer_offline",
        "session_lost",
        "session_replaced",
    }
    assert CallPhase.ENDED not in CALL_TRANSITIONS


def test_delivery_failure_of_a_hangup_ends_the_waiting(net: Network) -> None:
    cid = connect(net)
    net.nodes["bob"].online = False  # bob gone, presence not yet told
    out = net.call("alice", "hangup", cid)
    assert any(isinstance(o, SendPeer) for o in out)
    assert net.nodes["alice"].engine.calls[cid].phase is CallPhase.ENDED
    assert not net.nodes["alice"].timers


def test_calls_off_is_agora_1x() -> None:
    net = make(EngineConfig(calls=False))
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.pump()
    net.call("bob", "accept", inv.id)
    net.pump()
    assert inv.state is LS.ACCEPTED_BY_REMOTE
    assert not net.nodes["alice"].call_events and not net.nodes["alice"].engine.calls
    assert not net.nodes["alice"].engine.busy and not net.nodes["bob"].engine.busy
    with pytest.raises(ApiCallError) as exc:
        net.call("alice", "hangup", inv.id)
    assert exc.value.code is API.ALREADY_END  # accepted, and over


def test_the_busy_policy_can_change_at_run_time() -> None:
    net = busy_net("ring")
    connect(net, "alice", "bob")
    with pytest.raises(ApiCallError) as exc:
        net.nodes["bob"].engine.set_when_busy("sometimes")
    assert exc.value.code is API.INVALID_ARGUMENT
    net.nodes["bob"].engine.set_when_busy("refuse")
    inv = net.nodes["carol"].engine.create_local_invitation("bob")
    net.call("carol", "send", inv)
    net.pump()
    assert (inv.state, inv.reason) == (LS.REFUSED_BY_REMOTE, "busy")
