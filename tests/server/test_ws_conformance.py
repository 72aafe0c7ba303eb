"""RFC 6455 violations a byte-level probe sends, each answered with the close code the RFC
names (1002 protocol error, 1007 bad data), with its reason; a legal close is echoed. The
server stays up for everyone else. (wsproto detects most; ``_ws`` makes sure the client
is told with a close frame rather than a dropped TCP connection.)"""

from __future__ import annotations

import pytest
import trio

from rtmcall.server import Server

from .conftest import GUARD, Harness, raw_frame
from .test_fragments import flood
from .test_hostile import assert_healthy


def header(first: int, length: bytes, payload: bytes = b"") -> bytes:
    """A masked frame with a hand-made length field (``length`` = byte 1's low 7 bits and
    any extended length); the payload is masked with a zero key."""
    return bytes([first]) + bytes([0x80 | length[0]]) + length[1:] + b"\0\0\0\0" + payload


PING = b'{"t":"ping"}'
VIOLATIONS: dict[str, tuple[bytes, int, str]] = {
    "unmasked frame": (bytes([0x81, len(PING)]) + PING, 1002, "unmasked"),
    "reserved bit": (
        bytes([0xC1]) + raw_frame(0x1, PING)[1:],
        1002,
        "Reserved bit",
    ),
    "reserved opcode": (raw_frame(0x3, b"x"), 1002, "opcode"),
    "reserved control opcode": (raw_frame(0xB, b"x"), 1002, "opcode"),
    "fragmented ping": (raw_frame(0x9, b"x", fin=False), 1002, "fragment control frame"),
    "ping over 125 bytes": (
        header(0x89, bytes([126]) + (126).to_bytes(2, "big"), b"x" * 126),
        1002,
        "125",
    ),
    "continuation first": (raw_frame(0x0, b"x"), 1002, "CONTINUATION"),
    "new message inside a message": (
        raw_frame(0x1, b"{", fin=False) + raw_frame(0x1, b"}"),
        1002,
        "CONTINUATION",
    ),
    "length with the high bit": (
        header(0x81, bytes([127]) + (2**63).to_bytes(8, "big")),
        1002,
        "MSB",
    ),
    "non-minimal length": (
        header(0x81, bytes([126]) + len(PING).to_bytes(2, "big"), PING),
        1002,
        "sufficed",
    ),
    "close with a bad code": (raw_frame(0x8, (999).to_bytes(2, "big")), 1002, "invalid code"),
    "close with a local-only code": (raw_frame(0x8, (1005).to_bytes(2, "big")), 1002, "local-only"),
    "close with one byte": (raw_frame(0x8, b"\x03"), 1002, "1 byte"),
    "close reason not utf-8": (
        raw_frame(0x8, (1000).to_bytes(2, "big") + b"\xff"),
        1007,
        "CLOSE reason",
    ),
}


@pytest.mark.parametrize("data,code,reason", VIOLATIONS.values(), ids=VIOLATIONS.keys())
async def test_violation_closes_with_its_code(
    harness: Harness, server: Server, data: bytes, code: int, reason: str
) -> None:
    with trio.fail_after(GUARD):
        client = await harness.user("probe")
        await flood(client, data)
        assert await client.closed_code() == code
        assert client.ws.closed is not None
        assert reason in (client.ws.closed.reason or "")
        assert server.stats.internal_errors == 0
        await assert_healthy(harness)


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_legal_close_is_echoed(harness: Harness, server: Server, code: int) -> None:
    with trio.fail_after(GUARD):
        client = await harness.user("closer")
        await flood(client, raw_frame(0x8, code.to_bytes(2, "big") + b"bye"))
        assert await client.closed_code() == code
        await assert_healthy(harness)
