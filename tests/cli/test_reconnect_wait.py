"""A command typed while the softphone reconnects (issue 13 item 4) says that it waits for
the connection, waits (bounded), then is carried out; or, when the connection does not
come back in time, says so and is not carried out.

The softphone runs in-process against a real server, behind a TCP proxy that cuts the
connection and refuses new ones (an outage of the network, not of the server: the session
survives it), on trio's MockClock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio
from trio.testing import MockClock

from rtmcall.cli import commands as c
from rtmcall.cli.sinks import TextSink
from rtmcall.cli.softphone import Softphone
from rtmcall.client import connect
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import LocalInvitationState as LS
from rtmcall.engine.codes import RemoteInvitationState as RS
from rtmcall.server import Server, serve
from tests.e2e.conftest import Proxy


class Lines:
    """What a TextSink wrote: stdout and stderr lines, with an event per line."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        self.added = trio.Event()

    def sink(self) -> TextSink:
        def add(to: list[str]) -> Callable[[str], None]:
            def write(line: str) -> None:
                to.append(line)
                self.added.set()
                self.added = trio.Event()

            return write

        return TextSink(add(self.out), add(self.err))

    async def wait_for(self, text: str, within: float = 60) -> None:
        with trio.fail_after(within):
            while not any(text in line for line in self.out):
                await self.added.wait()


@asynccontextmanager
async def softphone(url: str, user: str, lines: Lines) -> AsyncIterator[Softphone]:
    async with connect(url, user) as client:
        phone = Softphone(client, lines.sink())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(phone.pump)
            yield phone
            nursery.cancel_scope.cancel()


async def until(phone: Softphone, predicate: Callable[[], bool], within: float = 60) -> None:
    """Wait until ``predicate()`` holds, checking after each change the softphone sees."""
    with trio.fail_after(within):
        while not predicate():
            await phone.wait_change()


async def ringing_bob(nursery: trio.Nursery) -> tuple[Server, Proxy]:
    server: Server = await nursery.start(serve, "127.0.0.1", 0)
    proxy: Proxy = await nursery.start(Proxy(server.port).run)
    return server, proxy


async def test_accept_while_reconnecting_waits_then_accepts(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    server, proxy = await ringing_bob(nursery)
    bob_lines, alice_lines = Lines(), Lines()
    async with (
        softphone(proxy.url, "bob", bob_lines) as bob,
        softphone(server.url, "alice", alice_lines) as alice,
    ):
        await alice.execute(c.Call(("bob",), content="lunch?"))
        await until(bob, lambda: any(i.state is RS.INVITATION_RECEIVED for i in bob.infos()))
        proxy.blocked = True
        proxy.cut()
        await until(bob, lambda: bob.client.connection_state is CS.RECONNECTING)
        async with trio.open_nursery() as typing:
            typing.start_soon(bob.execute, c.Accept(response="on my way"))
            await bob_lines.wait_for("waiting for the connection")
            assert bob_lines.out[-1] == (
                "accept: waiting for the connection to the server (reconnecting, at most 12 s)"
            )
            await trio.sleep(3)  # the accept waits: nothing was sent
            assert all(i.state is RS.INVITATION_RECEIVED for i in bob.infos())
            proxy.blocked = False
        assert "accept: connected again" in bob_lines.out
        await until(alice, lambda: any(i.state is LS.ACCEPTED_BY_REMOTE for i in alice.infos()))
        await until(bob, lambda: any(i.state is RS.ACCEPTED for i in bob.infos()))
        assert bob_lines.err == []


async def test_accept_gives_up_when_the_connection_does_not_come_back(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    server, proxy = await ringing_bob(nursery)
    bob_lines, alice_lines = Lines(), Lines()
    async with (
        softphone(proxy.url, "bob", bob_lines) as bob,
        softphone(server.url, "alice", alice_lines) as alice,
    ):
        await alice.execute(c.Call(("bob",)))
        await until(bob, lambda: any(i.state is RS.INVITATION_RECEIVED for i in bob.infos()))
        proxy.blocked = True
        proxy.cut()
        await until(bob, lambda: bob.client.connection_state is CS.RECONNECTING)
        start = trio.current_time()
        assert await bob.execute(c.Accept())  # (True: the session goes on)
        assert trio.current_time() - start <= 12.5
        assert bob_lines.err == ["accept: not done: no connection to the server within 12 s"]
        # Not accepted: the caller's side never saw an accept.
        assert not any(i.state is LS.ACCEPTED_BY_REMOTE for i in alice.infos())


async def test_commands_while_connected_do_not_wait(
    nursery: trio.Nursery, autojump_clock: MockClock
) -> None:
    server, _ = await ringing_bob(nursery)
    lines = Lines()
    async with softphone(server.url, "carol", lines) as carol:
        await carol.execute(c.Online(("dave",)))
        assert lines.out == ["dave is offline"]
