"""Presence, duplicate logins, resume windows, logout, idle and login timeouts."""

from __future__ import annotations

import math
import sys

import pytest
import trio
from trio.testing import MockClock

from rtmcall.engine.codes import (
    ConnectionChangeReason,
    LoginError,
    PeerMessageError,
    PeerOnlineState,
)
from rtmcall.engine.frames import (
    Deliver,
    Kicked,
    Login,
    LoginFail,
    LoginOk,
    Logout,
    Ping,
    Presence,
    Query,
    ServerPing,
    Subscribe,
    Text,
    Unsubscribe,
)
from rtmcall.server import Server
from rtmcall.server.watchdogs import sweep_periods

from .conftest import Client, Harness

ONLINE, UNREACHABLE, OFFLINE = 0, 1, 2


async def drop(client: Client) -> None:
    """Cut the TCP connection without a WebSocket close or a Logout."""
    await client.ws._stream.aclose()


async def test_query(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        a = await harness.user("a")
        await harness.user("b")
        await a.send(Query(rid=1, users=["a", "b", "c"]))
        presence = await a.expect(Presence)
        assert presence.rid == 1
        assert presence.states == {"a": ONLINE, "b": ONLINE, "c": OFFLINE}


async def test_query_invalid_user(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        a = await harness.user("a")
        await a.send(Query(rid=4, users=["ok", "null"]))
        error = await a.recv()
        assert error.code == "invalid_user" and error.rid == 4  # type: ignore[union-attr]


async def test_subscribe_pushes(
    harness: Harness, server: Server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(60):
        watcher = await harness.user("w")
        await watcher.send(Subscribe(rid=1, users=["b"]))
        first = await watcher.expect(Presence)
        assert (first.rid, first.states) == (1, {"b": OFFLINE})

        b = await harness.user("b")  # login -> ONLINE
        push = await watcher.expect(Presence)
        assert (push.rid, push.states) == (None, {"b": ONLINE})

        await drop(b)  # dropped, inside the resume window -> UNREACHABLE
        push = await watcher.expect(Presence)
        assert push.states == {"b": UNREACHABLE}

        start = trio.current_time()
        push = await watcher.expect(Presence)  # window passed -> OFFLINE
        assert push.states == {"b": OFFLINE}
        assert 9.9 < trio.current_time() - start < 10.5

        b = await harness.user("b")
        assert (await watcher.expect(Presence)).states == {"b": ONLINE}
        await b.send(Logout())  # logout -> OFFLINE at once
        assert (await watcher.expect(Presence)).states == {"b": OFFLINE}
        assert await b.closed_code() == 1000

        await watcher.send(Unsubscribe(rid=2, users=["b"]))
        assert (await watcher.expect(Presence)).rid == 2
        await harness.user("b")
        await watcher.send(Ping())
        assert type(await watcher.recv()).__name__ == "ServerPong"  # no push in between


async def test_subscriptions_survive_resume(
    harness: Harness, server: Server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(30):
        w = await harness.connect()
        ok = await w.login("w")
        await w.send(Subscribe(rid=1, users=["b"]))
        await w.expect(Presence)
        await drop(w)
        w = await harness.connect()
        assert (await w.login("w", resume=ok.session)).resumed
        await harness.user("b")
        assert (await w.expect(Presence)).states == {"b": ONLINE}


async def test_duplicate_login_kicks_older(
    harness: Harness, server: Server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(5):
        old = await harness.connect()
        old_ok = await old.login("alice")
        watcher = await harness.user("w")
        await watcher.send(Subscribe(rid=1, users=["alice"]))
        await watcher.expect(Presence)

        new = await harness.user("alice")
        kicked = await old.expect(Kicked)
        assert kicked.reason == ConnectionChangeReason.REMOTE_LOGIN
        assert kicked.message
        assert await old.closed_code() == 1000
        assert server.stats.kicks == 1
        # Watchers hear the old session go (their invitations with it end), then the new
        # one arrive.
        assert (await watcher.expect(Presence)).states == {"alice": PeerOnlineState.OFFLINE}
        assert (await watcher.expect(Presence)).states == {"alice": PeerOnlineState.ONLINE}

        # The new session works, and routing goes to it.
        rid = await watcher.send_to("alice", Text(text="hi"))
        assert (await watcher.result(rid)).code == PeerMessageError.OK
        assert (await new.expect(Deliver)).msg == Text(text="hi")

        # The kicked session cannot be resumed: a resume is a fresh login (kicking again).
        await trio.sleep(1)  # the login rate limit: 2 per second per user id
        again = await harness.connect()
        ok = await again.login("alice", resume=old_ok.session)
        assert not ok.resumed and ok.session != old_ok.session
        assert (await new.expect(Kicked)).reason == ConnectionChangeReason.REMOTE_LOGIN
        assert (await watcher.expect(Presence)).states == {"alice": PeerOnlineState.OFFLINE}
        assert (await watcher.expect(Presence)).states == {"alice": PeerOnlineState.ONLINE}


async def test_resume_gets_buffered_frames_in_order(
    harness: Harness, patient_server: Server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(30):
        a = await harness.user("a")
        b = await harness.connect()
        ok = await b.login("b")
        await drop(b)
        await trio.sleep(1)
        for i in range(5):
            rid = await a.send_to("b", Text(text=str(i)))
            assert (await a.result(rid)).code == PeerMessageError.CACHED_BY_SERVER
        await trio.sleep(8)  # still inside the 10 s window
        b = await harness.connect()
        await b.send(Login(user="b", resume=ok.session))
        resumed = await b.expect(LoginOk)
        assert resumed.resumed and resumed.session == ok.session
        texts = [(await b.expect(Deliver)).msg.text for _ in range(5)]  # type: ignore[union-attr]
        assert texts == ["0", "1", "2", "3", "4"]
        rid = await a.send_to("b", Text(text="live"))
        assert (await a.result(rid)).code == PeerMessageError.OK
        assert patient_server.stats.resumes == 1


async def test_resume_buffer_is_bounded(harness: Harness, autojump_clock: MockClock) -> None:
    with trio.fail_after(30):
        await harness.start(limits={"resume_buffer_frames": 3, "idle_timeout": 3600.0})
        a = await harness.user("a")
        b = await harness.connect()
        await b.login("b")
        await drop(b)
        await trio.sleep(0.5)
        codes = []
        for i in range(5):
            rid = await a.send_to("b", Text(text=str(i)))
            codes.append((await a.result(rid)).code)
        assert codes == [4, 4, 4, 3, 3]


async def test_session_expires_after_window(
    harness: Harness, patient_server: Server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(30):
        a = await harness.user("a")
        b = await harness.connect()
        ok = await b.login("b")
        await drop(b)
        await trio.sleep(10.5)
        rid = await a.send_to("b", Text(text="late"))
        assert (await a.result(rid)).code == PeerMessageError.PEER_UNREACHABLE
        b = await harness.connect()
        assert not (await b.login("b", resume=ok.session)).resumed
        assert patient_server.stats.sessions_expired == 1


async def test_resume_while_old_connection_half_open(
    harness: Harness, patient_server: Server, autojump_clock: MockClock
) -> None:
    """The client noticed a dead connection before the server did: it resumes anyway."""
    with trio.fail_after(30):
        a = await harness.user("a")
        old = await harness.connect()
        ok = await old.login("b")
        new = await harness.connect()
        assert (await new.login("b", resume=ok.session)).resumed
        rid = await a.send_to("b", Text(text="x"))
        assert (await a.result(rid)).code == PeerMessageError.OK
        assert (await new.expect(Deliver)).msg == Text(text="x")
        assert await old.closed_code() == 1000


async def test_resume_other_users_session_is_fresh_login(harness: Harness, server: Server) -> None:
    with trio.fail_after(5):
        a = await harness.connect()
        ok = await a.login("a")
        m = await harness.connect()
        stolen = await m.login("mallory", resume=ok.session)
        assert not stolen.resumed and stolen.session != ok.session


async def test_login_timeout(harness: Harness, server: Server, autojump_clock: MockClock) -> None:
    with trio.fail_after(30):
        client = await harness.connect()
        start = trio.current_time()
        fail = await client.expect(LoginFail)
        assert fail.reason == LoginError.TIMEOUT
        assert await client.closed_code() == 1008
        assert 9.9 < trio.current_time() - start < 10.5
        assert server.stats.login_timeouts == 1


async def test_idle_connection_pinged_then_closed(
    harness: Harness, server: Server, autojump_clock: MockClock
) -> None:
    """After login a connection is in standby: pinged after 45 s of silence, cut at 90
    (each checked every 4.5 s: the standby limit's twentieth)."""
    with trio.fail_after(200):
        client = await harness.user("a")
        client.auto_pong = False
        start = trio.current_time()
        await client.expect(ServerPing)
        assert 44.9 < trio.current_time() - start < 45 + 4.6
        assert await client.closed_code() == 1008
        assert 89.9 < trio.current_time() - start < 90 + 4.6
        assert server.stats.idle_timeouts == 1


@pytest.mark.parametrize("standby", [False, True])
async def test_each_ping_sets_the_silence_allowed(
    harness: Harness, server: Server, autojump_clock: MockClock, standby: bool
) -> None:
    """A Ping without ``standby`` promises the next within 3 s: cut after 10 s of silence
    (pinged at 5); ``standby=True`` after a busy one goes back to 45 / 90 s."""
    with trio.fail_after(200):
        client = await harness.user("a")
        client.auto_pong = False
        await client.send(Ping())
        assert type(await client.recv()).__name__ == "ServerPong"
        if standby:
            await client.send(Ping(standby=True))
            assert type(await client.recv()).__name__ == "ServerPong"
        # Checked every twentieth of the limit: 4.5 s in standby, 0.5 s when busy.
        ping_at, cut_at, late = (45.0, 90.0, 4.6) if standby else (5.0, 10.0, 0.6)
        start = trio.current_time()
        await client.expect(ServerPing)
        assert ping_at - 0.1 < trio.current_time() - start < ping_at + late
        assert await client.closed_code() == 1008
        assert cut_at - 0.1 < trio.current_time() - start < cut_at + late
        assert server.stats.idle_timeouts == 1


async def test_idle_sweeper_bounds_and_one_ping_per_silence(
    harness: Harness, autojump_clock: MockClock
) -> None:
    """One server-wide sweeper: ping at idle/2, close at idle, each at most idle/20 late;
    a frame from the client starts a new silence (and a new ping); others are unaffected."""
    server = await harness.start(limits={"idle_timeout": 4.0})
    with trio.fail_after(60):
        quiet = await harness.user("quiet")
        quiet.auto_pong = False
        await quiet.send(Ping())  # busy: the idle timeout applies (not the standby one)
        assert type(await quiet.recv()).__name__ == "ServerPong"
        chatty = await harness.user("chatty")

        async def keep_talking() -> None:  # a Ping every second: never cut
            while True:
                await chatty.send(Ping())
                assert type(await chatty.recv()).__name__ == "ServerPong"
                await trio.sleep(1)

        harness.nursery.start_soon(keep_talking)
        start = trio.current_time()
        await quiet.expect(ServerPing)
        assert 2.0 <= trio.current_time() - start <= 2.2 + 0.05
        await quiet.send(Ping())
        assert type(await quiet.recv()).__name__ == "ServerPong"
        again = trio.current_time()
        await quiet.expect(ServerPing)  # exactly one ping for the new silence, then the close
        assert 2.0 <= trio.current_time() - again <= 2.2 + 0.05
        assert await quiet.closed_code() == 1008
        assert 4.0 <= trio.current_time() - again <= 4.2 + 0.05
        assert server.stats.idle_timeouts == 1
        await trio.sleep(10)
        assert server.stats.idle_timeouts == 1
        assert len(server.live) == 1


async def test_heartbeat_keeps_connection(
    harness: Harness, server: Server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(60):
        client = await harness.user("a")
        for _ in range(10):
            await trio.sleep(3)
            await client.send(Ping())
            assert type(await client.recv()).__name__ == "ServerPong"
        assert server.stats.idle_timeouts == 0


async def test_fresh_login_replaces_detached_session(
    harness: Harness, patient_server: Server, autojump_clock: MockClock
) -> None:
    with trio.fail_after(30):
        w = await harness.user("w")
        await w.send(Subscribe(rid=1, users=["b"]))
        await w.expect(Presence)
        b = await harness.connect()
        old = await b.login("b")
        assert (await w.expect(Presence)).states == {"b": ONLINE}
        await drop(b)
        assert (await w.expect(Presence)).states == {"b": UNREACHABLE}
        rid = await w.send_to("b", Text(text="for the old session"))
        assert (await w.result(rid)).code == PeerMessageError.CACHED_BY_SERVER
        await trio.sleep(1)
        b = await harness.connect()
        new = await b.login("b")  # no resume: the detached session is kicked
        assert new.session != old.session and not new.resumed
        # The old session (and its invitations) ended, then b is back.
        assert (await w.expect(Presence)).states == {"b": OFFLINE}
        assert (await w.expect(Presence)).states == {"b": ONLINE}
        await trio.sleep(0.1)
        assert patient_server.stats.sessions == 2
        assert old.session not in patient_server.sessions
        await trio.sleep(15)  # the old window would have passed: nothing changes
        await w.send(Query(rid=2, users=["b"]))
        assert (await w.expect(Presence)).states == {"b": ONLINE}


async def test_everything_is_released(
    harness: Harness, patient_server: Server, autojump_clock: MockClock
) -> None:
    """After logins, kicks, drops, resumes, expiries and logouts, nothing is left."""
    with trio.fail_after(60):
        hub = patient_server.hub
        a = await harness.user("a")
        await a.send(Subscribe(rid=1, users=["b", "c"]))
        await a.expect(Presence)
        b = await harness.connect()
        ok = await b.login("b")
        await drop(b)
        b = await harness.connect()
        await b.login("b", resume=ok.session)
        c = await harness.user("c")
        await drop(c)
        await harness.user("a")  # kicks the first a
        await trio.sleep(12)  # c's window passes
        for name in ("a", "b"):
            await trio.sleep(1)
            client = await harness.user(name)
            await client.send(Logout())
            await client.closed_code()
        await trio.sleep(0.1)
        assert patient_server.stats.sessions == 0
        assert patient_server.sessions == {}
        assert hub._sessions == {} and hub._watchers == {} and hub._published == {}  # type: ignore[attr-defined]


def test_sweep_periods() -> None:
    """Busy connections every twentieth of the busy limit, all of them every twentieth of
    the standby limit; an infinite limit (never cut) is never walked for."""
    assert sweep_periods(10.0, 90.0) == (0.5, 9)
    assert sweep_periods(10.0, 10.0) == (0.5, 1)
    assert sweep_periods(10.0, math.inf) == (0.5, sys.maxsize)
    assert sweep_periods(math.inf, 90.0) == (4.5, 1)
    assert sweep_periods(math.inf, math.inf)[0] == math.inf


async def test_a_standby_limit_of_infinity_never_cuts(
    harness: Harness, autojump_clock: MockClock
) -> None:
    server = await harness.start(limits={"standby_timeout": math.inf})
    with trio.fail_after(1000):
        client = await harness.user("a")
        client.auto_pong = False
        await trio.sleep(600)
        assert server.stats.idle_timeouts == 0
        await client.send(Ping())  # busy: the 10 s limit applies again
        assert type(await client.recv()).__name__ == "ServerPong"
        await client.expect(ServerPing)
        assert await client.closed_code() == 1008
