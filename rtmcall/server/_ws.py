"""The trio-websocket glue: accept one WebSocket on a stream, with two fixes.

``trio_websocket.serve_websocket`` would do, but it (1) gives no hook to refuse a
connection over the cap or to bound the handshake per our config, and (2) on a protocol
violation that wsproto detects itself, notably a text frame with invalid UTF-8, closes
the TCP stream without telling the peer, which then sees 1006 instead of RFC 6455's 1007.
So this module does what ``WebSocketServer._handle_connection`` does (20 lines) with a
connection subclass that sends the close frame first.

It relies on private parts of trio-websocket 0.12: ``_get_request``, the event handlers
(it overrides two: the close, and the ping, to tell the session of the client's standby
heartbeat, ``frames.STANDBY_PING``) and the reader loop, which
``ServerWebSocket._reader_task`` restates (see there); on wsproto's
``WSConnection.handshake``, to free the opening handshake's state once the connection is
open; and on wsproto's frame decoder (``_proto._frame_decoder``: no frame partly read), for
the idle heartbeat's fast path. The reader reads a plain TCP socket itself (wait, then
``os.read``) rather than through trio's socket layers, and a send with no other in
progress writes it with one ``os.write`` (``_send_bytes``). ``tests/server/test_hostile.py``,
``test_fragments.py`` and ``test_ws_ping.py`` pin the observable behaviour (1007, 1008
and 1009 seen by the client; pongs byte for byte, pings in every position a frame can be
in, resets). The releases it was tested with are pinned, and checked when a server starts
(:mod:`._ws_check`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio
import wsproto
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason, Frame, MessageDecoder, ParseFailed

log = logging.getLogger("trio-websocket")


class PingListener(Protocol):
    def ping_received(self, payload: bytes) -> None: ...

    def fragment_received(self) -> None:
        """A frame of a message that is not complete yet: the client is not silent."""


class ServerWebSocket(WebSocketConnection):
    #: Told of every WebSocket ping from the client, after its pong was sent, and of
    #: every part of a message that is not complete yet (a slow drip is not silence).
    ping_listener: PingListener | None = None
    #: The opening handshake's cancel scope while it runs: the reader cancels it when the
    #: stream dies first (e.g. TLS failed), so that nobody waits for a request in vain.
    _handshake: trio.CancelScope | None = None
    #: What bounds each incoming message, once the connection is open (``_limit_messages``).
    _limits: MessageLimits | None = None

    async def _reader_task(self) -> None:
        """trio-websocket's reader loop (0.12.2) for a server connection, with one handler
        table for every connection instead of a dict of 9 bound methods per connection
        (~0.9 KiB each, for the connection's lifetime), the ``_handshake`` rule, a
        client's lone ping answered without wsproto (``_answer_lone_ping``), and a
        checkpoint every ``_EVENTS_PER_CHECKPOINT`` events: one read of tiny frames (4 KiB,
        ~580 one-byte frames, ~6 ms of CPU) would otherwise hold the whole server, and
        every other user's round trip takes several turns of the scheduler."""
        fed = True  # wsproto may have events to give
        async with self._send_channel:
            while self._reader_running:
                for n, event in enumerate(self._wsproto.events() if fed else (), 1):
                    try:
                        await _EVENT_HANDLERS[type(event)](self, event)
                    except KeyError:
                        log.warning('%s received unknown event type: "%s"', self, type(event))
                    except ConnectionClosed:
                        self._reader_running = False
                        break
                    if not n % _EVENTS_PER_CHECKPOINT:
                        await trio.lowlevel.checkpoint()
                try:
                    data = await self._receive_some()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._abort_web_socket()
                    break
                if len(data) == 0:
                    # TCP closed before WebSocket: an abnormal closure.
                    if self._wsproto.state != ConnectionState.CLOSED:
                        await self._abort_web_socket()
                    break
                if self._wsproto.state != ConnectionState.CLOSED:
                    rest = self._answer_lone_ping(data) if len(data) <= _LONE_PING_MAX else None
                    fed = rest is None
                    if rest and not await self._finish_pong(rest):
                        break
                    if not fed:
                        continue
                    if self._limits is None:
                        self._limit_messages()
                    try:
                        self._wsproto.receive_data(data)
                    except wsproto.utilities.RemoteProtocolError as err:
                        if err.event_hint:
                            await self._send(err.event_hint)
                        await self._close_stream()
        if self._handshake is not None:
            self._handshake.cancel()

    async def _receive_some(self) -> bytes:
        """``self._stream.receive_some()``, and on plain TCP without trio's socket layers
        (about a third of an idle heartbeat's CPU): wait until readable, then read. The
        wait is the checkpoint; errors are the stream's (closed, broken)."""
        stream = self._stream
        if type(stream) is not trio.SocketStream or not _POSIX:
            return await stream.receive_some(self._receive_buffer_size)
        sock = stream.socket
        while True:
            fd = sock.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("the socket was closed")
            await trio.lowlevel.wait_readable(fd)
            if sock.fileno() != fd:
                # Closed by another task after the wake-up was queued: the number may
                # already be another connection's socket.
                raise trio.ClosedResourceError("the socket was closed")
            try:
                return os.read(fd, self._receive_buffer_size)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc

    def _answer_lone_ping(self, data: bytes) -> bytes | None:
        """Answer ``data`` at once if it is exactly one client ping and nothing else is in
        flight: what an idle connection's heartbeat is, many times a second on a server
        with thousands of users. Writes the pong straight to the socket, without wsproto's
        parser and trio-websocket's send path (about half the CPU of a heartbeat); nothing
        is done whenever the general path is needed: any other frame, a frame split
        across reads or beside another, a partly parsed frame, TLS, or a send in progress.
        The bytes are what wsproto would have sent: FIN + pong, the payload unmasked.

        Returns None when it did nothing, else what of the pong the socket did not take
        (b"" nearly always), for the caller to send before anything else."""
        size = len(data) - 6
        # FIN, no RSV bits, opcode 9; the MASK bit (a client frame) and a 7-bit length.
        if size < 0 or data[0] != 0x89 or data[1] != 0x80 | size:
            return None
        stream = self._stream
        if type(stream) is not trio.SocketStream or not _POSIX or self._stream_lock.locked():
            return None
        conn = self._wsproto.connection
        if conn is None or conn.state is not ConnectionState.OPEN or self._close_reason:
            return None
        decoder = conn._proto._frame_decoder
        if decoder.header is not None or len(decoder.buffer):
            return None
        mask = (data[2:6] * (size // 4 + 1))[:size]
        payload = (int.from_bytes(data[6:], "big") ^ int.from_bytes(mask, "big")).to_bytes(
            size, "big"
        )
        pong = bytes((0x8A, size)) + payload
        try:
            sent = os.write(stream.socket.fileno(), pong)
        except BlockingIOError:
            sent = 0
        except OSError:
            return None  # the general path meets the same error and closes properly
        if sent == 0:
            return None
        listener = self.ping_listener
        if listener is not None:
            listener.ping_received(payload)
        return pong[sent:]

    async def _finish_pong(self, rest: bytes) -> bool:
        """Send what the socket did not take of a lone ping's pong (it nearly always takes
        all). Half a frame on the wire would corrupt everything after it, so this is
        shielded from cancellation (a shutdown's Bye follows it), and a peer that does not
        take these few bytes in ``PONG_REST_TIMEOUT`` s loses its connection. False when
        the connection is over."""
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + PONG_REST_TIMEOUT
            try:
                await self._send_bytes(rest)
                return True
            except ConnectionClosed:
                return False
        with trio.CancelScope(shield=True):  # nothing more may follow half a frame
            await self._close_stream()
            await self._abort_web_socket()
        return False

    def _limit_messages(self) -> None:
        """Put :class:`MessageLimits` in place of wsproto's message decoder as soon as the
        connection is open (wsproto makes it when the handshake is accepted): before the
        reader feeds wsproto any byte of a frame, so that every frame is counted."""
        conn = self._wsproto.connection
        if conn is None:
            return
        proto = conn._proto
        limits = MessageLimits(self._max_message_size)
        old = proto._message_decoder
        limits.opcode, limits.decoder = old.opcode, old.decoder
        proto._message_decoder = limits
        self._limits = limits

    async def _handle_message_event(self, event: TextMessage | BytesMessage) -> None:
        # trio-websocket keeps one list entry per event until the message ends: a message
        # dripped a byte a frame would hold 64 Ki entries (~0.5 MiB). Join them now and
        # then, which keeps the list short and costs a copy of the message per 256 events.
        await super()._handle_message_event(event)
        if not event.message_finished and self.ping_listener is not None:
            self.ping_listener.fragment_received()
        parts = self._message_parts
        if len(parts) >= _JOIN_PARTS_AT:
            joined = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)  # type: ignore[arg-type]
            self._message_parts = [joined]

    async def _handle_ping_event(self, event: Ping) -> None:
        # RFC 6455 lets the peer send control frames until its own Close; once ours is
        # sent (LOCAL_CLOSING) wsproto refuses to send a pong, and the ping needs none.
        if self._wsproto.state is ConnectionState.OPEN:
            await super()._handle_ping_event(event)
        listener = self.ping_listener
        if listener is not None:
            listener.ping_received(bytes(event.payload))

    async def send_messages(self, messages: list[str]) -> None:
        """Send several text messages with one write (one syscall, one checkpoint): what
        the writer does when frames queued up while it was sending. The peer still sees
        separate WebSocket messages."""
        if self._close_reason:
            raise ConnectionClosed(self._close_reason)
        await self._send_bytes(b"".join(self._wsproto.send(TextMessage(data=m)) for m in messages))

    async def _send(self, event: Any) -> None:
        """trio-websocket's ``_send`` (every message, pong and close goes through it), by
        :meth:`_send_bytes`."""
        await self._send_bytes(self._wsproto.send(event))

    async def _send_bytes(self, data: bytes) -> None:
        """Write ``data`` in order with every other send. On plain TCP with no send in
        progress, straight to the socket with one ``os.write``: when the socket takes it
        all (nearly always) that is the whole send, without the lock's and
        ``send_all``'s two trips through the scheduler (``bench/README.md``, "A write
        without the scheduler"). Not a checkpoint then: the writer's loop ends when its
        queue is empty and waits there, and other senders send one frame each. What the
        socket does not take goes the general way, under the lock (taken at once:
        nothing was awaited since the check), as do a send in progress, TLS and errors
        (the general path meets them again and closes properly). Half a frame on the
        wire would garble whatever followed it: if a send is cancelled part-way,
        the socket is closed instead (the peer sees the connection drop, not garbage)."""
        stream = self._stream
        lock = self._stream_lock
        partial = False
        if type(stream) is trio.SocketStream and _POSIX and not lock.locked():
            try:
                # (fileno() is -1 once the socket is closed: never another socket's number)
                sent = os.write(stream.socket.fileno(), data)
            except OSError:  # (BlockingIOError: the buffer is full)
                sent = 0
            if sent == len(data):
                return
            if sent:
                data = data[sent:]
                partial = True
        if partial:
            lock.acquire_nowait()
        else:
            await lock.acquire()
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self._abort_web_socket()
            raise ConnectionClosed(self._close_reason) from None
        except BaseException:
            # Cancelled: how much of it went out is unknown (trio's contract for a
            # cancelled send_all), and nothing may follow half a frame. (Under TLS the
            # socket is the transport's: a record cut short is no better.)
            _socket_under(stream).close()
            raise
        finally:
            lock.release()

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


class MessageLimits(MessageDecoder):
    """wsproto's message decoder, bounding what one incoming message may cost.

    RFC 6455 §10.4: limit the size of a message *after reassembly from multiple frames*.
    trio-websocket counts decoded characters only, so a text message left open with
    empty continuation frames grew forever (a list entry and ~7 µs of CPU per frame),
    and its size limit counts characters, not bytes. Here, as each frame (or part of a
    frame) arrives, before it is decoded:

    * payload **bytes** are counted against ``max_bytes``: over it, close 1009;
    * frames **without payload** are counted: more than :data:`MAX_EMPTY_FRAMES` in one
      message, close 1008 (policy). Every other frame carries at least a byte, so the
      byte limit bounds a message's frames too (at most ``max_bytes + 16``): a legal
      message dripped one byte per frame is still delivered, however slowly.

    A limit is enforced by raising wsproto's ``ParseFailed`` with the close code, which
    wsproto turns into a ``CloseConnection`` event as for invalid UTF-8 (1007), answered
    with a close frame of that code by ``ServerWebSocket._handle_close_connection_event``.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        #: Payload bytes and empty frames of the message being received.
        self.size = 0
        self.empty = 0

    def process_frame(self, frame: Frame) -> Frame:
        payload = frame.payload
        if payload:
            self.size += len(payload)
            if self.size > self.max_bytes:
                raise ParseFailed(
                    f"message over {self.max_bytes} bytes", CloseReason.MESSAGE_TOO_BIG
                )
        else:
            self.empty += 1
            if self.empty > MAX_EMPTY_FRAMES:
                raise ParseFailed(
                    f"more than {MAX_EMPTY_FRAMES} empty frames in one message",
                    CloseReason.POLICY_VIOLATION,
                )
        frame = super().process_frame(frame)
        if frame.message_finished:
            self.size = self.empty = 0
        return frame


class _Handshaken:
    """Stands in for wsproto's H11Handshake once the connection is open: from then on
    ``WSConnection`` only asks it for (no) events; the h11 state, the request and their
    buffers (~2 KiB per connection) can go."""

    __slots__ = ()

    def events(self) -> tuple[()]:
        return ()


_HANDSHAKEN = _Handshaken()

#: A client ping is at most 6 + 125 bytes (a control frame's payload is at most 125).
_LONE_PING_MAX = 131
#: Seconds a peer has to take the rest of a pong the socket took only part of.
PONG_REST_TIMEOUT = 5.0
#: Frames without payload one message may have (RFC 6455 allows them; a client has no
#: use for more than one: an empty final frame). See :class:`MessageLimits`.
MAX_EMPTY_FRAMES = 16
#: The reader lets other tasks run after this many events of one read (~0.6 ms).
_EVENTS_PER_CHECKPOINT = 64
#: trio-websocket's parts of a message being received are joined into one at this many.
_JOIN_PARTS_AT = 256
#: Sockets are file descriptors (``os.read``/``os.write`` on them): not on Windows.
_POSIX = os.name == "posix"


def _socket_under(stream: trio.abc.Stream) -> trio.socket.SocketType:
    """The socket a (possibly TLS-wrapped) connection stream ends in."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    assert isinstance(stream, trio.SocketStream), stream
    return stream.socket


_EVENT_HANDLERS: dict[type[Event], Callable[[ServerWebSocket, Any], Awaitable[None]]] = {
    AcceptConnection: ServerWebSocket._handle_accept_connection_event,
    BytesMessage: ServerWebSocket._handle_message_event,
    CloseConnection: ServerWebSocket._handle_close_connection_event,
    Ping: ServerWebSocket._handle_ping_event,
    Pong: ServerWebSocket._handle_pong_event,
    RejectConnection: ServerWebSocket._handle_reject_connection_event,
    RejectData: ServerWebSocket._handle_reject_data_event,
    Request: ServerWebSocket._handle_request_event,
    TextMessage: ServerWebSocket._handle_message_event,
}


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
    conn = ServerWebSocket(
        stream,
        WSConnection(ConnectionType.SERVER),
        message_queue_size=message_queue_size,
        max_message_size=max_message_size,
    )
    handshake = trio.move_on_after(handshake_timeout)
    # The reader task lives as long as the connection: it must not keep the handshake's
    # cancel scope alive after the handshake (memory per idle connection).
    conn._handshake = handshake
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn._reader_task)
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
        conn._handshake = None
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
