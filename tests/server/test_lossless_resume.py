"""A drop shorter than the resume window loses and duplicates no peer message.

Server → client: Deliver frames are numbered (seq); what the client has not acknowledged
is sent again on a resume (Login.ack). Client → server: a Send repeated on the resumed
connection (the client never saw its Result) is answered again, not delivered twice.
"""

from __future__ import annotations

import trio
from trio.testing import MockClock

from rtmcall.engine.codes import PeerMessageError
from rtmcall.engine.frames import Deliver, LoginOk, Ping, Result, Send, ServerPong, Text

from .conftest import Harness
from .test_sessions import drop


async def test_unacknowledged_messages_are_sent_again_after_a_resume(
    harness: Harness, patient_server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(30):
        a = await harness.user("a")
        b = await harness.connect()
        ok = await b.login("b")
        for i in range(1, 4):
            assert (await a.result(await a.send_to("b", Text(text=str(i))))).code == 0
        got = [await b.expect(Deliver) for _ in range(3)]
        assert [d.seq for d in got] == [1, 2, 3]
        await b.send(Ping(ack=1))  # b acknowledges only the first
        await b.expect(ServerPong)
        await drop(b)  # 2 and 3 were "on the wire" as far as the server can tell
        await trio.sleep(1)
        assert (await a.result(await a.send_to("b", Text(text="4")))).code == (
            PeerMessageError.CACHED_BY_SERVER
        )
        b = await harness.connect()
        again = await b.login("b", resume=ok.session, ack=1)
        assert again.resumed
        replayed = [await b.expect(Deliver) for _ in range(3)]
        assert [(d.seq, d.msg.text) for d in replayed] == [(2, "2"), (3, "3"), (4, "4")]


async def test_without_ack_a_resume_sends_only_what_was_never_sent(
    harness: Harness, patient_server, autojump_clock: MockClock
) -> None:
    """A client that does not acknowledge (older clients, raw tools) keeps the old rule."""
    with trio.fail_after(30):
        a = await harness.user("a")
        b = await harness.connect()
        ok = await b.login("b")
        await a.result(await a.send_to("b", Text(text="1")))
        assert (await b.expect(Deliver)).seq == 1
        await drop(b)
        await trio.sleep(1)
        await a.result(await a.send_to("b", Text(text="2")))
        b = await harness.connect()
        assert (await b.login("b", resume=ok.session)).resumed
        assert [(await b.expect(Deliver)).msg.text] == ["2"]


async def test_a_send_repeated_after_a_resume_is_not_delivered_twice(
    harness: Harness, patient_server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(30):
        b = await harness.user("b")
        a = await harness.connect()
        ok = await a.login("a")
        await a.send(Send(rid=7, to="b", msg=Text(text="once")))
        assert (await b.expect(Deliver)).msg.text == "once"
        await drop(a)  # before a read its Result
        a = await harness.connect()
        first = await a.login("a", resume=ok.session)
        assert isinstance(first, LoginOk) and first.resumed
        await a.send(Send(rid=7, to="b", msg=Text(text="once")))
        # Answered (again) with the original result...
        result = await a.expect(Result)
        assert (result.rid, result.code) == (7, 0)
        # b got it once: the next thing b sees is the pong to its ping.
        await b.send(Ping())
        assert isinstance(await b.recv(), ServerPong)


async def test_a_reused_rid_on_the_same_connection_is_a_new_message(
    harness: Harness, server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(10):
        a = await harness.user("a")
        b = await harness.user("b")
        for text in ("x", "y"):
            await a.send(Send(rid=1, to="b", msg=Text(text=text)))
            assert (await a.expect(Result)).code == 0
        assert [(await b.expect(Deliver)).msg.text for _ in range(2)] == ["x", "y"]
