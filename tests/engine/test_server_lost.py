"""A server lost under a handshake or a call (a node killed), pumped between engines.

The client of the lost server logs in again at once elsewhere, with a fresh session
(``Network.replace_session``): what was in flight to or from it is gone. Its peers hear it
go OFFLINE first (the dead node was noticed before the new login) or only ONLINE (the new
login came first). Either way the two ends must agree (SPEC §2), and nothing may be left
ringing or talking on the side that survived.
"""

from __future__ import annotations

import pytest

from rtmcall.engine import EngineConfig, LocalInvitationState, RemoteInvitationState
from rtmcall.engine import frames as f
from rtmcall.engine.codes import CallEndReason, LocalInvitationError, RemoteInvitationError
from rtmcall.engine.events import CallEnded, CallStarted, RemoteInvitationFailure

from .network import Network, ring

LS = LocalInvitationState
RS = RemoteInvitationState
R = CallEndReason


def accepted_confirm_in_flight(net: Network):
    """alice saw bob's accept; her Confirm is on its way (not yet at bob)."""
    inv, rinv = ring(net)
    net.call("bob", "accept", rinv)
    assert net.deliver_one("bob", "alice")  # the accept
    assert inv.state is LS.ACCEPTED_BY_REMOTE
    assert isinstance(net.wire[("alice", "bob")][0], f.Confirm)
    return inv, rinv


def call_ends(net: Network, user: str) -> list[CallEndReason]:
    return [e.reason for e in net.nodes[user].call_events if isinstance(e, CallEnded)]


def call_starts(net: Network, user: str) -> int:
    return sum(isinstance(e, CallStarted) for e in net.nodes[user].call_events)


@pytest.mark.parametrize("seen_offline", [True, False])
def test_the_callers_server_lost_with_its_confirm_still_agrees(
    net: Network, seen_offline: bool
) -> None:
    inv, rinv = accepted_confirm_in_flight(net)
    net.replace_session("alice", seen_offline=seen_offline)  # the Confirm dies with it
    assert call_ends(net, "alice") == [R.SESSION_LOST]
    if not seen_offline:
        # bob did not see alice go: his accept goes again on its timer.
        assert rinv.state is RS.ACCEPT_SENT_TO_LOCAL
        net.fire("bob", "reaccept")
    net.pump()
    # alice's call is over, so she answers the repeated accept with her hang-up, which
    # implies the confirm: bob is ACCEPTED, and his call ends at once.
    assert (inv.state, rinv.state) == (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)
    assert call_starts(net, "bob") == 1 and call_ends(net, "bob") == [R.HANGUP_REMOTE]
    assert not net.nodes["bob"].engine.live_calls()
    assert not net.nodes["bob"].timers and not net.nodes["alice"].timers


@pytest.mark.parametrize("seen_offline", [True, False])
def test_the_callees_server_lost_before_the_confirm_arrived_still_agrees(
    net: Network, seen_offline: bool
) -> None:
    inv, rinv = accepted_confirm_in_flight(net)
    net.replace_session("bob", seen_offline=seen_offline)  # the Confirm dies with it
    # bob's new session sends his accept again at once.
    net.pump()
    assert (inv.state, rinv.state) == (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)
    if seen_offline:
        # alice had ended the call (PEER_OFFLINE): she hangs up, bob's call ends too.
        assert call_ends(net, "alice") == [R.PEER_OFFLINE]
        assert call_ends(net, "bob") == [R.HANGUP_REMOTE]
    else:
        # alice never saw bob go: she confirms again, and the call goes on on both sides.
        assert net.nodes["alice"].engine.calls[inv.id].active
        assert net.nodes["bob"].engine.calls[inv.id].active
        assert call_ends(net, "alice") == call_ends(net, "bob") == []


def test_an_accepting_callee_waits_out_the_confirm_window_for_a_caller_gone_offline(
    net: Network,
) -> None:
    inv, rinv = accepted_confirm_in_flight(net)
    net.wire.clear()  # the Confirm is lost
    net.set_online("alice", False)  # and alice is gone for good
    assert rinv.state is RS.ACCEPT_SENT_TO_LOCAL  # not at once: the confirm may still come
    net.fire("bob", "reaccept")  # (to nobody: not delivered, which fails nothing)
    assert rinv.state is RS.ACCEPT_SENT_TO_LOCAL
    net.fire("bob", "confirm")
    assert rinv.state is RS.FAILURE and rinv.error is RemoteInvitationError.PEER_OFFLINE
    failures = [e for e in net.nodes["bob"].events if isinstance(e, RemoteInvitationFailure)]
    assert len(failures) == 1
    assert not net.nodes["bob"].timers


def test_the_accept_goes_again_three_times_within_the_confirm_window(net: Network) -> None:
    """A quarter of the window apart, and not with its end (nothing could answer it)."""
    inv, rinv = accepted_confirm_in_flight(net)
    net.wire.clear()  # the Confirm is lost, and so is every accept sent again
    for _ in range(3):
        net.fire("bob", "reaccept")
        assert isinstance(net.wire[("bob", "alice")].pop(), f.Accept)
    assert [k[0] for k in net.nodes["bob"].timers] == ["confirm"]
    net.fire("bob", "confirm")
    assert rinv.state is RS.FAILURE and rinv.error is RemoteInvitationError.ACCEPT_FAILURE
    assert not net.wire[("bob", "alice")] or isinstance(net.wire[("bob", "alice")][0], f.End)


def test_a_caller_back_online_without_confirming_is_an_accept_failure(net: Network) -> None:
    inv, rinv = accepted_confirm_in_flight(net)
    net.wire.clear()
    net.set_online("alice", False)
    net.nodes["alice"].engine.local.clear()  # back as a new process: it knows nothing
    net.set_online("alice", True)
    net.pump()  # bob's accept again, which alice ignores
    net.fire("bob", "confirm")
    assert rinv.state is RS.FAILURE and rinv.error is RemoteInvitationError.ACCEPT_FAILURE


def test_a_repeated_accept_without_calls_is_confirmed_again() -> None:
    net = Network(EngineConfig(calls=False))
    net.add("alice")
    net.add("bob")
    inv, rinv = accepted_confirm_in_flight(net)
    net.wire.clear()
    net.fire("bob", "reaccept")
    net.pump()
    assert (inv.state, rinv.state) == (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)


def test_a_new_session_tells_peers_who_never_saw_it_go(net: Network) -> None:
    """A fresh login that reached the peers' server before the old server's death did:
    the peers hear only ONLINE, so the new session itself ends what the old one had."""
    net.add("carol")
    ringing = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", ringing)
    other = net.nodes["carol"].engine.create_local_invitation("alice")
    net.call("carol", "send", other)
    call = net.nodes["alice"].engine.create_local_invitation("carol")
    net.call("alice", "send", call)
    net.pump()
    net.call("carol", "accept", call.id)
    net.pump()
    assert net.nodes["carol"].engine.calls[call.id].active
    net.replace_session("alice", seen_offline=False)
    net.pump()
    bob_inv = net.nodes["bob"].engine.remote[ringing.id]
    assert bob_inv.state is RS.FAILURE and bob_inv.error is RemoteInvitationError.PEER_OFFLINE
    assert ringing.error is LocalInvitationError.NOT_LOGGEDIN
    assert other.state is LS.FAILURE and other.error is LocalInvitationError.PEER_OFFLINE
    assert call_ends(net, "alice") == [R.SESSION_LOST]
    assert call_ends(net, "carol") == [R.HANGUP_REMOTE]
    assert not net.nodes["carol"].engine.live_calls()
    # alice's hang-up was answered: nothing left to resend.
    assert not net.nodes["alice"].engine.live_calls()


def test_a_lost_session_that_is_not_replaced_fails_an_accepting_callee_at_once(
    net: Network,
) -> None:
    inv, rinv = accepted_confirm_in_flight(net)
    net.set_online("bob", False)  # logged out, kicked, gave up reconnecting
    assert rinv.state is RS.FAILURE and rinv.error is RemoteInvitationError.PEER_OFFLINE


def test_a_refusal_waiting_for_its_resend_is_sent_by_the_new_session(net: Network) -> None:
    """bob refuses while the server holds his sends back (TOO_OFTEN): the refusal waits for
    its resend timer when his server dies. His new session sends it: alice ends REFUSED.
    (Had alice heard him go offline first, her invitation would have failed then.)"""
    inv = net.nodes["alice"].engine.create_local_invitation("bob")
    net.call("alice", "send", inv)
    net.pump()
    net.too_often["bob"] = 1
    net.call("bob", "refuse", inv.id)
    assert ("resend", f"Q:{inv.id}") in net.nodes["bob"].timers
    net.replace_session("bob", seen_offline=False)
    assert not net.nodes["bob"].timers  # nothing left armed for the lost session
    net.pump()
    assert inv.state is LS.REFUSED_BY_REMOTE
    assert net.nodes["bob"].engine.remote[inv.id].state is RS.REFUSED
