"""The hostile-input catalogue (issue 4): one row per test, over raw WebSockets.

Every row checks the server's answer (an error frame, or a close code) and then that a
fresh, healthy pair of sessions still routes a message: one client's bad input never
affects anyone else.
"""

from __future__ import annotations

import itertools

import pytest
import trio
from trio.testing import MockClock
from trio_websocket import ConnectionClosed

from rtmcall.engine.codes import LoginError, PeerMessageError
from rtmcall.engine.frames import Deliver, Error, LoginFail, Ping, Result, ServerPong, Text
from rtmcall.server import Server

from .conftest import Client, Harness, raw_frame

_names = itertools.count()


async def assert_healthy(harness: Harness) -> None:
    """Two new users log in and route a message both ways."""
    n = next(_names)
    a = await harness.user(f"healthy-a{n}")
    b = await harness.user(f"healthy-b{n}")
    rid = await a.send_to(f"healthy-b{n}", Text(text="still here"))
    assert (await a.result(rid)).code == PeerMessageError.OK
    got = await b.expect(Deliver)
    assert (got.sender, got.msg) == (f"healthy-a{n}", Text(text="still here"))


async def assert_alive(client: Client) -> None:
    """The connection survived: a Ping is answered."""
    await client.send(Ping())
    await client.expect(ServerPong)


async def send_expecting_close(client: Client, data: str | bytes) -> int:
    """Send ``data``; the close code (the server may close before the send completes)."""
    try:
        await client.send(data)
    except ConnectionClosed as exc:
        assert exc.reason is not None
        return exc.reason.code
    return await client.closed_code()


# --- rows answered with an error frame; the connection stays up ----------------------------

BAD_FRAMES: dict[str, str | bytes] = {
    "malformed json": '{"t": "ping"',
    "not json at all": "hello there",
    "empty": "",
    "json but not an object": "[1, 2, 3]",
    "wrong types": '{"t": "query", "rid": "one", "users": "bob"}',
    "unknown type": '{"t": "teleport", "rid": 1}',
    "missing fields": '{"t": "query"}',
    "unknown field": '{"t": "ping", "extra": true}',
    "deep nesting": "[" * 30_000 + "]" * 30_000,
    "deep nesting in a field": '{"t": "query", "rid": 1, "users": ' + "[" * 30_000,
    "huge number": '{"t": "query", "rid": 1e400, "users": []}',
    "negative rid": '{"t": "query", "rid": -1, "users": []}',
    "nul bytes": '{"t": "pi\x00ng"}',
    "lone surrogate escape": '{"t": "query", "rid": 1, "users": ["\\ud800"]}',
    "binary frame with bad utf-8": b'{"t": "ping", "x": "\xff\xfe"}',
    "binary garbage": bytes(range(256)),
}


@pytest.mark.parametrize("data", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_bad_frame_answered(harness: Harness, server: Server, data: str | bytes) -> None:
    with trio.fail_after(10):
        client = await harness.user("victim")
        await client.send(data)
        error = await client.expect(Error)
        assert error.code == "bad_frame"
        assert error.message.startswith("bad frame: ")
        assert len(error.message) <= 300
        await assert_alive(client)
        assert server.stats.bad_frames == 1
        await assert_healthy(harness)


async def test_bad_frame_keeps_rid(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        client = await harness.user("a")
        await client.send('{"t": "query", "rid": 42, "users": "not a list"}')
        error = await client.expect(Error)
        assert error.rid == 42
        assert "$.users" in error.message


async def test_bad_send_answered_with_result(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        client = await harness.user("a")
        await client.send('{"t": "send", "rid": 3, "to": "b", "msg": {"k": "teleport"}}')
        result = await client.expect(Result)
        assert (result.rid, result.code) == (3, PeerMessageError.INVALID_MESSAGE)
        await assert_healthy(harness)


async def test_binary_frame_with_valid_json_works(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        client = await harness.user("a")
        await client.send(b'{"t": "ping"}')
        await client.expect(ServerPong)


@pytest.mark.parametrize(
    "data",
    [
        '{"t": "ping"}',
        '{"t": "send", "rid": 5, "to": "b", "msg": {"k": "text", "text": "hi"}}',
        "{broken",
    ],
    ids=["ping", "send", "malformed"],
)
async def test_frames_before_login(harness: Harness, server: Server, data: str) -> None:
    with trio.fail_after(5):
        client = await harness.connect()
        await client.send(data)
        error = await client.expect(Error)
        assert error.code == ("bad_frame" if data == "{broken" else "not_logged_in")
        if "send" in data:
            assert error.rid == 5
        await client.login("now-ok")
        await assert_healthy(harness)


# --- rows answered with a close code --------------------------------------------------------


async def test_huge_frame_closes_1009(harness: Harness, server: Server) -> None:
    with trio.fail_after(10):
        client = await harness.user("a")
        assert (
            await send_expecting_close(client, '{"t": "ping", "pad": "' + "x" * (64 * 1024) + '"}')
            == 1009
        )
        await assert_healthy(harness)


async def test_huge_nesting_closes_1009(harness: Harness, server: Server) -> None:
    with trio.fail_after(10):
        client = await harness.user("a")
        assert await send_expecting_close(client, "[" * 100_000 + "]" * 100_000) == 1009
        await assert_healthy(harness)


async def test_huge_in_bytes_but_not_characters_closes_1009(
    harness: Harness, server: Server
) -> None:
    """30 000 characters, 90 000 bytes of UTF-8: the byte limit is what counts."""
    with trio.fail_after(10):
        client = await harness.user("a")
        assert (
            await send_expecting_close(client, '{"t": "ping", "pad": "' + "€" * 30_000 + '"}')
            == 1009
        )
        await assert_healthy(harness)


async def test_huge_fragmented_message_closes_1009(harness: Harness, server: Server) -> None:
    with trio.fail_after(10):
        client = await harness.user("a")
        stream = client.ws._stream
        await stream.send_all(raw_frame(0x1, b"[" * 40_000, fin=False))
        await stream.send_all(raw_frame(0x0, b"[" * 40_000, fin=False))
        assert await client.closed_code() == 1009
        await assert_healthy(harness)


async def test_huge_frame_before_login_closes_1009(harness: Harness, server: Server) -> None:
    with trio.fail_after(10):
        client = await harness.connect()
        assert await send_expecting_close(client, "x" * 70_000) == 1009
        await assert_healthy(harness)


async def test_invalid_utf8_text_closes_1007(harness: Harness, server: Server) -> None:
    with trio.fail_after(10):
        client = await harness.user("a")
        await client.ws._stream.send_all(raw_frame(0x1, b'{"t": "ping", "x": "\xff\xfe"}'))
        assert await client.closed_code() == 1007
        await assert_healthy(harness)


async def test_login_timeout_closes(
    harness: Harness, server: Server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(30):
        client = await harness.connect()
        assert (await client.expect(LoginFail)).reason == LoginError.TIMEOUT
        assert await client.closed_code() == 1008
        await assert_healthy(harness)


async def test_not_http_at_all(harness: Harness, server: Server) -> None:
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        await stream.send_all(b"\x16\x03\x01 this is not an HTTP request\r\n\r\n")
        with trio.move_on_after(2):
            while await stream.receive_some():
                pass
        await stream.aclose()
        await assert_healthy(harness)


async def test_silent_tcp_connection_dropped(
    harness: Harness, server: Server, autojump_clock: MockClock
) -> None:
    """Slowloris: a TCP connection that never sends its handshake is closed in time."""
    with trio.fail_after(30):
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        start = trio.current_time()
        assert await stream.receive_some() == b""
        assert trio.current_time() - start == pytest.approx(10, abs=0.5)
        await trio.sleep(0.1)
        assert server.stats.connections == 0
        await assert_healthy(harness)
