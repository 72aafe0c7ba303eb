"""Soak: many users, random calls and answers, random network delays and cuts, bounded in
(virtual) time. At the end every invitation on every client is terminal and both sides
agree, the server logged no unhandled exception, and its state is back to empty.
"""

from __future__ import annotations

import gc
import logging
import random
from contextlib import AsyncExitStack

import pytest
import trio

from rtmcall.client import ApiCallError
from rtmcall.engine import LocalInvitationState, RemoteInvitationState
from rtmcall.engine.codes import AGREEING_STATES
from rtmcall.server import Session, serve

from ..e2e.conftest import phone
from .proxy import Proxy, random_delays

LS = LocalInvitationState
RS = RemoteInvitationState
AGREE = AGREEING_STATES
USERS = [f"user{i}" for i in range(12)]
STEPS = 600


def story(phones: dict, inv_id: str) -> str:
    """What both ends saw of one invitation, and their connection changes, in order."""
    lines = [f"invitation {inv_id}:"]
    seen = sorted(
        ((s.at, s.seq, p.user, s.event) for p in phones.values() for s in p.seen),
        key=lambda t: (t[0], t[1]),
    )
    for at, _, user, ev in seen:
        inv = getattr(ev, "invitation", None)
        if inv is not None and inv.id == inv_id:
            lines.append(f"  {at:8.2f} {user}: {ev.name} {inv.state.name} {inv.error.name}")
    return "\n".join(lines)


async def test_soak(
    autojump_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    rng = random.Random(7)
    server = await nursery.start(serve, "127.0.0.1", 0)
    proxy = await nursery.start(Proxy(server.url, random_delays(rng, 0.2)).run)
    calls = 0
    async with AsyncExitStack() as stack:
        phones = {u: await stack.enter_async_context(phone(proxy.url, u)) for u in USERS}
        for step in range(STEPS):
            await trio.sleep(rng.uniform(0, 0.5))
            who = phones[rng.choice(USERS)]
            roll = rng.random()
            try:
                if roll < 0.35:
                    peer = rng.choice([u for u in USERS if u != who.user])
                    lifetime = rng.choice([None, 3.0, 20.0])
                    await who.client.call(peer, content=f"#{step}", lifetime=lifetime)
                    calls += 1
                elif roll < 0.5:
                    live = [i for i in who.client.local_invitations.values() if i.live]
                    if live:
                        await who.client.cancel(rng.choice(live))
                elif roll < 0.9:
                    live = [i for i in who.client.remote_invitations.values() if i.live]
                    if live:
                        inv = rng.choice(live)
                        if rng.random() < 0.6:
                            await who.client.accept(inv, response="ok")
                        else:
                            await who.client.refuse(inv, response="no")
                elif roll < 0.92:
                    proxy.cut()  # everyone drops and reconnects
            except ApiCallError:
                pass  # a race lost to the other side: the invitation already moved on

        # Let everything end: no invitation may be left ringing anywhere.
        with trio.fail_after(300):
            for p in phones.values():
                await p.wait_for(lambda p=p: not p.client.engine.live_invitations())

        pairs = []
        for p in phones.values():
            for inv in p.client.local_invitations.values():
                rinv = phones[inv.callee].client.remote_invitations.get(inv.id)
                if rinv is not None:
                    pairs.append((inv.state, rinv.state, inv.id))
        assert calls > 100 and len(pairs) > 100
        disagreements = [p for p in pairs if p[:2] not in AGREE]
        assert not disagreements, "\n".join(story(phones, inv_id) for _, _, inv_id in disagreements)
        outcomes = {state for state, _, _ in pairs}
        assert {LS.ACCEPTED_BY_REMOTE, LS.REFUSED_BY_REMOTE, LS.CANCELED, LS.FAILURE} <= outcomes

    # Everyone logged out: the server holds nothing any more.
    with trio.fail_after(30):
        while server.sessions or server.stats.sessions:  # noqa: ASYNC110 - no event to wait on
            await trio.sleep(0.5)
    hub = server.hub
    assert not hub._sessions and not hub._watchers and not hub._published  # noqa: SLF001
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, Session)]
    assert server.stats.internal_errors == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
