"""Liveness: a dropped connection reconnects and resumes the session; invitations survive a
short drop, and after one longer than the resume window both sides end per SPEC."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from rtmcall.client.events import ConnectionStateChanged, MessageFromPeer
from rtmcall.engine.codes import ConnectionChangeReason as Why
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import LocalInvitationError as LE
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.codes import PeerMessageError as PME
from rtmcall.engine.codes import RemoteInvitationError as RE
from rtmcall.engine.codes import RemoteInvitationState as RS
from rtmcall.server import Server

from .conftest import Phone, Proxy, phone


def states(p: Phone) -> list[tuple[CS, Why]]:
    return [
        (s.event.state, s.event.reason)
        for s in p.seen
        if isinstance(s.event, ConnectionStateChanged)
    ]


async def test_a_cut_while_ringing_reconnects_and_the_invitation_completes(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, phone(proxy.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        proxy.cut()
        await bob.wait_for(lambda: (CS.RECONNECTING, Why.INTERRUPTED) in states(bob), within=5)
        await bob.wait_for(lambda: states(bob)[-1] == (CS.CONNECTED, Why.LOGIN_SUCCESS), 10)
        assert states(bob) == [
            (CS.RECONNECTING, Why.INTERRUPTED),
            (CS.CONNECTED, Why.LOGIN_SUCCESS),
        ]
        assert bob.client.transport.login_ok is not None
        assert bob.client.transport.login_ok.resumed
        assert proxy.connections == 2
        # Still ringing on both sides (bob's ACK may have been lost in the cut: it is sent
        # again after the resume), and it completes.
        await alice.wait("LocalInvitationReceivedByPeer", inv.id, within=5)
        assert inv.state is LS.RECEIVED_BY_REMOTE
        assert bob.client.remote_invitations[inv.id].state is RS.INVITATION_RECEIVED
        await bob.client.accept(inv.id, response="back")
        assert (await alice.wait("LocalInvitationAccepted", inv.id)).response == "back"
        await bob.wait("RemoteInvitationAccepted", inv.id)


async def test_an_answer_given_during_the_drop_goes_out_after_the_resume(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    async with phone(proxy.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        proxy.blocked = True
        proxy.cut()
        await alice.wait_for(lambda: alice.client.connection_state is CS.RECONNECTING, 5)
        await alice.client.cancel(inv)  # queued while there is no connection
        await trio.sleep(3)
        proxy.blocked = False
        await bob.wait("RemoteInvitationCanceled", inv.id, within=15)
        await alice.wait("LocalInvitationCanceled", inv.id, within=15)
        assert alice.client.connection_state is CS.CONNECTED


async def test_a_half_open_connection_is_noticed_by_the_heartbeat(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    async with phone(proxy.url, "bob") as bob, phone(server.url, "alice") as alice:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id)
        proxy.freeze()
        frozen_at = trio.current_time()
        await bob.wait_for(lambda: bob.client.connection_state is CS.RECONNECTING, within=30)
        assert trio.current_time() - frozen_at <= 10
        await bob.wait_for(lambda: bob.client.connection_state is CS.CONNECTED, within=30)
        await bob.client.refuse(inv.id)
        await alice.wait("LocalInvitationRefused", inv.id)


async def test_a_drop_longer_than_the_resume_window_ends_both_sides(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, phone(proxy.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id)
        rinv = bob.client.remote_invitations[inv.id]
        proxy.blocked = True
        proxy.cut()
        # bob's side: the session is given up after the resume window (10 s).
        b = await bob.wait_seen("RemoteInvitationFailure", inv.id, within=30)
        assert b.event.error is RE.PEER_OFFLINE
        assert bob.client.connection_state is CS.RECONNECTING
        # alice's side: bob is OFFLINE once the server's resume window passed.
        a = await alice.wait_seen("LocalInvitationFailure", inv.id, within=30)
        assert a.event.error is LE.PEER_OFFLINE
        assert (inv.state, rinv.state) == (LS.FAILURE, RS.FAILURE)
        # When the network is back bob logs in again, as a new session.
        proxy.blocked = False
        await bob.wait_for(lambda: bob.client.connection_state is CS.CONNECTED, within=30)
        assert bob.client.transport.login_ok is not None
        assert not bob.client.transport.login_ok.resumed
        # And can be called again.
        inv2 = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv2.id, within=5)


async def test_server_shutdown_and_restart(autojump_clock: MockClock) -> None:
    from rtmcall.server import serve

    async with trio.open_nursery() as nursery:
        first = await nursery.start(serve, "127.0.0.1", 0)
        port = first.port
        async with phone(first.url, "alice") as alice, phone(first.url, "bob") as bob:
            inv = await alice.client.call("bob")
            await bob.wait("RemoteInvitationReceived", inv.id)
            await first.shutdown()
            await alice.wait_for(lambda: alice.client.connection_state is CS.RECONNECTING, 5)
            await trio.sleep(3)
            second = await nursery.start(serve, "127.0.0.1", port)
            # The new server does not know the sessions: both log in anew, and the
            # invitation ends on both sides.
            await alice.wait_for(lambda: alice.client.connection_state is CS.CONNECTED, 30)
            await bob.wait_for(lambda: bob.client.connection_state is CS.CONNECTED, 30)
            await alice.wait_for(lambda: inv.terminal, within=5)
            rinv = bob.client.remote_invitations[inv.id]
            await bob.wait_for(lambda: rinv.terminal, within=5)
            assert (inv.state, rinv.state) == (LS.FAILURE, RS.FAILURE)
            await second.shutdown()
        nursery.cancel_scope.cancel()


async def test_fail_over_goes_to_the_next_url_after_the_one_in_use(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    """``connect("a,b,c")``: a first login tries them in order; a client on b whose node
    dies tries b again (a blip would resume there), then c — the next one, not a (so the
    clients of a dead node spread over the others instead of piling onto the first) — and
    from c wraps round to a."""
    from rtmcall.server import serve

    servers = [await nursery.start(serve, "127.0.0.1", 0) for _ in range(3)]
    a, b, c = [await nursery.start(Proxy(s.port).run) for s in servers]
    a.blocked = True  # down at the first login: b takes it
    async with phone(f"{a.url},{b.url},{c.url}", "alice") as alice:
        assert alice.client.url == b.url
        a.blocked = False  # a is back; now b dies
        b.blocked = True
        b.cut()
        await alice.wait_for(lambda: alice.client.connection_state is CS.RECONNECTING, 5)
        await alice.wait_for(lambda: alice.client.connection_state is CS.CONNECTED, 10)
        assert alice.client.url == c.url
        assert (a.connections, c.connections) == (0, 1)
        c.blocked = True
        c.cut()
        await alice.wait_for(lambda: alice.client.connection_state is CS.RECONNECTING, 5)
        await alice.wait_for(lambda: alice.client.connection_state is CS.CONNECTED, 10)
        assert alice.client.url == a.url


async def test_a_session_s_first_message_lost_with_the_line_comes_with_the_resume(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    """bob has received nothing yet in his session when alice's first message is written
    into a line that is dying (swallowed, then cut): his resume acknowledges seq 0, so the
    server sends it again — nothing of a session is lost for coming first."""
    async with phone(server.url, "alice") as alice, phone(proxy.url, "bob") as bob:
        proxy.freeze()
        assert await alice.client.send_message_to_peer("bob", "first") is PME.OK
        await trio.sleep(0.5)
        proxy.cut()
        await bob.wait_for(lambda: bob.client.connection_state is CS.RECONNECTING, 5)
        await bob.wait_for(lambda: bob.client.connection_state is CS.CONNECTED, 10)
        assert bob.client.transport.login_ok is not None
        assert bob.client.transport.login_ok.resumed
        assert await bob.wait("MessageFromPeer", within=5) == MessageFromPeer("alice", "first")
