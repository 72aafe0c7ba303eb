"""The demo's scenarios: every outcome of SPEC §2, each played by real clients over a real
server. A scenario makes its invitations with :meth:`World.call`, naming the outcomes that
would be right as "caller / callee" (see :func:`.demo_view.pair`); the runner compares.

Waits are in seconds at ``--speed 1`` (the world scales them); the protocol windows are
short (no-ACK 1.5 s, lifetime 2 s, confirm 1 s) so the whole demo takes seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from .demo_world import World

ACCEPTED = "ACCEPTED_BY_REMOTE / ACCEPTED"
REFUSED = "REFUSED_BY_REMOTE / REFUSED"
CANCELED = "CANCELED / CANCELED"
#: How long a scenario may wait for one step (scaled), so the demo never hangs.
STEP = 5.0


async def accept(w: World) -> None:
    inv = await w.call("accept", "alice", "bob", (ACCEPTED,), content="lunch?", channel_id="r1")
    await w.until(lambda: w.ringing("bob", inv), STEP)
    await w.sleep(0.4)  # let it ring a moment, so the table shows it
    await w.clients["bob"].accept(inv.id, response="on my way")


async def refuse(w: World) -> None:
    inv = await w.call("refuse", "alice", "carol", (REFUSED,), content="meeting?")
    await w.until(lambda: w.ringing("carol", inv), STEP)
    await w.sleep(0.4)
    await w.clients["carol"].refuse(inv.id, response="busy")


async def cancel(w: World) -> None:
    inv = await w.call("cancel", "alice", "bob", (CANCELED,), content="oops, wrong number")
    await w.until(lambda: w.ringing("bob", inv), STEP)
    await w.sleep(0.4)
    await w.clients["alice"].cancel(inv.id)


async def offline(w: World) -> None:
    # dave never logs in: after the no-ACK window the caller gives up.
    await w.call("peer offline", "alice", "dave", ("FAILURE(PEER_OFFLINE) / —",))


async def late_login(w: World) -> None:
    # frank is offline when called but logs in within the no-ACK window: it still rings.
    inv = await w.call("callee logs in late", "alice", "frank", (ACCEPTED,), content="you there?")
    await w.sleep(0.6)
    await w.login("frank")
    await w.until(lambda: w.ringing("frank", inv), STEP)
    await w.clients["frank"].accept(inv.id, response="just got here")


async def no_response(w: World) -> None:
    # mute is logged in, but its client never ACKs: PEER_NO_RESPONSE, not PEER_OFFLINE.
    await w.call("no response", "alice", "mute", ("FAILURE(PEER_NO_RESPONSE) / —",))


async def expiry(w: World) -> None:
    # Nobody answers within the invitation's own lifetime: both ends are told it expired.
    await w.call(
        "expiry",
        "alice",
        "carol",
        ("FAILURE(INVITATION_EXPIRE) / FAILURE(INVITATION_EXPIRE)",),
        content="anyone?",
        lifetime=1.5 * w.scale,
    )


async def several(w: World) -> None:
    # Three at once from one caller, two to the same callee; each has its own id and fate.
    one = await w.call("several at once 1/3", "alice", "bob", (ACCEPTED,), content="first")
    two = await w.call("several at once 2/3", "alice", "bob", (REFUSED,), content="second")
    three = await w.call("several at once 3/3", "alice", "carol", (ACCEPTED,), content="third")
    await w.until(
        lambda: w.ringing("bob", one) and w.ringing("bob", two) and w.ringing("carol", three),
        STEP,
    )
    await w.sleep(0.4)
    await w.clients["bob"].refuse(two.id, response="one call at a time")
    await w.clients["bob"].accept(one.id)
    await w.clients["carol"].accept(three.id)


async def race(w: World) -> None:
    # The caller cancels as the callee accepts: whichever wins, both ends must agree.
    inv = await w.call("cancel racing accept", "alice", "bob", (CANCELED, ACCEPTED))
    await w.until(lambda: w.ringing("bob", inv), STEP)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(w.clients["alice"].cancel, inv.id)
        nursery.start_soon(w.clients["bob"].accept, inv.id)


async def caller_leaves(w: World) -> None:
    # The caller logs out while it rings: the callee's invitation fails, caller offline.
    await w.login("erin")
    inv = await w.call(
        "caller goes offline",
        "erin",
        "bob",
        ("FAILURE(NOT_LOGGEDIN) / FAILURE(PEER_OFFLINE)",),
        content="brb",
    )
    await w.until(lambda: w.ringing("bob", inv), STEP)
    await w.sleep(0.4)
    await w.logout("erin")


Scenario = Callable[[World], Awaitable[None]]

#: name -> (what happens, in words; the scenario). Played in this order.
SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "accept": ("alice calls bob, bob accepts with a response", accept),
    "refuse": ("alice calls carol, carol refuses: busy", refuse),
    "cancel": ("alice calls bob and hangs up while it rings", cancel),
    "offline": ("alice calls dave, who is not logged in", offline),
    "late-login": ("alice calls frank, who logs in while she waits", late_login),
    "no-response": ("alice calls mute, whose client never answers", no_response),
    "expiry": ("alice calls carol, nobody answers in time", expiry),
    "several": ("alice calls bob twice and carol once, at once", several),
    "race": ("alice cancels as bob accepts", race),
    "caller-leaves": ("erin calls bob, then logs out while it rings", caller_leaves),
}
