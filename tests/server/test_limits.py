"""Rate limits, the outbound queue (slow readers), the connection cap, fault isolation."""

from __future__ import annotations

import logging
import socket

import pytest
import trio
from trio.testing import MockClock

from rtmcall.engine.codes import LoginError, PeerMessageError
from rtmcall.engine.frames import (
    Deliver,
    Error,
    LoginFail,
    Presence,
    Query,
    Result,
    Text,
)
from rtmcall.server import HubUnavailable, MemoryHub, ServerConfig

from .conftest import Client, Harness
from .test_hostile import assert_healthy


async def test_message_rate_limit(harness: Harness, autojump_clock: MockClock) -> None:
    with trio.fail_after(30):
        server = await harness.start(limits={"rate_messages": 5, "rate_messages_per": 1.0})
        a = await harness.user("a")
        b = await harness.user("b")
        codes = []
        for i in range(7):
            rid = await a.send_to("b", Text(text=str(i)))
            codes.append((await a.result(rid)).code)
        assert codes == [0] * 5 + [PeerMessageError.TOO_OFTEN] * 2
        for _ in range(5):
            await b.expect(Deliver)
        await a.send(Query(rid=99, users=["b"]))  # requests share the bucket
        error = await a.expect(Error)
        assert (error.code, error.rid) == ("too_often", 99)
        await trio.sleep(1.0)  # refilled
        rid = await a.send_to("b", Text(text="again"))
        assert (await a.result(rid)).code == PeerMessageError.OK
        await a.send(Query(rid=100, users=["b"]))
        assert (await a.expect(Presence)).rid == 100
        assert server.stats.rate_limited == 3
        await b.expect(Deliver)
        # The limit is per user: b is not affected by a's flood.
        rid = await b.send_to("a", Text(text="hi"))
        assert (await b.result(rid)).code == PeerMessageError.OK


async def test_message_rate_default_is_agoras(harness: Harness, autojump_clock: MockClock) -> None:
    with trio.fail_after(30):
        await harness.start()
        a = await harness.user("a")
        await harness.user("b")
        for i in range(180):
            await a.send_to("b", Text(text=str(i)))
        codes = [(await a.expect(Result)).code for _ in range(180)]
        assert set(codes) == {PeerMessageError.OK}
        rid = await a.send_to("b", Text(text="181st"))
        assert (await a.result(rid)).code == PeerMessageError.TOO_OFTEN


async def test_login_rate_limit(harness: Harness, autojump_clock: MockClock) -> None:
    with trio.fail_after(30):
        server = await harness.start()
        await harness.user("a")
        await harness.user("a")
        third = await harness.connect()
        await third.send({"t": "login", "user": "a"})
        fail = await third.expect(LoginFail)
        assert fail.reason == LoginError.TOO_OFTEN
        assert "login" in fail.message
        await harness.user("other")  # other user ids are not affected
        await trio.sleep(1.0)
        await harness.user("a")
        assert server.stats.rate_limited == 1


async def test_slow_reader_is_cut_and_others_keep_working(harness: Harness) -> None:
    with trio.fail_after(20):
        config = ServerConfig(
            rate_messages=100_000,
            outbound_queue_frames=64,
            outbound_queue_bytes=512 * 1024,
        )
        server = await harness.start(config=config)
        sender = await harness.user("sender")
        await harness.user("slow")  # never reads again
        big = Text(text="x" * 30_000)
        last = PeerMessageError.OK
        for _ in range(5000):
            rid = await sender.send_to("slow", big)
            last = (await sender.result(rid)).code
            if last != PeerMessageError.OK:
                break
        assert last == PeerMessageError.PEER_UNREACHABLE
        assert server.stats.slow_readers == 1
        await assert_healthy(harness)
        await sender.send(Query(rid=1, users=["slow"]))
        assert (await sender.expect(Presence)).states == {"slow": 2}


async def test_frames_a_socket_takes_in_parts_arrive_whole_and_in_order(
    harness: Harness,
) -> None:
    """The server writes a frame straight to the socket when no send is in progress; what
    the socket does not take goes out after it, before anything else. With the receiver's
    socket buffers made small, two senders' 30 KB messages (and the server's own pings) to
    one receiver that reads slowly all arrive whole, each sender's in order."""
    with trio.fail_after(30):
        config = ServerConfig(
            rate_messages=100_000,
            outbound_queue_frames=4096,
            outbound_queue_bytes=8 << 20,
            idle_timeout=60,  # (its pong waits behind megabytes: not a dead line here)
        )
        server = await harness.start(config=config)
        one, two = await harness.user("one"), await harness.user("two")
        slow = await harness.user("slow")
        slow.ws._stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        (conn,) = [c for c in server.live if c.session and c.session.user == "slow"]
        conn.ws._stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        count = 10

        async def send_all(client: Client, tag: str) -> None:
            for i in range(count):
                await client.send_to("slow", Text(text=f"{tag}:{i}:" + "x" * 30_000))
                assert (await client.expect(Result)).code == PeerMessageError.OK

        got: dict[str, list[int]] = {"one": [], "two": []}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all, one, "one")
            nursery.start_soon(send_all, two, "two")
            while len(got["one"]) + len(got["two"]) < 2 * count:
                frame = await slow.expect(Deliver)  # (answering the server's pings)
                assert isinstance(frame.msg, Text)
                tag, i, pad = frame.msg.text.split(":")
                assert pad == "x" * 30_000
                got[tag].append(int(i))
        assert got == {"one": list(range(count)), "two": list(range(count))}
        assert server.stats.slow_readers == 0
        await assert_healthy(harness)


async def test_a_client_cut_while_a_frame_is_half_written_sees_a_drop_not_garbage(
    harness: Harness,
) -> None:
    """A silent client with a frame stuck half-way in its socket is cut (the busy
    limit): the server closes the socket rather than write a Close frame into the middle
    of that frame, which the client would read as a protocol error (1007)."""
    with trio.fail_after(20):
        server = await harness.start(config=ServerConfig(idle_timeout=2.0))
        sender = await harness.user("sender")
        stuck = await harness.user("stuck")
        stuck.ws._stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        (conn,) = [c for c in server.live if c.session and c.session.user == "stuck"]
        conn.ws._stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        for _ in range(10):
            rid = await sender.send_to("stuck", Text(text="x" * 30_000))
            assert (await sender.result(rid)).code == PeerMessageError.OK
        await trio.sleep(3)  # not reading, not answering: cut after the busy limit
        assert conn not in server.live
        code = await stuck.closed_code()
        assert code == 1006, code  # the connection dropped (before: 1007, bad UTF-8)
        await assert_healthy(harness)


async def test_connection_cap(harness: Harness) -> None:
    with trio.fail_after(10):
        server = await harness.start(limits={"max_connections": 2})
        a = await harness.user("a")
        await harness.user("b")
        refused = await harness.connect()
        assert await refused.closed_code() == 1013
        assert server.stats.connections_refused == 1
        rid = await a.send_to("b", Text(text="fine"))
        assert (await a.result(rid)).code == PeerMessageError.OK
        await a.ws.aclose()
        await trio.sleep(0.2)
        await harness.user("c")


class _FaultyHub(MemoryHub):
    async def deliver(self, to: str, data: bytes) -> PeerMessageError:
        if to == "boom":
            raise RuntimeError("injected fault")
        return await super().deliver(to, data)


async def test_exception_in_one_connection_is_contained(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(10):
        server = await harness.start(hub=_FaultyHub())
        a = await harness.user("a")
        await a.send_to("boom", Text(text="x"))
        assert await a.closed_code() == 1011
        assert server.stats.internal_errors == 1
        assert "unexpected error" in caplog.text
        await assert_healthy(harness)


async def test_logging(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rtmcall.server")
    with trio.fail_after(10):
        await harness.start()
        await harness.user("alice")
        await harness.user("alice")
        lines = [r.getMessage() for r in caplog.records if r.name == "rtmcall.server"]
        assert any(line.startswith("listening on ws://127.0.0.1:") for line in lines)
        assert any("user 'alice' logged in from 127.0.0.1:" in line for line in lines)
        assert any("kicked (REMOTE_LOGIN)" in line for line in lines)
        assert all("\n" not in line for line in lines)


class _DownHub(MemoryHub):
    """A shared store that is down for presence and for new registrations."""

    async def register(self, session):  # type: ignore[no-untyped-def]
        if session.user == "unlucky":
            raise HubUnavailable("store down")
        return await super().register(session)

    async def presence(self, users: list[str]) -> dict[str, int]:
        raise HubUnavailable("store down")


async def test_hub_unavailable_is_answered_not_fatal(harness: Harness) -> None:
    with trio.fail_after(10):
        server = await harness.start(hub=_DownHub())
        client = await harness.connect()
        await client.send({"t": "login", "user": "unlucky"})
        fail = await client.expect(LoginFail)
        assert fail.reason == LoginError.TIMEOUT and "unavailable" in fail.message
        assert server.stats.sessions == 0 and not server.sessions
        a = await harness.user("a")
        await a.send(Query(rid=5, users=["b"]))
        error = await a.expect(Error)
        assert (error.code, error.rid) == ("unavailable", 5)
        assert server.stats.internal_errors == 0
