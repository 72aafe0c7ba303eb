"""Connecting and logging in: every way it can fail is a ConnectFailed or LoginFailed,
within connect_timeout, with a message that says what happened."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trustme

from rtmcall.client import ClientConfig, ConnectFailed, InvalidArgument, LoginFailed, connect
from rtmcall.client.websocket import parse_url
from rtmcall.engine.codes import ConnectionState, LoginError
from rtmcall.server import Server, mint_token, serve

SECRET = "s" * 32


@pytest.fixture
async def tls_server(nursery: trio.Nursery) -> AsyncIterator[tuple[Server, trustme.CA]]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    tls = await nursery.start(
        lambda task_status: serve("127.0.0.1", 0, ssl_context=server_ctx, task_status=task_status)
    )
    yield tls, ca


def test_parse_url() -> None:
    assert parse_url("ws://127.0.0.1:8765") == ("127.0.0.1", 8765, "/", False)
    assert parse_url("wss://example.com/rtm?x=1") == ("example.com", 443, "/rtm?x=1", True)
    for bad in ("http://x", "ws://", "127.0.0.1:8765"):
        with pytest.raises(ValueError):
            parse_url(bad)
    # No port: the scheme's default, as for any ws:// URL.
    assert parse_url("ws://example.com") == ("example.com", 80, "/", False)
    assert parse_url("wss://example.com") == ("example.com", 443, "/", True)


@pytest.mark.parametrize("url", ["ws://127.0.0.1:0", "wss://example.com:0/rtm", "ws://h:70000"])
def test_a_port_that_cannot_be_dialled_is_an_error_naming_the_url(url: str) -> None:
    # Port 0 is "any free port" to a listener (rtmcall server --port 0), not an address:
    # it used to pass and be dialled on port 80.
    with pytest.raises(ValueError, match=re.escape(repr(url))):
        parse_url(url)


async def test_connect_to_port_0_is_an_invalid_argument_before_any_io() -> None:
    with pytest.raises(InvalidArgument, match="port 0"):
        async with connect("ws://127.0.0.1:8765,ws://127.0.0.1:0", "alice"):
            pass


async def test_bad_url_and_bad_user_fail_before_any_io() -> None:
    with pytest.raises(InvalidArgument):
        async with connect("http://127.0.0.1:1", "alice"):
            pass
    with pytest.raises(LoginFailed) as info:
        async with connect("ws://127.0.0.1:1", "null"):
            pass
    assert info.value.reason is LoginError.INVALID_ARGUMENT


async def test_refused_port_is_connect_failed() -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there now
    with trio.fail_after(5):
        with pytest.raises(ConnectFailed) as info:
            async with connect(f"ws://127.0.0.1:{port}", "alice"):
                pass
    assert info.value.url == f"ws://127.0.0.1:{port}"
    assert "refused" in info.value.message.lower()


async def test_silent_server_times_out_after_connect_timeout(autojump_clock: object) -> None:
    # A socket that listens but never accepts: TCP connects, the handshake never answers.
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    port = sock.getsockname()[1]
    start = trio.current_time()
    with trio.fail_after(60):
        with pytest.raises(ConnectFailed) as info:
            async with connect(f"ws://127.0.0.1:{port}", "alice", config=ClientConfig()):
                pass
    assert trio.current_time() - start == pytest.approx(5.0)
    assert "5 s" in info.value.message
    sock.close()


async def test_untrusted_certificate_is_reported_at_once(
    tls_server: tuple[Server, trustme.CA],
) -> None:
    server, _ = tls_server
    config = ClientConfig(connect_timeout=30)
    with trio.fail_after(5):  # real seconds: a certificate error is not a timeout
        with pytest.raises(ConnectFailed) as info:
            async with connect(server.url, "alice", config=config):
                pass
    assert "certificate" in info.value.message


async def test_trusted_certificate_logs_in(tls_server: tuple[Server, trustme.CA]) -> None:
    server, ca = tls_server
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with trio.fail_after(5):
        async with connect(server.url, "alice", ssl_context=ctx) as client:
            assert client.connection_state is ConnectionState.CONNECTED
            assert client.user == "alice"


async def test_login_refused_by_the_server(nursery: trio.Nursery) -> None:
    server = await nursery.start(
        lambda task_status: serve("127.0.0.1", 0, secret=SECRET, task_status=task_status)
    )
    with trio.fail_after(5):
        with pytest.raises(LoginFailed) as info:
            async with connect(server.url, "alice"):
                pass
        assert info.value.reason is LoginError.INVALID_TOKEN
        # (Another user id each time: the server allows 2 logins per second per user id.)
        with pytest.raises(LoginFailed) as info:
            async with connect(server.url, "carol", token=mint_token(SECRET, "bob")):
                pass
        assert info.value.reason is LoginError.INVALID_TOKEN
        async with connect(server.url, "dave", token=mint_token(SECRET, "dave")) as client:
            assert client.connection_state is ConnectionState.CONNECTED


async def test_a_node_that_cannot_log_anyone_in_is_passed_over_for_the_next(
    nursery: trio.Nursery,
) -> None:
    """Of two URLs, the first takes the WebSocket but answers every login TIMEOUT (a node
    whose Redis is away): the client logs in on the second. A refusal for another reason
    (a bad token) is not passed over: it would be the same everywhere."""
    from trio_websocket import serve_websocket

    async def busy(request: Any) -> None:
        ws = await request.accept()
        await ws.get_message()
        await ws.send_message(f'{{"t":"login_fail","reason":{int(LoginError.TIMEOUT)}}}')
        await trio.sleep(1)

    first = await nursery.start(serve_websocket, busy, "127.0.0.1", 0, None)
    busy_url = f"ws://127.0.0.1:{first.port}"
    server = await nursery.start(
        lambda task_status: serve("127.0.0.1", 0, secret=SECRET, task_status=task_status)
    )
    with trio.fail_after(5):
        token = mint_token(SECRET, "erin")
        async with connect(f"{busy_url},{server.url}", "erin", token=token) as client:
            assert client.url == server.url
        with pytest.raises(LoginFailed) as info:
            async with connect(f"{server.url},{busy_url}", "frank"):
                pass
        assert info.value.reason is LoginError.INVALID_TOKEN
