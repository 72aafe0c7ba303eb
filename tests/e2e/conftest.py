"""End-to-end fixtures: a real server on a free loopback port, real SDK clients over real
WebSockets, raw WebSocket clients for misbehaving peers, and a TCP proxy that can cut.

Rules (after trio-websocket's test suite): loopback only, port 0, ``autojump_clock`` for
every timed behaviour (the 30 s and 60 s windows pass in an instant), and a
``trio.fail_after`` guard in every wait so a bug fails fast instead of hanging.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from rtmcall.client import ClientConfig, RtmClient, connect
from rtmcall.client.events import ClientEvent
from rtmcall.engine import frames as f
from rtmcall.engine.events import InvitationEvent
from rtmcall.server import Server, serve

#: Virtual seconds any single wait may take (the longest window is 60 s + grace).
GUARD = 200

_order = itertools.count()


@dataclass(frozen=True)
class Seen:
    """An event, with when (trio time) and in which global order it was seen."""

    event: ClientEvent
    at: float
    seq: int


@dataclass(eq=False)
class Phone:
    """An SDK client plus everything it published since it logged in."""

    client: RtmClient
    seen: list[Seen] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    @property
    def user(self) -> str:
        return self.client.user

    async def record(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED):
        async with self.client.events() as stream:
            task_status.started()
            async for ev in stream:
                self.seen.append(Seen(ev, trio.current_time(), next(_order)))
                self.changed.set()
                self.changed = trio.Event()

    def find(self, name: str, inv: str | None = None) -> list[Seen]:
        out = []
        for s in self.seen:
            ev = s.event
            if ev.name != name:
                continue
            if inv is not None and not (
                isinstance(ev, InvitationEvent) and ev.invitation.id == inv
            ):
                continue
            out.append(s)
        return out

    def names(self, inv: str | None = None) -> list[str]:
        return [
            s.event.name
            for s in self.seen
            if inv is None
            or (isinstance(s.event, InvitationEvent) and s.event.invitation.id == inv)
        ]

    async def wait(self, name: str, inv: str | None = None, within: float = GUARD) -> Any:
        """The first event ``name`` (about invitation ``inv``), waiting for it if need be."""
        return (await self.wait_seen(name, inv, within)).event

    async def wait_seen(self, name: str, inv: str | None = None, within: float = GUARD) -> Seen:
        with trio.fail_after(within):
            while True:
                found = self.find(name, inv)
                if found:
                    return found[0]
                await self.changed.wait()

    async def wait_for(self, predicate: Callable[[], bool], within: float = GUARD) -> None:
        with trio.fail_after(within):
            while not predicate():
                await self.changed.wait()


@pytest.fixture
async def server(nursery: trio.Nursery) -> Server:
    return await nursery.start(serve, "127.0.0.1", 0)


@asynccontextmanager
async def phone(
    url: str, user: str, config: ClientConfig | None = None, **kw: Any
) -> AsyncIterator[Phone]:
    """Log ``user`` in and record its events from the start."""
    async with connect(url, user, config=config, **kw) as client:
        p = Phone(client)
        async with trio.open_nursery() as nursery:
            await nursery.start(p.record)
            yield p
            nursery.cancel_scope.cancel()


class Raw:
    """A hand-driven WebSocket client: it does only what the test says (no ACKs, no
    confirms, no answers to pings unless asked)."""

    def __init__(self, ws: WebSocketConnection, user: str) -> None:
        self.ws = ws
        self.user = user
        self._rid = itertools.count(1)
        self.received: list[f.ServerFrame] = []

    async def send_frame(self, frame: msgspec.Struct) -> None:
        await self.ws.send_message(f.encode(frame).decode())

    async def send_peer(self, to: str, msg: f.PeerMsg) -> None:
        await self.send_frame(f.Send(rid=next(self._rid), to=to, msg=msg))

    async def recv(self) -> f.ServerFrame:
        while True:
            frame = f.decode_server_frame(await self.ws.get_message())
            self.received.append(frame)
            if isinstance(frame, f.ServerPing):
                await self.send_frame(f.Pong())
                continue
            return frame

    async def recv_peer(self, kind: type, within: float = GUARD) -> Any:
        """The next peer message of type ``kind`` (others are kept in ``received``)."""
        with trio.fail_after(within):
            while True:
                frame = await self.recv()
                if isinstance(frame, f.Deliver) and isinstance(frame.msg, kind):
                    return frame.msg

    async def keepalive(self) -> None:
        """Ping now and then so the server keeps the connection (run in a nursery)."""
        while True:
            await trio.sleep(3)
            await self.send_frame(f.Ping())


@asynccontextmanager
async def raw(url: str, user: str) -> AsyncIterator[Raw]:
    async with open_websocket_url(url) as ws:
        r = Raw(ws, user)
        await r.send_frame(f.Login(user=user))
        first = await r.recv()
        assert isinstance(first, f.LoginOk), first
        yield r


class Proxy:
    """A TCP proxy in front of the server that can cut every connection through it,
    refuse (``blocked``) new ones, as a network outage would, freeze the current ones
    (half-open: nothing passes, nothing is closed), or hold everything (``hold``: bytes
    wait in the proxy, both ways, as in a partitioned network's retransmissions, and pass
    in order at ``release``)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.blocked = False
        self.port = 0
        self._scopes: set[trio.CancelScope] = set()
        self._frozen: set[trio.CancelScope] = set()
        self._released = trio.Event()
        self._released.set()
        self.connections = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def run(self, *, task_status: trio.TaskStatus[Proxy] = trio.TASK_STATUS_IGNORED):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    def cut(self) -> None:
        """Close every connection through the proxy, both ways, now."""
        for scope in list(self._scopes):
            scope.cancel()

    def freeze(self) -> None:
        """Stop forwarding on every current connection, without closing it."""
        self._frozen.update(self._scopes)

    def hold(self) -> None:
        """Hold every byte, both ways, until :meth:`release` (nothing is lost)."""
        if self._released.is_set():
            self._released = trio.Event()

    def release(self) -> None:
        self._released.set()

    async def _handle(self, downstream: trio.SocketStream) -> None:
        if self.blocked:
            await downstream.aclose()
            return
        try:
            upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            await downstream.aclose()
            return
        self.connections += 1
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                async with trio.open_nursery() as nursery:
                    for src, dst in ((downstream, upstream), (upstream, downstream)):
                        nursery.start_soon(self._pipe, src, dst, scope)
            finally:
                self._scopes.discard(scope)
                self._frozen.discard(scope)
        await trio.aclose_forcefully(upstream)
        await trio.aclose_forcefully(downstream)

    async def _pipe(
        self, src: trio.SocketStream, dst: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        try:
            async for chunk in src:
                if scope in self._frozen:
                    await trio.sleep_forever()  # swallowed: a half-open line
                await self._released.wait()  # (held: it waits, in order)
                await dst.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()


@pytest.fixture
async def proxy(nursery: trio.Nursery, server: Server) -> Proxy:
    return await nursery.start(Proxy(server.port).run)
