"""The fault proxy on real loopback sockets: it relays, holds everything while the line is
down, delays each direction, and resets connections on a cut or a kill."""

from __future__ import annotations

from functools import partial

import pytest
import trio
from trio.testing import MockClock

from rtmcall.scenario.proxy import FaultProxy


async def echo(stream: trio.SocketStream) -> None:
    try:
        async for data in stream:
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def start(nursery: trio.Nursery) -> tuple[FaultProxy, int]:
    listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    proxy = await nursery.start(FaultProxy(("127.0.0.1", port)).run)
    return proxy, int(proxy.url.rsplit(":", 1)[1])


async def read_exactly(stream: trio.SocketStream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


async def assert_reset(stream: trio.SocketStream) -> None:
    """The stream ends with a reset, not an orderly end of stream."""
    with pytest.raises(trio.BrokenResourceError):
        while True:
            if not await stream.receive_some(10):
                raise AssertionError("closed with FIN, not reset")


async def test_relays_both_ways_and_holds_everything_while_down(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        proxy, port = await start(nursery)
        with trio.fail_after(30):
            client = await trio.open_tcp_stream("127.0.0.1", port)
            await client.send_all(b"hello")
            assert await read_exactly(client, 5) == b"hello"
            proxy.down()
            await client.send_all(b"one")
            await client.send_all(b"two")
            with trio.move_on_after(5) as silent:
                await client.receive_some(10)
            assert silent.cancelled_caught  # nothing passes while the line is down
            proxy.up()
            assert await read_exactly(client, 6) == b"onetwo"  # held, then in order
        nursery.cancel_scope.cancel()


async def test_down_for_a_while_comes_back_by_itself(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        proxy, port = await start(nursery)
        with trio.fail_after(30):
            client = await trio.open_tcp_stream("127.0.0.1", port)
            proxy.down(2.0)
            t0 = trio.current_time()
            await client.send_all(b"ping")
            assert await read_exactly(client, 4) == b"ping"
            assert trio.current_time() - t0 >= 2.0
            assert not proxy.is_down
        nursery.cancel_scope.cancel()


async def test_delay_holds_each_direction_and_keeps_the_order(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        proxy, port = await start(nursery)
        with trio.fail_after(30):
            client = await trio.open_tcp_stream("127.0.0.1", port)
            proxy.delay(0.3)
            t0 = trio.current_time()
            for word in (b"a", b"b", b"c"):
                await client.send_all(word)
            assert await read_exactly(client, 3) == b"abc"
            assert trio.current_time() - t0 >= 0.6  # 0.3 s up, 0.3 s down
            proxy.delay(0)
            t1 = trio.current_time()
            await client.send_all(b"d")
            assert await read_exactly(client, 1) == b"d"
            assert trio.current_time() - t1 < 0.3
        nursery.cancel_scope.cancel()


async def test_a_cut_resets_the_connection_and_the_next_one_passes(
    autojump_clock: MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        proxy, port = await start(nursery)
        with trio.fail_after(30):
            client = await trio.open_tcp_stream("127.0.0.1", port)
            await client.send_all(b"x")
            assert await read_exactly(client, 1) == b"x"
            proxy.cut()
            await assert_reset(client)
            again = await trio.open_tcp_stream("127.0.0.1", port)
            await again.send_all(b"y")
            assert await read_exactly(again, 1) == b"y"
            assert proxy.connections == 2
            proxy.kill()  # from now on every connection is reset at once
            late = await trio.open_tcp_stream("127.0.0.1", port)
            await assert_reset(late)
        nursery.cancel_scope.cancel()


async def _tagged(tag: bytes, stream: trio.SocketStream) -> None:
    await stream.send_all(tag)


async def _server(nursery: trio.Nursery, tag: bytes) -> tuple[str, int]:
    """A server that says ``tag`` to every connection; its address."""
    listeners = await nursery.start(partial(trio.serve_tcp, partial(_tagged, tag), 0,
                                            host="127.0.0.1"))  # fmt: skip
    return listeners[0].socket.getsockname()  # type: ignore[no-any-return]


async def _says(proxy: FaultProxy) -> bytes:
    """What a connection through ``proxy`` hears first."""
    port = int(proxy.url.rsplit(":", 1)[1])
    with trio.fail_after(30):
        client = await trio.open_tcp_stream("127.0.0.1", port)
        try:
            return await read_exactly(client, 1)
        finally:
            await client.aclose()


async def test_a_server_that_refuses_fails_over_to_the_next_one_for_good(
    autojump_clock: MockClock,
) -> None:
    """As behind a load balancer: the first server is gone (its port refuses), so the
    connection goes to the next one, and so do the later ones."""
    async with trio.open_nursery() as nursery:
        gone = trio.socket.socket()
        await gone.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
        dead = gone.getsockname()
        alive = await _server(nursery, b"B")
        proxy = await nursery.start(FaultProxy(dead, fallbacks=[dead, alive]).run)
        assert [await _says(proxy) for _ in range(2)] == [b"B", b"B"]
        assert proxy.upstream == alive
        gone.close()
        nursery.cancel_scope.cancel()


async def test_a_dead_server_s_connections_go_to_the_next_one_after_it(
    autojump_clock: MockClock,
) -> None:
    """Three servers, the middle one gone: its line goes to the third (the next after it,
    as the SDK fails over), not to the first — a killed node's actors spread out."""
    async with trio.open_nursery() as nursery:
        gone = trio.socket.socket()
        await gone.bind(("127.0.0.1", 0))
        dead = gone.getsockname()
        first, third = await _server(nursery, b"A"), await _server(nursery, b"C")
        proxy = await nursery.start(FaultProxy(dead, fallbacks=[first, dead, third]).run)
        assert await _says(proxy) == b"C"
        assert proxy.upstream == third
        gone.close()
        nursery.cancel_scope.cancel()
