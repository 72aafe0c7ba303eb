"""Heartbeats: fast (3 s, cut after 10 s of silence) while an invitation is in progress,
standby (30 s, cut after 90 s) otherwise — what an idle user costs the server, and how
soon a dead line is noticed in each mode."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock
from wsproto.events import Ping as WsPing

from rtmcall.engine import frames as f
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import LocalInvitationError as LE
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.server import Server, _ws
from rtmcall.server.connection import Connection

from .conftest import Phone, Proxy, phone, raw


async def cut_by_the_server(server: Server, before: int, within: float) -> None:
    """Wait until the server has cut one more connection for silence."""
    with trio.fail_after(within):
        while server.stats.idle_timeouts == before:  # noqa: ASYNC110 - a counter, no event
            await trio.sleep(0.1)


def conn_of(server: Server, user: str) -> Connection:
    found = [c for c in server.live if c.session is not None and c.session.user == user]
    assert len(found) == 1, found
    return found[0]


async def test_an_idle_client_pings_every_30_s_and_is_never_cut(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice:
        assert conn_of(server, "alice").silence_limit == 90.0  # standby from login on
        start_in, start_out = server.stats.frames_in, server.stats.frames_out
        await trio.sleep(305)
        # One WebSocket ping every 30 s, answered by the WebSocket layer; no frame either
        # way (no ServerPing needed).
        assert server.stats.ws_pings == 10
        assert (server.stats.frames_in, server.stats.frames_out) == (start_in, start_out)
        assert server.stats.idle_timeouts == 0
        assert alice.client.connection_state is CS.CONNECTED
        assert conn_of(server, "alice").silence_limit == 90.0


async def test_an_invitation_switches_both_sides_to_the_fast_heartbeat_and_back(
    server: Server, autojump_clock: MockClock
) -> None:
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await alice.wait("LocalInvitationReceivedByPeer", inv.id)
        await trio.sleep(0.5)
        # Each side said "busy" at once (with its invite or its ACK), not 3 s later.
        assert conn_of(server, "alice").silence_limit == 10.0
        assert conn_of(server, "bob").silence_limit == 10.0
        before = server.stats.frames_in
        await trio.sleep(30)  # ringing: a Ping from each side every 3 s
        assert server.stats.frames_in - before >= 2 * 9
        await bob.client.refuse(inv.id)
        await alice.wait("LocalInvitationRefused", inv.id)
        assert inv.state is LS.REFUSED_BY_REMOTE
        await trio.sleep(7)  # a tick to acknowledge the last frames, the next says standby
        assert conn_of(server, "alice").silence_limit == 90.0
        assert conn_of(server, "bob").silence_limit == 90.0
        before, pings_before = server.stats.frames_in, server.stats.ws_pings
        await trio.sleep(60)
        assert server.stats.frames_in == before
        assert 2 * 1 <= server.stats.ws_pings - pings_before <= 2 * 2
        assert server.stats.idle_timeouts == 0


async def test_a_half_open_line_is_noticed_within_the_standby_heartbeat_when_idle(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    async with phone(proxy.url, "bob") as bob:
        await trio.sleep(1)
        proxy.freeze()
        frozen_at = trio.current_time()
        await bob.wait_for(lambda: bob.client.connection_state is CS.RECONNECTING, within=60)
        # The next standby Ping (at most 30 s later) goes unanswered for 9 s.
        assert trio.current_time() - frozen_at <= 30 + 9 + 0.5
        await bob.wait_for(lambda: bob.client.connection_state is CS.CONNECTED, within=30)
        assert bob.client.transport.login_ok is not None
        assert bob.client.transport.login_ok.resumed


async def test_the_server_cuts_a_silent_busy_connection_after_10_s_a_standby_one_after_90(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    """What the other side of a dead line sees: the server notices by itself."""
    async with phone(server.url, "alice") as alice, phone(proxy.url, "bob") as bob:
        inv = await alice.client.call("bob")
        await bob.wait("RemoteInvitationReceived", inv.id)
        await trio.sleep(0.5)
        proxy.blocked = True  # no reconnect either
        proxy.freeze()
        frozen_at = trio.current_time()
        await cut_by_the_server(server, 0, within=30)
        assert trio.current_time() - frozen_at <= 10 + 0.6
    proxy.blocked = False
    async with phone(server.url, "carol") as carol, phone(proxy.url, "dave") as dave:
        assert carol and dave
        await trio.sleep(1)
        cut_before = server.stats.idle_timeouts
        proxy.blocked = True
        proxy.freeze()
        frozen_at = trio.current_time()
        await cut_by_the_server(server, cut_before, within=120)
        assert 90 - 30 - 0.5 <= trio.current_time() - frozen_at <= 90 + 4.5 + 1


async def test_a_websocket_ping_keeps_a_connection_and_its_payload_may_say_standby(
    server: Server, autojump_clock: MockClock
) -> None:
    async with raw(server.url, "eve") as eve, trio.open_nursery() as nursery:
        await eve.send_frame(f.Ping())  # busy: 10 s
        assert isinstance(await eve.recv(), f.ServerPong)
        assert conn_of(server, "eve").silence_limit == 10.0
        frames: list[f.ServerFrame] = []

        async def drain() -> None:  # read (or the pongs wait behind frames), never answer
            while True:
                frames.append(f.decode_server_frame(await eve.ws.get_message()))

        nursery.start_soon(drain)
        for _ in range(5):  # any WebSocket ping shows it is alive; the mode stays
            await trio.sleep(4)
            await eve.ws.ping(b"hello")
        assert conn_of(server, "eve").silence_limit == 10.0
        await eve.ws.ping(f.STANDBY_PING)
        assert conn_of(server, "eve").silence_limit == 90.0
        await trio.sleep(40)
        await eve.ws.ping(f.STANDBY_PING + b" 2")
        assert server.stats.ws_pings == 7
        assert server.stats.idle_timeouts == 0
        assert not any(isinstance(fr, f.ServerPing) for fr in frames), frames
        nursery.cancel_scope.cancel()


async def test_a_standby_ping_without_pong_ends_the_connection_even_while_frames_flow(
    server: Server, autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line (or proxy) that loses the pongs: the client reconnects, it does not keep a
    heartbeat that waits for ever while other frames trickle in."""

    async def swallow(ws: object, event: object) -> None:
        return None

    def swallow_lone(ws: object, data: bytes) -> bytes | None:
        return b"" if data[0] == 0x89 and data[1] & 0x7F == len(data) - 6 else None

    # Both ways the server answers a ping: wsproto's event, and the lone ping's fast path.
    monkeypatch.setitem(_ws._EVENT_HANDLERS, WsPing, swallow)
    monkeypatch.setattr(_ws.ServerWebSocket, "_answer_lone_ping", swallow_lone)
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:

        async def chatter() -> None:
            for i in range(30):
                await trio.sleep(5)
                await bob.client.send_message_to_peer("alice", f"hi {i}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(chatter)
            start = trio.current_time()
            await alice.wait_for(
                lambda: alice.client.connection_state is CS.RECONNECTING, within=100
            )
            # The next standby ping (at most 30 s after the last busy tick) plus 9 s.
            assert trio.current_time() - start <= 30 + 3 + 9 + 1
            nursery.cancel_scope.cancel()


async def test_an_invitation_to_a_silently_dead_idle_callee_probes_its_line(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    """Delivering a peer message probes a connection in standby: the busy limit applies
    and the silence so far counts as half of it, so a dead line is cut ~5 s after the
    invitation instead of up to 90 s after its last heartbeat."""
    async with phone(server.url, "alice") as alice, phone(proxy.url, "bob") as bob:
        assert bob
        await trio.sleep(1)
        proxy.blocked = True
        proxy.freeze()
        await trio.sleep(40)  # bob's line has been dead (and silent) for 40 s
        assert server.stats.idle_timeouts == 0
        inv = await alice.client.call("bob")
        sent = trio.current_time()
        await cut_by_the_server(server, 0, within=30)
        assert 4.5 <= trio.current_time() - sent <= 6.1
        # Bob was online when called and never ACKed: PEER_NO_RESPONSE after the 30 s
        # no-ACK window, per the SPEC (the probe does not change the outcome, only how
        # soon presence shows bob OFFLINE).
        failed = await alice.wait_seen("LocalInvitationFailure", inv.id, within=60)
        assert failed.event.error is LE.PEER_NO_RESPONSE


async def test_busy_clients_whose_messages_flow_both_ways_send_no_pings(
    server: Server, autojump_clock: MockClock
) -> None:
    """A Send carries the ack of the Delivers received, and a Deliver the rid the server
    has handled: while frames flow both ways they are the heartbeat."""
    async with phone(server.url, "alice") as alice, phone(server.url, "bob") as bob:
        inv = await alice.client.call("bob")  # both sides busy from here on
        await bob.wait("RemoteInvitationReceived", inv.id)
        await trio.sleep(4)
        pings = server.stats.pings

        async def talk(sender: Phone, to: str) -> None:
            for i in range(20):
                await sender.client.send_message_to_peer(to, f"m{i}")
                await trio.sleep(1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(talk, alice, "bob")
            nursery.start_soon(talk, bob, "alice")
        assert server.stats.pings - pings <= 2  # ~13 with a Ping every 3 s each
        for user, p in (("alice", alice), ("bob", bob)):
            session = conn_of(server, user).session
            assert session is not None
            assert len(session.unacked or ()) <= 2  # acknowledged on the Sends
            assert not p.client.transport._requests  # the quiet invite/ACK retired too
        assert server.stats.idle_timeouts == 0
