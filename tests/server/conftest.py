"""Shared fixtures for the server tests.

Rules (after trio-websocket's own test suite): loopback only, port 0, raw trio-websocket
clients (never the SDK), ``autojump_clock`` for every timed behaviour, and a
``fail_after`` guard around every I/O test so a bug fails fast instead of hanging.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any, TypeVar

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url

from rtmcall.engine.frames import (
    Login,
    LoginOk,
    Pong,
    Result,
    Send,
    ServerFrame,
    ServerPing,
    decode_server_frame,
    encode,
)
from rtmcall.server import Server, ServerConfig, serve

T = TypeVar("T")

#: Seconds of (mock or real) time any single test may take.
GUARD = 20


def raw_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A masked client WebSocket frame, built by hand (to send what no library would)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Client:
    """A raw WebSocket client speaking the wire format by hand."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._rid = 0
        #: Answer the server's heartbeat pings silently (off to observe them).
        self.auto_pong = True

    def rid(self) -> int:
        self._rid += 1
        return self._rid

    async def send(self, frame: msgspec.Struct | dict[str, Any] | str | bytes) -> None:
        if isinstance(frame, msgspec.Struct):
            await self.ws.send_message(encode(frame).decode())
        elif isinstance(frame, dict):
            await self.ws.send_message(msgspec.json.encode(frame).decode())
        else:
            await self.ws.send_message(frame)

    async def recv(self) -> ServerFrame:
        while True:
            frame = decode_server_frame(await self.ws.get_message())
            if not (self.auto_pong and isinstance(frame, ServerPing)):
                return frame
            await self.send(Pong())

    async def expect(self, kind: type[T]) -> T:
        frame = await self.recv()
        assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame!r}"
        return frame

    async def login(self, user: str, **kw: Any) -> LoginOk:
        await self.send(Login(user=user, **kw))
        return await self.expect(LoginOk)

    async def send_to(self, to: str, msg: Any) -> int:
        """Send a peer message; returns its rid (the Result is read by the caller)."""
        rid = self.rid()
        await self.send(Send(rid=rid, to=to, msg=msg))
        return rid

    async def result(self, rid: int) -> Result:
        result = await self.expect(Result)
        assert result.rid == rid
        return result

    async def closed_code(self) -> int:
        """Read until the server closes; the close code."""
        while True:
            try:
                await self.ws.get_message()
            except ConnectionClosed as exc:
                assert exc.reason is not None
                return exc.reason.code


class Harness:
    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.server: Server | None = None
        self.client_ssl: ssl.SSLContext | None = None

    async def start(self, **kw: Any) -> Server:
        config = kw.pop("config", None) or ServerConfig(**kw.pop("limits", {}))
        self.server = await self.nursery.start(
            functools.partial(serve, "127.0.0.1", 0, config=config, **kw)
        )
        return self.server

    async def connect(self) -> Client:
        assert self.server is not None
        ws = await connect_websocket_url(self.nursery, self.server.url, ssl_context=self.client_ssl)
        return Client(ws)

    async def user(self, name: str, **kw: Any) -> Client:
        client = await self.connect()
        await client.login(name, **kw)
        return client


@pytest.fixture
async def harness(nursery: trio.Nursery) -> Harness:
    return Harness(nursery)


@pytest.fixture
async def server(harness: Harness) -> Server:
    return await harness.start()


@pytest.fixture
async def patient_server(harness: Harness) -> Server:
    """A server that never times idle clients out, for tests that sleep through windows."""
    return await harness.start(limits={"idle_timeout": 3600.0})
