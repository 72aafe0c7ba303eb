"""Lossless resume, client side, against a scripted fake server: the resuming Login and the
Pings acknowledge the highest Deliver seq seen, and a Deliver seen twice is dropped."""

from __future__ import annotations

import contextlib
from typing import Any

import trio
from trio.testing import MockClock
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from rtmcall.client import ClientConfig, connect
from rtmcall.client.events import MessageFromPeer
from rtmcall.engine import frames as f
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.codes import PeerMessageError


def deliver(seq: int) -> str:
    return f.encode(f.Deliver(sender="bob", msg=f.Text(text=f"m{seq}"), seq=seq)).decode()


async def accept_login(request: WebSocketRequest, logins: list[f.Login]) -> WebSocketConnection:
    """Accept, read the Login (kept in ``logins``) and answer it: session s1 the first
    time, s1 resumed after (the fake server's part in every test here)."""
    ws = await request.accept()
    login = f.decode_client_frame(await ws.get_message())
    assert isinstance(login, f.Login)
    logins.append(login)
    ok = f.LoginOk(user="alice", session="s1", resumed=len(logins) > 1)
    await ws.send_message(f.encode(ok).decode())
    return ws


async def test_resume_acks_and_drops_duplicates(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    logins: list[f.Login] = []
    pings: list[f.Ping] = []
    pinged = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await accept_login(request, logins)
        if len(logins) == 1:
            for seq in (1, 2):
                await ws.send_message(deliver(seq))
            await trio.sleep(1)
            await ws.aclose()  # a drop: the client resumes
            return
        for seq in (2, 3):  # 2 again: the server did not know the client had it
            await ws.send_message(deliver(seq))
        while True:
            frame = f.decode_client_frame(await ws.get_message())
            if isinstance(frame, f.Ping):
                pings.append(frame)
                pinged.set()
                await ws.send_message(f.encode(f.ServerPong()).decode())

    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    url = f"ws://127.0.0.1:{server.port}"
    async with connect(url, "alice", config=ClientConfig()) as client:
        events = client.events()
        with trio.fail_after(30):
            await pinged.wait()
        assert client.connection_state is CS.CONNECTED
        got: list[Any] = []
        while True:
            try:
                got.append(events.receive_nowait())
            except trio.WouldBlock:
                break
    texts = [e.text for e in got if isinstance(e, MessageFromPeer)]
    assert texts == ["m1", "m2", "m3"]
    assert [(x.resume, x.ack) for x in logins] == [(None, None), ("s1", 2)]
    assert pings[0].ack == 3


async def test_a_replayed_deliver_does_not_retire_a_quiet_send_answered_again(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    """After a resume a replayed Deliver carries the handled rid of before the drop; the
    failure Result of a quiet Send the client sent again must still reach the engine."""
    logins: list[f.Login] = []
    resent = trio.Event()

    async def next_send(ws: Any) -> f.Send:
        while True:
            frame = f.decode_client_frame(await ws.get_message())
            if isinstance(frame, f.Send):
                return frame

    async def handler(request: WebSocketRequest) -> None:
        ws = await accept_login(request, logins)
        if len(logins) == 1:
            await next_send(ws)  # the quiet invite: its failure Result is "lost"
            await ws.aclose()
            return
        again = await next_send(ws)
        assert again.quiet
        resent.set()
        replayed = f.Deliver(sender="carol", msg=f.Text(text="hi"), seq=1, rid=again.rid)
        await ws.send_message(f.encode(replayed).decode())
        failed = f.Result(rid=again.rid, code=PeerMessageError.PEER_UNREACHABLE)
        await ws.send_message(f.encode(failed).decode())
        with contextlib.suppress(ConnectionClosed):
            while True:  # answer the heartbeat, nothing else
                if isinstance(f.decode_client_frame(await ws.get_message()), f.Ping):
                    await ws.send_message(f.encode(f.ServerPong()).decode())

    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    url = f"ws://127.0.0.1:{server.port}"
    async with connect(url, "alice", config=ClientConfig()) as client:
        inv = await client.call("bob")
        with trio.fail_after(30):
            await resent.wait()
        await trio.sleep(1)
        # The engine heard that the invite was not delivered (and so waits for bob to log
        # in within the no-ACK window, then says PEER_OFFLINE), rather than taking it for
        # delivered because a replayed Deliver said rid 1 had been handled.
        assert inv.undelivered
        assert inv.state is LS.SENT_TO_REMOTE
