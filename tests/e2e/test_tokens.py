"""Tokens on a live session: the expiry warning, renewal, and the end of an expired one;
and the reconnect policy's give-up."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from rtmcall.client import ClientConfig, RequestFailed
from rtmcall.client.events import ConnectionStateChanged
from rtmcall.engine.codes import ConnectionChangeReason as Why
from rtmcall.engine.codes import ConnectionState as CS
from rtmcall.engine.codes import LocalInvitationError as LE
from rtmcall.server import Server, mint_token, serve

from .conftest import Proxy, phone

SECRET = "k" * 32


@pytest.fixture
async def secure_server(nursery: trio.Nursery) -> Server:
    def start(task_status: trio.TaskStatus[Server]) -> object:
        return serve("127.0.0.1", 0, secret=SECRET, task_status=task_status)

    return await nursery.start(start)


def last_state(events: list) -> tuple[CS, Why] | None:
    changes = [s.event for s in events if isinstance(s.event, ConnectionStateChanged)]
    return (changes[-1].state, changes[-1].reason) if changes else None


async def test_token_warning_and_renewal_keep_the_session(
    secure_server: Server, autojump_clock: MockClock
) -> None:
    url = secure_server.url
    async with phone(url, "alice", token=mint_token(SECRET, "alice", ttl=60)) as alice:
        warning = await alice.wait("TokenPrivilegeWillExpire", within=60)
        assert 0 < warning.seconds <= 30
        with pytest.raises(RequestFailed):
            await alice.client.renew_token(mint_token(SECRET, "mallory", ttl=3600))
        left = await alice.client.renew_token(mint_token(SECRET, "alice", ttl=3600))
        assert left > 3000
        await trio.sleep(120)
        assert alice.client.connection_state is CS.CONNECTED


async def test_an_expired_token_ends_the_session(
    secure_server: Server, autojump_clock: MockClock
) -> None:
    url = secure_server.url
    async with (
        phone(url, "alice", token=mint_token(SECRET, "alice", ttl=40)) as alice,
        phone(url, "bob", token=mint_token(SECRET, "bob", ttl=3600)) as bob,
    ):
        await alice.wait("TokenPrivilegeWillExpire", within=60)
        inv = await alice.client.call("bob", lifetime=600)
        await bob.wait("RemoteInvitationReceived", inv.id)
        await alice.wait_for(lambda: last_state(alice.seen) == (CS.ABORTED, Why.LOGIN_FAILURE))
        failure = await alice.wait("LocalInvitationFailure", inv.id, within=1)
        assert failure.error is LE.NOT_LOGGEDIN
        await bob.wait("RemoteInvitationFailure", inv.id, within=30)


async def test_reconnecting_gives_up_when_told_to(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    config = ClientConfig(give_up_after=20)
    async with phone(proxy.url, "alice", config=config) as alice:
        inv = await alice.client.call("bob")
        proxy.blocked = True
        proxy.cut()
        start = trio.current_time()
        await alice.wait_for(lambda: last_state(alice.seen) == (CS.ABORTED, Why.LOGIN_TIMEOUT))
        assert trio.current_time() - start == pytest.approx(20, abs=1)
        # The session was lost after the resume window: the invitation ended then.
        failure = await alice.wait("LocalInvitationFailure", inv.id, within=1)
        assert failure.error is LE.NOT_LOGGEDIN
        proxy.blocked = False
        await trio.sleep(30)
        assert alice.client.connection_state is CS.ABORTED


async def test_no_reconnect_when_disabled(
    server: Server, proxy: Proxy, autojump_clock: MockClock
) -> None:
    async with phone(proxy.url, "alice", config=ClientConfig(reconnect=False)) as alice:
        proxy.cut()
        await alice.wait_for(lambda: last_state(alice.seen) == (CS.ABORTED, Why.INTERRUPTED), 5)
        await trio.sleep(10)
        assert proxy.connections == 1
