"""Fragmented messages (issue 13 item 14, RFC 6455 §10.4): what one message may cost.

A message left open with empty continuation frames is cut (1008) after
``MAX_EMPTY_FRAMES``; bytes are counted as they arrive, before decoding (1009 past the
limit, also inside one huge frame); a legal message dripped one byte per frame is still
delivered, however slowly, UTF-8 split across frames included. Other users never notice.
Frames are built by hand (``raw_frame``) and written to the client's TCP stream.
"""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from rtmcall.engine.codes import PeerMessageError
from rtmcall.engine.frames import Deliver, Error, Ping, ServerPong, Text, encode
from rtmcall.server import Server
from rtmcall.server._ws import MAX_EMPTY_FRAMES

from .conftest import GUARD, Client, Harness, raw_frame
from .test_hostile import assert_alive, assert_healthy


def drip(message: bytes, *, opcode: int = 0x1) -> list[bytes]:
    """``message`` as one frame per byte: the first of ``opcode``, then continuations."""
    frames = [
        raw_frame(opcode if i == 0 else 0x0, message[i : i + 1], fin=False)
        for i in range(len(message))
    ]
    last = frames[-1]
    frames[-1] = bytes([last[0] | 0x80]) + last[1:]  # FIN on the last byte's frame
    return frames


async def write(client: Client, data: bytes) -> None:
    """Write bytes to the client's TCP stream, under its WebSocket's send lock (its reader
    answers a close frame on the same stream)."""
    async with client.ws._stream_lock:
        await client.ws._stream.send_all(data)


async def flood(client: Client, frames: bytes) -> None:
    """Write ``frames``; the server may close (and reset) before all of them are taken."""
    try:
        await write(client, frames)
    except trio.BrokenResourceError:
        pass


@pytest.mark.parametrize("opcode", [0x1, 0x2], ids=["text", "binary"])
async def test_empty_continuation_frames_close_1008(
    harness: Harness, server: Server, opcode: int
) -> None:
    """RFC 6455 §10.4's attack: a message opened, then 100 000 empty continuations."""
    with trio.fail_after(GUARD):
        bystander = await harness.user("bystander")
        attacker = await harness.user("attacker")
        empties = raw_frame(0x0, b"", fin=False) * 100_000
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood, attacker, raw_frame(opcode, b"", fin=False) + empties)
            assert await attacker.closed_code() == 1008
        assert attacker.ws.closed is not None
        assert "empty frames" in (attacker.ws.closed.reason or "")
        await assert_alive(bystander)
        await assert_healthy(harness)


async def test_a_few_empty_frames_are_legal(harness: Harness, server: Server) -> None:
    """Up to MAX_EMPTY_FRAMES per message, in every message: none is cut."""
    with trio.fail_after(GUARD):
        client = await harness.user("a")
        ping = encode(Ping())
        empty = raw_frame(0x0, b"", fin=False)
        for _ in range(5):
            frames = raw_frame(0x1, b"", fin=False) + empty * (MAX_EMPTY_FRAMES - 2)
            frames += raw_frame(0x0, ping, fin=False) + raw_frame(0x0, b"")  # an empty FIN
            await write(client, frames)
            await client.expect(ServerPong)
        await assert_alive(client)


async def test_one_empty_frame_too_many(harness: Harness, server: Server) -> None:
    with trio.fail_after(GUARD):
        client = await harness.user("a")
        frames = raw_frame(0x1, encode(Ping())[:3], fin=False)
        frames += raw_frame(0x0, b"", fin=False) * (MAX_EMPTY_FRAMES + 1)
        await flood(client, frames + raw_frame(0x0, encode(Ping())[3:]))
        assert await client.closed_code() == 1008


async def test_dripped_message_delivered(harness: Harness, server: Server) -> None:
    """A 30 000-character peer message, one byte per frame (~30 100 frames), with
    non-ASCII text split across frames (the byte count, not the decoded text, counts)."""
    with trio.fail_after(GUARD):
        alice = await harness.user("alice")
        bob = await harness.user("bob")
        text = ("x" * 99 + "€") * 300
        send = b'{"t":"send","rid":1,"to":"bob","msg":' + encode(Text(text=text)) + b"}"
        await write(alice, b"".join(drip(send)))
        got = await bob.expect(Deliver)
        assert got.sender == "alice" and got.msg == Text(text=text)
        assert (await alice.result(1)).code == PeerMessageError.OK
        await assert_healthy(harness)


async def test_dripped_binary_message_delivered(harness: Harness, server: Server) -> None:
    with trio.fail_after(GUARD):
        client = await harness.user("a")
        await write(client, b"".join(drip(encode(Ping()), opcode=0x2)))
        await client.expect(ServerPong)


async def test_slow_drip_is_not_silence(harness: Harness, autojump_clock: MockClock) -> None:
    """One byte every second of a 13-byte Ping, with a 4 s idle limit: the connection
    is not silent, and the Ping is answered."""
    await harness.start(limits={"standby_timeout": 4.0, "idle_timeout": 4.0})
    with trio.fail_after(60):
        client = await harness.user("slow")
        for part in drip(encode(Ping())):
            await write(client, part)
            await trio.sleep(1.0)
        await client.expect(ServerPong)
        await assert_alive(client)


async def test_bytes_counted_before_the_frame_ends(harness: Harness, server: Server) -> None:
    """One frame announcing 1 GiB: cut with 1009 once 64 KiB of it arrived, not at its
    end (the client stops sending after 80 KiB)."""
    with trio.fail_after(GUARD):
        client = await harness.user("a")
        head = bytes([0x81, 0x80 | 127]) + (2**30).to_bytes(8, "big") + b"\0\0\0\0"
        await flood(client, head + b"x" * (80 * 1024))
        assert await client.closed_code() == 1009
        await assert_healthy(harness)


async def test_utf8_bytes_over_the_limit_in_fragments(harness: Harness, server: Server) -> None:
    """30 000 '€' (90 000 bytes, 30 000 characters) in 3-byte frames: the byte limit."""
    with trio.fail_after(GUARD):
        client = await harness.user("a")
        euro = "€".encode()
        frames = raw_frame(0x1, euro, fin=False) + raw_frame(0x0, euro, fin=False) * 30_000
        await flood(client, frames)
        assert await client.closed_code() == 1009
        await assert_healthy(harness)


async def test_limit_survives_an_error_reply(harness: Harness, server: Server) -> None:
    """The count starts again with every message: a bad message, then a flood."""
    with trio.fail_after(GUARD):
        client = await harness.user("a")
        await write(client, b"".join(drip(b"not json")))
        assert (await client.expect(Error)).code == "bad_frame"
        await flood(client, raw_frame(0x1, b"", fin=False) + raw_frame(0x0, b"", fin=False) * 50)
        assert await client.closed_code() == 1008
