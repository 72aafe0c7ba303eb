"""Every invitation outcome of SPEC §2, through the SDK, a real server and real WebSockets.

Each test asserts what the users would notice: the events each side got, the final
states and error codes, and when (on the mock clock) things happened.
"""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from rtmcall.engine import frames as f
from rtmcall.engine.codes import (
    LocalInvitationError as LE,
)
from rtmcall.engine.codes import (
    LocalInvitationState as LS,
)
from rtmcall.engine.codes import (
    RemoteInvitationError as RE,
)
from rtmcall.engine.codes import (
    RemoteInvitationState as RS,
)
from rtmcall.server import Server

from .conftest import phone, raw


async def test_accept_with_response_is_a_three_way_handshake(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = await alice.client.call("bob", content="lunch?", channel_id="room-1")
        assert inv.state is LS.SENT_TO_REMOTE
        received = await bob.wait("RemoteInvitationReceived", inv.id)
        info = received.invitation
        assert (info.caller, info.callee, info.content, info.channel_id) == (
            "alice",
            "bob",
            "lunch?",
            "room-1",
        )
        assert info.state is RS.INVITATION_RECEIVED
        await alice.wait("LocalInvitationReceivedByPeer", inv.id)
        assert inv.state is LS.RECEIVED_BY_REMOTE

        await bob.client.accept(inv.id, response="on my way")
        # Not accepted yet at bob's: only after alice confirms.
        assert bob.client.remote_invitations[inv.id].state is RS.ACCEPT_SENT_TO_LOCAL
        accepted = await alice.wait("LocalInvitationAccepted", inv.id)
        assert accepted.response == "on my way"
        await bob.wait("RemoteInvitationAccepted", inv.id)
        assert inv.state is LS.ACCEPTED_BY_REMOTE
        assert bob.client.remote_invitations[inv.id].state is RS.ACCEPTED
        # The callee's ACCEPTED follows the caller's confirm.
        a = (await alice.wait_seen("LocalInvitationAccepted", inv.id)).seq
        b = (await bob.wait_seen("RemoteInvitationAccepted", inv.id)).seq
        assert a < b
        assert alice.names(inv.id) == ["LocalInvitationReceivedByPeer", "LocalInvitationAccepted"]
        assert bob.names(inv.id) == ["RemoteInvitationReceived", "RemoteInvitationAccepted"]


async def test_refuse_with_response(server: Server, autojump_clock: MockClock) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await bob.client.refuse(inv.id, response="busy")
        refused = await alice.wait("LocalInvitationRefused", inv.id)
        assert refused.response == "busy"
        assert inv.state is LS.REFUSED_BY_REMOTE
        assert bob.client.remote_invitations[inv.id].state is RS.REFUSED
        assert bob.names(inv.id) == ["RemoteInvitationReceived", "RemoteInvitationRefused"]


async def test_cancel_while_ringing(server: Server, autojump_clock: MockClock) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await alice.wait("LocalInvitationReceivedByPeer", inv.id)
        await alice.client.cancel(inv)
        await alice.wait("LocalInvitationCanceled", inv.id)
        await bob.wait("RemoteInvitationCanceled", inv.id)
        assert inv.state is LS.CANCELED
        assert bob.client.remote_invitations[inv.id].state is RS.CANCELED


async def test_cancel_while_sent_to_remote(server: Server, autojump_clock: MockClock) -> None:
    async with phone(server.url, "alice") as alice:
        inv = await alice.client.call("bob")  # bob is not logged in: no ACK
        await trio.sleep(5)
        assert inv.state is LS.SENT_TO_REMOTE
        await alice.client.cancel(inv)
        await alice.wait("LocalInvitationCanceled", inv.id, within=10)
        assert inv.state is LS.CANCELED
        # bob logging in later is not rung.
        async with phone(server.url, "bob") as bob:
            await trio.sleep(40)
            assert "RemoteInvitationReceived" not in bob.names()
        assert alice.names(inv.id) == ["LocalInvitationCanceled"]


async def test_cancel_while_sent_to_a_callee_that_never_acks(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, raw(server.url, "bob") as bob:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bob.keepalive)
            inv = await alice.client.call("bob")
            invite = await bob.recv_peer(f.Invite)
            assert invite.id == inv.id
            await alice.client.cancel(inv)
            assert (await bob.recv_peer(f.Cancel)).id == inv.id
            # Nobody answers the cancel: alice is CANCELED after the confirm window anyway.
            seen = await alice.wait_seen("LocalInvitationCanceled", inv.id)
            assert inv.state is LS.CANCELED
            assert seen.at > 0
            nursery.cancel_scope.cancel()


async def test_peer_offline_when_the_callee_never_logs_in(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice:
        start = trio.current_time()
        inv = await alice.client.call("bob")
        deadline = alice.client.timer_deadline(inv)
        assert deadline == pytest.approx(start + 30)
        failure = await alice.wait("LocalInvitationFailure", inv.id)
        assert failure.error is LE.PEER_OFFLINE
        assert inv.state is LS.FAILURE and inv.error is LE.PEER_OFFLINE
        assert trio.current_time() - start == pytest.approx(30, abs=0.5)


async def test_callee_logging_in_within_the_no_ack_window_still_rings(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice:
        inv = await alice.client.call("bob", content="are you there?")
        await trio.sleep(20)
        assert inv.state is LS.SENT_TO_REMOTE
        async with phone(server.url, "bob") as bob:
            received = await bob.wait("RemoteInvitationReceived", inv.id, within=5)
            assert received.invitation.content == "are you there?"
            await alice.wait("LocalInvitationReceivedByPeer", inv.id, within=5)
            await bob.client.accept(inv.id)
            await alice.wait("LocalInvitationAccepted", inv.id)
            await bob.wait("RemoteInvitationAccepted", inv.id)


async def test_peer_no_response_when_the_callee_is_online_but_never_acks(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, raw(server.url, "bob") as bob:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bob.keepalive)
            start = trio.current_time()
            inv = await alice.client.call("bob")
            await bob.recv_peer(f.Invite)
            failure = await alice.wait("LocalInvitationFailure", inv.id)
            assert failure.error is LE.PEER_NO_RESPONSE
            assert trio.current_time() - start == pytest.approx(30, abs=0.5)
            # The callee is told it is over.
            end = await bob.recv_peer(f.End)
            assert (end.id, end.reason) == (inv.id, "no_response")
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("lifetime", [None, 15.0])
async def test_invitation_expires_on_both_sides(
    server: Server, lifetime: float | None, autojump_clock: MockClock
) -> None:
    expected = 60.0 if lifetime is None else lifetime
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = await alice.client.call("bob", lifetime=lifetime)
        rang = await bob.wait_seen("RemoteInvitationReceived", inv.id)
        rinv = bob.client.remote_invitations[inv.id]
        assert bob.client.timer_deadline(rinv) == pytest.approx(rang.at + expected)
        # Both ends count down to the same moment (the caller's backstop runs 2 s longer).
        await alice.wait("LocalInvitationReceivedByPeer", inv.id)
        assert alice.client.timer_deadline(inv) == pytest.approx(rang.at + expected, abs=0.1)
        b = await bob.wait_seen("RemoteInvitationFailure", inv.id)
        a = await alice.wait_seen("LocalInvitationFailure", inv.id)
        assert b.event.error is RE.INVITATION_EXPIRE
        assert a.event.error is LE.INVITATION_EXPIRE
        assert b.at - rang.at == pytest.approx(expected, abs=0.5)
        # The caller learns it from the callee, not from its own (later) backstop.
        assert a.at - rang.at == pytest.approx(expected, abs=0.5)
        assert rinv.state is RS.FAILURE and inv.state is LS.FAILURE


async def test_accept_failure_when_the_caller_never_confirms(
    server: Server, autojump_clock: MockClock
) -> None:
    async with raw(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(alice.keepalive)
            await alice.send_peer("bob", f.Invite(id="inv1", content="hi"))
            await bob.wait("RemoteInvitationReceived", "inv1")
            assert (await alice.recv_peer(f.Ack)).id == "inv1"
            await bob.client.accept("inv1", response="yes")
            accepted_at = trio.current_time()
            assert (await alice.recv_peer(f.Accept)).response == "yes"
            failure = await bob.wait_seen("RemoteInvitationFailure", "inv1")
            assert failure.event.error is RE.ACCEPT_FAILURE
            assert failure.at - accepted_at == pytest.approx(5, abs=0.5)
            end = await alice.recv_peer(f.End)
            assert (end.id, end.reason) == ("inv1", "accept_failure")
            nursery.cancel_scope.cancel()


async def test_caller_going_offline_while_ringing_fails_the_callee(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "bob") as bob:
        async with phone(server.url, "alice") as alice:
            inv = await alice.client.call("bob")
            await bob.wait("RemoteInvitationReceived", inv.id)
            await alice.client.logout()
            failure = await alice.wait("LocalInvitationFailure", inv.id)
            assert failure.error is LE.NOT_LOGGEDIN
        failure = await bob.wait("RemoteInvitationFailure", inv.id, within=5)
        assert failure.error is RE.PEER_OFFLINE
        assert bob.client.remote_invitations[inv.id].state is RS.FAILURE
