"""An in-test WebSocket proxy that can delay, drop, duplicate and cut.

Clients connect to the proxy's URL; it opens a connection to the real server for each and
relays messages both ways. Per direction, one task sends in arrival order, each message
``delay`` after its arrival but never before the one ahead of it (FIFO is kept, as TCP
keeps it); ``policy`` decides each message's fate. ``cut()`` drops every connection
abruptly, as a network failure would (no close handshake).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    open_websocket_url,
    serve_websocket,
)

#: (direction "up" client->server or "down", message) -> list of delays, one per copy to send
#: (empty: drop it).
Policy = Callable[[str, str | bytes], list[float]]


def passthrough(direction: str, message: str | bytes) -> list[float]:
    return [0.0]


def random_delays(rng: random.Random, max_delay: float) -> Policy:
    def policy(direction: str, message: str | bytes) -> list[float]:
        return [rng.uniform(0, max_delay)]

    return policy


@dataclass
class Proxy:
    upstream: str
    policy: Policy = passthrough
    url: str = ""
    _scopes: set[trio.CancelScope] = field(default_factory=set)
    connections: int = 0

    async def run(self, *, task_status: trio.TaskStatus[Proxy] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, self._handle, "127.0.0.1", 0, None)
            self.url = f"ws://127.0.0.1:{server.port}"
            task_status.started(self)

    def cut(self) -> None:
        """Drop every relayed connection now, without a close handshake."""
        for scope in list(self._scopes):
            scope.cancel()

    async def _handle(self, request: WebSocketRequest) -> None:
        client = await request.accept()
        self.connections += 1
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                async with open_websocket_url(self.upstream) as server:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._pump, client, server, "up", nursery)
                        nursery.start_soon(self._pump, server, client, "down", nursery)
            except (ConnectionClosed, OSError):
                pass
            finally:
                self._scopes.discard(scope)
        if scope.cancelled_caught:
            # A cut: close the client's TCP stream under its feet.
            await trio.aclose_forcefully(client._stream)  # noqa: SLF001

    async def _pump(
        self,
        src: WebSocketConnection,
        dst: WebSocketConnection,
        direction: str,
        nursery: trio.Nursery,
    ) -> None:
        send, recv = trio.open_memory_channel[tuple[float, str | bytes]](1000)
        nursery.start_soon(self._sender, dst, recv, nursery)
        try:
            while True:
                message = await src.get_message()
                for delay in self.policy(direction, message):
                    await send.send((trio.current_time() + delay, message))
        except ConnectionClosed:
            nursery.cancel_scope.cancel()

    @staticmethod
    async def _sender(
        dst: WebSocketConnection,
        recv: trio.MemoryReceiveChannel[tuple[float, str | bytes]],
        nursery: trio.Nursery,
    ) -> None:
        try:
            # Each message is due ``delay`` after it arrived, but never before the one
            # ahead of it: latency per message, order kept, and a burst does not add up
            # its delays.
            async for due, message in recv:
                await trio.sleep_until(due)
                await dst.send_message(message)
        except ConnectionClosed:
            nursery.cancel_scope.cancel()
