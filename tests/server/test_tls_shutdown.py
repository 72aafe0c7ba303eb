"""wss:// with trustme certificates, and telling clients Bye on shutdown."""

from __future__ import annotations

import logging
import socket
import ssl

import pytest
import trio
import trustme
from trio_websocket import ConnectionRejected, connect_websocket_url, open_websocket_url

from rtmcall.engine.codes import PeerMessageError
from rtmcall.engine.frames import Bye, Deliver, Text
from rtmcall.server import Server, ServerConfig, mint_token, serve

from .conftest import Client, Harness
from .test_hostile import assert_healthy


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


async def test_tls_trusted(harness: Harness, ca: trustme.CA) -> None:
    with trio.fail_after(10):
        server = await harness.start(ssl_context=server_context(ca))
        assert server.url == f"wss://127.0.0.1:{server.port}"
        harness.client_ssl = ssl.create_default_context()
        ca.configure_trust(harness.client_ssl)
        a = await harness.user("a")
        b = await harness.user("b")
        rid = await a.send_to("b", Text(text="over tls"))
        assert (await a.result(rid)).code == PeerMessageError.OK
        assert (await b.expect(Deliver)).msg == Text(text="over tls")


async def test_tls_untrusted_client_fails_server_survives(harness: Harness, ca: trustme.CA) -> None:
    """A client that does not trust the certificate fails its TLS handshake at once with
    a certificate error (not a timeout), and the server carries on."""
    with trio.fail_after(10):
        server = await harness.start(ssl_context=server_context(ca))
        tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
        tls = trio.SSLStream(tcp, ssl.create_default_context(), server_hostname="127.0.0.1")
        with pytest.raises(trio.BrokenResourceError) as info:
            await tls.do_handshake()
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        await tcp.aclose()
        harness.client_ssl = ssl.create_default_context()
        ca.configure_trust(harness.client_ssl)
        await harness.user("still-works")


async def test_plain_ws_client_on_tls_server(harness: Harness, ca: trustme.CA) -> None:
    with trio.fail_after(10):
        server = await harness.start(
            ssl_context=server_context(ca), limits={"handshake_timeout": 2}
        )
        stream = await trio.open_tcp_stream("127.0.0.1", server.port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n")
        with trio.move_on_after(5):
            while await stream.receive_some():
                pass
        await stream.aclose()
        harness.client_ssl = ssl.create_default_context()
        ca.configure_trust(harness.client_ssl)
        await harness.user("fine")


async def test_a_tls_client_cut_while_a_frame_is_half_written_sees_a_drop(
    harness: Harness, ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    """As over plain TCP (``test_limits.py``): a silent wss client with a frame stuck
    half-way is cut by closing the socket under the TLS layer, and nothing else fails."""
    with trio.fail_after(20):
        server = await harness.start(
            ssl_context=server_context(ca), config=ServerConfig(idle_timeout=2.0)
        )
        harness.client_ssl = ssl.create_default_context()
        ca.configure_trust(harness.client_ssl)
        sender = await harness.user("sender")
        stuck = await harness.user("stuck")
        raw = stuck.ws._stream.transport_stream.socket
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        (conn,) = [c for c in server.live if c.session and c.session.user == "stuck"]
        conn.ws._stream.transport_stream.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 8192
        )
        with caplog.at_level(logging.ERROR):
            for _ in range(10):
                rid = await sender.send_to("stuck", Text(text="x" * 30_000))
                assert (await sender.result(rid)).code == PeerMessageError.OK
            await trio.sleep(3)  # not reading, not answering: cut after the busy limit
            assert conn not in server.live
            assert await stuck.closed_code() == 1006  # the connection dropped
            await assert_healthy(harness)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_shutdown_says_bye(harness: Harness, server: Server) -> None:
    with trio.fail_after(10):
        a = await harness.user("a")
        b = await harness.user("b")
        await server.shutdown()
        for client in (a, b):
            assert isinstance(await client.recv(), Bye)
            assert await client.closed_code() == 1001
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", server.port)


async def test_cancelling_serve_says_bye() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as inner:
                server: Server = await inner.start(serve)
                ws = await connect_websocket_url(outer, server.url)
                client = Client(ws)
                await client.login("a")
                inner.cancel_scope.cancel()
            assert isinstance(await client.recv(), Bye)
            assert await client.closed_code() == 1001
            outer.cancel_scope.cancel()


async def test_refuses_public_address_without_secret() -> None:
    with pytest.raises(ValueError, match="without a secret"):
        await serve("0.0.0.0", 0)


async def test_health(server: Server) -> None:
    health = await server.health()
    assert health.ok and "sessions" in health.detail


async def test_browser_origin_refused_without_secret(harness: Harness) -> None:
    with trio.fail_after(10):
        server = await harness.start()
        evil = [(b"Origin", b"https://evil.example")]
        with pytest.raises(ConnectionRejected) as info:
            async with open_websocket_url(server.url, extra_headers=evil):
                pass
        assert info.value.status_code == 403
        await harness.user("cli-clients-send-no-origin")


async def test_allowed_origin(harness: Harness, nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = await harness.start(limits={"allowed_origins": ("https://app.example",)})
        ok = [(b"Origin", b"https://app.example")]
        ws = await connect_websocket_url(nursery, server.url, extra_headers=ok)
        await Client(ws).login("from-browser")


async def test_browser_origin_allowed_with_secret(harness: Harness, nursery: trio.Nursery) -> None:
    with trio.fail_after(10):
        server = await harness.start(secret="s" * 32)
        other = [(b"Origin", b"https://anywhere.example")]
        ws = await connect_websocket_url(nursery, server.url, extra_headers=other)
        await Client(ws).login("web", token=mint_token("s" * 32, "web"))
