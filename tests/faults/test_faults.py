"""Fault tests: real server, real SDK clients, a WebSocket proxy that delays, drops,
duplicates and cuts (``proxy.py``), and a server restarted mid-invitation.

Every timed behaviour runs on trio's MockClock (``autojump_clock``): random delays of up to
a second and the protocol's 5-60 s windows pass in an instant.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from rtmcall.client import ApiCallError
from rtmcall.engine import (
    ConnectionState,
    InvitationApiCallError,
    LocalInvitationState,
    RemoteInvitationState,
)
from rtmcall.engine.codes import AGREEING_STATES
from rtmcall.server import Server, serve

from ..e2e.conftest import Phone, phone
from .proxy import Proxy, random_delays

LS = LocalInvitationState
RS = RemoteInvitationState
AGREE = AGREEING_STATES


@asynccontextmanager
async def through_proxy(nursery: trio.Nursery, server: Server, policy=None) -> AsyncIterator[Proxy]:
    proxy = Proxy(server.url) if policy is None else Proxy(server.url, policy)
    yield await nursery.start(proxy.run)


async def settle(*phones: Phone) -> None:
    """Wait until no phone has a live invitation."""
    for p in phones:
        await p.wait_for(lambda p=p: not p.client.engine.live_invitations())


def pair_states(caller: Phone, callee: Phone, inv_id: str) -> tuple:
    inv = caller.client.local_invitations[inv_id]
    rinv = callee.client.remote_invitations[inv_id]
    return inv.state, rinv.state


async def test_cancel_racing_accept_with_random_delays_always_agrees(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = await nursery.start(serve, "127.0.0.1", 0)
    rng = random.Random(2026)
    outcomes = []
    async with through_proxy(nursery, server, random_delays(rng, 0.3)) as proxy:
        async with phone(proxy.url, "alice") as alice, phone(proxy.url, "bob") as bob:

            async def act(delay: float, call, inv_id: str) -> None:
                await trio.sleep(delay)
                try:
                    await call(inv_id)
                except ApiCallError as exc:
                    # Too late: the other side's action already ended it here.
                    assert exc.code is InvitationApiCallError.ALREADY_END

            for _ in range(40):
                inv = await alice.client.call("bob")
                await bob.wait("RemoteInvitationReceived", inv.id)
                # Both act at about the same time; random think times and network delays
                # decide who is first where.
                async with trio.open_nursery() as race:
                    race.start_soon(act, rng.uniform(0, 3.0), alice.client.cancel, inv.id)
                    race.start_soon(act, rng.uniform(0, 3.0), bob.client.accept, inv.id)
                await settle(alice, bob)
                states = pair_states(alice, bob, inv.id)
                outcomes.append(states)
                assert states in {(LS.CANCELED, RS.CANCELED), (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)}
    # The schedules did exercise both winners (else they proved little).
    assert (LS.CANCELED, RS.CANCELED) in outcomes
    assert (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED) in outcomes


async def test_every_frame_duplicated_changes_no_outcome(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = await nursery.start(serve, "127.0.0.1", 0)
    async with through_proxy(nursery, server, lambda d, m: [0.0, 0.01]) as proxy:
        async with phone(proxy.url, "alice") as alice, phone(proxy.url, "bob") as bob:
            outcomes = {}
            for action in ("accept", "refuse", "cancel"):
                inv = await alice.client.call("bob", content=action)
                await bob.wait("RemoteInvitationReceived", inv.id)
                if action == "cancel":
                    await alice.client.cancel(inv.id)
                else:
                    await getattr(bob.client, action)(inv.id, response="r")
                await settle(alice, bob)
                outcomes[action] = pair_states(alice, bob, inv.id)
                # One ring per invitation, however many copies of the invite arrived.
                assert len(bob.find("RemoteInvitationReceived", inv.id)) == 1
            assert outcomes == {
                "accept": (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED),
                "refuse": (LS.REFUSED_BY_REMOTE, RS.REFUSED),
                "cancel": (LS.CANCELED, RS.CANCELED),
            }


async def test_a_lost_confirm_ends_in_bounded_time(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = await nursery.start(serve, "127.0.0.1", 0)

    def drop_confirms(direction: str, message: str | bytes) -> list[float]:
        text = message if isinstance(message, str) else message.decode()
        return [] if '"k":"confirm"' in text else [0.0]

    async with through_proxy(nursery, server, drop_confirms) as proxy:
        async with phone(proxy.url, "alice") as alice, phone(proxy.url, "bob") as bob:
            inv = await alice.client.call("bob")
            await bob.wait("RemoteInvitationReceived", inv.id)
            await bob.client.accept(inv.id)
            start = trio.current_time()
            failure = await bob.wait("RemoteInvitationFailure", inv.id)
            assert failure.error.name == "ACCEPT_FAILURE"
            assert trio.current_time() - start <= 5 + 1
            assert alice.client.local_invitations[inv.id].state is LS.ACCEPTED_BY_REMOTE


async def test_connection_cut_while_ringing_reconnects_and_completes(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    server = await nursery.start(serve, "127.0.0.1", 0)
    async with through_proxy(nursery, server) as proxy:
        async with phone(proxy.url, "alice") as alice, phone(proxy.url, "bob") as bob:
            inv = await alice.client.call("bob", content="cut me")
            await bob.wait("RemoteInvitationReceived", inv.id)
            proxy.cut()
            for p in (alice, bob):
                await p.wait_for(
                    lambda p=p: any(
                        s.event.name == "ConnectionStateChanged"
                        and s.event.state is ConnectionState.RECONNECTING
                        for s in p.seen
                    )
                )
                await p.wait_for(lambda p=p: p.client.connection_state is ConnectionState.CONNECTED)
            await bob.client.accept(inv.id, response="back")
            await settle(alice, bob)
            assert pair_states(alice, bob, inv.id) == (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)
            assert alice.client.local_invitations[inv.id].response == "back"


async def test_server_restarted_mid_invitation_every_invitation_ends_in_agreement(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    first = trio.CancelScope()

    async def run_server(task_status: trio.TaskStatus[Server], port: int = 0) -> None:
        with first:
            await serve("127.0.0.1", port, task_status=task_status)

    server = await nursery.start(run_server)
    port = server.port
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        ringing = await alice.client.call("bob", content="ringing")
        await bob.wait("RemoteInvitationReceived", ringing.id)
        first.cancel()  # the server says Bye and goes away
        await trio.sleep(1)
        await nursery.start(lambda task_status: serve("127.0.0.1", port, task_status=task_status))
        for p in (alice, bob):
            await p.wait_for(lambda p=p: p.client.connection_state is ConnectionState.CONNECTED)
        await settle(alice, bob)
        assert pair_states(alice, bob, ringing.id) in AGREE
        # And the service works again.
        again = await alice.client.call("bob", content="after restart")
        await bob.wait("RemoteInvitationReceived", again.id)
        await bob.client.accept(again.id)
        await settle(alice, bob)
        assert pair_states(alice, bob, again.id) == (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)
