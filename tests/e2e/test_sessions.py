"""Races, many invitations at once, authority, sessions, presence and messages, end to end."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from rtmcall.client import InvalidArgument, NotLoggedIn
from rtmcall.client.events import (
    ConnectionStateChanged,
    MessageFromPeer,
    PeersOnlineStatusChanged,
)
from rtmcall.engine import frames as f
from rtmcall.engine.codes import AGREEING_STATES
from rtmcall.engine.codes import ConnectionChangeReason as Why
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import InvitationApiCallError as API
from rtmcall.engine.codes import LocalInvitationError as LE
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.codes import PeerMessageError as PME
from rtmcall.engine.codes import PeerOnlineState as PS
from rtmcall.engine.codes import RemoteInvitationError as RE
from rtmcall.engine.codes import RemoteInvitationState as RS
from rtmcall.engine.events import ApiCallError
from rtmcall.server import Server

from .conftest import phone, raw

#: (caller state, callee state) pairs that agree (SPEC §2 "Agreement").
AGREE = AGREEING_STATES


@pytest.mark.parametrize("first", ["cancel", "accept"])
async def test_cancel_racing_accept_ends_in_agreement(
    server: Server, autojump_clock: MockClock, first: str
) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id)
        # Both calls run before either message crosses the network.
        async with trio.open_nursery() as nursery:
            if first == "cancel":
                nursery.start_soon(alice.client.cancel, inv)
                nursery.start_soon(bob.client.accept, inv.id)
            else:
                nursery.start_soon(bob.client.accept, inv.id)
                nursery.start_soon(alice.client.cancel, inv)
        rinv = bob.client.remote_invitations[inv.id]
        await alice.wait_for(lambda: inv.terminal)
        await bob.wait_for(lambda: rinv.terminal)
        await trio.sleep(10)  # late frames change nothing
        assert (inv.state, rinv.state) == (LS.CANCELED, RS.CANCELED)
        assert alice.names(inv.id)[-1] == "LocalInvitationCanceled"
        assert bob.names(inv.id)[-1] == "RemoteInvitationCanceled"
        assert "RemoteInvitationAccepted" not in bob.names(inv.id)


async def test_many_invitations_at_once_to_the_same_and_other_callees(
    server: Server, autojump_clock: MockClock
) -> None:
    async with (
        phone(server.url, "alice") as alice,
        phone(server.url, "bob") as bob,
        phone(server.url, "carol") as carol,
    ):
        to_bob = [await alice.client.call("bob", content=f"b{i}") for i in range(5)]
        to_carol = [await alice.client.call("carol", content=f"c{i}") for i in range(3)]
        ids = [inv.id for inv in to_bob + to_carol]
        assert len(set(ids)) == len(ids)
        for inv in to_bob:
            await bob.wait("RemoteInvitationReceived", inv.id)
        for inv in to_carol:
            await carol.wait("RemoteInvitationReceived", inv.id)
        # bob accepts the even ones and refuses the odd ones, carol lets one ring out.
        for i, inv in enumerate(to_bob):
            if i % 2 == 0:
                await bob.client.accept(inv.id, response=f"yes {i}")
            else:
                await bob.client.refuse(inv.id, response=f"no {i}")
        await carol.client.refuse(to_carol[0].id)
        await alice.client.cancel(to_carol[1])
        for i, inv in enumerate(to_bob):
            name = "LocalInvitationAccepted" if i % 2 == 0 else "LocalInvitationRefused"
            ev = await alice.wait(name, inv.id)
            assert ev.response == (f"yes {i}" if i % 2 == 0 else f"no {i}")
        await alice.wait("LocalInvitationRefused", to_carol[0].id)
        await alice.wait("LocalInvitationCanceled", to_carol[1].id)
        failure = await alice.wait("LocalInvitationFailure", to_carol[2].id)
        assert failure.error is LE.INVITATION_EXPIRE
        for inv in to_bob:
            await bob.wait_for(lambda inv=inv: bob.client.remote_invitations[inv.id].terminal)
        for inv in to_bob + to_carol:
            callee = bob if inv.callee == "bob" else carol
            assert (inv.state, callee.client.remote_invitations[inv.id].state) in AGREE
            assert callee.client.remote_invitations[inv.id].content == inv.content


async def test_a_third_user_who_knows_the_id_is_ignored(
    server: Server, autojump_clock: MockClock
) -> None:
    async with (
        phone(server.url, "alice") as alice,
        phone(server.url, "bob") as bob,
        raw(server.url, "mallory") as mallory,
    ):
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        # mallory pretends to be the callee to alice, and the caller to bob.
        for msg in (f.Accept(id=inv.id, response="hijacked"), f.Refuse(id=inv.id)):
            await mallory.send_peer("alice", msg)
        for msg in (f.Cancel(id=inv.id), f.Confirm(id=inv.id)):
            await mallory.send_peer("bob", msg)
        await mallory.send_peer("alice", f.End(id=inv.id, reason="expire"))
        await trio.sleep(2)
        assert inv.state is LS.RECEIVED_BY_REMOTE
        assert bob.client.remote_invitations[inv.id].state is RS.INVITATION_RECEIVED
        # The real callee still decides.
        await bob.client.accept(inv.id, response="me")
        assert (await alice.wait("LocalInvitationAccepted", inv.id)).response == "me"
        await bob.wait("RemoteInvitationAccepted", inv.id)


async def test_duplicate_login_kicks_the_older_session_and_its_invitations_fail(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as old_bob:
        inv = await alice.client.call("bob")
        await old_bob.wait("RemoteInvitationReceived", inv.id)
        async with phone(server.url, "bob") as new_bob:

            def last_state() -> tuple[CS, Why] | None:
                changes = [
                    s.event for s in old_bob.seen if isinstance(s.event, ConnectionStateChanged)
                ]
                return (changes[-1].state, changes[-1].reason) if changes else None

            await old_bob.wait_for(lambda: last_state() == (CS.ABORTED, Why.REMOTE_LOGIN), 5)
            assert old_bob.client.connection_state is CS.ABORTED
            failure = await old_bob.wait("RemoteInvitationFailure", inv.id, within=5)
            assert failure.error is RE.PEER_OFFLINE
            assert new_bob.client.connection_state is CS.CONNECTED
            assert inv.id not in new_bob.client.remote_invitations
            # The caller's invitation fails too, at once and with the same meaning: the
            # server shows the kick as an OFFLINE blip before bob's new session is ONLINE.
            failure = await alice.wait("LocalInvitationFailure", inv.id, within=5)
            assert failure.error is LE.PEER_OFFLINE
            # The kicked client stays quiet: it does not reconnect and take over again.
            await trio.sleep(30)
            assert old_bob.client.connection_state is CS.ABORTED
            assert new_bob.client.connection_state is CS.CONNECTED


async def test_send_while_not_logged_in_fails_not_loggedin(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice:
        await alice.client.logout()
        assert alice.client.connection_state is CS.DISCONNECTED
        changed = await alice.wait("ConnectionStateChanged", within=1)
        assert (changed.state, changed.reason) == (CS.DISCONNECTED, Why.LOGOUT)
        inv = await alice.client.call("bob")
        failure = await alice.wait("LocalInvitationFailure", inv.id, within=1)
        assert failure.error is LE.NOT_LOGGEDIN
        assert inv.state is LS.FAILURE
        with pytest.raises(ApiCallError) as info:
            await alice.client.send_invitation(inv)
        assert info.value.code is API.ALREADY_END
        with pytest.raises(NotLoggedIn):
            await alice.client.query_peers_online_status(["bob"])
        assert await alice.client.send_message_to_peer("bob", "hi") is PME.NOT_LOGGEDIN


async def test_api_misuse_raises_and_changes_nothing(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = alice.client.create_invitation("bob")
        with pytest.raises(ApiCallError) as info:
            await alice.client.cancel(inv)
        assert info.value.code is API.NOT_STARTED
        await alice.client.send_invitation(inv)
        with pytest.raises(ApiCallError) as info:
            await alice.client.send_invitation(inv)
        assert info.value.code is API.ALREADY_SENT
        await bob.wait("RemoteInvitationReceived", inv.id)
        await bob.client.accept(inv.id)
        with pytest.raises(ApiCallError) as info:
            await bob.client.accept(inv.id)
        assert info.value.code is API.ALREADY_ACCEPT
        with pytest.raises(ApiCallError) as info:
            await bob.client.refuse(inv.id)
        assert info.value.code is API.ALREADY_ACCEPT  # accepted, not yet confirmed
        await bob.wait("RemoteInvitationAccepted", inv.id)
        for answer in (bob.client.accept, bob.client.refuse):
            with pytest.raises(ApiCallError) as info:
                await answer(inv.id)
            assert info.value.code is API.ALREADY_END  # ACCEPTED ends the lifecycle
        with pytest.raises(ApiCallError) as info:
            await alice.client.cancel(inv)
        assert info.value.code is API.ALREADY_END
        with pytest.raises(ApiCallError) as info:
            alice.client.create_invitation("bob", content="x" * 9000)
        assert info.value.code is API.INVALID_ARGUMENT
        with pytest.raises(ApiCallError) as info:
            await alice.client.accept("no-such-id")
        assert info.value.code is API.INVALID_ARGUMENT
        assert inv.state is LS.ACCEPTED_BY_REMOTE


async def test_presence_query_and_subscription(server: Server, autojump_clock: MockClock) -> None:
    async with phone(server.url, "alice") as alice:
        states = await alice.client.query_peers_online_status(["alice", "bob"])
        assert states == {"alice": PS.ONLINE, "bob": PS.OFFLINE}
        await alice.client.subscribe_peers_online_status(["bob"])
        first = await alice.wait("PeersOnlineStatusChanged", within=1)
        assert first.states == {"bob": PS.OFFLINE}

        def bob_states() -> list[PS]:
            return [
                s.event.states["bob"]
                for s in alice.seen
                if isinstance(s.event, PeersOnlineStatusChanged)
            ]

        async with phone(server.url, "bob"):
            await alice.wait_for(lambda: bob_states()[-1] is PS.ONLINE, within=5)
            assert await alice.client.query_peers_online_status(["bob"]) == {"bob": PS.ONLINE}
        await alice.wait_for(lambda: bob_states()[-1] is PS.OFFLINE, within=5)
        await alice.client.unsubscribe_peers_online_status(["bob"])
        count = len(bob_states())
        async with phone(server.url, "bob"):
            await trio.sleep(5)
        assert len(bob_states()) == count
        with pytest.raises(InvalidArgument):
            await alice.client.query_peers_online_status(["null"])


async def test_peer_text_messages(server: Server, autojump_clock: MockClock) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        assert await alice.client.send_message_to_peer("bob", "hello, bob") is PME.OK
        msg = await bob.wait("MessageFromPeer", within=5)
        assert msg == MessageFromPeer("alice", "hello, bob")
        assert await alice.client.send_message_to_peer("carol", "anyone?") is (PME.PEER_UNREACHABLE)
        with pytest.raises(InvalidArgument):
            await alice.client.send_message_to_peer("bob", "x" * (33 * 1024))


async def test_several_subscribers_each_get_every_event(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob"):
        table, printer = alice.client.events(), alice.client.events()
        inv = await alice.client.call("bob")
        await alice.wait("LocalInvitationReceivedByPeer", inv.id)
        await alice.client.cancel(inv)
        await alice.wait("LocalInvitationCanceled", inv.id)
        for stream in (table, printer):
            got = [stream.receive_nowait().name for _ in range(2)]
            assert got == ["LocalInvitationReceivedByPeer", "LocalInvitationCanceled"]
        await table.aclose()
        await printer.aclose()
