"""Scale-out without loss (issue 14): every peer message counted across a paused Redis and
cut Redis connections, and a session resumed on another node, over real WebSockets and a
real redis-server.

Real clock (Redis is another process); every wait is bounded.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from rtmcall.client import ClientConfig, ConnectFailed
from rtmcall.engine.codes import ConnectionChangeReason, PeerMessageError, PeerOnlineState
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.codes import RemoteInvitationState as RS
from rtmcall.server import ServerConfig, serve
from rtmcall.server.redis import RedisHub, open_redis_hub
from rtmcall.server.redis.resp import RedisAddress, RedisConnection

from ..e2e.conftest import Proxy, phone
from .redisproc import RedisProcess, free_port

TTL = 1.5


@asynccontextmanager
async def cluster(
    redis_url: str,
    count: int,
    *,
    op_timeout: float = 0.5,
    links: bool = True,
    ttl: float = TTL,
    hub: dict[str, Any] | None = None,
    **config: Any,
) -> AsyncIterator[list[tuple[Any, RedisHub]]]:
    """``count`` nodes n0, n1, … (``hub``: more open_redis_hub options, ``config`` the
    servers' ServerConfig)."""
    prefix = f"s{secrets.token_hex(3)}"
    async with AsyncExitStack() as stack:
        hubs = [
            await stack.enter_async_context(
                open_redis_hub(
                    redis_url,
                    node_id=f"n{i}",
                    presence_ttl=ttl,
                    op_timeout=op_timeout,
                    prefix=prefix,
                    links=links,
                    **(hub or {}),
                )
            )
            for i in range(count)
        ]
        nursery = await stack.enter_async_context(trio.open_nursery())
        out = []
        for hub in hubs:
            start = partial(serve, "127.0.0.1", 0, hub=hub, config=ServerConfig(**config))
            out.append((await nursery.start(start), hub))
        yield out
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def node_process(
    redis_url: str, node_id: str, prefix: str, ttl: float
) -> AsyncIterator[tuple[subprocess.Popen[str], str]]:
    """A node in its own process (``tests.redis.node``, so that it can be SIGKILLed) and
    its URL; killed on the way out."""
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
        [sys.executable, "-m", "tests.redis.node", "--redis", redis_url,
         "--node-id", node_id, "--ttl", str(ttl), "--prefix", prefix],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield proc, (await trio.to_thread.run_sync(proc.stdout.readline)).strip()
    finally:
        proc.kill()
        await trio.to_thread.run_sync(proc.wait)


@asynccontextmanager
async def alice_and_bob(
    redis_url: str, a: dict[str, Any], b: dict[str, Any], **common: Any
) -> AsyncIterator[tuple[WebSocketConnection, WebSocketConnection, RedisHub, RedisHub]]:
    """alice logged in on node n0 and bob on n1 (``a``, ``b``: their open_redis_hub
    options, ``common`` both's)."""
    hub = partial(open_redis_hub, redis_url, prefix=f"p{secrets.token_hex(3)}", **common)
    async with (
        hub(node_id="n0", **a) as hub_a,
        hub(node_id="n1", **b) as hub_b,
        trio.open_nursery() as nursery,
    ):
        node_a = await nursery.start(partial(serve, "127.0.0.1", 0, hub=hub_a))
        node_b = await nursery.start(partial(serve, "127.0.0.1", 0, hub=hub_b))
        async with open_websocket_url(node_a.url) as wa, open_websocket_url(node_b.url) as wb:
            await login(wa, "alice")
            await login(wb, "bob")
            yield wa, wb, hub_a, hub_b
        nursery.cancel_scope.cancel()


async def send(ws: WebSocketConnection, frame: dict) -> None:
    await ws.send_message(json.dumps(frame))


async def recv(ws: WebSocketConnection, t: str | None = None, within: float = 10) -> dict:
    with trio.fail_after(within):
        while True:
            frame = json.loads(await ws.get_message())
            if frame["t"] == "ping":
                await send(ws, {"t": "pong"})  # alive (the server pings busy clients)
                continue
            if t is None or frame["t"] == t:
                return frame


async def login(ws: WebSocketConnection, user: str, **extra: Any) -> dict:
    await send(ws, {"t": "login", "user": user, **extra})
    reply = await recv(ws)
    assert reply["t"] == "login_ok", reply
    return reply


async def delivered(
    sender: WebSocketConnection, receiver: WebSocketConnection, to: str, msg: dict, rid: int = 1
) -> None:
    """``sender`` sends ``msg`` to ``to`` (on ``receiver``): it arrives, and is answered OK."""
    await send(sender, {"t": "send", "rid": rid, "to": to, "msg": msg})
    assert (await recv(receiver, "msg"))["msg"] == msg
    assert (await recv(sender, "result")).get("code", 0) == 0


async def linked(ha: RedisHub, hb: RedisHub, within: float) -> None:
    """Until each of the two nodes has its link to the other up."""
    with trio.fail_after(within):
        while not all(  # noqa: ASYNC110 - polling two hubs' links
            h._links is not None
            and (peer := h._links.peers.get(other.node_id)) is not None
            and peer.up
            for h, other in ((ha, hb), (hb, ha))
        ):
            await trio.sleep(0.02)


async def kill_connections(redis_url: str, node: str) -> int:
    """CLIENT KILL every connection of node ``node`` (its command and inbox readers)."""
    async with RedisConnection(RedisAddress.from_url(redis_url)) as admin:
        listing = (await admin.call("CLIENT", "LIST")).decode()
        killed = 0
        for line in listing.splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
            if fields.get("name") in (f"rtmcall-{node}", f"rtmcall-{node}-r"):
                killed += int(await admin.call("CLIENT", "KILL", "ID", fields["id"]))
        return killed


class Counter:
    """Peer messages ``sender`` -> ``receiver``, one every ``gap`` s, each one checked."""

    def __init__(self, sender: WebSocketConnection, receiver: WebSocketConnection, to: str):
        self.sender = sender
        self.receiver = receiver
        self.to = to
        self.codes: dict[int, int] = {}
        self.got: list[int] = []

    async def send_all(self, count: int, gap: float) -> None:
        for i in range(count):
            msg = {"k": "text", "text": str(i)}
            await send(self.sender, {"t": "send", "rid": i + 1, "to": self.to, "msg": msg})
            await trio.sleep(gap)


async def _count_through(
    outage: Any, redis: RedisProcess, count: int = 120, links: bool = True, **hub: Any
) -> list[RedisHub]:
    """``count`` messages each way between alice (node n0) and bob (n1), ``outage()``
    during them: every one answered OK and delivered once, in order. Returns the hubs."""
    async with cluster(redis.url, 2, links=links, hub=hub) as [(a, hub_a), (b, hub_b)]:
        async with open_websocket_url(a.url) as wa, open_websocket_url(b.url) as wb:
            await login(wa, "alice")
            await login(wb, "bob")
            there = Counter(wa, wb, "bob")
            back = Counter(wb, wa, "alice")
            # alice's socket carries her Results and bob's messages: one reader per socket.
            async with trio.open_nursery() as nursery:

                async def read_alice() -> None:
                    while len(there.codes) < count or len(back.got) < count:
                        frame = await recv(wa, within=30)
                        if frame["t"] == "result":
                            there.codes[frame["rid"]] = frame.get("code", 0)
                        elif frame["t"] == "msg":
                            back.got.append(int(frame["msg"]["text"]))

                async def read_bob() -> None:
                    while len(back.codes) < count or len(there.got) < count:
                        frame = await recv(wb, within=30)
                        if frame["t"] == "result":
                            back.codes[frame["rid"]] = frame.get("code", 0)
                        elif frame["t"] == "msg":
                            there.got.append(int(frame["msg"]["text"]))

                nursery.start_soon(read_alice)
                nursery.start_soon(read_bob)
                nursery.start_soon(there.send_all, count, 0.02)
                nursery.start_soon(back.send_all, count, 0.02)
                await trio.sleep(0.6)
                await outage([hub_a, hub_b])
            for c in (there, back):
                assert c.codes == {i + 1: 0 for i in range(count)}, c.codes
                assert c.got == list(range(count))  # all of them, in order, once
            with trio.move_on_after(0.5):
                frame = await recv(wb, "msg")
                raise AssertionError(f"a message delivered twice: {frame}")
    return [hub_a, hub_b]


@pytest.mark.parametrize("links", [True, False], ids=["links", "streams"])
async def test_no_peer_message_lost_or_doubled_across_a_2s_redis_pause(
    own_redis: RedisProcess, links: bool
) -> None:
    async def outage(hubs: list[RedisHub]) -> None:
        own_redis.pause()
        await trio.sleep(2.0)
        own_redis.resume()

    await _count_through(outage, own_redis, links=links)


@pytest.mark.parametrize("links", [True, False], ids=["links", "streams"])
async def test_no_peer_message_lost_or_doubled_when_a_node_s_redis_connections_are_cut(
    own_redis: RedisProcess, links: bool
) -> None:
    async def outage(hubs: list[RedisHub]) -> None:
        for node in ("n1", "n0", "n1"):
            assert await kill_connections(own_redis.url, node) >= 1
            await trio.sleep(0.3)

    await _count_through(outage, own_redis, links=links)


async def test_a_login_right_after_the_node_s_redis_connections_were_cut_succeeds(
    own_redis: RedisProcess,
) -> None:
    """Redis is up; only the node's idle command connection was closed (CLIENT KILL, an
    idle timeout). The next command finds that out before writing and connects again, so
    the first login, query and health check after it do not fail."""
    async with cluster(own_redis.url, 1) as [(server, hub)]:
        async with open_websocket_url(server.url) as ws:
            await login(ws, "alice")
        for round in range(3):
            assert await kill_connections(own_redis.url, "n0") >= 1
            async with open_websocket_url(server.url) as ws:
                await login(ws, f"bob{round}")  # (refused: "presence store unavailable")
                await send(ws, {"t": "query", "rid": 1, "users": [f"bob{round}", "zed"]})
                reply = await recv(ws, "presence")  # (zed: looked up in Redis)
                assert reply["states"] == {f"bob{round}": 0, "zed": 2}, reply
            with trio.fail_after(2):  # (its inbox reader reconnects after a short backoff)
                while not (await hub.health()).ok:  # noqa: ASYNC110 - polling health is the point
                    await trio.sleep(0.05)


async def test_a_user_s_last_message_arrives_before_their_offline_whatever_the_path(
    own_redis: RedisProcess,
) -> None:
    """bob (node n1) sends alice (n0) a last message and logs out: the message goes over
    the link, his OFFLINE through the presence stream in Redis. However late the link
    delivers (held back here), alice sees the message first, then bob OFFLINE, as on one
    node (a caller's hang-up, then his logout: the callee's call ends HANGUP_REMOTE, not
    PEER_OFFLINE)."""
    async with bob_watched_by_alice(own_redis.url) as (wa, wb, hub_b):
        msg = {"k": "text", "text": "first"}
        await send(wb, {"t": "send", "rid": 2, "to": "alice", "msg": msg})
        assert (await recv(wa, "msg"))["msg"]["text"] == "first"  # (the link is up)
        peer = hub_b._links.peers["n0"]
        write = peer._write
        async with trio.open_nursery() as nursery:

            def late(data: bytes | bytearray) -> None:
                async def later() -> None:
                    await trio.sleep(0.5)
                    write(data)

                nursery.start_soon(later)

            peer._write = late  # type: ignore[method-assign]
            await says_then_logs_out(wb, wa, "last")
            peer._write = write  # type: ignore[method-assign]


@asynccontextmanager
async def bob_watched_by_alice(
    redis_url: str, **hub: Any
) -> AsyncIterator[tuple[WebSocketConnection, WebSocketConnection, RedisHub]]:
    """alice on node n0 subscribed to bob on n1; their sockets and bob's hub."""
    async with cluster(redis_url, 2, hub=hub) as [(a, _), (b, hub_b)]:
        async with open_websocket_url(a.url) as wa, open_websocket_url(b.url) as wb:
            await login(wa, "alice")
            await login(wb, "bob")
            await send(wa, {"t": "sub", "rid": 1, "users": ["bob"]})
            assert (await recv(wa, "presence"))["states"] == {"bob": 0}
            yield wa, wb, hub_b


async def says_then_logs_out(wb: WebSocketConnection, wa: WebSocketConnection, text: str) -> None:
    """bob sends alice ``text`` and logs out at once: alice (subscribed to him) gets the
    message, then his OFFLINE."""
    msg = {"k": "text", "text": text}
    await send(wb, {"t": "send", "rid": 99, "to": "alice", "msg": msg})
    while (await recv(wb, "result"))["rid"] != 99:
        pass
    await send(wb, {"t": "logout"})
    frames = []
    while len(frames) < 2:
        frame = await recv(wa)
        if frame["t"] in ("msg", "presence"):
            frames.append(frame)
    assert frames[0]["t"] == "msg" and frames[0]["msg"]["text"] == text, frames
    assert frames[1]["states"] == {"bob": PeerOnlineState.OFFLINE}, frames


async def test_a_first_message_to_another_node_arrives_before_the_sender_s_offline(
    own_redis: RedisProcess,
) -> None:
    """bob's node has never sent to alice's: his first message there waits while it
    reads how to reach that node (held back 0.5 s here), and his OFFLINE, right after,
    waits for it (a one-shot callee that refuses and exits: the caller sees REFUSED)."""
    # (A node heard from is linked to at once; here bob's node has not heard of alice's.)
    async with bob_watched_by_alice(own_redis.url, link_eagerly=False) as (wa, wb, hub_b):
        links = hub_b._links
        assert "n0" not in links.peers
        node_link = links._node_link

        async def slowly(node: str) -> Any:
            await trio.sleep(0.5)
            return await node_link(node)

        links._node_link = slowly  # type: ignore[method-assign]
        await says_then_logs_out(wb, wa, "no")


@pytest.mark.parametrize(
    ("hub", "family"),
    [({}, socket.AF_UNIX), ({"link_advertise": "127.0.0.1"}, socket.AF_INET)],
    ids=["local-socket", "tcp"],
)
async def test_no_peer_message_lost_or_doubled_when_the_node_links_are_cut(
    own_redis: RedisProcess, hub: dict[str, Any], family: int
) -> None:
    """Nodes on one host link over a local socket; an address given by hand is used as
    it is (over TCP). Either way a cut link loses nothing."""
    peers: list[Any] = []

    async def outage(hubs: list[RedisHub]) -> None:
        for hub, other in ((hubs[0], "n1"), (hubs[1], "n0"), (hubs[0], "n1")):
            sock = hub._links.peers[other]._sock
            assert sock is not None and sock.family == family
            sock.shutdown(socket.SHUT_RDWR)  # both ways, with whatever was on the wire
            await trio.sleep(0.3)
        # (Kept: once the nodes stop, each finds the other gone and forgets its link.)
        peers.extend(h._links.peers[o] for h, o in zip(hubs, ("n1", "n0"), strict=True))

    # (Linked with the first message: the cut then catches batches in flight more often
    # than with links made before the traffic, and ``resent`` shows they were sent again.)
    found = await _count_through(outage, own_redis, link_eagerly=False, **hub)
    assert sum(p.batches for p in peers) >= 240  # it went over the links
    assert sum(p.resent for p in peers) >= 1 and sum(p.connects for p in peers) >= 5
    # Nothing went through Redis: the inboxes stayed empty.
    async with RedisConnection(RedisAddress.from_url(own_redis.url)) as admin:
        for hub in found:
            assert await admin.call("XLEN", hub._inbox) == 0


async def test_a_session_resumes_on_another_node_with_its_messages_and_answers(
    shared_redis: RedisProcess,
) -> None:
    async with cluster(shared_redis.url, 3) as [(a, ha), (b, hb), (c, hc)]:
        async with open_websocket_url(a.url) as wa:
            await login(wa, "alice")
            await send(wa, {"t": "sub", "rid": 100, "users": ["bob"]})
            assert (await recv(wa, "presence"))["states"] == {"bob": PeerOnlineState.OFFLINE}
            async with open_websocket_url(b.url) as wb:
                ok = await login(wb, "bob")
                sid = ok["session"]
                assert (await recv(wa, "presence"))["states"] == {"bob": 0}
                await send(wb, {"t": "sub", "rid": 1, "users": ["alice"]})
                assert (await recv(wb, "presence"))["states"] == {"alice": 0}
                for i in range(3):
                    msg = {"k": "text", "text": f"m{i}"}
                    await send(wa, {"t": "send", "rid": i + 1, "to": "bob", "msg": msg})
                    assert (await recv(wa, "result")).get("code", 0) == 0
                got = [await recv(wb, "msg") for _ in range(3)]
                # bob's Send whose Result he will not see before the drop.
                await send(wb, {"t": "send", "rid": 2, "to": "alice",
                                "msg": {"k": "text", "text": "from bob"}})  # fmt: skip
                assert (await recv(wa, "msg"))["msg"]["text"] == "from bob"
            # bob's connection is gone (no logout): detached on node b, inside the window.
            assert (await recv(wa, "presence"))["states"] == {"bob": 1}
            for i in range(3, 5):
                msg = {"k": "text", "text": f"m{i}"}
                await send(wa, {"t": "send", "rid": i + 1, "to": "bob", "msg": msg})
                code = (await recv(wa, "result")).get("code", 0)
                assert code == PeerMessageError.CACHED_BY_SERVER
            # He comes back through a balancer without affinity: on node c.
            async with open_websocket_url(c.url) as wc:
                ok = await login(wc, "bob", resume=sid, ack=got[0]["seq"])
                assert ok["resumed"] is True and ok["session"] == sid
                # Everything after his ack, in order, once: m1, m2 (unacked), m3, m4.
                replayed = [await recv(wc, "msg") for _ in range(4)]
                assert [m["msg"]["text"] for m in replayed] == ["m1", "m2", "m3", "m4"]
                assert [m["seq"] for m in replayed] == [g["seq"] for g in got[1:]] + [
                    got[2]["seq"] + 1,
                    got[2]["seq"] + 2,
                ]
                assert (await recv(wa, "presence"))["states"] == {"bob": 0}
                # His repeated Send is answered again, not delivered twice.
                await send(wc, {"t": "send", "rid": 2, "to": "alice",
                                "msg": {"k": "text", "text": "from bob"}})  # fmt: skip
                assert (await recv(wc, "result"))["rid"] == 2
                # New messages reach him on node c; node b holds nothing of him.
                await send(wa, {"t": "send", "rid": 9, "to": "bob",
                                "msg": {"k": "text", "text": "m5"}})  # fmt: skip
                assert (await recv(wa, "result")).get("code", 0) == 0
                assert (await recv(wc, "msg"))["msg"]["text"] == "m5"
                with trio.move_on_after(0.5):
                    frame = await recv(wc, "msg")
                    raise AssertionError(f"delivered twice: {frame}")
                assert "bob" not in hb._local and hc._local["bob"].id == sid
                assert hb.handovers_out == 1 and hc.handovers_in == 1
                # His subscription came along: alice's presence still reaches him.
                await send(wa, {"t": "logout"})
                assert (await recv(wc, "presence"))["states"] == {"alice": 2}
        assert ha.dropped == 0


async def test_a_resume_on_another_node_survives_a_refresh_during_its_hand_over(
    shared_redis: RedisProcess,
) -> None:
    """The node's registration refresh runs after the session's state came from the old
    node and before this node took the registration (which still names the old node): the
    refresh leaves it alone (it kicked it, as if another node had the user, and the
    resume became a fresh login)."""
    async with cluster(shared_redis.url, 2) as [(a, _), (b, hb)]:
        async with open_websocket_url(a.url) as wa:
            sid = (await login(wa, "bob"))["session"]
        take = hb._take

        async def refresh_first(redis: Any, keys: list[str], args: list[Any]) -> Any:
            await hb._refresh([s for s in hb._local.values() if not s.ended])
            return await take(redis, keys, args)

        hb._take = refresh_first  # type: ignore[method-assign]
        async with open_websocket_url(b.url) as wb:
            ok = await login(wb, "bob", resume=sid)
            assert ok.get("resumed") is True and ok["session"] == sid, ok
            assert hb._local["bob"].id == sid and not hb._local["bob"].ended
            with trio.move_on_after(0.3):
                frame = await recv(wb, "kicked")
                raise AssertionError(f"the resumed session was kicked: {frame}")


async def test_a_session_handed_over_while_its_drop_was_being_noticed_leaves_no_stale_copy(
    shared_redis: RedisProcess,
) -> None:
    """bob's line drops and he resumes on node b before node a has finished noticing the
    drop (its presence update still on the way to Redis): node a hands the session over
    and keeps no detached copy of it, so when bob comes back to node a later, he resumes
    there (from node b) instead of finding that stale copy and logging in afresh, which
    lost what was sent to him meanwhile."""
    async with cluster(shared_redis.url, 2) as [(a, ha), (b, _)]:
        update = ha.update
        dropping = trio.Event()

        async def slow_update(session: Any) -> None:
            if session.user == "bob" and session.link is None and not dropping.is_set():
                dropping.set()  # (the drop's detach)
                await trio.sleep(0.5)
            await update(session)

        ha.update = slow_update  # type: ignore[method-assign]
        async with open_websocket_url(a.url) as wa:
            await login(wa, "alice")
            async with open_websocket_url(a.url) as old:
                sid = (await login(old, "bob"))["session"]
            await dropping.wait()
            async with open_websocket_url(b.url) as wb:
                ok = await login(wb, "bob", resume=sid)
                assert ok.get("resumed") is True and ok["session"] == sid, ok
                await send(wa, {"t": "send", "rid": 1, "to": "bob",
                                "msg": {"k": "text", "text": "to b"}})  # fmt: skip
                assert (await recv(wa, "result")).get("code", 0) == 0
                got = await recv(wb, "msg")
            await trio.sleep(0.7)  # (node a's update is done; bob is detached on node b)
            assert sid not in a.sessions
            await send(wa, {"t": "send", "rid": 2, "to": "bob",
                            "msg": {"k": "text", "text": "while away"}})  # fmt: skip
            assert (await recv(wa, "result"))["code"] == PeerMessageError.CACHED_BY_SERVER
            async with open_websocket_url(a.url) as back:
                ok = await login(back, "bob", resume=sid, ack=got["seq"])
                assert ok.get("resumed") is True and ok["session"] == sid, ok
                assert (await recv(back, "msg"))["msg"]["text"] == "while away"


@pytest.mark.parametrize("where", ["one node", "two nodes"])
async def test_of_two_logins_at_the_same_instant_the_later_kicks_the_earlier(
    shared_redis: RedisProcess, where: str
) -> None:
    """SPEC §3 whatever the timing: two logins of one user at once (the first one's answer
    from Redis handled late: on one node, after the second login's; across nodes, after
    the other node's kick for it came). The one Redis took first is kicked (REMOTE_LOGIN),
    the other is the user's session: messages reach it, and its logout leaves the user
    OFFLINE (no registration of the kicked one left behind). A long TTL: the refresh,
    which would find the registration taken and kick the loser at last, does not come."""
    async with cluster(shared_redis.url, 2, ttl=30) as [(a, ha), (b, hb)]:
        take = ha._take
        calls = 0

        async def first_answer_late(redis: Any, keys: list[str], args: list[Any]) -> Any:
            nonlocal calls
            calls += 1
            answer = await take(redis, keys, args)
            if calls == 1:
                await trio.sleep(0.3)
            return answer

        ha._take = first_answer_late  # type: ignore[method-assign]
        second = b if where == "two nodes" else a
        async with (
            open_websocket_url(a.url) as w1,
            open_websocket_url(second.url) as w2,
            open_websocket_url(b.url) as wc,
        ):
            await login(wc, "carol")
            await send(w1, {"t": "login", "user": "dan"})
            await trio.sleep(0.1)  # (the first TAKE is in Redis; its answer is held)
            await send(w2, {"t": "login", "user": "dan"})
            assert (await recv(w1))["t"] == "login_ok"
            assert (await recv(w2))["t"] == "login_ok"
            kicked = await recv(w1, "kicked", within=3)
            assert kicked["reason"] == ConnectionChangeReason.REMOTE_LOGIN
            with trio.move_on_after(0.5):
                frame = await recv(w2, "kicked")
                raise AssertionError(f"the later login was kicked too: {frame}")
            await delivered(wc, w2, "dan", {"k": "text", "text": "to the later one"})
            await send(w2, {"t": "logout"})
            await trio.sleep(0.3)
            for hub in (ha, hb):
                assert await hub.presence(["dan"]) == {"dan": PeerOnlineState.OFFLINE}


async def test_an_unknown_or_ended_session_on_another_node_is_a_fresh_login(
    shared_redis: RedisProcess,
) -> None:
    async with cluster(shared_redis.url, 2) as [(a, _), (b, _)]:
        async with open_websocket_url(a.url) as wa:
            ok = await login(wa, "bob")
            await send(wa, {"t": "logout"})
        async with open_websocket_url(b.url) as wb:
            again = await login(wb, "bob", resume=ok["session"])
            assert again.get("resumed", False) is False and again["session"] != ok["session"]
        async with open_websocket_url(b.url) as wb:
            fresh = await login(wb, "carol", resume="no-such-session")
            assert fresh.get("resumed", False) is False


FAST = ClientConfig(no_response_timeout=2.0, lifetime=6.0, confirm_timeout=2.0, expire_grace=1.0)


async def test_a_callee_behind_a_balancer_resumes_on_another_node_and_the_call_completes(
    shared_redis: RedisProcess,
) -> None:
    async with cluster(shared_redis.url, 2) as [(a, _), (b, hb)]:
        async with trio.open_nursery() as nursery:
            balancer = await nursery.start(Proxy(a.port).run)
            async with (
                phone(b.url, "alice", FAST) as alice,
                phone(balancer.url, "bob", FAST) as bob,
            ):
                inv = await alice.client.call("bob")
                await bob.wait("RemoteInvitationReceived", inv.id, within=5)
                await alice.wait("LocalInvitationReceivedByPeer", inv.id, within=5)
                balancer.target_port = b.port  # new connections land on the other node
                balancer.cut()
                await bob.wait_for(lambda: bob.client.transport.login_ok is not None
                                   and bob.client.transport.login_ok.resumed, 10)  # fmt: skip
                assert balancer.connections == 2
                assert hb._local["bob"] is not None
                assert bob.client.remote_invitations[inv.id].state is RS.INVITATION_RECEIVED
                await bob.client.accept(inv.id, response="moved")
                assert (await alice.wait("LocalInvitationAccepted", inv.id)).response == "moved"
                await bob.wait("RemoteInvitationAccepted", inv.id)
                assert inv.state is LS.ACCEPTED_BY_REMOTE
            nursery.cancel_scope.cancel()


async def test_a_client_given_two_nodes_resumes_on_the_second_when_the_first_refuses(
    shared_redis: RedisProcess,
) -> None:
    """No balancer: bob's client is given both nodes' URLs. When its connection drops and
    its node does not answer any more, it goes to the next URL at once and resumes its
    session there (handed over), ringing invitation and all."""
    async with cluster(shared_redis.url, 2) as [(a, _), (b, hb)]:
        async with trio.open_nursery() as nursery:
            closed = trio.CancelScope()

            async def node_a_for_bob(task_status: trio.TaskStatus[Proxy]) -> None:
                with closed:
                    await Proxy(a.port).run(task_status=task_status)

            line = await nursery.start(node_a_for_bob)  # node a, as bob reaches it
            async with (
                phone(b.url, "alice", FAST) as alice,
                phone(f"{line.url}, {b.url}", "bob", FAST) as bob,
            ):
                assert bob.client.url == line.url  # the first that answers
                inv = await alice.client.call("bob")
                await bob.wait("RemoteInvitationReceived", inv.id, within=5)
                await alice.wait("LocalInvitationReceivedByPeer", inv.id, within=5)
                closed.cancel()  # bob's connection drops, and his node's port refuses
                await bob.wait_for(lambda: bob.client.url == b.url
                                   and bob.client.connection_state is CS.CONNECTED, 5)  # fmt: skip
                login = bob.client.transport.login_ok
                assert login is not None and login.resumed
                assert hb._local["bob"] is not None
                await bob.client.accept(inv.id, response="on b")
                assert (await alice.wait("LocalInvitationAccepted", inv.id)).response == "on b"
                assert inv.state is LS.ACCEPTED_BY_REMOTE
            nursery.cancel_scope.cancel()


async def test_a_client_given_nodes_that_all_refuse_says_so_for_the_last(
    shared_redis: RedisProcess,
) -> None:
    async with cluster(shared_redis.url, 1) as [(a, _)]:
        gone = trio.socket.socket()
        await gone.bind(("127.0.0.1", 0))  # bound, not listening: refused
        dead = f"ws://127.0.0.1:{gone.getsockname()[1]}"
        async with phone(f"{dead},{a.url}", "bob", FAST) as bob:
            assert bob.client.url == a.url
        with pytest.raises(ConnectFailed) as info:
            async with phone(f"{dead},{dead}/x", "carol", FAST):
                pass
        assert "127.0.0.1" in str(info.value)
        gone.close()


async def test_a_live_node_wrongly_said_gone_says_it_is_alive_and_is_reached_again(
    shared_redis: RedisProcess,
) -> None:
    """An ``X`` entry about a live node (a node whose connect to it was refused by a
    firewall, say): a node linked to it and acking ignores it; one that took it in hears
    the live node's answer and reaches its users again within a second. (Nodes link
    here with their first message, not to every node heard from: c has no link to b.)"""
    eager = {"link_eagerly": False}
    async with cluster(shared_redis.url, 3, hub=eager) as [(a, ha), (b, hb), (c, hc)]:
        async with (
            phone(a.url, "alice", FAST) as alice,
            phone(b.url, "bob", FAST) as bob,
            phone(c.url, "carol", FAST) as carol,
        ):
            assert await alice.client.send_message_to_peer("bob", "x") is PeerMessageError.OK
            await bob.wait("MessageFromPeer", within=5)
            # node c says node b is gone (b's current process), wrongly.
            taken: dict[str, list[str]] = {"a": [], "c": []}
            for name, hub in (("a", ha), ("c", hc)):
                hub._node_gone = partial(  # type: ignore[method-assign]
                    lambda seen, gone, node, epoch: (seen.append(node), gone(node, epoch)),
                    taken[name],
                    hub._node_gone,
                )
            hc._queue(hc._presence_stream, b"X\tn2\tn1\t" + hb.epoch.encode())
            with trio.fail_after(5):
                while True:  # c takes it in (its link to b is not up); b answers "alive"
                    got = await carol.client.send_message_to_peer("bob", "y")
                    if taken["c"] and got is PeerMessageError.OK and "n1" not in hc._dead:
                        break
                    await trio.sleep(0.05)
            assert taken == {"a": [], "c": ["n1"]}  # (a's link to b was up: it never believed it)
            assert await alice.client.send_message_to_peer("bob", "z") is PeerMessageError.OK
            states = await carol.client.query_peers_online_status(["bob"])
            assert states["bob"] is PeerOnlineState.ONLINE


async def test_resuming_a_session_whose_node_died_is_a_fresh_login_elsewhere(
    shared_redis: RedisProcess,
) -> None:
    async with (
        cluster(shared_redis.url, 1, op_timeout=0.5) as [(a, ha)],
        node_process(shared_redis.url, "doomed", ha.prefix, TTL) as (proc, url),
    ):
        async with open_websocket_url(url) as wd:
            sid = (await login(wd, "bob"))["session"]
            proc.kill()
            await trio.to_thread.run_sync(proc.wait)
        start = trio.current_time()
        async with open_websocket_url(a.url) as wa:
            ok = await login(wa, "bob", resume=sid)
            # Nobody could hand the session over: a new one, told as such, at once.
            assert ok.get("resumed", False) is False and ok["session"] != sid
            assert trio.current_time() - start < 0.5 + 1.0
            assert await ha.presence(["bob"]) == {"bob": PeerOnlineState.ONLINE}


async def test_nodes_link_to_each_other_as_soon_as_they_hear_of_each_other(
    shared_redis: RedisProcess,
) -> None:
    """Nothing is sent between the nodes, yet within a second both have a link to the
    other: the new node's heartbeat tells the running one, which answers with its own
    (not at its next heartbeat, 10 s away at this TTL)."""
    hub = partial(
        open_redis_hub, shared_redis.url, presence_ttl=30, prefix=f"e{secrets.token_hex(3)}"
    )
    async with hub(node_id="n0") as ha, hub(node_id="n1") as hb:
        await linked(ha, hb, within=1)
        assert ha._links.peers["n1"].batches == hb._links.peers["n0"].batches == 0


async def test_a_node_restarted_with_links_is_linked_to_where_it_had_none(
    shared_redis: RedisProcess,
) -> None:
    """n1 runs without links (``--no-links``): n0 reaches it through its inbox. Restarted
    with links under the same name, it is a new process: n0 decides again and links."""
    prefix = f"w{secrets.token_hex(3)}"
    hub = partial(open_redis_hub, shared_redis.url, presence_ttl=TTL, op_timeout=0.5, prefix=prefix)
    msg = {"k": "text", "text": "hi"}
    async with hub(node_id="n0") as ha, trio.open_nursery() as nursery:
        a = await nursery.start(partial(serve, "127.0.0.1", 0, hub=ha))
        async with open_websocket_url(a.url) as wa:
            await login(wa, "alice")
            for rid, links in ((1, False), (2, True)):
                async with hub(node_id="n1", links=links) as hb, trio.open_nursery() as inner:
                    b = await inner.start(partial(serve, "127.0.0.1", 0, hub=hb))
                    async with open_websocket_url(b.url) as wb:
                        await login(wb, "bob")
                        await delivered(wa, wb, "bob", msg, rid)
                        linked = "n1" in ha._links.peers and ha._links.peers["n1"].up
                        assert linked is links and ("n1" in ha._links.via_redis) is not links
                    inner.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


async def test_a_node_that_died_before_the_first_link_to_it_is_found_gone_at_once(
    shared_redis: RedisProcess,
) -> None:
    """Node a has never linked to node "doomed" (linking with the first message here)
    when doomed is killed; a's first message to its user finds nobody on doomed's local
    socket: that process is gone, and sends to its users answer PEER_UNREACHABLE at
    once, not after two missed heartbeats (20 s at this TTL) or the registration's TTL."""
    prefix = f"g{secrets.token_hex(3)}"
    hub = partial(open_redis_hub, shared_redis.url, presence_ttl=30, prefix=prefix)
    async with (
        hub(node_id="n0", link_eagerly=False) as ha,
        trio.open_nursery() as nursery,
        node_process(shared_redis.url, "doomed", prefix, 30) as (proc, url),
    ):
        a = await nursery.start(partial(serve, "127.0.0.1", 0, hub=ha))
        async with open_websocket_url(url) as wd, open_websocket_url(a.url) as wa:
            await login(wd, "bob")
            await login(wa, "alice")
            proc.kill()
            await trio.to_thread.run_sync(proc.wait)
            assert "doomed" not in ha._links.peers  # (nothing sent there yet)
            start = trio.current_time()
            codes = []
            while not codes or codes[-1] == 0:
                msg = {"k": "text", "text": "anyone?"}
                await send(wa, {"t": "send", "rid": len(codes) + 1, "to": "bob", "msg": msg})
                codes.append((await recv(wa, "result")).get("code", 0))
                await trio.sleep(0.1)
            assert codes[-1] == PeerMessageError.PEER_UNREACHABLE, codes
            assert trio.current_time() - start < 2
            assert await ha.presence(["bob"]) == {"bob": PeerOnlineState.OFFLINE}
        nursery.cancel_scope.cancel()


async def test_a_stranger_on_the_link_port_is_refused_and_the_nodes_go_on(
    shared_redis: RedisProcess,
) -> None:
    async with cluster(shared_redis.url, 2) as [(a, hub_a), (b, _)]:
        assert hub_a._links.listener is not None
        port = hub_a._links.listener.port
        for hello, answer in (
            (b"GET / HTTP/1.1\r\n\r\n", b"NO not a link\n"),
            (b"RTMLINK1 n9 e9 %s %s\n" % (hub_a.epoch.encode(), b"0" * 64), b"NO bad key\n"),
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(hello)
            with trio.fail_after(5):
                got = b""
                while data := await stream.receive_some(100):
                    got += data
            assert got == answer
            await stream.aclose()
        assert hub_a._links.listener.refused == 2
        async with open_websocket_url(a.url) as wa, open_websocket_url(b.url) as wb:
            await login(wa, "alice")
            await login(wb, "bob")
            await delivered(wa, wb, "bob", {"k": "text", "text": "still here"})
            assert hub_a._links.peers["n1"].batches == 1  # over the link, which opened fine


@pytest.mark.parametrize("port", ["any", "fixed"])
async def test_a_node_restarted_under_its_name_is_linked_to_again(
    shared_redis: RedisProcess, port: str
) -> None:
    """The sender's link points at the old process (its port, its epoch, its local
    socket): it finds the new one (from the node key, or told by the new process on the
    same port) and delivers there, over the new process's local socket."""
    prefix = f"r{secrets.token_hex(3)}"
    hub = partial(open_redis_hub, shared_redis.url, presence_ttl=TTL, op_timeout=0.5, prefix=prefix)
    fixed = {"link_port": free_port()} if port == "fixed" else {}
    msg = {"k": "text", "text": "after the restart"}
    async with hub(node_id="n0") as hub_a, trio.open_nursery() as nursery:
        a = await nursery.start(partial(serve, "127.0.0.1", 0, hub=hub_a))
        async with open_websocket_url(a.url) as wa:
            await login(wa, "alice")
            for round_ in range(2):
                async with hub(node_id="n1", **fixed) as hub_b, trio.open_nursery() as inner:
                    b = await inner.start(partial(serve, "127.0.0.1", 0, hub=hub_b))
                    async with open_websocket_url(b.url) as wb:
                        await login(wb, "bob")
                        await delivered(wa, wb, "bob", msg, round_ + 1)
                        peer = hub_a._links.peers["n1"]
                        assert peer.to_epoch == hub_b.epoch and peer.family == socket.AF_UNIX
                    inner.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


async def test_a_node_whose_link_cannot_be_reached_is_reached_through_redis(
    shared_redis: RedisProcess,
) -> None:
    """n1 publishes a link address nobody listens on (a wrong --link-address): n0 tries,
    then sends what it held through n1's inbox, in order, and everything after too."""
    wrong = {"link_advertise": "127.0.0.2"}
    nodes = alice_and_bob(shared_redis.url, {}, wrong, presence_ttl=TTL, op_timeout=0.5)
    async with nodes as (wa, wb, hub_a, _):
        for i in range(5):
            msg = {"k": "text", "text": str(i)}
            await send(wa, {"t": "send", "rid": i + 1, "to": "bob", "msg": msg, "quiet": True})
            await trio.sleep(0.1)
        got = [(await recv(wb, "msg", within=5))["msg"]["text"] for _ in range(5)]
        assert got == ["0", "1", "2", "3", "4"]
        assert "n1" in hub_a._links.via_redis and "n1" not in hub_a._links.peers


async def test_a_node_without_links_keeps_to_redis_while_it_resends(
    own_redis: RedisProcess,
) -> None:
    """n0 runs without links (``--no-links``), n1 with: when n0's Redis connections are
    cut under traffic and its writes are being sent again, what alice sends meanwhile
    still goes through n1's inbox — n0 never tries a link it has no key for — every
    message answered OK and delivered once, in order."""
    count = 80
    nodes = alice_and_bob(
        own_redis.url, {"links": False}, {"links": True}, presence_ttl=TTL, op_timeout=0.5
    )
    async with nodes as (wa, wb, hub_a, _):
        there = Counter(wa, wb, "bob")
        async with trio.open_nursery() as nursery:

            async def read_alice() -> None:
                while len(there.codes) < count:
                    frame = await recv(wa, "result", within=30)
                    there.codes[frame["rid"]] = frame.get("code", 0)

            async def read_bob() -> None:
                while len(there.got) < count:
                    there.got.append(int((await recv(wb, "msg", within=30))["msg"]["text"]))

            nursery.start_soon(read_alice)
            nursery.start_soon(read_bob)
            nursery.start_soon(there.send_all, count, 0.02)
            await trio.sleep(0.4)
            for _ in range(3):
                assert await kill_connections(own_redis.url, "n0") >= 1
                await trio.sleep(0.3)
        assert there.codes == {i + 1: 0 for i in range(count)}
        assert there.got == list(range(count))
        assert hub_a._links is None  # (nothing that could open one)


@pytest.mark.parametrize("case", ["not-there", "not-offered"])
async def test_a_node_not_reachable_over_a_local_socket_is_linked_to_over_tcp(
    shared_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """not-there: n1 says it is on this host, but its local socket is not where n0 looks
    (another network namespace with the same id, say); not-offered: n1 offers none (a
    node of an older version, or one whose local socket could not be bound). Either way
    n0 links to it over TCP, at once."""
    if case == "not-there":
        monkeypatch.setattr(
            "rtmcall.server.redis.node_links.local_name", lambda epoch: "\0rtmcall-test/nobody"
        )
    # (not-offered: n1's local key is taken away once it runs, before n0 links to it.)
    eager = {"link_eagerly": case == "not-there"}
    async with cluster(shared_redis.url, 2, hub=eager) as [(a, hub_a), (b, hub_b)]:
        if case == "not-offered":
            hub_b._links.local_value = b""
            async with RedisConnection(RedisAddress.from_url(shared_redis.url)) as admin:
                assert await admin.call("DEL", hub_b._links.local_key("n1")) == 1
        async with open_websocket_url(a.url) as wa, open_websocket_url(b.url) as wb:
            await login(wa, "alice")
            await login(wb, "bob")
            for i in range(3):
                msg = {"k": "text", "text": str(i)}
                await send(wa, {"t": "send", "rid": i + 1, "to": "bob", "msg": msg})
                assert (await recv(wb, "msg", within=2))["msg"] == msg
        peer = hub_a._links.peers["n1"]
        assert peer.family == socket.AF_INET and "n1" not in hub_a._links.via_redis
        assert peer.local == ("\0rtmcall-test/nobody" if case == "not-there" else None)


async def test_a_node_too_busy_to_sleep_still_sends_to_other_nodes_at_once(
    shared_redis: RedisProcess,
) -> None:
    """What a wake-up queues for other nodes goes out before the process sleeps; a process
    that never sleeps (here: a task that always has more to do) sends it within ~1 ms."""
    async with cluster(shared_redis.url, 2) as [(a, hub_a), (b, _)]:
        async with open_websocket_url(a.url) as wa, open_websocket_url(b.url) as wb:
            await login(wa, "alice")
            await login(wb, "bob")
            async with trio.open_nursery() as spin:

                async def busy() -> None:
                    while True:
                        await trio.lowlevel.checkpoint()  # always runnable: trio never sleeps

                spin.start_soon(busy)
                for i in range(3):
                    msg = {"k": "text", "text": str(i)}
                    await send(wa, {"t": "send", "rid": i + 1, "to": "bob", "msg": msg})
                    start = trio.current_time()
                    assert (await recv(wb, "msg", within=2))["msg"] == msg
                    assert trio.current_time() - start < 0.5
                spin.cancel_scope.cancel()
            assert hub_a._links.peers["n1"].batches == 3


async def test_under_traffic_acks_come_every_half_interval_and_ticks_ride_on_wake_ups(
    shared_redis: RedisProcess,
) -> None:
    """A link's acks wake the sending node, and the watchdog's timer wakes each node: under
    steady traffic acks go out about every ``ack_interval`` (here op_timeout / 2 = 0.25 s),
    not every tick, and the ticks run with the traffic's wake-ups, not on their own timer.
    Nothing waits for them: every message arrives, and the sender's queue empties."""
    async with cluster(shared_redis.url, 2) as [(a, hub_a), (b, hub_b)]:
        async with open_websocket_url(a.url) as wa, open_websocket_url(b.url) as wb:
            await login(wa, "alice")
            await login(wb, "bob")
            listener = hub_b._links.listener
            assert listener is not None
            acks, ticks, early = listener.acks, hub_a.ticks, hub_a.ticks_early
            start = trio.current_time()
            count = 200
            async with trio.open_nursery() as nursery:
                nursery.start_soon(Counter(wa, wb, "bob").send_all, count, 0.01)
                for i in range(count):
                    assert (await recv(wb, "msg"))["msg"]["text"] == str(i)
            elapsed = trio.current_time() - start
            elapsed_acks = listener.acks - acks
            ran, ran_early = hub_a.ticks - ticks, hub_a.ticks_early - early
            assert ran >= 10, ran
            # an ack about every 0.25 s (before: at every tick past 0.1 s, ~every 0.14 s)
            assert 3 <= elapsed_acks <= elapsed / 0.2, (elapsed_acks, elapsed)
            assert ran_early >= 0.8 * ran, (ran_early, ran)
            await trio.sleep(1)
            assert not hub_a._links.peers["n1"].unacked  # the last ones acknowledged within 1 s


async def test_nodes_link_to_each_other_after_redis_restarted_empty(
    own_redis: RedisProcess,
) -> None:
    """Redis restarted without persistence has lost the cluster's link key: the running
    node writes its own back as soon as Redis answers. A node that made another one
    meanwhile (set by hand here) and the running node, refused for a bad key or refusing
    one, read the key again and take it: they link, rather than reaching each other
    through Redis (and finding a dead node by missed heartbeats only)."""
    prefix = f"k{secrets.token_hex(3)}"
    hub = partial(open_redis_hub, own_redis.url, presence_ttl=30, op_timeout=0.5, prefix=prefix)
    key_name = f"{prefix}:links"
    async with (
        hub(node_id="n0") as ha,
        trio.open_nursery() as nursery,
        RedisConnection(RedisAddress.from_url(own_redis.url), lazy=True) as admin,
    ):
        a = await nursery.start(partial(serve, "127.0.0.1", 0, hub=ha))
        first = ha._links.key.value
        own_redis.stop()
        await trio.to_thread.run_sync(own_redis.start)
        with trio.fail_after(5):
            while await admin.call("GET", key_name) != first:  # noqa: ASYNC110 - Redis
                await trio.sleep(0.1)
        other = b"made by a node started in between"
        await admin.call("SET", key_name, other)
        async with hub(node_id="n1") as hb, trio.open_nursery() as inner:
            b = await inner.start(partial(serve, "127.0.0.1", 0, hub=hb))
            await linked(ha, hb, within=5)
            assert not ha._links.via_redis and not hb._links.via_redis
            assert ha._links.key.value == hb._links.key.value == other
            async with open_websocket_url(a.url) as wa, open_websocket_url(b.url) as wb:
                await login(wa, "alice")
                await login(wb, "bob")
                await delivered(wb, wa, "alice", {"k": "text", "text": "linked"})
            assert ha._links.peers["n1"].batches + hb._links.peers["n0"].batches > 0
            inner.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


async def test_a_hand_over_answered_after_the_resume_gave_up_reorders_nothing(
    shared_redis: RedisProcess,
) -> None:
    """bob's node is paused (SIGSTOP) when he resumes on alice's node: the hand-over is
    not answered within the operation timeout, so he logs in afresh there, and alice's
    messages go to his new session. Running again, his old node answers the late request
    and forwards what alice had sent his old session meanwhile: none of it reaches the
    new session behind what alice sent that one (per sender, order is kept); what was
    sent to the new session all arrives."""
    prefix = f"h{secrets.token_hex(3)}"
    async with (
        open_redis_hub(
            shared_redis.url, node_id="n0", presence_ttl=30, op_timeout=0.5, prefix=prefix
        ) as ha,
        trio.open_nursery() as nursery,
        node_process(shared_redis.url, "paused", prefix, 30) as (proc, url),
    ):
        a = await nursery.start(partial(serve, "127.0.0.1", 0, hub=ha))
        async with open_websocket_url(url) as old, open_websocket_url(a.url) as wa:
            sid = (await login(old, "bob"))["session"]
            await login(wa, "alice")
            assert await ha.presence(["bob"]) == {"bob": PeerOnlineState.ONLINE}
            sent = 0

            async def say(count: int) -> None:
                nonlocal sent
                for _ in range(count):
                    msg = {"k": "text", "text": str(sent)}
                    await send(wa, {"t": "send", "rid": sent + 1, "to": "bob", "msg": msg,
                                    "quiet": True})  # fmt: skip
                    sent += 1
                    await trio.sleep(0.02)

            await say(5)
            assert [(await recv(old, "msg"))["msg"]["text"] for _ in range(5)] == list("01234")
            proc.send_signal(signal.SIGSTOP)
            try:
                async with open_websocket_url(a.url) as new:
                    async with trio.open_nursery() as talk:
                        talk.start_soon(say, 15)  # (to the old session: the hand-over waits)
                        ok = await login(new, "bob", resume=sid)
                    assert ok.get("resumed", False) is False and ok["session"] != sid, ok
                    first_new = sent
                    await say(20)
                    proc.send_signal(signal.SIGCONT)
                    await trio.sleep(1.0)  # (the old node forwards what it held, if anything)
                    await say(5)
                    got: list[int] = []
                    while not got or got[-1] != sent - 1:
                        got.append(int((await recv(new, "msg", within=5))["msg"]["text"]))
            finally:
                proc.send_signal(signal.SIGCONT)
            assert got == sorted(set(got)), got  # in order, once
            assert [n for n in got if n >= first_new] == list(range(first_new, sent))
        nursery.cancel_scope.cancel()
