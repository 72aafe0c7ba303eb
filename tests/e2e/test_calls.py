"""Calls, busy and do-not-disturb (SPEC §6) through the SDK, a real server and real
WebSockets: hang-up from each side, races, drops, and the busy refusals."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from rtmcall.client import ApiCallError, CallEndReason, ClientConfig
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import InvitationApiCallError as API
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.events import CallEnded
from rtmcall.server import Server

from .conftest import Phone, Proxy, phone

R = CallEndReason


def call_events(p: Phone, name: str, call_id: str) -> list:
    return [s.event for s in p.seen if s.event.name == name and s.event.call.id == call_id]


async def ended(p: Phone, call_id: str, within: float = 30) -> CallEnded:
    await p.wait_for(lambda: bool(call_events(p, "CallEnded", call_id)), within)
    found = call_events(p, "CallEnded", call_id)
    assert len(found) == 1, found
    return found[0]


async def connect_call(caller: Phone, callee: Phone) -> str:
    inv = await caller.client.call(callee.user, content="talk?")
    await callee.wait("RemoteInvitationReceived", inv.id, within=5)
    await callee.client.accept(inv.id, response="sure")
    await callee.wait("RemoteInvitationAccepted", inv.id, within=5)
    await caller.wait_for(lambda: bool(call_events(caller, "CallStarted", inv.id)), 5)
    await callee.wait_for(lambda: bool(call_events(callee, "CallStarted", inv.id)), 5)
    return inv.id


@pytest.mark.parametrize("side", ["caller", "callee"])
async def test_hangup_from_each_side(server: Server, autojump_clock: MockClock, side: str) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        cid = await connect_call(alice, bob)
        await trio.sleep(83)
        who, other = (alice, bob) if side == "caller" else (bob, alice)
        await who.client.hangup(cid)
        mine, theirs = await ended(who, cid), await ended(other, cid)
        assert (mine.reason, theirs.reason) == (R.HANGUP_LOCAL, R.HANGUP_REMOTE)
        for ev in (mine, theirs):
            assert ev.duration == pytest.approx(83, abs=0.5)
            assert (ev.call.caller, ev.call.callee) == ("alice", "bob")
        # The invitation states of SPEC §2 are untouched.
        assert alice.client.local_invitations[cid].state is LS.ACCEPTED_BY_REMOTE
        # Hanging up again: ALREADY_END on both sides, nothing changes.
        for p in (alice, bob):
            with pytest.raises(ApiCallError) as exc:
                await p.client.hangup(cid)
            assert exc.value.code is API.ALREADY_END
        await trio.sleep(10)
        assert len(call_events(alice, "CallEnded", cid)) == 1
        assert len(call_events(bob, "CallEnded", cid)) == 1
        assert not alice.client.engine.live_calls() and not bob.client.engine.live_calls()


async def test_hangup_racing_hangup(server: Server, autojump_clock: MockClock) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        cid = await connect_call(alice, bob)
        async with trio.open_nursery() as n:
            n.start_soon(alice.client.hangup, cid)
            n.start_soon(bob.client.hangup, cid)
        a, b = await ended(alice, cid), await ended(bob, cid)
        assert {a.reason, b.reason} <= {R.HANGUP_LOCAL, R.HANGUP_REMOTE}
        assert R.HANGUP_LOCAL in (a.reason, b.reason)
        await trio.sleep(30)  # no resend left running, no second CallEnded
        assert not alice.client.engine.live_calls() and not bob.client.engine.live_calls()
        assert len(call_events(alice, "CallEnded", cid)) == 1


async def test_hangup_of_an_invitation_that_never_connected(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id, within=5)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id, within=5)
        for p in (alice, bob):
            with pytest.raises(ApiCallError) as exc:
                await p.client.hangup(inv.id)
            assert exc.value.code is API.NOT_STARTED
        assert inv.state is LS.RECEIVED_BY_REMOTE  # still rings
        with pytest.raises(ApiCallError) as exc:
            await alice.client.hangup("no-such-call")
        assert exc.value.code is API.INVALID_ARGUMENT


async def test_peer_dropping_mid_call(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, phone(proxy.url, "bob") as bob:
        cid = await connect_call(alice, bob)
        await trio.sleep(5)
        proxy.blocked = True
        proxy.cut()
        a = await ended(alice, cid, within=60)
        b = await ended(bob, cid, within=60)
        assert (a.reason, b.reason) == (R.PEER_OFFLINE, R.SESSION_LOST)
        assert a.duration > 5


async def test_a_hangup_during_a_short_drop_is_not_lost(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, phone(proxy.url, "bob") as bob:
        cid = await connect_call(alice, bob)
        proxy.cut()  # bob reconnects by itself and resumes within the window
        await alice.client.hangup(cid)
        b = await ended(bob, cid, within=30)
        assert b.reason is R.HANGUP_REMOTE
        assert bob.client.connection_state is CS.CONNECTED
        assert bob.client.transport.login_ok is not None and bob.client.transport.login_ok.resumed


async def test_busy_refuses_while_in_a_call_and_while_ringing(
    server: Server, autojump_clock: MockClock
) -> None:
    busy = ClientConfig(when_busy="refuse")
    async with (
        phone(server.url, "alice") as alice,
        phone(server.url, "bob", busy) as bob,
        phone(server.url, "carol") as carol,
    ):
        cid = await connect_call(alice, bob)
        inv = await carol.client.call("bob", content="are you free?")
        refused = await carol.wait("LocalInvitationRefused", inv.id, within=5)
        assert refused.reason == "busy" and refused.invitation.reason == "busy"
        assert alice.client.calls[cid].active  # the call goes on
        await alice.client.hangup(cid)
        await ended(bob, cid)
        # Ringing counts as busy too.
        first = await carol.client.call("bob")
        await bob.wait("RemoteInvitationReceived", first.id, within=5)
        second = await alice.client.call("bob")
        refused = await alice.wait("LocalInvitationRefused", second.id, within=5)
        assert refused.reason == "busy"
        assert first.state is LS.RECEIVED_BY_REMOTE


async def test_ring_policy_lets_a_second_call_ring(
    server: Server, autojump_clock: MockClock
) -> None:
    async with (
        phone(server.url, "alice") as alice,
        phone(server.url, "bob") as bob,
        phone(server.url, "carol") as carol,
    ):
        await connect_call(alice, bob)
        inv = await carol.client.call("bob")
        await carol.wait("LocalInvitationReceivedByPeer", inv.id, within=5)
        await bob.client.refuse(inv.id, response="in a call")
        refused = await carol.wait("LocalInvitationRefused", inv.id, within=5)
        assert (refused.reason, refused.response) == ("declined", "in a call")


async def test_dnd_refuses_as_busy(server: Server, autojump_clock: MockClock) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        bob.client.set_dnd(True)
        assert bob.client.dnd
        inv = await alice.client.call("bob")
        refused = await alice.wait("LocalInvitationRefused", inv.id, within=5)
        assert refused.reason == "busy"
        bob.client.set_dnd(False)
        again = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", again.id, within=5)


async def test_a_hangup_lost_in_a_cut_longer_than_the_resume_window(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    async with phone(proxy.url, "alice") as alice, phone(server.url, "bob") as bob:
        cid = await connect_call(alice, bob)
        proxy.blocked = True
        proxy.cut()
        await alice.client.hangup(cid)  # queued, never delivered: the session expires
        a = await ended(alice, cid)
        assert a.reason is R.HANGUP_LOCAL  # at once, on our side
        b = await ended(bob, cid, within=60)
        assert b.reason is R.PEER_OFFLINE  # bob learns it from presence
        await trio.sleep(60)
        assert not alice.client.engine.live_calls() and not bob.client.engine.live_calls()
        assert len(call_events(alice, "CallEnded", cid)) == 1
