"""Several server nodes sharing users through a real Redis, driven over raw WebSockets.

Redis is another process, so these tests run on the real clock with short TTLs; every wait
is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from rtmcall.cli.cmd.health import _check_all as check_health
from rtmcall.engine.codes import ConnectionChangeReason, PeerMessageError, PeerOnlineState
from rtmcall.server import ServerConfig, serve
from rtmcall.server.hub import HubUnavailable
from rtmcall.server.redis import RedisHub, open_redis_hub

from .redisproc import RedisProcess

TTL = 1.5


@asynccontextmanager
async def nodes(
    redis_url: str,
    count: int,
    *,
    prefix: str | None = None,
    op_timeout: float = 0.5,
    hold: float = 10.0,
    ttl: float = TTL,
    link_eagerly: bool = True,
) -> AsyncIterator[list[tuple[Any, RedisHub]]]:
    """``count`` server nodes (in this process) sharing one Redis."""
    prefix = prefix or f"t{secrets.token_hex(3)}"
    async with AsyncExitStack() as stack:
        hubs = [
            await stack.enter_async_context(
                open_redis_hub(
                    redis_url,
                    node_id=f"n{i}",
                    presence_ttl=ttl,
                    poll_interval=0.3,
                    op_timeout=op_timeout,
                    prefix=prefix,
                    hold=hold,
                    link_eagerly=link_eagerly,
                )
            )
            for i in range(count)
        ]
        async with trio.open_nursery() as nursery:
            out = []
            for hub in hubs:
                server = await nursery.start(
                    lambda task_status, hub=hub: serve(
                        "127.0.0.1", 0, hub=hub, config=ServerConfig(), task_status=task_status
                    )
                )
                out.append((server, hub))
            try:
                yield out
            finally:
                nursery.cancel_scope.cancel()


@asynccontextmanager
async def user(url: str, name: str) -> AsyncIterator[WebSocketConnection]:
    async with open_websocket_url(url) as ws:
        await send(ws, {"t": "login", "user": name})
        reply = await recv(ws)
        assert reply["t"] == "login_ok", reply
        yield ws


async def send(ws: WebSocketConnection, frame: dict) -> None:
    await ws.send_message(json.dumps(frame))


async def recv(ws: WebSocketConnection, t: str | None = None) -> dict:
    """Next frame (of type ``t`` if given; others are skipped)."""
    with trio.fail_after(5):
        while True:
            frame = json.loads(await ws.get_message())
            if t is None or frame["t"] == t:
                return frame


async def test_routing_across_nodes_with_delivery_results(shared_redis: RedisProcess) -> None:
    async with nodes(shared_redis.url, 2) as [(a, _), (b, _)]:
        async with user(a.url, "alice") as wa, user(b.url, "bob") as wb:
            for i in range(20):
                await send(
                    wa, {"t": "send", "rid": i, "to": "bob", "msg": {"k": "text", "text": str(i)}}
                )
            results = [await recv(wa, "result") for _ in range(20)]
            assert [r.get("code", 0) for r in results] == [0] * 20
            got = [await recv(wb, "msg") for _ in range(20)]
            # In order, and stamped with the sender's session, not the frame.
            assert [m["msg"]["text"] for m in got] == [str(i) for i in range(20)]
            assert {m["from"] for m in got} == {"alice"}
            await send(
                wa, {"t": "send", "rid": 99, "to": "nobody", "msg": {"k": "text", "text": "x"}}
            )
            assert (await recv(wa, "result"))["code"] == PeerMessageError.PEER_UNREACHABLE


async def test_presence_is_shared_and_pushed_across_nodes(shared_redis: RedisProcess) -> None:
    async with nodes(shared_redis.url, 3) as [(a, _), (b, _), (c, _)]:
        async with user(a.url, "alice") as wa:
            await send(wa, {"t": "sub", "rid": 1, "users": ["bob", "carol"]})
            assert (await recv(wa, "presence"))["states"] == {"bob": 2, "carol": 2}
            async with user(b.url, "bob"):
                push = await recv(wa, "presence")
                assert push["states"] == {"bob": PeerOnlineState.ONLINE}
                async with user(c.url, "carol") as wc:
                    await send(wc, {"t": "query", "rid": 5, "users": ["alice", "bob", "zed"]})
                    assert (await recv(wc, "presence"))["states"] == {
                        "alice": 0,
                        "bob": 0,
                        "zed": 2,
                    }
                    assert (await recv(wa, "presence"))["states"] == {"carol": 0}
                # carol's connection closed without a logout: inside her resume window.
                assert (await recv(wa, "presence"))["states"] == {"carol": 1}
                await send(wa, {"t": "query", "rid": 6, "users": ["carol"]})
                reply = await recv(wa, "presence")
                assert reply["rid"] == 6 and reply["states"] == {"carol": 1}
            # bob's connection closed without logout: UNREACHABLE (resume window) first.
            push = await recv(wa, "presence")
            assert push["states"]["bob"] in (PeerOnlineState.UNREACHABLE, PeerOnlineState.OFFLINE)


async def test_login_on_another_node_kicks_the_older_session(shared_redis: RedisProcess) -> None:
    async with nodes(shared_redis.url, 2) as [(a, _), (b, _)]:
        async with user(a.url, "alice") as wa:
            await send(wa, {"t": "sub", "rid": 1, "users": ["bob"]})
            await recv(wa, "presence")
            async with user(a.url, "bob") as old:
                assert (await recv(wa, "presence"))["states"] == {"bob": 0}
                async with user(b.url, "bob") as new:
                    kicked = await recv(old, "kicked")
                    assert kicked["reason"] == ConnectionChangeReason.REMOTE_LOGIN
                    # alice is told the old session went (her invitations with it end),
                    # then that bob is back.
                    assert (await recv(wa, "presence"))["states"] == {"bob": 2}
                    assert (await recv(wa, "presence"))["states"] == {"bob": 0}
                    # Messages now reach the new session, on the other node.
                    await send(
                        wa, {"t": "send", "rid": 2, "to": "bob", "msg": {"k": "text", "text": "hi"}}
                    )
                    assert (await recv(wa, "result")).get("code", 0) == 0
                    assert (await recv(new, "msg"))["msg"]["text"] == "hi"


async def test_a_killed_node_s_users_go_offline_within_the_ttl(shared_redis: RedisProcess) -> None:
    prefix = f"t{secrets.token_hex(3)}"
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
        [sys.executable, "-m", "tests.redis.node", "--redis", shared_redis.url,
         "--node-id", "doomed", "--ttl", str(TTL), "--prefix", prefix],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = await trio.to_thread.run_sync(proc.stdout.readline)
        async with nodes(shared_redis.url, 1, prefix=prefix) as [(a, _)]:
            async with user(a.url, "alice") as wa, user(url.strip(), "bob"):
                await send(wa, {"t": "sub", "rid": 1, "users": ["bob"]})
                assert (await recv(wa, "presence"))["states"] == {"bob": 0}
                proc.kill()
                start = trio.current_time()
                with trio.fail_after(TTL + 2):
                    push = await recv(wa, "presence")
                assert push["states"] == {"bob": PeerOnlineState.OFFLINE}
                assert trio.current_time() - start <= TTL + 1.0
                await send(
                    wa, {"t": "send", "rid": 2, "to": "bob", "msg": {"k": "text", "text": "x"}}
                )
                assert (await recv(wa, "result"))["code"] == PeerMessageError.PEER_UNREACHABLE
    finally:
        proc.kill()
        proc.wait()


async def knows_where(hub: object, user_id: str) -> None:
    """Until ``hub``'s directory holds ``user_id`` (told through Redis after the login on
    another node): a test that stops Redis right after a login must not race it."""
    with trio.fail_after(5):
        while user_id not in hub._where:  # type: ignore[attr-defined]  # noqa: ASYNC110
            await trio.sleep(0.02)


async def test_redis_paused_messages_wait_and_arrive_once_in_order(
    own_redis: RedisProcess,
) -> None:
    async with nodes(own_redis.url, 2, op_timeout=0.3) as [(a, ha), (b, _)]:
        async with user(a.url, "alice") as wa, user(b.url, "bob") as wb:
            await knows_where(ha, "bob")
            own_redis.pause()
            try:
                for i in range(10):
                    await send(wa, {"t": "send", "rid": i, "to": "bob",
                                    "msg": {"k": "text", "text": str(i)}})  # fmt: skip
                # Accepted: they wait on node a for Redis, they are not lost.
                results = [await recv(wa, "result") for _ in range(10)]
                assert [r.get("code", 0) for r in results] == [0] * 10
                assert not (await ha.health()).ok
                assert not (await a.health()).ok
                # What an operator's script sees: `rtmcall health` exits 1.
                assert await check_health([a.url], 5, True, None) == 1
            finally:
                own_redis.resume()
            got = [(await recv(wb, "msg"))["msg"]["text"] for _ in range(10)]
            assert got == [str(i) for i in range(10)]
            with trio.move_on_after(1.0):
                extra = await recv(wb, "msg")
                raise AssertionError(f"delivered twice: {extra}")
            with trio.fail_after(5):
                while not (await ha.health()).ok:  # noqa: ASYNC110 - polling health is the point
                    await trio.sleep(0.1)
            assert await check_health([a.url], 5, True, None) == 0


async def test_redis_gone_longer_than_hold_gives_explicit_errors(own_redis: RedisProcess) -> None:
    """Linking to a node needs Redis (its node key says where the link goes): while
    Redis is gone, what is sent to a node not linked to yet waits, and past ``hold``
    sends fail."""
    opts = {"op_timeout": 0.3, "hold": 1.0, "link_eagerly": False}
    async with nodes(own_redis.url, 2, **opts) as [(a, ha), (b, _)]:
        async with user(a.url, "alice") as wa, user(b.url, "bob") as wb:
            await knows_where(ha, "bob")
            own_redis.pause()
            try:
                await send(
                    wa, {"t": "send", "rid": 1, "to": "bob", "msg": {"k": "text", "text": "x"}}
                )
                assert (await recv(wa, "result")).get("code", 0) == 0
                await trio.sleep(2.0)  # past hold: the queue is given up, sends fail
                await send(
                    wa, {"t": "send", "rid": 2, "to": "bob", "msg": {"k": "text", "text": "y"}}
                )
                assert (await recv(wa, "result"))["code"] == PeerMessageError.FAILURE
                assert ha.dropped >= 1
            finally:
                own_redis.resume()
            with trio.fail_after(5):
                while not (await ha.health()).ok:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            await send(wa, {"t": "send", "rid": 3, "to": "bob", "msg": {"k": "text", "text": "z"}})
            assert (await recv(wa, "result")).get("code", 0) == 0
            # "x" was written before the pause and may still arrive once Redis runs again
            # (it was in Redis's socket buffer); "y" was refused and never is.
            texts = [(await recv(wb, "msg"))["msg"]["text"]]
            if texts == ["x"]:
                texts.append((await recv(wb, "msg"))["msg"]["text"])
            assert texts[-1] == "z" and "y" not in texts


async def test_redis_restarted_nodes_resubscribe_and_reregister(own_redis: RedisProcess) -> None:
    async with nodes(own_redis.url, 2, op_timeout=0.3) as [(a, ha), (b, hb)]:
        async with user(a.url, "alice") as wa, user(b.url, "bob") as wb:
            await knows_where(ha, "bob")
            own_redis.stop()  # every key is gone with it (no persistence)
            # Node a knows where bob is: the frame waits there for Redis.
            await send(wa, {"t": "send", "rid": 1, "to": "bob", "msg": {"k": "text", "text": "x"}})
            assert (await recv(wa, "result")).get("code", 0) == 0
            assert not (await hb.health()).ok
            await trio.sleep(0.5)
            await trio.to_thread.run_sync(own_redis.start)
            assert (await recv(wb, "msg"))["msg"]["text"] == "x"
            # Within a refresh period bob is registered again: a fresh lookup finds him.
            with trio.fail_after(TTL + 5):
                while (await ha.presence(["bob"])) != {"bob": PeerOnlineState.ONLINE}:  # noqa: ASYNC110
                    await trio.sleep(0.2)
            await send(wa, {"t": "send", "rid": 2, "to": "bob", "msg": {"k": "text", "text": "y"}})
            assert (await recv(wa, "result")).get("code", 0) == 0
            assert (await recv(wb, "msg"))["msg"]["text"] == "y"
            with trio.fail_after(5):
                while not ((await ha.health()).ok and (await hb.health()).ok):  # noqa: ASYNC110
                    await trio.sleep(0.1)


async def test_after_a_redis_restart_the_nodes_register_their_users_again_at_once(
    own_redis: RedisProcess,
) -> None:
    """A 30 s TTL refreshes every 10 s; a Redis restarted empty is written again as soon as
    it answers, not at the next refresh: a node that looks bob up (its poll of the users
    alice watches forgets what it knew) finds him, and alice's next message reaches him
    (it failed PEER_UNREACHABLE for up to 10 s: a call ended PEER_OFFLINE)."""
    async with nodes(own_redis.url, 2, op_timeout=0.3, ttl=30) as [(a, ha), (b, _)]:
        async with user(a.url, "alice") as wa, user(b.url, "bob") as wb:
            await send(wa, {"t": "sub", "rid": 1, "users": ["bob"]})
            assert (await recv(wa, "presence"))["states"] == {"bob": 0}
            own_redis.stop()  # every key is gone with it (no persistence)
            await trio.sleep(0.5)
            await trio.to_thread.run_sync(own_redis.start)
            with trio.fail_after(3):  # (the reconnect backoff, then one pipeline)
                while (await ha.presence(["bob"])) != {"bob": 0}:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            await send(wa, {"t": "send", "rid": 2, "to": "bob", "msg": {"k": "text", "text": "y"}})
            assert (await recv(wa, "result")).get("code", 0) == 0
            assert (await recv(wb, "msg"))["msg"]["text"] == "y"


async def test_an_idle_node_registers_its_users_again_as_soon_as_redis_is_back(
    own_redis: RedisProcess,
) -> None:
    """Nothing to write, nobody watched, no health probe: the node learns that Redis is
    back from its inbox reader, and bob's registration is there again at once (not at
    the next refresh, 10 s with a 30 s TTL)."""
    from rtmcall.server.redis.resp import RedisAddress, RedisConnection

    async with nodes(own_redis.url, 1, op_timeout=0.3, ttl=30, prefix="idle") as [(a, hub)]:
        async with user(a.url, "bob"):
            with trio.fail_after(2):
                while not hub._outbox.empty or hub.redis.waiting:  # noqa: ASYNC110
                    await trio.sleep(0.05)
                    hub.redis.harvest()
            own_redis.stop()
            await trio.sleep(0.5)
            await trio.to_thread.run_sync(own_redis.start)
            async with RedisConnection(RedisAddress.from_url(own_redis.url)) as admin:
                with trio.fail_after(3):  # (the reader's reconnect backoff, one pipeline)
                    while await admin.call("GET", "idle:u:bob") is None:  # noqa: ASYNC110
                        await trio.sleep(0.1)


async def test_unreachable_redis_at_start_is_a_clear_error() -> None:
    from .redisproc import free_port

    with pytest.raises(HubUnavailable, match="cannot reach redis"):
        async with open_redis_hub(f"redis://127.0.0.1:{free_port()}/0", op_timeout=0.3):
            pass
