"""The server restarting (issue 13 item 4): clients are back within 2 s of the server
for any outage under a minute, and a call that rang through it ends NOT_LOGGEDIN on the
caller's side (shown as "connection lost"), PEER_OFFLINE on the callee's.

A real server on a loopback port is stopped (it tells its clients Bye) and started again
on the same port; ``autojump_clock`` makes the outages pass at once.
"""

from __future__ import annotations

import functools

import pytest
import trio
from trio.testing import MockClock

from rtmcall.engine.codes import ConnectionChangeReason as Why
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import LocalInvitationError as LE
from rtmcall.engine.codes import RemoteInvitationError as RE
from rtmcall.server import Server, serve

from .conftest import Phone, phone
from .test_reconnect import states


class Restartable:
    """A server that can be stopped and started again on the same port."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.port = 0
        self.server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> Server:
        self.server = await self.nursery.start(functools.partial(serve, "127.0.0.1", self.port))
        self.port = self.server.port
        return self.server

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.shutdown()
        self.server = None


async def connected_again(p: Phone, since: int) -> float:
    """When ``p`` was CONNECTED again after its ``since``-th state change."""
    await p.wait_for(lambda: (CS.CONNECTED, Why.LOGIN_SUCCESS) in states(p)[since:], 120)
    return trio.current_time()


@pytest.mark.parametrize("outage", [0.3, 2.0, 8.0, 20.0, 45.0, 59.0])
async def test_back_within_2_s_of_the_server(
    nursery: trio.Nursery, autojump_clock: MockClock, outage: float
) -> None:
    srv = Restartable(nursery)
    await srv.start()
    async with phone(srv.url, "alice") as alice, phone(srv.url, "bob") as bob:
        before = len(states(alice)), len(states(bob))
        await srv.stop()
        # The outage as the clients see it: from their drop (the server's Bye) on.
        dropped = min(s.at for p in (alice, bob) for s in p.find("ConnectionStateChanged"))
        await trio.sleep_until(dropped + outage)
        await srv.start()
        back = trio.current_time()
        alice_at = await connected_again(alice, before[0])
        bob_at = await connected_again(bob, before[1])
        assert alice_at - back <= 2.0 and bob_at - back <= 2.0, (alice_at - back, bob_at - back)
        assert alice.client.connection_state is CS.CONNECTED
        # A new server: the sessions were new ones (nothing to resume).
        assert alice.client.transport.login_ok is not None
        assert not alice.client.transport.login_ok.resumed


async def test_a_long_outage_is_not_hammered(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    """Five minutes down: after the first minute, attempts come 2.5-5 s apart."""
    srv = Restartable(nursery)
    await srv.start()
    async with phone(srv.url, "alice") as alice:
        tries: list[float] = []
        transport = alice.client.transport
        real = transport._connection

        async def counted(**kw: object) -> object:
            tries.append(trio.current_time())
            return await real(**kw)  # type: ignore[arg-type]

        transport._connection = counted  # type: ignore[method-assign]
        down = trio.current_time()
        await srv.stop()
        await trio.sleep(300)
        late = [t - down for t in tries if t - down > 70]
        gaps = [b - a for a, b in zip(late, late[1:], strict=False)]
        assert gaps and all(2.5 <= g <= 5.0 + 0.01 for g in gaps), gaps
        early = [t - down for t in tries if t - down <= 60]
        assert 40 <= len(early) <= 85  # every 0.75-1.5 s for a minute


async def test_a_call_ringing_through_a_restart_fails_connection_lost(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    srv = Restartable(nursery)
    await srv.start()
    async with phone(srv.url, "alice") as alice, phone(srv.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id)
        await srv.stop()
        await trio.sleep(8)
        await srv.start()
        failed = await alice.wait("LocalInvitationFailure", inv.id, within=5)
        assert failed.error is LE.NOT_LOGGEDIN
        callee = await bob.wait("RemoteInvitationFailure", inv.id, within=5)
        assert callee.error is RE.PEER_OFFLINE
