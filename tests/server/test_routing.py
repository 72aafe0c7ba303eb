"""Login, routing, delivery results, FIFO."""

from __future__ import annotations

import trio

from rtmcall.engine.codes import LoginError, PeerMessageError
from rtmcall.engine.frames import (
    Deliver,
    Invite,
    Login,
    LoginFail,
    Ping,
    Result,
    ServerPong,
    Text,
)
from rtmcall.server import Server

from .conftest import Harness


async def test_login_ok(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        client = await harness.connect()
        ok = await client.login("alice")
        assert ok.user == "alice"
        assert ok.session and len(ok.session) >= 16
        assert not ok.resumed
        assert ok.heartbeat == 3.0
        assert ok.standby_heartbeat == 30.0
        assert ok.resume_window == 10.0
        assert ok.token_expires_in is None
        assert server.stats.sessions == 1


async def test_session_ids_differ(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        a = await harness.connect()
        b = await harness.connect()
        assert (await a.login("a")).session != (await b.login("b")).session


async def test_login_invalid_user_id(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        for bad in ["null", " lead", "trail ", "tab\there", "é", "x" * 65]:
            client = await harness.connect()
            await client.send({"t": "login", "user": bad})
            frame = await client.recv()
            if len(bad) > 64:  # caught by the frame's own length bound
                assert frame.code == "bad_frame"  # type: ignore[union-attr]
                continue
            assert isinstance(frame, LoginFail), bad
            assert frame.reason == LoginError.INVALID_ARGUMENT
            assert frame.message
            assert await client.closed_code() == 1008


async def test_ping_pong(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        client = await harness.user("a")
        await client.send(Ping())
        await client.expect(ServerPong)
        await client.send({"t": "pong"})  # tolerated, no answer
        await client.send(Ping())
        await client.expect(ServerPong)


async def test_route_with_sender_stamped(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        a = await harness.user("alice")
        b = await harness.user("bob")
        rid = await a.send_to("bob", Text(text="hello"))
        assert (await a.result(rid)).code == PeerMessageError.OK
        got = await b.expect(Deliver)
        assert got.sender == "alice"
        assert got.msg == Text(text="hello")
        assert server.stats.messages_routed == 1


async def test_sender_cannot_be_forged(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        a = await harness.user("mallory")
        b = await harness.user("bob")
        forged = {"t": "send", "rid": 7, "to": "bob", "from": "alice", "msg": {"k": "text"}}
        await a.send(forged)
        result = await a.result(7)
        assert result.code == PeerMessageError.INVALID_MESSAGE
        assert "from" in result.message
        rid = await a.send_to("bob", Text(text="x"))
        await a.result(rid)
        got = await b.expect(Deliver)  # the forged frame never arrived: this is the next one
        assert got.sender == "mallory"


async def test_result_peer_offline(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        a = await harness.user("a")
        rid = await a.send_to("nobody", Invite(id="inv1"))
        assert (await a.result(rid)).code == PeerMessageError.PEER_UNREACHABLE


async def test_send_to_self(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        a = await harness.user("a")
        rid = await a.send_to("a", Text(text="me"))
        got = await a.expect(Deliver)
        assert got.sender == "a"
        assert (await a.result(rid)).code == PeerMessageError.OK


async def test_invalid_user_id_result(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        a = await harness.user("a")
        rid = await a.send_to("null", Text(text="x"))
        result = await a.result(rid)
        assert result.code == PeerMessageError.INVALID_USERID
        await a.send({"t": "send", "rid": 9, "to": "x" * 65, "msg": {"k": "text"}})
        assert (await a.result(9)).code == PeerMessageError.INVALID_USERID


async def test_invalid_message_result(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        a = await harness.user("a")
        await harness.user("b")
        # 3000 characters but 9000 bytes of UTF-8: over the 8 KB content limit.
        rid = await a.send_to("b", Invite(id="i1", content="€" * 3000))
        result = await a.result(rid)
        assert result.code == PeerMessageError.INVALID_MESSAGE
        assert "content" in result.message
        bad_id = {"t": "send", "rid": 5, "to": "b", "msg": {"k": "invite", "id": "no spaces"}}
        await a.send(bad_id)
        result = await a.result(5)
        assert result.code == PeerMessageError.INVALID_MESSAGE
        assert "$.msg.id" in result.message


async def test_fifo_per_pair(harness: Harness, server: Server) -> None:
    with trio.fail_after(10):
        a = await harness.user("a")
        b = await harness.user("b")
        c = await harness.user("c")
        n = 150

        async def blast(client: object, tag: str) -> None:
            for i in range(n):
                await client.send_to("b", Text(text=f"{tag}{i}"))  # type: ignore[attr-defined]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(blast, a, "a")
            nursery.start_soon(blast, c, "c")
        seen: dict[str, list[int]] = {"a": [], "c": []}
        for _ in range(2 * n):
            got = await b.expect(Deliver)
            text = got.msg.text  # type: ignore[union-attr]
            assert text[0] == got.sender
            seen[got.sender].append(int(text[1:]))
        assert seen == {"a": list(range(n)), "c": list(range(n))}
        for client in (a, c):
            results = [await client.expect(Result) for _ in range(n)]
            assert [r.rid for r in results] == list(range(1, n + 1))
            assert {r.code for r in results} == {PeerMessageError.OK}


async def test_not_logged_in_then_login(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        client = await harness.connect()
        await client.send({"t": "query", "rid": 3, "users": ["x"]})
        error = await client.recv()
        assert error.code == "not_logged_in" and error.rid == 3  # type: ignore[union-attr]
        await client.login("late")


async def test_second_login_frame_refused(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        client = await harness.user("a")
        await client.send(Login(user="b"))
        error = await client.recv()
        assert error.code == "forbidden"  # type: ignore[union-attr]
