"""Calls (SPEC §6) with the caller and the callee on different server nodes sharing one real
Redis: hang-up from each side, a hang-up race, busy and DND refusals, the peer dropping
mid-call, and a stranger's hang-up refused. Real clock, short windows (see
``test_e2e_nodes.py``), every wait bounded."""

from __future__ import annotations

import pytest
import trio

from rtmcall.client import ClientConfig
from rtmcall.engine import frames as f
from rtmcall.engine.codes import CallEndReason as R
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.codes import PeerMessageError as PME
from rtmcall.engine.codes import RemoteInvitationState as RS
from rtmcall.engine.events import CallEnded

from ..e2e.conftest import Phone, Proxy
from .test_e2e_nodes import FAST, SOON, Cluster, nodes  # noqa: F401  (the fixture)


def _ended(p: Phone, call_id: str) -> list[CallEnded]:
    return [
        s.event for s in p.seen if isinstance(s.event, CallEnded) and s.event.call.id == call_id
    ]


async def ended(p: Phone, call_id: str, within: float = SOON) -> CallEnded:
    await p.wait_for(lambda: bool(_ended(p, call_id)), within)
    return _ended(p, call_id)[0]


async def until(predicate, within: float = SOON) -> None:  # type: ignore[no-untyped-def]
    """Poll (no event marks a HangupAck's arrival)."""
    with trio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 (nothing to wait on: see above)
            await trio.sleep(0.05)


async def connect_call(alice: Phone, bob: Phone) -> str:
    inv = await alice.client.call(bob.user)
    await bob.wait("RemoteInvitationReceived", inv.id, within=SOON)
    await bob.client.accept(inv.id)
    await bob.wait("RemoteInvitationAccepted", inv.id, within=SOON)
    assert inv.state is LS.ACCEPTED_BY_REMOTE
    assert bob.client.remote_invitations[inv.id].state is RS.ACCEPTED
    return inv.id


@pytest.mark.parametrize("side", ["caller", "callee"])
async def test_hangup_across_nodes(nodes: Cluster, side: str) -> None:  # noqa: F811
    async with nodes.phone(0, "alice") as alice, nodes.phone(1, "bob") as bob:
        cid = await connect_call(alice, bob)
        await trio.sleep(0.5)
        who, other = (alice, bob) if side == "caller" else (bob, alice)
        await who.client.hangup(cid)
        mine, theirs = await ended(who, cid), await ended(other, cid)
        assert (mine.reason, theirs.reason) == (R.HANGUP_LOCAL, R.HANGUP_REMOTE)
        assert 0.4 < mine.duration < 2 and 0.4 < theirs.duration < 2
        await until(lambda: not who.client.engine.live_calls())  # the HangupAck came


async def test_hangup_race_across_nodes(nodes: Cluster) -> None:  # noqa: F811
    async with nodes.phone(0, "alice") as alice, nodes.phone(1, "bob") as bob:
        cid = await connect_call(alice, bob)
        async with trio.open_nursery() as n:
            n.start_soon(alice.client.hangup, cid)
            n.start_soon(bob.client.hangup, cid)
        a, b = await ended(alice, cid), await ended(bob, cid)
        assert R.HANGUP_LOCAL in (a.reason, b.reason)
        for p in (alice, bob):
            await until(lambda p=p: not p.client.engine.live_calls())


async def test_busy_and_dnd_across_nodes(nodes: Cluster) -> None:  # noqa: F811
    busy = ClientConfig(
        no_response_timeout=FAST.no_response_timeout,
        lifetime=FAST.lifetime,
        confirm_timeout=FAST.confirm_timeout,
        expire_grace=FAST.expire_grace,
        when_busy="refuse",
    )
    async with (
        nodes.phone(0, "alice") as alice,
        nodes.phone(1, "bob", busy) as bob,
        nodes.phone(2, "carol") as carol,
    ):
        cid = await connect_call(alice, bob)
        inv = await carol.client.call("bob")
        refused = await carol.wait("LocalInvitationRefused", inv.id, within=SOON)
        assert refused.reason == "busy"
        await alice.client.hangup(cid)
        await ended(bob, cid)
        bob.client.set_dnd(True)
        inv2 = await alice.client.call("bob")
        refused = await alice.wait("LocalInvitationRefused", inv2.id, within=SOON)
        assert refused.reason == "busy"


async def test_peer_dropping_mid_call_across_nodes(nodes: Cluster) -> None:  # noqa: F811
    port = int(nodes.urls[1].rsplit(":", 1)[1])
    async with trio.open_nursery() as nursery:
        proxy = await nursery.start(Proxy(port).run)
        config = ClientConfig(
            no_response_timeout=FAST.no_response_timeout,
            lifetime=FAST.lifetime,
            confirm_timeout=FAST.confirm_timeout,
            expire_grace=FAST.expire_grace,
            heartbeat_timeout=2.0,
        )
        from ..e2e.conftest import phone

        async with nodes.phone(0, "alice") as alice, phone(proxy.url, "bob", config) as bob:
            cid = await connect_call(alice, bob)
            proxy.blocked = True
            proxy.cut()
            # bob's session ends after the server's resume window (10 s), and alice's node
            # learns bob is gone through Redis presence.
            a = await ended(alice, cid, within=30)
            b = await ended(bob, cid, within=30)
            assert (a.reason, b.reason) == (R.PEER_OFFLINE, R.SESSION_LOST)
        nursery.cancel_scope.cancel()


async def test_a_strangers_hangup_is_refused_and_the_call_goes_on(
    nodes: Cluster,  # noqa: F811
) -> None:
    async with (
        nodes.phone(0, "alice") as alice,
        nodes.phone(1, "bob") as bob,
        nodes.raw(0, "mallory") as mallory,
    ):
        cid = await connect_call(alice, bob)
        # On alice's node (which routed the Invite and the Confirm) the ledger refuses it.
        rid = 77
        await mallory.send_frame(f.Send(rid=rid, to="bob", msg=f.Hangup(id=cid)))
        with trio.fail_after(SOON):
            while True:
                frame = await mallory.recv()
                if isinstance(frame, f.Result) and frame.rid == rid:
                    break
        assert frame.code == PME.INVALID_MESSAGE and cid in frame.message
        await trio.sleep(0.5)
        assert alice.client.calls[cid].active and bob.client.calls[cid].active
