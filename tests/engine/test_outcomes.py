"""Every invitation outcome, pumped between two engines with no sockets and no clock."""

from __future__ import annotations

import pytest

from rtmcall.engine import (
    EngineConfig,
    LocalInvitationError,
    LocalInvitationState,
    PeerOnlineState,
    RemoteInvitationError,
    RemoteInvitationState,
)
from rtmcall.engine import frames as f
from rtmcall.engine.events import SendPeer, StartTimer, WatchPeer

from .network import Network

LS = LocalInvitationState
RS = RemoteInvitationState


def ring(net: Network, content: str = "hi", **kw):
    inv = net.nodes["alice"].engine.create_local_invitation("bob", content=content, **kw)
    net.call("alice", "send", inv)
    net.pump()
    return inv, net.nodes["bob"].engine.remote[inv.id]


def test_send_goes_sent_then_received_by_peer(net: Network) -> None:
    inv = net.nodes["alice"].engine.create_local_invitation("bob", content="hi", channel_id="c1")
    assert inv.state is LS.IDLE
    out = net.call("alice", "send", inv)
    assert inv.state is LS.SENT_TO_REMOTE
    assert any(isinstance(o, SendPeer) and isinstance(o.msg, f.Invite) for o in out)
    assert any(isinstance(o, StartTimer) and o.key[0] == "no_ack" and o.seconds == 30 for o in out)
    net.pump()
    assert inv.state is LS.RECEIVED_BY_REMOTE
    rinv = net.nodes["bob"].engine.remote[inv.id]
    assert (rinv.state, rinv.content, rinv.channel_id, rinv.caller) == (
        RS.INVITATION_RECEIVED,
        "hi",
        "c1",
        "alice",
    )
    assert net.names("alice") == ["LocalInvitationReceivedByPeer"]
    assert net.names("bob") == ["RemoteInvitationReceived"]
    # Ringing: the caller's backstop is lifetime + grace, the callee's the lifetime.
    assert list(net.nodes["alice"].timers.values()) == [62.0]
    assert list(net.nodes["bob"].timers.values()) == [60.0]


def test_accept_is_a_three_way_handshake(net: Network) -> None:
    inv, rinv = ring(net)
    net.call("bob", "accept", rinv, "welcome")
    assert rinv.state is RS.ACCEPT_SENT_TO_LOCAL
    # Accept reaches the caller, which confirms; only then is the callee ACCEPTED.
    assert net.deliver_one("bob", "alice")
    assert inv.state is LS.ACCEPTED_BY_REMOTE
    assert rinv.state is RS.ACCEPT_SENT_TO_LOCAL
    assert net.deliver_one("alice", "bob")
    assert rinv.state is RS.ACCEPTED
    accepted = net.nodes["alice"].events[-1]
    assert accepted.name == "LocalInvitationAccepted" and accepted.response == "welcome"
    assert net.names("bob")[-1] == "RemoteInvitationAccepted"
    assert not net.nodes["alice"].timers and not net.nodes["bob"].timers


def test_refuse_with_response(net: Network) -> None:
    inv, rinv = ring(net)
    net.call("bob", "refuse", rinv, "busy")
    assert rinv.state is RS.REFUSED
    net.pump()
    assert inv.state is LS.REFUSED_BY_REMOTE and inv.response == "busy"
    assert net.names("alice")[-1] == "LocalInvitationRefused"
    assert net.nodes["alice"].events[-1].response == "busy"
    assert net.names("bob")[-1] == "RemoteInvitationRefused"


def test_cancel_while_ringing(net: Network) -> None:
    inv, rinv = ring(net)
    net.call("alice", "cancel", inv)
    # The caller waits for the callee's word (it is the authority while ringing).
    assert inv.state is LS.RECEIVED_BY_REMOTE
    net.pump()
    assert (inv.state, rinv.state) == (LS.CANCELED, RS.CANCELED)
    assert net.names("alice")[-1] == "LocalInvitationCanceled"
    assert net.names("bob")[-1] == "RemoteInvitationCanceled"


def test_cancel_before_ack(net: Network) -> None:
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.call("alice", "cancel", inv)
    net.pump()
    rinv = net.nodes["bob"].engine.remote[inv.id]
    assert (inv.state, rinv.state) == (LS.CANCELED, RS.CANCELED)


@pytest.mark.parametrize("first", ["cancel", "accept"])
def test_cancel_racing_accept_agrees(net: Network, first: str) -> None:
    inv, rinv = ring(net)
    if first == "cancel":
        net.call("alice", "cancel", inv)
        net.call("bob", "accept", rinv)
    else:
        net.call("bob", "accept", rinv)
        net.call("alice", "cancel", inv)
    net.pump()
    assert (inv.state, rinv.state) == (LS.CANCELED, RS.CANCELED)


def test_cancel_racing_refuse_agrees(net: Network) -> None:
    inv, rinv = ring(net)
    net.call("alice", "cancel", inv)
    net.call("bob", "refuse", rinv, "no")
    net.pump()
    assert (inv.state, rinv.state) == (LS.REFUSED_BY_REMOTE, RS.REFUSED)


def test_accept_after_cancel_arrives_first_the_caller_answers_with_cancel(net: Network) -> None:
    inv, rinv = ring(net)
    net.call("alice", "cancel", inv)
    net.call("bob", "accept", rinv)
    # Deliver bob's accept first: alice is canceling, her cancel is on its way.
    assert net.deliver_one("bob", "alice")
    assert inv.state is LS.CANCELED
    net.pump()
    assert rinv.state is RS.CANCELED


def test_peer_offline_when_callee_never_logs_in() -> None:
    net = Network()
    net.add("alice")
    net.add("bob", online=False)
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    assert inv.state is LS.SENT_TO_REMOTE and inv.undelivered
    net.fire("alice", "no_ack")
    assert inv.state is LS.FAILURE and inv.error is LocalInvitationError.PEER_OFFLINE
    assert net.nodes["alice"].events[-1].error is LocalInvitationError.PEER_OFFLINE


def test_callee_logging_in_within_the_window_still_rings() -> None:
    net = Network()
    net.add("alice")
    net.add("bob", online=False)
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    assert "bob" in net.nodes["alice"].watching
    net.set_online("bob", True)
    net.pump()
    assert inv.state is LS.RECEIVED_BY_REMOTE
    assert net.nodes["bob"].engine.remote[inv.id].state is RS.INVITATION_RECEIVED


def test_peer_no_response_when_online_callee_never_acks(net: Network) -> None:
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.wire.clear()  # bob's client never sees it
    net.fire("alice", "no_ack")
    assert inv.error is LocalInvitationError.PEER_NO_RESPONSE


def test_late_invite_after_caller_gave_up_does_not_ring_forever(net: Network) -> None:
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.fire("alice", "no_ack")  # the invite is still in flight
    net.pump()
    rinv = net.nodes["bob"].engine.remote[inv.id]
    assert rinv.state is RS.FAILURE
    assert inv.error is LocalInvitationError.PEER_NO_RESPONSE


def test_expiry_on_both_sides(net: Network) -> None:
    inv, rinv = ring(net)
    net.fire("bob", "lifetime")
    assert rinv.state is RS.FAILURE and rinv.error is RemoteInvitationError.INVITATION_EXPIRE
    net.pump()
    assert inv.state is LS.FAILURE and inv.error is LocalInvitationError.INVITATION_EXPIRE
    assert not net.nodes["alice"].timers


def test_caller_backstop_expires_when_the_callee_is_silent(net: Network) -> None:
    inv, rinv = ring(net)
    net.fire("alice", "lifetime")
    assert inv.error is LocalInvitationError.INVITATION_EXPIRE
    net.pump()
    assert rinv.error is RemoteInvitationError.INVITATION_EXPIRE


def test_caller_chosen_lifetime_is_used_by_both(net: Network) -> None:
    inv, rinv = ring(net, lifetime=5)
    assert list(net.nodes["bob"].timers.values()) == [5.0]
    assert list(net.nodes["alice"].timers.values()) == [7.0]


def test_accept_failure_when_no_confirm_comes(net: Network) -> None:
    inv, rinv = ring(net)
    net.call("bob", "accept", rinv)
    net.wire.clear()  # the accept is lost
    net.fire("bob", "confirm")
    assert rinv.state is RS.FAILURE and rinv.error is RemoteInvitationError.ACCEPT_FAILURE


def test_caller_going_offline_while_ringing_fails_the_callee(net: Network) -> None:
    inv, rinv = ring(net)
    net.set_online("alice", False)
    assert rinv.state is RS.FAILURE and rinv.error is RemoteInvitationError.PEER_OFFLINE
    assert inv.state is LS.FAILURE and inv.error is LocalInvitationError.NOT_LOGGEDIN


def test_callee_going_offline_while_ringing_fails_the_caller(net: Network) -> None:
    inv, rinv = ring(net)
    net.set_online("bob", False)
    assert inv.state is LS.FAILURE and inv.error is LocalInvitationError.PEER_OFFLINE
    assert rinv.state is RS.FAILURE and rinv.error is RemoteInvitationError.PEER_OFFLINE


def test_accept_to_an_offline_caller_fails_peer_offline(net: Network) -> None:
    inv, rinv = ring(net)
    net.nodes["alice"].online = False  # gone, presence not pushed yet
    net.call("bob", "accept", rinv)
    assert rinv.state is RS.FAILURE and rinv.error is RemoteInvitationError.PEER_OFFLINE


def test_send_while_not_logged_in_fails_not_loggedin() -> None:
    net = Network()
    net.add("alice", online=False)
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    assert inv.state is LS.FAILURE and inv.error is LocalInvitationError.NOT_LOGGEDIN
    assert net.names("alice") == ["LocalInvitationFailure"]


def test_many_invitations_at_once_have_unique_ids() -> None:
    net = Network()
    for u in ("alice", "bob", "carol"):
        net.add(u)
    eng = net.nodes["alice"].engine
    invs = [eng.create_local_invitation(p) for p in ("bob", "bob", "carol", "bob")]
    assert len({i.id for i in invs}) == 4
    for i in invs:
        net.call("alice", "send", i)
    net.pump()
    assert all(i.state is LS.RECEIVED_BY_REMOTE for i in invs)
    net.call("bob", "accept", invs[0].id)
    net.call("bob", "refuse", invs[1].id)
    net.call("carol", "accept", invs[2].id)
    net.call("alice", "cancel", invs[3])
    net.pump()
    assert [i.state for i in invs] == [
        LS.ACCEPTED_BY_REMOTE,
        LS.REFUSED_BY_REMOTE,
        LS.ACCEPTED_BY_REMOTE,
        LS.CANCELED,
    ]


def test_frames_from_a_third_party_are_ignored() -> None:
    net = Network()
    for u in ("alice", "bob", "mallory"):
        net.add(u)
    inv, rinv = ring(net)
    a, b = net.nodes["alice"].engine, net.nodes["bob"].engine
    assert a.receive("mallory", f.Accept(id=inv.id)) == []
    assert a.receive("mallory", f.Refuse(id=inv.id)) == []
    assert a.receive("mallory", f.End(id=inv.id, reason="expire")) == []
    assert b.receive("mallory", f.Cancel(id=inv.id)) == []
    assert b.receive("mallory", f.Confirm(id=inv.id)) == []
    assert b.receive("mallory", f.Invite(id=inv.id)) == []
    assert (inv.state, rinv.state) == (LS.RECEIVED_BY_REMOTE, RS.INVITATION_RECEIVED)


def test_duplicates_and_late_frames_are_absorbed(net: Network) -> None:
    inv, rinv = ring(net)
    a, b = net.nodes["alice"].engine, net.nodes["bob"].engine
    # A duplicate invite re-ACKs without a second ring.
    out = b.receive("alice", f.Invite(id=inv.id))
    assert [type(o.msg) for o in out if isinstance(o, SendPeer)] == [f.Ack]
    assert net.names("bob").count("RemoteInvitationReceived") == 1
    net.call("bob", "refuse", rinv)
    net.pump()
    n_a, n_b = len(net.names("alice")), len(net.names("bob"))
    # Late frames after the end change nothing and raise no events.
    a.receive("bob", f.Accept(id=inv.id))
    a.receive("bob", f.Ack(id=inv.id))
    b.receive("alice", f.Confirm(id=inv.id))
    assert (inv.state, rinv.state) == (LS.REFUSED_BY_REMOTE, RS.REFUSED)
    assert (len(net.names("alice")), len(net.names("bob"))) == (n_a, n_b)


def test_presence_watch_follows_live_invitations(net: Network) -> None:
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    out = net.call("alice", "send", inv)
    assert WatchPeer("bob") in out
    net.pump()
    assert "alice" in net.nodes["bob"].watching
    net.call("bob", "refuse", inv.id)
    net.pump()
    # Still watched after the end (calling bob again needs no new subscription)...
    assert net.nodes["alice"].watching == {"bob"} and net.nodes["bob"].watching == {"alice"}
    again = net.nodes["alice"].engine.create_local_invitation("bob")
    assert not [o for o in net.call("alice", "send", again) if isinstance(o, WatchPeer)]


def test_only_the_most_recent_idle_peers_stay_watched() -> None:
    net = Network(EngineConfig(keep_watching=2))
    for user in ("alice", "bob", "carol", "dave"):
        net.add(user)
    for callee in ("bob", "carol", "dave"):
        inv = net.nodes["alice"].engine.create_local_invitation(callee)
        net.call("alice", "send", inv)
        net.pump()
        net.call(callee, "refuse", inv.id)
        net.pump()
    assert net.nodes["alice"].watching == {"carol", "dave"}
    # A live invitation's peer is always watched, whatever the cap.
    net0 = Network(EngineConfig(keep_watching=0))
    net0.add("alice")
    net0.add("bob")
    inv = net0.nodes["alice"].engine.create_local_invitation("bob")
    net0.call("alice", "send", inv)
    assert net0.nodes["alice"].watching == {"bob"}
    net0.pump()
    net0.call("bob", "accept", inv.id)
    net0.pump()
    # The call (SPEC §6) keeps the peer watched (PEER_OFFLINE), until it ends.
    assert net0.nodes["alice"].watching == {"bob"} and net0.nodes["bob"].watching == {"alice"}
    net0.call("bob", "hangup", inv.id)
    net0.pump()
    assert not net0.nodes["alice"].watching and not net0.nodes["bob"].watching


def test_unreachable_presence_does_not_fail_a_ringing_invitation(net: Network) -> None:
    inv, rinv = ring(net)
    net.call("alice", "peer_state", "bob", PeerOnlineState.UNREACHABLE)
    net.call("bob", "peer_state", "alice", PeerOnlineState.UNREACHABLE)
    assert (inv.state, rinv.state) == (LS.RECEIVED_BY_REMOTE, RS.INVITATION_RECEIVED)


def test_windows_are_configurable() -> None:
    net = Network(EngineConfig(no_response_timeout=1.5, lifetime=3, confirm_timeout=0.5))
    net.add("alice")
    net.add("bob")
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    out = net.call("alice", "send", inv)
    assert [o.seconds for o in out if isinstance(o, StartTimer)] == [1.5]
    net.pump()
    net.call("bob", "accept", inv.id)
    # The confirm window, and the accept sent again every quarter of it.
    assert {k[0]: v for k, v in net.nodes["bob"].timers.items()} == {
        "confirm": 0.5,
        "reaccept": 0.125,
    }


def test_finished_invitations_are_forgotten_beyond_the_cap() -> None:
    net = Network(EngineConfig(keep_finished=3))
    net.add("alice")
    net.add("bob")
    for _ in range(10):
        inv, rinv = ring(net)
        net.call("bob", "refuse", rinv)
        net.pump()
    assert len(net.nodes["alice"].engine.local) <= 3
    assert len(net.nodes["bob"].engine.remote) <= 3


@pytest.mark.parametrize("quiet", [False, True])
def test_no_response_vs_offline_without_delivery_reports(quiet: bool) -> None:
    """With quiet sends only failures are reported: whether the callee was online comes
    from presence — also for a second call to a peer still watched from the first."""
    net = Network(quiet=quiet)
    net.add("alice")
    net.add("bob")
    for _ in range(2):
        inv = net.nodes["alice"].engine.create_local_invitation("bob")
        net.call("alice", "send", inv)
        net.wire.clear()  # bob's client never ACKs
        net.fire("alice", "no_ack")
        assert inv.error is LocalInvitationError.PEER_NO_RESPONSE
    net.set_online("bob", False)
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.fire("alice", "no_ack")
    assert inv.error is LocalInvitationError.PEER_OFFLINE
