"""A TCP fault proxy, one per scenario actor: the actor's client connects to it, it connects
to the server and relays the bytes both ways, and the scenario's ``net`` steps act on it.

- ``down()``: nothing passes in either direction (bytes already in flight wait in the
  proxy, as packets wait in a partitioned network's retransmissions); a new connection is
  accepted by the proxy but reaches nothing. ``up()`` lets everything through again, in
  order.
- ``delay(seconds)``: every chunk is held that long after it arrived, in each direction,
  order kept (a burst does not add up its delays).
- ``cut()``: every relayed connection is reset now (TCP RST on both sides); later
  connections pass as usual, so the client reconnects by itself.
- ``kill()``: a cut, and from now on every connection is reset at once (the app is gone).
- Fail-over: when ``upstream`` cannot be connected to (a server that was killed), a new
  connection goes to the next of ``fallbacks`` after it (wrapping round) that takes it,
  and so do the later ones
  (as a load balancer takes a dead node out); the client sees a reset only when none does.

It works on real sockets below the WebSocket layer, so the client and the server see what a
real network would show them: silence, latency, resets.
"""

from __future__ import annotations

import math
import socket
import struct
from dataclasses import dataclass, field
from functools import partial

import trio

_CHUNK = 65536
#: A server that does not answer a connect within this is taken for gone.
_CONNECT_WITHIN = 3.0


def _reset(stream: trio.SocketStream) -> None:
    """Close with RST (SO_LINGER 0), not FIN: what a dropped connection looks like."""
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    stream.socket.close()


@dataclass
class FaultProxy:
    """Relays one actor's connections to ``upstream`` (host, port), with faults.

    Start it with ``await nursery.start(proxy.run)``; its address is ``proxy.url``.
    """

    upstream: tuple[str, int]
    fallbacks: list[tuple[str, int]] = field(default_factory=list)
    url: str = ""
    latency: float = 0.0
    connections: int = 0
    _up: trio.Event = field(default_factory=trio.Event)
    _down_until: float = math.inf
    _links: set[_Link] = field(default_factory=set)
    _killed: bool = False
    _idle: trio.Event = field(default_factory=trio.Event)
    _timer: trio.CancelScope | None = None
    _nursery: trio.Nursery | None = None

    def __post_init__(self) -> None:
        self._up.set()
        self._idle.set()

    async def wait_idle(self) -> None:
        """Until no connection is relayed any more."""
        await self._idle.wait()

    @property
    def is_down(self) -> bool:
        return not self._up.is_set()

    async def run(self, *, task_status: trio.TaskStatus[FaultProxy] = trio.TASK_STATUS_IGNORED):
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            listeners = await nursery.start(
                partial(trio.serve_tcp, self._handle, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            task_status.started(self)

    # --- faults -------------------------------------------------------------------------

    def down(self, seconds: float | None = None) -> None:
        if self._up.is_set():
            self._up = trio.Event()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds is not None and self._nursery is not None:
            self._timer = trio.CancelScope()
            self._nursery.start_soon(self._up_after, seconds, self._timer)

    async def _up_after(self, seconds: float, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(seconds)
            self.up()

    def up(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._up.set()

    def delay(self, seconds: float) -> None:
        self.latency = seconds

    def cut(self) -> None:
        for link in list(self._links):
            link.reset()

    def kill(self) -> None:
        self._killed = True
        self.cut()

    # --- relaying -----------------------------------------------------------------------

    async def _connect(self) -> trio.SocketStream:
        """To ``upstream``, or else to the next fallback after it that answers (wrapping
        round; kept from then on), as the SDK fails over: the actors of a node that died
        spread over the others instead of all landing on the first.

        Raises:
          OSError: nobody answered.
        """
        failure: OSError | None = None
        first = self.upstream
        others = [a for a in self.fallbacks if a != first]
        if first in self.fallbacks:
            at = self.fallbacks.index(first)
            after = self.fallbacks[at + 1 :] + self.fallbacks[:at]
            others = [a for a in after if a != first]
        for address in [first, *others]:
            try:
                with trio.fail_after(_CONNECT_WITHIN):
                    stream = await trio.open_tcp_stream(*address)
            except (OSError, trio.TooSlowError) as exc:
                failure = exc if isinstance(exc, OSError) else OSError(f"{address}: {exc!r}")
                continue
            if self.upstream == first:  # (unless a `net cut --to` moved the line meanwhile)
                self.upstream = address
            return stream
        assert failure is not None
        raise failure

    async def _handle(self, client: trio.SocketStream) -> None:
        if self._killed:
            _reset(client)
            return
        self.connections += 1
        link = _Link(self, client)
        if not self._links:
            self._idle = trio.Event()
        self._links.add(link)
        try:
            await link.run()
        finally:
            self._links.discard(link)
            if not self._links:
                self._idle.set()


class _Link:
    """One client connection and its upstream twin."""

    def __init__(self, proxy: FaultProxy, client: trio.SocketStream) -> None:
        self.proxy = proxy
        self.client = client
        self.server: trio.SocketStream | None = None
        self.scope = trio.CancelScope()
        self.was_reset = False

    def reset(self) -> None:
        self.was_reset = True
        self.scope.cancel()

    async def run(self) -> None:
        with self.scope:
            try:
                await self.proxy._up.wait()  # a new connection waits out an outage too
                self.server = await self.proxy._connect()
            except OSError:
                self.was_reset = True  # nothing listens: the client sees a reset
            else:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._direction, self.client, self.server)
                    nursery.start_soon(self._direction, self.server, self.client)
        if self.was_reset:
            _reset(self.client)
            if self.server is not None:
                _reset(self.server)
        else:
            for stream in (self.client, self.server):
                if stream is not None:
                    await trio.aclose_forcefully(stream)

    async def _direction(self, src: trio.SocketStream, dst: trio.SocketStream) -> None:
        send, recv = trio.open_memory_channel[tuple[float, bytes]](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._writer, dst, recv)
            async with send:
                while True:
                    try:
                        data = await src.receive_some(_CHUNK)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        data = b""
                    await send.send((trio.current_time() + self.proxy.latency, data))
                    if not data:
                        return

    async def _writer(
        self, dst: trio.SocketStream, recv: trio.MemoryReceiveChannel[tuple[float, bytes]]
    ) -> None:
        async with recv:
            async for due, data in recv:
                await trio.sleep_until(due)
                while not self.proxy._up.is_set():
                    await self.proxy._up.wait()
                if not data:  # the other side closed: pass the close on, then end the link
                    self.scope.cancel()
                    return
                try:
                    await dst.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    self.reset()
                    return
