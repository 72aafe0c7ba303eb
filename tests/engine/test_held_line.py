"""Our own line holds our messages up, or is down while the client reconnects: the engine
must not guess that a message it sent is lost (the line delivers it later), nor blame the
peer for what its own line did."""

from __future__ import annotations

from rtmcall.engine import LocalInvitationError, LocalInvitationState, RemoteInvitationState
from rtmcall.engine import frames as f
from rtmcall.engine.events import Output, SendPeer
from rtmcall.engine.invitation import CONFIRM_EXTENSIONS

from .network import Network, ring

LS = LocalInvitationState
RS = RemoteInvitationState


def hold(net: Network, user: str, outputs: list[Output]) -> list[SendPeer]:
    """Perform ``outputs`` but the sends: those wait in the user's line (no delivery result
    either: the server has not seen them)."""
    net.apply(user, [o for o in outputs if not isinstance(o, SendPeer)])
    return [o for o in outputs if isinstance(o, SendPeer)]


def test_an_accept_held_in_our_line_past_the_confirm_window_still_ends_accepted(
    net: Network,
) -> None:
    inv, rinv = ring(net)
    held = hold(net, "bob", net.nodes["bob"].engine.accept(rinv, "here"))
    # The window ends while no accept has reached the server: the caller cannot have
    # confirmed, and the line may yet deliver it. (It used to end ACCEPT_FAILURE here, and
    # the caller, getting the accept later, ACCEPTED_BY_REMOTE.)
    net.fire("bob", "confirm")
    assert rinv.state is RS.ACCEPT_SENT_TO_LOCAL
    assert net.names("bob") == ["RemoteInvitationReceived"]
    # The line delivers it: the server has it now, and a fresh confirm window starts.
    net.apply("bob", held)
    assert net.nodes["bob"].timers[("confirm", f"R:{inv.id}")] == 5.0
    net.pump()
    assert (inv.state, rinv.state) == (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)


def test_an_accept_that_never_reaches_the_server_still_ends_in_bounded_time(
    net: Network,
) -> None:
    inv, rinv = ring(net)
    engine = net.nodes["bob"].engine
    held = hold(net, "bob", engine.accept(rinv))
    for _ in range(CONFIRM_EXTENSIONS):
        net.fire("bob", "confirm")
        assert rinv.state is RS.ACCEPT_SENT_TO_LOCAL
    key = ("confirm", f"R:{inv.id}")
    del net.nodes["bob"].timers[key]
    held += hold(net, "bob", engine.timer_fired(key))  # (the line still holds what it sends)
    assert rinv.state is RS.FAILURE
    assert net.names("bob")[-1] == "RemoteInvitationFailure"
    assert not any(k[0] == "confirm" for k in net.nodes["bob"].timers)
    # What waited in the line: the accept no longer applies (a reconnecting client drops
    # it instead of sending it late); the End that says why it failed does.
    wanted = {type(s.msg): engine.still_wanted(s.ref) for s in held}
    assert wanted == {f.Accept: False, f.End: True}


def test_an_accept_that_reached_the_server_ends_at_the_window_as_before(net: Network) -> None:
    inv, rinv = ring(net)
    net.call("bob", "accept", rinv)  # delivered (the server said so)
    net.wire.clear()  # and lost beyond it: no confirm will come
    net.fire("bob", "confirm")
    assert rinv.state is RS.FAILURE


def test_an_invitation_sent_while_our_connection_is_down_is_not_loggedin_not_peer_offline(
    net: Network,
) -> None:
    alice = net.nodes["alice"].engine
    alice.set_connected(False)  # reconnecting: the session is held
    inv = alice.create_local_invitation("bob")
    held = hold(net, "alice", alice.send(inv))
    assert inv.state is LS.SENT_TO_REMOTE and held  # it waits for the resume
    net.fire("alice", "no_ack")
    assert inv.error is LocalInvitationError.NOT_LOGGEDIN
    assert not alice.still_wanted(held[0].ref)  # the stale Invite is not sent on resume


def test_an_invitation_whose_connection_came_back_within_the_window_blames_the_callee(
    net: Network,
) -> None:
    alice = net.nodes["alice"].engine
    alice.set_connected(False)
    inv = alice.create_local_invitation("bob")
    hold(net, "alice", alice.send(inv))
    alice.set_connected(True)  # (and the Invite got lost beyond: bob never ACKs)
    net.fire("alice", "no_ack")
    assert inv.error is LocalInvitationError.PEER_NO_RESPONSE  # bob is online


def test_a_hang_up_held_in_our_line_goes_however_long_it_was_held(net: Network) -> None:
    """alice hangs up while her line is down; her call gives up waiting for the answer and
    ends here. The hang-up still goes when the line is back: bob's call must end too."""
    inv, rinv = ring(net)
    net.call("bob", "accept", rinv)
    net.pump()
    assert (inv.state, rinv.state) == (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)
    alice = net.nodes["alice"].engine
    held = hold(net, "alice", alice.hangup(inv.id))
    assert [type(s.msg) for s in held] == [f.Hangup]
    timers = net.nodes["alice"].timers
    while (key := next((k for k in timers if k[0] == "hangup"), None)) is not None:
        del timers[key]  # (no answer: the line holds it)
        held += hold(net, "alice", alice.timer_fired(key))
    call = alice.calls.get(inv.id)
    assert call is None or not call.active  # (it gave up waiting: ended here)
    assert len(held) > 1 and all(alice.still_wanted(s.ref) for s in held)
