"""Quiet Sends: answered only when not delivered; the pong acknowledges the rest."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from rtmcall.engine.codes import PeerMessageError
from rtmcall.engine.frames import Deliver, Ping, Result, Send, ServerPong, Text

from .conftest import Harness
from .test_sessions import drop


async def test_a_delivered_quiet_send_gets_no_result_and_the_pong_acknowledges_it(
    harness: Harness, server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(10):
        a = await harness.user("a")
        b = await harness.user("b")
        await a.send(Send(rid=5, to="b", msg=Text(text="hi"), quiet=True))
        await a.send(Send(rid=6, to="nobody", msg=Text(text="x"), quiet=True))
        await a.send(Ping())
        assert (await b.expect(Deliver)).msg == Text(text="hi")
        # Only the failure is answered, then the pong covers both rids.
        failed = await a.recv()
        assert isinstance(failed, Result)
        assert (failed.rid, failed.code) == (6, PeerMessageError.PEER_UNREACHABLE)
        pong = await a.recv()
        assert isinstance(pong, ServerPong) and pong.rid == 6


async def test_a_quiet_send_repeated_after_a_resume_is_not_delivered_twice(
    harness: Harness, patient_server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(30):
        b = await harness.user("b")
        a = await harness.connect()
        ok = await a.login("a")
        await a.send(Send(rid=9, to="b", msg=Text(text="once"), quiet=True))
        assert (await b.expect(Deliver)).msg.text == "once"
        await drop(a)
        a = await harness.connect()
        assert (await a.login("a", resume=ok.session)).resumed
        await a.send(Send(rid=9, to="b", msg=Text(text="once"), quiet=True))
        await a.send(Ping())
        pong = await a.recv()
        assert isinstance(pong, ServerPong) and pong.rid == 9  # no Result before it
        await b.send(Ping())
        assert isinstance(await b.recv(), ServerPong)  # and b got it once
