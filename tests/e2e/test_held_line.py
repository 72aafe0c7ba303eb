"""A line that holds frames up (partitioned, then healed) or is down while the client
reconnects: what was said meanwhile must not make the two ends disagree (SPEC §2), and a
caller whose own connection is down is told so, not that the callee is offline."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from rtmcall.client import ClientConfig
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import LocalInvitationError as LE
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.codes import RemoteInvitationError as RE
from rtmcall.engine.codes import RemoteInvitationState as RS
from rtmcall.server import Server

from .conftest import Proxy, phone


async def test_an_accept_held_up_past_the_confirm_window_still_ends_accepted_on_both_sides(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    # The probe's s4-netdown-accept: bob's line holds everything for 3 s as he accepts;
    # his confirm window is 2 s. He used to end FAILURE(ACCEPT_FAILURE) at 2 s while the
    # held accept reached alice at 3 s: ACCEPTED_BY_REMOTE and CallStarted there, and
    # CallEnded(PEER_OFFLINE) a moment later from bob's End behind it.
    config = ClientConfig(no_response_timeout=5, lifetime=20, confirm_timeout=2)
    async with phone(server.url, "alice", config) as alice, phone(proxy.url, "bob", config) as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id, within=5)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id, within=5)
        rinv = bob.client.remote_invitations[inv.id]
        proxy.hold()
        await bob.client.accept(inv.id, response="here")
        await trio.sleep(3)
        # The window ran out with the accept still in the line: bob waits on.
        assert rinv.state is RS.ACCEPT_SENT_TO_LOCAL
        assert not bob.find("RemoteInvitationFailure", inv.id)
        proxy.release()
        await bob.wait("RemoteInvitationAccepted", inv.id, within=5)
        assert (await alice.wait("LocalInvitationAccepted", inv.id)).response == "here"
        await trio.sleep(5)  # nothing else comes: the call is on at both ends
        assert (inv.state, rinv.state) == (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)
        assert alice.client.calls[inv.id].active and bob.client.calls[inv.id].active
        assert not alice.find("CallEnded") and not bob.find("CallEnded")


async def test_an_accept_whose_window_ended_during_a_reconnect_does_not_reach_the_caller(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    # bob accepts while his client reconnects (the accept waits in it); the line stays down
    # past his confirm window (and its extensions), so he ends FAILURE. When the session
    # resumes, his accept must not go out late behind that: alice would be
    # ACCEPTED_BY_REMOTE with nobody there. Only his End does: both FAILURE.
    config = ClientConfig(confirm_timeout=0.5)
    async with phone(server.url, "alice", config) as alice, phone(proxy.url, "bob", config) as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id, within=5)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id, within=5)
        rinv = bob.client.remote_invitations[inv.id]
        proxy.blocked = True
        proxy.cut()
        await bob.wait_for(lambda: bob.client.connection_state is CS.RECONNECTING, within=5)
        await bob.client.accept(inv.id)
        failure = await bob.wait("RemoteInvitationFailure", inv.id, within=5)
        assert failure.error is RE.ACCEPT_FAILURE
        proxy.blocked = False  # well within the resume window (10 s)
        await bob.wait_for(lambda: bob.client.connection_state is CS.CONNECTED, within=10)
        assert bob.client.transport.login_ok is not None
        assert bob.client.transport.login_ok.resumed
        await alice.wait_for(lambda: inv.terminal, within=10)
        await trio.sleep(5)
        assert not alice.find("LocalInvitationAccepted", inv.id)
        assert not alice.find("CallStarted")
        assert (inv.state, rinv.state) == (LS.FAILURE, RS.FAILURE)
        assert inv.error is LE.PEER_NO_RESPONSE  # (bob's End says accept_failure)


async def test_a_call_made_while_reconnecting_fails_not_loggedin_when_the_line_stays_down(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    # The probe's sdk5: alice's connection is down (RECONNECTING), bob is online all along.
    # Her invitation waits for the resume; the no-ACK window ends first. It used to be
    # PEER_OFFLINE ("bob is offline"); it is NOT_LOGGEDIN (it never left alice's client).
    config = ClientConfig(no_response_timeout=3)
    async with phone(server.url, "bob", config) as bob, phone(proxy.url, "alice", config) as alice:
        proxy.blocked = True
        proxy.cut()
        await alice.wait_for(lambda: alice.client.connection_state is CS.RECONNECTING, within=5)
        inv = await alice.client.call("bob")
        assert inv.state is LS.SENT_TO_REMOTE
        failure = await alice.wait("LocalInvitationFailure", inv.id, within=5)
        assert failure.error is LE.NOT_LOGGEDIN
        # Back within the resume window: the stale Invite is not sent (no ghost ring).
        proxy.blocked = False
        await alice.wait_for(lambda: alice.client.connection_state is CS.CONNECTED, within=10)
        await trio.sleep(3)
        assert not bob.find("RemoteInvitationReceived", inv.id)


async def test_a_call_made_while_reconnecting_goes_out_when_the_session_resumes(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    # SPEC §3: the session survives a short drop. A call made during it waits and rings.
    async with phone(server.url, "bob") as bob, phone(proxy.url, "alice") as alice:
        proxy.blocked = True
        proxy.cut()
        await alice.wait_for(lambda: alice.client.connection_state is CS.RECONNECTING, within=5)
        inv = await alice.client.call("bob")
        await trio.sleep(2)
        proxy.blocked = False
        await bob.wait("RemoteInvitationReceived", inv.id, within=10)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id, within=5)
        await bob.client.accept(inv.id)
        await alice.wait("LocalInvitationAccepted", inv.id, within=5)
        await bob.wait("RemoteInvitationAccepted", inv.id, within=5)
