"""Peer messages the server refuses as over the sender's rate limit (TOO_OFTEN) are sent
again after a backoff, so that no answer the protocol needs is lost (SPEC §2 agreement)."""

from __future__ import annotations

import pytest

from rtmcall.engine import (
    CallEngine,
    EngineConfig,
    LocalInvitationError,
    LocalInvitationState,
    PeerMessageError,
    PeerOnlineState,
    RemoteInvitationState,
)
from rtmcall.engine import frames as f
from rtmcall.engine.codes import CallEndReason
from rtmcall.engine.events import CancelTimer, Output, SendPeer, StartTimer

from .network import Network

LS = LocalInvitationState
RS = RemoteInvitationState
TOO_OFTEN = PeerMessageError.TOO_OFTEN


@pytest.fixture
def net() -> Network:
    n = Network(quiet=True)  # like the real client: only failures are reported
    n.add("alice")
    n.add("bob")
    return n


def ring(net: Network, **kw):
    inv = net.nodes["alice"].engine.create_local_invitation("bob", content="hi", **kw)
    net.call("alice", "send", inv)
    net.pump()
    return inv, net.nodes["bob"].engine.remote[inv.id]


def resend_timers(net: Network, user: str) -> list[float]:
    return [s for (kind, _), s in net.nodes[user].timers.items() if kind == "resend"]


def sends(outputs: list[Output]) -> list[SendPeer]:
    return [o for o in outputs if isinstance(o, SendPeer)]


def test_a_refuse_refused_as_too_often_is_sent_again_by_hand() -> None:
    """The engine alone: no network, no clock — its outputs are fed back by hand."""
    bob = CallEngine("bob")
    bob.set_logged_in(True)
    bob.receive("alice", f.Invite(id="i1", content="hi"))
    out = bob.refuse("i1", "busy now")
    (refuse,) = sends(out)
    assert isinstance(refuse.msg, f.Refuse) and refuse.to == "alice"

    out = bob.delivery_result(refuse.ref, TOO_OFTEN)
    assert sends(out) == []  # not at once: the server just said we send too often
    (timer,) = [o for o in out if isinstance(o, StartTimer)]
    assert timer.key[0] == "resend" and timer.seconds == 0.5

    out = bob.timer_fired(timer.key)
    (again,) = sends(out)
    assert again.to == "alice" and again.msg == refuse.msg and again.ref != refuse.ref
    # Refused once more: the backoff doubles.
    out = bob.delivery_result(again.ref, TOO_OFTEN)
    (timer,) = [o for o in out if isinstance(o, StartTimer)]
    assert timer.seconds == 1.0
    (third,) = sends(bob.timer_fired(timer.key))
    assert third.msg == refuse.msg
    # Delivered (a quiet send reports nothing): nothing more is armed or sent.
    assert bob.delivery_result(third.ref, PeerMessageError.OK) == []


def test_the_caller_hears_a_refuse_that_was_rate_limited(net: Network) -> None:
    inv, rinv = ring(net)
    net.too_often["bob"] = 1
    net.call("bob", "refuse", rinv.id, "busy")
    net.pump()
    assert rinv.state is RS.REFUSED
    assert inv.state is LS.RECEIVED_BY_REMOTE  # the refuse did not get through
    assert resend_timers(net, "bob") == [0.5]
    net.fire("bob", "resend")
    net.pump()
    assert inv.state is LS.REFUSED_BY_REMOTE and inv.response == "busy"
    assert resend_timers(net, "bob") == []


def test_the_backoff_grows_up_to_its_cap(net: Network) -> None:
    inv, rinv = ring(net)
    net.too_often["bob"] = 5
    net.call("bob", "accept", rinv.id, "ok")
    delays = []
    while resend_timers(net, "bob"):
        delays.append(resend_timers(net, "bob")[0])
        net.fire("bob", "resend")
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]
    net.pump()
    assert (inv.state, rinv.state) == (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)


def test_an_automatic_ack_refused_as_too_often_is_sent_again(net: Network) -> None:
    net.too_often["bob"] = 1
    inv, rinv = ring(net)
    assert inv.state is LS.SENT_TO_REMOTE and rinv.state is RS.INVITATION_RECEIVED
    net.fire("bob", "resend")
    net.pump()
    assert inv.state is LS.RECEIVED_BY_REMOTE


def test_a_rate_limited_invite_is_not_marked_undelivered(net: Network) -> None:
    """TOO_OFTEN is not "the callee is offline": the Invite is resent on the timer, not
    (a second time) when presence says the callee is online."""
    net.too_often["alice"] = 1
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    assert not inv.undelivered
    out = net.call("alice", "peer_state", "bob", PeerOnlineState.ONLINE)
    assert sends(out) == []
    net.fire("alice", "resend")
    net.pump()
    assert inv.state is LS.RECEIVED_BY_REMOTE


def test_what_is_made_meanwhile_waits_behind_in_order(net: Network) -> None:
    """The Ack is rate-limited; the refuse that follows is held behind it, and sent with
    it when the timer fires (the Ack is obsolete by then: the refuse implies it)."""
    net.too_often["bob"] = 1
    inv, rinv = ring(net)
    out = net.call("bob", "refuse", rinv.id)
    assert sends(out) == []  # held behind the rate-limited Ack
    net.fire("bob", "resend")
    assert [type(m) for m in net.wire[("bob", "alice")]] == [f.Refuse]
    net.pump()
    assert (inv.state, rinv.state) == (LS.REFUSED_BY_REMOTE, RS.REFUSED)


def test_an_invite_rate_limited_then_canceled_never_rings(net: Network) -> None:
    net.too_often["alice"] = 1
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    out = net.call("alice", "cancel", inv)
    assert sends(out) == []
    net.fire("alice", "resend")
    assert [type(m) for m in net.wire[("alice", "bob")]] == [f.Cancel]
    net.pump()
    assert inv.id not in net.nodes["bob"].engine.remote
    net.fire("alice", "cancel")
    assert inv.state is LS.CANCELED


def test_a_message_that_no_longer_applies_is_not_resent(net: Network) -> None:
    inv, rinv = ring(net)
    net.too_often["alice"] = 1
    net.call("alice", "cancel", inv)  # the Cancel is rate-limited
    net.call("bob", "refuse", rinv.id)  # bob refused meanwhile
    net.pump()
    assert inv.state is LS.REFUSED_BY_REMOTE
    net.fire("alice", "resend")
    assert not net.wire.get(("alice", "bob"))  # a Cancel of a refused invitation: dropped


def test_a_rate_limited_hangup_is_sent_again(net: Network) -> None:
    inv, rinv = ring(net)
    net.call("bob", "accept", rinv.id)
    net.pump()
    net.too_often["alice"] = 1
    net.call("alice", "hangup", inv.id)
    net.pump()
    assert net.nodes["bob"].engine.calls[inv.id].active
    net.fire("alice", "resend")
    net.pump()
    bob_call = net.nodes["bob"].engine.calls[inv.id]
    assert bob_call.terminal and bob_call.reason is CallEndReason.HANGUP_REMOTE
    assert net.nodes["alice"].engine.calls[inv.id].terminal  # its HangupAck came


def test_resends_stop_within_the_invitation_window() -> None:
    """A server that refuses forever: the resends stop once the backoff spent the
    invitation's window (lifetime + grace), and the invitation ends on its timers."""
    net = Network(EngineConfig(lifetime=10, expire_grace=2), quiet=True)
    net.add("alice")
    net.add("bob")
    inv, rinv = ring(net)
    net.too_often["bob"] = 1000
    net.call("bob", "refuse", rinv.id)
    waited = 0.0
    while resend_timers(net, "bob"):
        waited += resend_timers(net, "bob")[0]
        net.fire("bob", "resend")
    assert waited <= 12
    assert len(net.refused) == 1 + 7  # 0.5 + 1 + 2 * 5 = 11.5 s of resends
    net.fire("alice", "lifetime")  # the caller's backstop ends it
    assert inv.state is LS.FAILURE and inv.error is LocalInvitationError.INVITATION_EXPIRE
    assert not net.nodes["bob"].timers and not net.nodes["alice"].timers


def test_losing_the_session_disarms_the_resends(net: Network) -> None:
    inv, rinv = ring(net)
    net.too_often["bob"] = 1
    net.call("bob", "refuse", rinv.id)
    out = net.call("bob", "session_lost")
    assert any(isinstance(o, CancelTimer) and o.key[0] == "resend" for o in out)
    assert resend_timers(net, "bob") == []
