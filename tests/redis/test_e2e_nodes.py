"""Every invitation outcome of SPEC §2 with the caller and the callee on different server
nodes sharing one real Redis, through the real SDK over real WebSockets (issue 5).

Clock: Redis is another process, so these tests run on the real clock (pytest-trio's
``autojump_clock`` would jump virtual time while a Redis reply is in flight and fire timers
spuriously) with short protocol windows (:data:`FAST`); every wait is bounded by
``trio.fail_after`` (``Phone.wait(..., within=...)``), and every timer is checked within
:data:`SLACK` real seconds.

Layout: the nodes run in this process (:func:`cluster`), caller on node 0, callee on node 1,
node 2 for a third party; the node-kill tests add a node in its own process
(``tests/redis/node.py``) so that it can be SIGKILLed.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import pytest
import trio

from rtmcall.client import ClientConfig, ConnectionStateChanged
from rtmcall.engine import frames as f
from rtmcall.engine.codes import ConnectionChangeReason as Why
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import LocalInvitationError as LE
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.codes import PeerMessageError as PME
from rtmcall.engine.codes import PeerOnlineState as PS
from rtmcall.engine.codes import RemoteInvitationError as RE
from rtmcall.engine.codes import RemoteInvitationState as RS
from rtmcall.engine.engine import LocalInvitation
from rtmcall.server import ServerConfig, serve
from rtmcall.server.redis import open_redis_hub

from ..e2e.conftest import Phone, Raw, phone, raw
from .redisproc import RedisProcess

#: Presence TTL of every node here; registrations are refreshed every TTL/3 and watched
#: remote users re-read every TTL/3 (the hub's default poll interval).
TTL = 1.5
POLL = TTL / 3
#: Short protocol windows, on the real clock.
FAST = ClientConfig(no_response_timeout=2.0, lifetime=3.0, confirm_timeout=1.0, expire_grace=1.0)
#: Tolerance of a real-clock timer (scheduling, a Redis round trip, a WebSocket hop).
SLACK = 0.4
#: Longest wait for something that should happen at once.
SOON = 5.0
#: (caller state, callee state) pairs that agree (SPEC §2 "Agreement").
AGREE = {
    (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED),
    (LS.REFUSED_BY_REMOTE, RS.REFUSED),
    (LS.CANCELED, RS.CANCELED),
    (LS.FAILURE, RS.FAILURE),
}
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Cluster:
    """Server nodes sharing one Redis (and one key prefix)."""

    urls: list[str]

    def phone(
        self, node: int, user: str, config: ClientConfig = FAST
    ) -> AbstractAsyncContextManager[Phone]:
        return phone(self.urls[node], user, config)

    def raw(self, node: int, user: str) -> AbstractAsyncContextManager[Raw]:
        return raw(self.urls[node], user)


@asynccontextmanager
async def cluster(
    redis_url: str, count: int, prefix: str | None = None, ttl: float = TTL
) -> AsyncIterator[Cluster]:
    """``count`` nodes in this process, each a Redis hub with its server."""
    prefix = prefix or f"e2e{secrets.token_hex(3)}"
    async with AsyncExitStack() as stack:
        hubs = [
            await stack.enter_async_context(
                open_redis_hub(
                    redis_url, node_id=f"n{i}", presence_ttl=ttl, op_timeout=1.0, prefix=prefix
                )
            )
            for i in range(count)
        ]
        nursery = await stack.enter_async_context(trio.open_nursery())
        urls = [
            (
                await nursery.start(partial(serve, "127.0.0.1", 0, hub=hub, config=ServerConfig()))
            ).url
            for hub in hubs
        ]
        yield Cluster(urls)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def nodes(shared_redis: RedisProcess) -> AsyncIterator[Cluster]:
    async with cluster(shared_redis.url, 3) as c:
        yield c


# --- a ringing invitation, every way it can end ------------------------------------------


Act = Callable[[Phone, Phone, LocalInvitation], Awaitable[None]]


async def _accept(alice: Phone, bob: Phone, inv: LocalInvitation) -> None:
    await bob.client.accept(inv.id, response="on my way")
    # Not accepted yet at bob's: only after alice's confirm comes back across the nodes.
    assert bob.client.remote_invitations[inv.id].state is RS.ACCEPT_SENT_TO_LOCAL


async def _refuse(alice: Phone, bob: Phone, inv: LocalInvitation) -> None:
    await bob.client.refuse(inv.id, response="busy")


async def _cancel(alice: Phone, bob: Phone, inv: LocalInvitation) -> None:
    await alice.client.cancel(inv)


async def _ring_out(alice: Phone, bob: Phone, inv: LocalInvitation) -> None:
    pass


def _race(first: Act, second: Act) -> Act:
    """Both calls run before either message crosses the nodes."""

    async def act(alice: Phone, bob: Phone, inv: LocalInvitation) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first, alice, bob, inv)
            nursery.start_soon(second, alice, bob, inv)

    return act


async def _bare_accept(alice: Phone, bob: Phone, inv: LocalInvitation) -> None:
    await bob.client.accept(inv.id)


@dataclass(frozen=True)
class Ending:
    act: Act
    caller_event: str
    callee_event: str
    states: tuple[LS, RS]
    response: str | None = None
    errors: tuple[LE, RE] | None = None
    #: The invitation's own lifetime (None: the callee's configured one).
    lifetime: float | None = None
    #: Then wait this long and check that late frames changed nothing.
    settle: float = 0.0


_CANCELED = Ending(
    _cancel, "LocalInvitationCanceled", "RemoteInvitationCanceled", (LS.CANCELED, RS.CANCELED)
)
_EXPIRED = Ending(
    _ring_out,
    "LocalInvitationFailure",
    "RemoteInvitationFailure",
    (LS.FAILURE, RS.FAILURE),
    errors=(LE.INVITATION_EXPIRE, RE.INVITATION_EXPIRE),
)
ENDINGS = {
    "accept with response": Ending(
        _accept,
        "LocalInvitationAccepted",
        "RemoteInvitationAccepted",
        (LS.ACCEPTED_BY_REMOTE, RS.ACCEPTED),
        response="on my way",
    ),
    "refuse with response": Ending(
        _refuse,
        "LocalInvitationRefused",
        "RemoteInvitationRefused",
        (LS.REFUSED_BY_REMOTE, RS.REFUSED),
        response="busy",
    ),
    "cancel while ringing": _CANCELED,
    "expire": _EXPIRED,
    "expire, caller's own lifetime": replace(_EXPIRED, lifetime=1.5),
    "cancel racing accept": replace(_CANCELED, act=_race(_cancel, _bare_accept), settle=1.5),
    "accept racing cancel": replace(_CANCELED, act=_race(_bare_accept, _cancel), settle=1.5),
}


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
async def test_a_ringing_invitation_ends_alike_on_both_nodes(
    nodes: Cluster, ending: Ending
) -> None:
    async with nodes.phone(0, "alice") as alice, nodes.phone(1, "bob") as bob:
        inv = await alice.client.call(
            "bob", content="lunch?", channel_id="room-1", lifetime=ending.lifetime
        )
        assert inv.state is LS.SENT_TO_REMOTE
        rang = await bob.wait_seen("RemoteInvitationReceived", inv.id, SOON)
        info = rang.event.invitation
        assert (info.caller, info.callee, info.content, info.channel_id) == (
            "alice",
            "bob",
            "lunch?",
            "room-1",
        )
        await alice.wait("LocalInvitationReceivedByPeer", inv.id, SOON)
        assert inv.state is LS.RECEIVED_BY_REMOTE

        await ending.act(alice, bob, inv)
        lifetime = ending.lifetime or FAST.lifetime
        a = await alice.wait_seen(ending.caller_event, inv.id, lifetime + SOON)
        b = await bob.wait_seen(ending.callee_event, inv.id, lifetime + SOON)
        await trio.sleep(ending.settle)
        rinv = bob.client.remote_invitations[inv.id]
        assert (inv.state, rinv.state) == ending.states
        assert alice.names(inv.id) == ["LocalInvitationReceivedByPeer", ending.caller_event]
        assert bob.names(inv.id) == ["RemoteInvitationReceived", ending.callee_event]
        if ending.response is not None:
            assert a.event.response == ending.response
        if ending.states[1] is RS.ACCEPTED:
            # Three-way handshake: the callee's ACCEPTED follows the caller's confirm.
            assert a.seq < b.seq
        if ending.errors is not None:
            assert (a.event.error, b.event.error) == ending.errors
            assert (inv.error, rinv.error) == ending.errors
            # Both sides expire with the callee's clock: the caller learns it from the callee
            # (across the nodes), not from its own backstop expire_grace later.
            assert b.at - rang.at == pytest.approx(lifetime, abs=SLACK)
            assert a.at - rang.at == pytest.approx(lifetime, abs=SLACK)


# --- before the ACK --------------------------------------------------------------------


@pytest.mark.parametrize("callee", ["offline", "online, never acks"])
async def test_no_ack_within_the_window(nodes: Cluster, callee: str) -> None:
    """PEER_OFFLINE when the callee was never logged in; PEER_NO_RESPONSE when it is logged
    in (on another node) but never ACKs, and then the callee is told it is over."""
    async with nodes.phone(0, "alice") as alice, AsyncExitStack() as stack:
        bob = None if callee == "offline" else await stack.enter_async_context(nodes.raw(1, "bob"))
        start = trio.current_time()
        inv = await alice.client.call("bob")
        assert alice.client.timer_deadline(inv) == pytest.approx(
            start + FAST.no_response_timeout, abs=SLACK
        )
        if bob is not None:
            assert (await bob.recv_peer(f.Invite, SOON)).id == inv.id
        failure = await alice.wait_seen("LocalInvitationFailure", inv.id, SOON)
        expected = LE.PEER_OFFLINE if bob is None else LE.PEER_NO_RESPONSE
        assert failure.event.error is expected
        assert inv.state is LS.FAILURE and inv.error is expected
        assert failure.at - start == pytest.approx(FAST.no_response_timeout, abs=SLACK)
        if bob is not None:
            end = await bob.recv_peer(f.End, SOON)
            assert (end.id, end.reason) == (inv.id, "no_response")


async def test_callee_logging_in_on_a_third_node_within_the_no_ack_window_still_rings(
    nodes: Cluster,
) -> None:
    async with nodes.phone(0, "alice") as alice:
        inv = await alice.client.call("bob", content="are you there?")
        await trio.sleep(FAST.no_response_timeout / 3)
        assert inv.state is LS.SENT_TO_REMOTE
        async with nodes.phone(2, "bob") as bob:
            received = await bob.wait("RemoteInvitationReceived", inv.id, within=1.0)
            assert received.invitation.content == "are you there?"
            await alice.wait("LocalInvitationReceivedByPeer", inv.id, within=1.0)
            await bob.client.accept(inv.id)
            await alice.wait("LocalInvitationAccepted", inv.id, SOON)
            await bob.wait("RemoteInvitationAccepted", inv.id, SOON)
            assert (inv.state, bob.client.remote_invitations[inv.id].state) == (
                LS.ACCEPTED_BY_REMOTE,
                RS.ACCEPTED,
            )


async def test_cancel_before_the_ack_to_an_offline_callee(nodes: Cluster) -> None:
    async with nodes.phone(0, "alice") as alice:
        inv = await alice.client.call("bob")
        await trio.sleep(0.5)
        assert inv.state is LS.SENT_TO_REMOTE
        await alice.client.cancel(inv)
        await alice.wait("LocalInvitationCanceled", inv.id, within=1.0)
        assert inv.state is LS.CANCELED
        # bob logging in on another node later is not rung.
        async with nodes.phone(1, "bob") as bob:
            await trio.sleep(FAST.no_response_timeout)
            assert "RemoteInvitationReceived" not in bob.names()
        assert alice.names(inv.id) == ["LocalInvitationCanceled"]


async def test_cancel_before_the_ack_to_a_callee_that_never_acks(nodes: Cluster) -> None:
    async with nodes.phone(0, "alice") as alice, nodes.raw(1, "bob") as bob:
        inv = await alice.client.call("bob")
        assert (await bob.recv_peer(f.Invite, SOON)).id == inv.id
        await alice.client.cancel(inv)
        canceled_at = trio.current_time()
        assert (await bob.recv_peer(f.Cancel, SOON)).id == inv.id
        # Nobody answers the cancel: alice is CANCELED after the confirm window anyway.
        seen = await alice.wait_seen("LocalInvitationCanceled", inv.id, SOON)
        assert seen.at - canceled_at == pytest.approx(FAST.confirm_timeout, abs=SLACK)
        assert inv.state is LS.CANCELED


# --- after the answer ------------------------------------------------------------------


async def test_accept_failure_when_the_caller_on_another_node_never_confirms(
    nodes: Cluster,
) -> None:
    async with nodes.raw(0, "alice") as alice, nodes.phone(1, "bob") as bob:
        await alice.send_peer("bob", f.Invite(id="inv1", content="hi"))
        await bob.wait("RemoteInvitationReceived", "inv1", SOON)
        assert (await alice.recv_peer(f.Ack, SOON)).id == "inv1"
        await bob.client.accept("inv1", response="yes")
        accepted_at = trio.current_time()
        assert (await alice.recv_peer(f.Accept, SOON)).response == "yes"
        failure = await bob.wait_seen("RemoteInvitationFailure", "inv1", SOON)
        assert failure.event.error is RE.ACCEPT_FAILURE
        assert failure.at - accepted_at == pytest.approx(FAST.confirm_timeout, abs=SLACK)
        end = await alice.recv_peer(f.End, SOON)
        assert (end.id, end.reason) == ("inv1", "accept_failure")


async def test_caller_logging_out_while_ringing_fails_the_callee_on_another_node(
    nodes: Cluster,
) -> None:
    async with nodes.phone(1, "bob") as bob:
        async with nodes.phone(0, "alice") as alice:
            inv = await alice.client.call("bob")
            await bob.wait("RemoteInvitationReceived", inv.id, SOON)
            await alice.client.logout()
            failure = await alice.wait("LocalInvitationFailure", inv.id, SOON)
            assert failure.error is LE.NOT_LOGGEDIN
        # Told by the presence channel at once, not by a timer.
        failure = await bob.wait("RemoteInvitationFailure", inv.id, within=1.0)
        assert failure.error is RE.PEER_OFFLINE
        assert bob.client.remote_invitations[inv.id].state is RS.FAILURE


# --- many at once, duplicate login -----------------------------------------------------


async def test_many_invitations_at_once_to_callees_on_every_node(nodes: Cluster) -> None:
    async with (
        nodes.phone(0, "alice") as alice,
        nodes.phone(1, "bob") as bob,
        nodes.phone(2, "carol") as carol,
        nodes.phone(0, "dave") as dave,  # on the caller's own node
    ):
        callees = {"bob": bob, "carol": carol, "dave": dave}
        # Who is called and what becomes of it, interleaved across the nodes.
        plan = [
            ("bob", "accept"),
            ("carol", "refuse"),
            ("dave", "accept"),
            ("bob", "refuse"),
            ("carol", "cancel"),
            ("bob", "accept"),
            ("carol", "ring out"),
            ("dave", "refuse"),
            ("bob", "refuse"),
            ("bob", "accept"),
        ]
        invs = [
            await alice.client.call(
                callee, content=f"#{n}", lifetime=1.5 if fate == "ring out" else None
            )
            for n, (callee, fate) in enumerate(plan)
        ]
        assert len({inv.id for inv in invs}) == len(invs)
        for inv in invs:
            await callees[inv.callee].wait("RemoteInvitationReceived", inv.id, SOON)
        for n, ((callee, fate), inv) in enumerate(zip(plan, invs, strict=True)):
            if fate == "accept":
                await callees[callee].client.accept(inv.id, response=f"yes {n}")
            elif fate == "refuse":
                await callees[callee].client.refuse(inv.id, response=f"no {n}")
            elif fate == "cancel":
                await alice.client.cancel(inv)
        for n, ((callee, fate), inv) in enumerate(zip(plan, invs, strict=True)):
            ev = await alice.wait(_CALLER_END[fate], inv.id, SOON)
            if fate in ("accept", "refuse"):
                assert ev.response == f"{'yes' if fate == 'accept' else 'no'} {n}"
            elif fate == "ring out":
                assert ev.error is LE.INVITATION_EXPIRE
            rinv = callees[callee].client.remote_invitations[inv.id]
            await callees[callee].wait_for(lambda rinv=rinv: rinv.terminal, SOON)
            assert (inv.state, rinv.state) in AGREE
            assert rinv.content == inv.content == f"#{n}"


_CALLER_END = {
    "accept": "LocalInvitationAccepted",
    "refuse": "LocalInvitationRefused",
    "cancel": "LocalInvitationCanceled",
    "ring out": "LocalInvitationFailure",
}


def _last_connection_change(p: Phone) -> tuple[CS, Why] | None:
    changes = [s.event for s in p.seen if isinstance(s.event, ConnectionStateChanged)]
    return (changes[-1].state, changes[-1].reason) if changes else None


@pytest.mark.parametrize("kicked", ["callee", "caller"])
async def test_login_on_a_third_node_kicks_the_older_session_and_its_invitations_fail(
    nodes: Cluster, kicked: str
) -> None:
    async with nodes.phone(0, "alice") as alice, nodes.phone(1, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id, SOON)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id, SOON)
        old = bob if kicked == "callee" else alice
        async with nodes.phone(2, old.user) as new:
            await old.wait_for(
                lambda: _last_connection_change(old) == (CS.ABORTED, Why.REMOTE_LOGIN), SOON
            )
            assert old.client.connection_state is CS.ABORTED
            # Both sides fail at once (the kicked one for its lost session, its peer for
            # the OFFLINE blip the kick shows before the new session is ONLINE).
            a = await alice.wait("LocalInvitationFailure", inv.id, within=1.0)
            b = await bob.wait("RemoteInvitationFailure", inv.id, within=1.0)
            assert a.error is (LE.PEER_OFFLINE if kicked == "callee" else LE.NOT_LOGGEDIN)
            assert b.error is RE.PEER_OFFLINE
            assert new.client.connection_state is CS.CONNECTED
            assert inv.id not in new.client.remote_invitations
            assert inv.id not in new.client.local_invitations
            # The kicked client stays quiet: it does not reconnect and take over again.
            await trio.sleep(TTL)
            assert old.client.connection_state is CS.ABORTED
            assert new.client.connection_state is CS.CONNECTED
            # And the new session is the one reachable, from every node.
            peer = bob if kicked == "caller" else alice
            assert await peer.client.send_message_to_peer(new.user, "hi") is PME.OK
            await new.wait("MessageFromPeer", within=SOON)


# --- a node killed while its users' invitations ring -------------------------------------


@asynccontextmanager
async def node_process(
    redis_url: str, prefix: str, node_id: str, ttl: float = TTL
) -> AsyncIterator[tuple[subprocess.Popen[str], str]]:
    """A node in its own process (so it can be SIGKILLed) and its URL."""
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
        [sys.executable, "-m", "tests.redis.node", "--redis", redis_url,
         "--node-id", node_id, "--ttl", str(ttl), "--prefix", prefix],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        with trio.fail_after(20):
            url = await trio.to_thread.run_sync(proc.stdout.readline, abandon_on_cancel=True)
        assert url.startswith("ws://"), f"node {node_id} did not start: {url!r}"
        yield proc, url.strip()
    finally:
        proc.kill()
        await trio.to_thread.run_sync(proc.wait)


#: The peers on other nodes reach a terminal state within this after a node dies: its
#: users' registrations expire at most TTL after their last refresh (which came before the
#: kill), and the survivors re-read watched users every TTL/3.
BOUND = TTL + POLL
#: The killed node's own clients: they stop reconnecting (ABORTED) this long after the drop.
GIVE_UP = 1.0


@pytest.mark.parametrize("doomed", ["callee", "caller"])
async def test_a_killed_node_s_invitations_end_on_the_other_node_within_the_bound(
    shared_redis: RedisProcess, doomed: str
) -> None:
    """SIGKILL the node of one side while the invitation rings.

    * The killed user's presence is OFFLINE within the TTL: no query sent later than TTL
      after the kill answers ONLINE, and one answers OFFLINE within TTL + SLACK.
    * The peer on the surviving node reaches FAILURE/PEER_OFFLINE within the documented
      bound, TTL + TTL/3 (+ SLACK) after the kill, through presence: its own windows are
      30 s, so no timer of its own can be what ends it.
    * The killed side's client fails its end once it gives up reconnecting: both ends agree
      (FAILURE, FAILURE).
    """
    prefix = f"kill{secrets.token_hex(3)}"
    patient = ClientConfig(no_response_timeout=30, lifetime=30, confirm_timeout=30)
    async with (
        node_process(shared_redis.url, prefix, "doomed") as (proc, doomed_url),
        cluster(shared_redis.url, 1, prefix) as survivors,
    ):

        def place(role: str) -> tuple[str, ClientConfig]:
            if role == doomed:
                return doomed_url, replace(patient, give_up_after=GIVE_UP)
            return survivors.urls[0], patient

        (alice_url, alice_config), (bob_url, bob_config) = place("caller"), place("callee")
        async with (
            phone(alice_url, "alice", alice_config) as alice,
            phone(bob_url, "bob", bob_config) as bob,
        ):
            inv = await alice.client.call("bob")
            await bob.wait("RemoteInvitationReceived", inv.id, SOON)
            await alice.wait("LocalInvitationReceivedByPeer", inv.id, SOON)
            rinv = bob.client.remote_invitations[inv.id]
            survivor, lost = (alice, bob) if doomed == "callee" else (bob, alice)

            proc.kill()
            killed_at = trio.current_time()
            last_online_asked = offline_told = killed_at

            async def watch_presence() -> None:
                nonlocal last_online_asked, offline_told
                while True:
                    asked = trio.current_time()
                    states = await survivor.client.query_peers_online_status([lost.user])
                    if states[lost.user] is PS.OFFLINE:
                        offline_told = trio.current_time()
                        return
                    last_online_asked = asked
                    await trio.sleep(0.02)

            name = "LocalInvitationFailure" if survivor is alice else "RemoteInvitationFailure"
            with trio.fail_after(BOUND + SOON):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch_presence)
                    ended = await survivor.wait_seen(name, inv.id)
            assert last_online_asked - killed_at <= TTL
            assert offline_told - killed_at <= TTL + SLACK
            assert ended.event.error in (LE.PEER_OFFLINE, RE.PEER_OFFLINE)
            assert ended.at - killed_at <= BOUND + SLACK
            sent = await survivor.client.send_message_to_peer(lost.user, "x")
            assert sent is PME.PEER_UNREACHABLE
            await lost.wait_for(lambda: inv.terminal and rinv.terminal, GIVE_UP + SOON)
            assert lost.client.connection_state is CS.ABORTED
            assert (inv.state, rinv.state) == (LS.FAILURE, RS.FAILURE)
            lost_error = LE.PEER_OFFLINE if doomed == "callee" else LE.NOT_LOGGEDIN
            assert (inv.error, rinv.error) == (lost_error, RE.PEER_OFFLINE)


async def test_a_killed_node_is_found_gone_at_once_through_its_links(
    shared_redis: RedisProcess,
) -> None:
    """With node links, a SIGKILLed node is not waited out for a TTL (30 s here): the node
    linked to it finds its link port refusing, drops it, and says so on the presence
    stream. So, within a second or two of the kill, the callee on that node sees the
    ringing invitation fail (PEER_OFFLINE: the caller went offline), a send to the killed
    user answers PEER_UNREACHABLE, and a third node that never linked to it answers its
    presence OFFLINE too."""
    prefix = f"gone{secrets.token_hex(3)}"
    patient = ClientConfig(no_response_timeout=30, lifetime=30, confirm_timeout=30)
    async with (
        node_process(shared_redis.url, prefix, "doomed", ttl=30) as (proc, doomed_url),
        cluster(shared_redis.url, 2, prefix, ttl=30) as survivors,
        phone(doomed_url, "alice", replace(patient, give_up_after=GIVE_UP)) as alice,
        survivors.phone(0, "bob", patient) as bob,
        survivors.phone(1, "carol", patient) as carol,
    ):
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id, SOON)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id, SOON)
        states = await carol.client.query_peers_online_status(["alice", "bob"])
        assert states == {"alice": PS.ONLINE, "bob": PS.ONLINE}

        proc.kill()
        killed_at = trio.current_time()
        ended = await bob.wait_seen("RemoteInvitationFailure", inv.id, SOON)
        assert ended.event.error is RE.PEER_OFFLINE
        assert ended.at - killed_at <= 2.0
        assert await bob.client.send_message_to_peer("alice", "x") is PME.PEER_UNREACHABLE
        with trio.fail_after(2.0):  # (carol's node never linked to the killed one)
            while True:
                states = await carol.client.query_peers_online_status(["alice"])
                if states["alice"] is PS.OFFLINE:
                    break
                await trio.sleep(0.05)
        # The others are unaffected.
        assert await carol.client.send_message_to_peer("bob", "still here") is PME.OK
