"""The trio-websocket glue: accept one WebSocket on a stream, with two fixes.

``trio_websocket.serve_websocket`` would do, but it (1) gives no hook to refuse a
connection over the cap or to bound the handshake per our config, and (2) on a protocol
violation that wsproto detects itself, notably a text frame with invalid UTF-8, closes
the TCP stream without telling the peer, which then sees 1006 instead of RFC 6455's 1007.
So this module does what ``WebSocketServer._handle_connection`` does (20 lines) with a
connection subclass that sends the close frame first.

It relies on two private methods of trio-websocket 0.12 (``_reader_task`` and
``_get_request``), one private handler and, to free the opening handshake's state once
the connection is open, wsproto's ``WSConnection.handshake``;
``tests/server/test_hostile.py`` pins the observable behaviour (1007 and 1009 seen by the
client).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
import wsproto
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, TextMessage


class _ServerConnection(WebSocketConnection):
    async def send_messages(self, messages: list[str]) -> None:
        """Send several text messages with one write (one syscall, one checkpoint): what
        the writer does when frames queued up while it was sending. The peer still sees
        separate WebSocket messages."""
        if self._close_reason:
            raise ConnectionClosed(self._close_reason)
        data = b"".join(self._wsproto.send(TextMessage(data=m)) for m in messages)
        async with self._stream_lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self._abort_web_socket()
                raise ConnectionClosed(self._close_reason) from None

    async def _handle_close_connection_event(self, event: CloseConnection) -> None:
        # wsproto turns a parse failure (bad UTF-8: 1007, protocol error: 1002, ...) into a
        # CloseConnection event while its own state is still OPEN; a close from the peer
        # arrives in REMOTE_CLOSING. Answer the former with a close frame of that code.
        if self._wsproto.state == ConnectionState.OPEN:
            try:
                reason = (event.reason or "").encode()[:120].decode(errors="ignore")
                await self._send(CloseConnection(code=event.code, reason=reason))
            except (ConnectionClosed, wsproto.utilities.LocalProtocolError):
                pass
        await super()._handle_close_connection_event(event)


class _Handshaken:
    """Stands in for wsproto's H11Handshake once the connection is open: from then on
    ``WSConnection`` only asks it for (no) events; the h11 state, the request and their
    buffers (~2 KiB per connection) can go."""

    __slots__ = ()

    def events(self) -> tuple[()]:
        return ()


_HANDSHAKEN = _Handshaken()


def _drop_handshake_state(conn: WebSocketConnection) -> None:
    proto = conn._wsproto
    if proto.connection is not None and not proto.handshake._events:
        proto.handshake = _HANDSHAKEN  # type: ignore[assignment]


async def accept_websocket(
    stream: trio.abc.Stream,
    handler: Callable[[WebSocketConnection], Awaitable[None]],
    *,
    refuse: Callable[[WebSocketRequest], str | None],
    respond: Callable[[WebSocketRequest], Awaitable[tuple[int, bytes] | None]] | None = None,
    max_message_size: int,
    message_queue_size: int,
    handshake_timeout: float,
    close_timeout: float,
) -> bool:
    """Run the opening handshake on ``stream``, then ``handler(ws)``, then close.

    ``refuse(request)`` may return a reason to turn the request down with HTTP 403;
    ``respond(request)`` may answer it with its own (status, body) instead of upgrading
    (the health check).
    Returns False when the handshake did not complete in time or was refused.

    Resource handling: the stream is always closed on return, also on cancellation.
    """
    conn = _ServerConnection(
        stream,
        WSConnection(ConnectionType.SERVER),
        message_queue_size=message_queue_size,
        max_message_size=max_message_size,
    )
    handshake = trio.move_on_after(handshake_timeout)
    # The reader task lives as long as the connection: it must not keep the handshake's
    # cancel scope alive after the handshake (memory per idle connection).
    pending = [handshake]

    async def read() -> None:
        await conn._reader_task()
        for scope in pending:
            scope.cancel()  # the stream died (e.g. TLS failed): stop waiting for a request

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        ws: WebSocketConnection | None = None
        request: WebSocketRequest | None = None
        with handshake:
            request = await conn._get_request()
            why = refuse(request)
            answer = None if respond is None or why is not None else await respond(request)
            if answer is not None:
                await request.reject(answer[0], body=answer[1])
            elif why is not None:
                await request.reject(403, body=why.encode())
            else:
                ws = await request.accept()
                _drop_handshake_state(conn)
        pending.clear()
        del handshake
        request = None  # the handler runs in this frame: do not keep the request alive
        if ws is None:
            nursery.cancel_scope.cancel()
            await trio.aclose_forcefully(stream)
            return False
        try:
            await handler(ws)
        finally:
            with trio.move_on_after(close_timeout, shield=True):
                await ws.aclose()
            nursery.cancel_scope.cancel()
            await trio.aclose_forcefully(stream)
    return True
