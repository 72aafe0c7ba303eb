"""A callee answering many invitations at once, over the server's message rate limit: the
sends the server refuses with TOO_OFTEN are sent again after a backoff, and both ends of
every invitation agree (SPEC §2) — nobody is left waiting for an answer that was lost."""

from __future__ import annotations

from contextlib import AsyncExitStack
from functools import partial

import trio
from trio.testing import MockClock

from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.codes import RemoteInvitationState as RS
from rtmcall.server import Server, ServerConfig, serve

from .conftest import phone

#: Peer messages per user: 10 per 3 s (Agora's 180 per 3 s, scaled down).
LIMITS = ServerConfig(rate_messages=10, rate_messages_per=3.0)
CALLERS = 12


async def test_a_burst_of_refusals_over_the_rate_limit_reaches_every_caller(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    server: Server = await nursery.start(partial(serve, "127.0.0.1", 0, config=LIMITS))
    async with AsyncExitStack() as stack:
        carol = await stack.enter_async_context(phone(server.url, "carol"))
        callers = [
            await stack.enter_async_context(phone(server.url, f"u{i:02}")) for i in range(CALLERS)
        ]
        invs = [await c.client.call("carol", content=c.user) for c in callers]
        # 12 ACKs (and 12 presence subscriptions) from carol: over her 10 per 3 s, yet
        # every caller hears that it rings.
        for c, inv in zip(callers, invs, strict=True):
            await c.wait("LocalInvitationReceivedByPeer", inv.id, within=20)
        limited_before = server.stats.rate_limited
        assert limited_before > 0  # (the ACK burst did hit the limit)

        start = trio.current_time()
        await carol.client.accept(invs[0].id, response="you were first")
        for inv in invs[1:]:
            await carol.client.refuse(inv.id, response="busy")
        for c, inv in zip(callers[1:], invs[1:], strict=True):
            refused = await c.wait("LocalInvitationRefused", inv.id, within=20)
            assert refused.response == "busy"
        await callers[0].wait("LocalInvitationAccepted", invs[0].id, within=20)
        await carol.wait("RemoteInvitationAccepted", invs[0].id, within=20)
        # The refusals went over the limit too, and were sent again until they got through:
        # within seconds, long before any invitation window (60 s) ran out.
        assert server.stats.rate_limited > limited_before
        assert trio.current_time() - start < 10

        pairs = [(inv.state, carol.client.remote_invitations[inv.id].state) for inv in invs]
        assert pairs[0] == (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED)
        assert pairs[1:] == [(LS.REFUSED_BY_REMOTE, RS.REFUSED)] * (CALLERS - 1)
        # Nothing failed anywhere, nothing was told twice.
        for c, inv in zip(callers[1:], invs[1:], strict=True):
            assert c.names(inv.id) == ["LocalInvitationReceivedByPeer", "LocalInvitationRefused"]
        assert not carol.find("RemoteInvitationFailure")
