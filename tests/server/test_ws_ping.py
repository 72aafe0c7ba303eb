"""WebSocket pings from clients, byte for byte: the server answers a lone ping without
wsproto (the idle heartbeat's fast path) and every other shape through it; both must put
the same pong on the wire, and a malformed ping is still a protocol error.

These tests speak WebSocket over a bare TCP stream, so they see the server's frames as
bytes rather than through a client library that would swallow pongs.
"""

from __future__ import annotations

import os
import socket
import struct

import pytest
import trio
from trio.testing import wait_all_tasks_blocked
from wsproto import ConnectionType, WSConnection
from wsproto.frame_protocol import FrameProtocol

from rtmcall.engine.frames import (
    Login,
    LoginOk,
    Logout,
    Ping,
    ServerPong,
    decode_server_frame,
    encode,
)
from rtmcall.server import Server, _ws
from rtmcall.server._ws import ServerWebSocket

from .conftest import GUARD, raw_frame

_UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class RawPeer:
    """A client holding the TCP stream itself: frames out are built by ``raw_frame``,
    frames in are parsed here (server frames are never masked)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            data = await self.stream.receive_some()
            assert data, "the server closed the connection"
            self.buf += data

    async def take(self, n: int) -> bytes:
        """Exactly the next ``n`` bytes the server sent."""
        await self._fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def frame(self) -> tuple[int, bytes]:
        """The next frame: (first header byte, payload)."""
        head = await self.take(2)
        size = head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await self.take(2), "big")
        assert size < 127
        return head[0], await self.take(size)

    async def close_code(self) -> int:
        while True:
            first, payload = await self.frame()
            if first & 0x0F == 0x8:
                return int.from_bytes(payload[:2], "big")


async def raw_user(server: Server, user: str) -> RawPeer:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(_UPGRADE)
    peer = RawPeer(stream)
    while b"\r\n\r\n" not in peer.buf:
        await peer._fill(len(peer.buf) + 1)
    head, _, rest = bytes(peer.buf).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    peer.buf = bytearray(rest)
    await stream.send_all(raw_frame(0x1, encode(Login(user=user))))
    first, payload = await peer.frame()
    assert first == 0x81 and isinstance(decode_server_frame(payload), LoginOk)
    return peer


def pong_bytes(payload: bytes) -> bytes:
    """What wsproto itself puts on the wire for a server's pong."""
    return FrameProtocol(client=False, extensions=[]).pong(payload)


async def ping_answered(server: Server, peer: RawPeer, payload: bytes) -> None:
    """Ping; the pong is wsproto's bytes, and the server counted the ping."""
    before = server.stats.ws_pings
    await peer.stream.send_all(raw_frame(0x9, payload))
    assert await peer.take(len(pong_bytes(payload))) == pong_bytes(payload)
    await wait_all_tasks_blocked()
    assert server.stats.ws_pings == before + 1


@pytest.fixture
def fast_pongs(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The pings the fast path answered (so a test knows which path it exercised)."""
    answered: list[bytes] = []
    real = ServerWebSocket._answer_lone_ping

    def spy(ws: ServerWebSocket, data: bytes) -> bytes | None:
        rest = real(ws, data)
        if rest is not None:
            answered.append(data)
        return rest

    monkeypatch.setattr(ServerWebSocket, "_answer_lone_ping", spy)
    return answered


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 7, 8, 13, 64, 125])
async def test_lone_ping_answered_byte_for_byte(
    server: Server, fast_pongs: list[bytes], size: int
) -> None:
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        for n in range(1, 4):
            await ping_answered(server, peer, os.urandom(size))
            assert len(fast_pongs) == n


async def test_the_general_path_answers_the_same(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the fast path off, wsproto and trio-websocket put the same bytes out."""
    monkeypatch.setattr(ServerWebSocket, "_answer_lone_ping", lambda ws, data: None)
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        for size in (0, 5, 125):
            await ping_answered(server, peer, os.urandom(size))


async def test_a_pong_the_socket_takes_only_part_of_is_finished(
    server: Server, fast_pongs: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    monkeypatch.setattr(_ws.os, "write", lambda fd, data: real_write(fd, data[:1]))
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        await peer.stream.send_all(raw_frame(0x9, b"in pieces"))
        assert await peer.take(11) == pong_bytes(b"in pieces")
        await peer.stream.send_all(raw_frame(0x1, encode(Ping())))
        assert isinstance(decode_server_frame((await peer.frame())[1]), ServerPong)
        assert len(fast_pongs) == 1


async def test_standby_ping_switches_the_silence_limit(server: Server) -> None:
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        await peer.stream.send_all(raw_frame(0xA, b""))  # an unsolicited pong: ignored
        await peer.stream.send_all(raw_frame(0x1, encode(Ping())))  # busy: short limit
        assert isinstance(decode_server_frame((await peer.frame())[1]), ServerPong)
        (conn,) = server.live
        assert conn.silence_limit == server.config.idle_timeout
        await peer.stream.send_all(raw_frame(0x9, b"standby 1"))
        assert await peer.take(11) == pong_bytes(b"standby 1")
        await wait_all_tasks_blocked()
        assert conn.silence_limit == server.config.standby_timeout


async def test_ping_split_across_reads(server: Server) -> None:
    """Half a ping, a pause (the server reads it alone), the rest: one pong."""
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        frame = raw_frame(0x9, b"split ping")
        for cut in (1, 2, 5, len(frame) - 1):
            await peer.stream.send_all(frame[:cut])
            await trio.sleep(0.05)
            await peer.stream.send_all(frame[cut:])
            assert await peer.take(12) == pong_bytes(b"split ping")


async def test_ping_beside_a_message_in_one_write(server: Server) -> None:
    """Both pings answered, the message handled (the pongs, from the WebSocket layer,
    may overtake the session's answer)."""
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        ping = raw_frame(0x9, b"hb")
        await peer.stream.send_all(ping + raw_frame(0x1, encode(Ping())) + ping)
        frames = [await peer.frame() for _ in range(3)]
        assert frames.count((0x8A, b"hb")) == 2
        (text,) = [payload for first, payload in frames if first == 0x81]
        assert isinstance(decode_server_frame(text), ServerPong)


async def test_ping_between_fragments_of_a_message(server: Server) -> None:
    """RFC 6455 allows a control frame in the middle of a fragmented message."""
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        text = encode(Ping())
        await peer.stream.send_all(raw_frame(0x1, text[:5], fin=False))
        await trio.sleep(0.05)  # the server reads the first fragment alone
        await peer.stream.send_all(raw_frame(0x9, b"mid"))
        assert await peer.take(5) == pong_bytes(b"mid")
        await peer.stream.send_all(raw_frame(0x0, text[5:]))
        assert isinstance(decode_server_frame((await peer.frame())[1]), ServerPong)


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b"\x89\x02hi", id="unmasked"),
        pytest.param(b"\xc9\x82" + bytes(4) + b"hi", id="rsv1 set"),
        pytest.param(b"\x09\x82" + bytes(4) + b"hi", id="not final"),
        pytest.param(raw_frame(0x9, b"x" * 126), id="over 125 bytes"),
    ],
)
async def test_malformed_ping_is_a_protocol_error(server: Server, frame: bytes) -> None:
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        await peer.stream.send_all(frame)
        assert await peer.close_code() == 1002
        other = await raw_user(server, "b")
        await other.stream.send_all(raw_frame(0x9, b"ok"))
        assert await other.take(4) == pong_bytes(b"ok")


async def test_ping_shaped_bytes_inside_a_frame_are_payload(server: Server) -> None:
    """A text frame's header, a pause, then its 8 payload bytes, which on their own
    would read as a ping: they are the text's (invalid UTF-8: 1007), not a ping."""
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        ping_shaped = b"\x89\x82" + bytes(4) + b"hi"
        await peer.stream.send_all(b"\x81\x88" + bytes(4))  # text, 8 bytes, zero mask
        await trio.sleep(0.05)  # the server reads the header alone
        await peer.stream.send_all(ping_shaped)
        first, payload = await peer.frame()
        assert (first, int.from_bytes(payload[:2], "big")) == (0x88, 1007)


async def test_a_reset_connection_ends_like_a_dropped_one(server: Server) -> None:
    """A client whose TCP connection is reset (RST, not FIN): its connection ends, no
    error is logged or counted, and the server goes on serving."""
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        assert len(server.live) == 1
        peer.stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await peer.stream.aclose()
        while server.live:  # noqa: ASYNC110 - no event for this; poll (fail_after bounds it)
            await trio.sleep(0.01)
        assert server.stats.internal_errors == 0
        other = await raw_user(server, "b")
        await other.stream.send_all(raw_frame(0x9, b"ok"))
        assert await other.take(4) == pong_bytes(b"ok")


async def test_ping_shaped_bytes_after_part_of_a_header_are_not_a_ping(server: Server) -> None:
    """One byte of a text frame's header, a pause, then bytes that on their own read as a
    lone ping: they are the rest of the header, its mask and the text (whose first byte,
    unmasked, is not UTF-8: 1007)."""
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        await peer.stream.send_all(b"\x81")
        await trio.sleep(0.05)  # the server reads the one byte alone
        await peer.stream.send_all(b"\x89\x82" + bytes(4) + b"hi")
        first, payload = await peer.frame()
        assert (first, int.from_bytes(payload[:2], "big")) == (0x88, 1007)


async def test_a_ping_after_the_servers_close_is_not_an_error(server: Server) -> None:
    """RFC 6455: the peer may send control frames until its own Close. After the
    server's Close no pong is due; the close handshake ends normally."""
    with trio.fail_after(GUARD):
        peer = await raw_user(server, "a")
        await peer.stream.send_all(raw_frame(0x1, encode(Logout())))
        assert await peer.close_code() == 1000
        await peer.stream.send_all(raw_frame(0x9, b"late"))
        await peer.stream.send_all(raw_frame(0x8, (1000).to_bytes(2, "big")))
        while await peer.stream.receive_some():  # the server closes the TCP connection
            pass
        assert server.stats.internal_errors == 0


async def _close_during_wake_up() -> str:
    """One try: the reader's socket and another both become readable; if the other's
    task runs first it closes the reader's socket and opens a new one, which takes the
    same number, with bytes waiting. What the reader returns, or "closed"."""
    mine_sock, my_peer = socket.socketpair()  # the peers stay plain: sends without await
    other_sock, other_peer = socket.socketpair()
    mine, other = (
        trio.socket.from_stdlib_socket(mine_sock),
        trio.socket.from_stdlib_socket(other_sock),
    )
    ws = ServerWebSocket(trio.SocketStream(mine), WSConnection(ConnectionType.SERVER))
    number = mine.fileno()
    reused: list[trio.socket.SocketType] = []
    outcome = ""

    async def read() -> None:
        nonlocal outcome
        try:
            outcome = (await ws._receive_some()).decode()
        except trio.ClosedResourceError:
            outcome = "closed"

    async def close_and_reuse() -> None:
        await other.recv(1)  # woken in the same batch as the reader
        mine.close()
        reused.extend(trio.socket.socketpair())
        assert reused[0].fileno() == number
        await reused[1].send(b"someone else's")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        nursery.start_soon(close_and_reuse)
        await wait_all_tasks_blocked()
        # Both readable before either task runs (no checkpoint between the two sends).
        my_peer.send(b"mine")
        other_peer.send(b"x")
    for sock in (my_peer, other, other_peer, *reused):
        sock.close()
    return outcome


async def test_a_socket_closed_while_its_reader_wakes_is_not_read() -> None:
    """The reader reads by descriptor number: a socket closed after its wake-up was
    queued, its number already another socket's, must read as closed, never as the
    other socket's bytes."""
    outcomes = {await _close_during_wake_up() for _ in range(40)}
    assert outcomes <= {"mine", "closed"}
    assert "closed" in outcomes  # trio ran the closer first at least once
