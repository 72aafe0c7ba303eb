"""One WebSocket connection: log in, then serve the session until the connection ends.

Two tasks per logged-in connection (three with a token), in one nursery whose cancel
scope is ``self._scope``:

* the **reader** (this connection's only consumer of the socket) decodes each frame once
  and handles it; routing a Send means one ``hub.deliver``, which only appends to the
  receiver's queue, so a reader never waits for another connection's socket;
* the **writer** drains the session's outbox to the socket (the only task that writes
  during the session), so replies and deliveries leave in the order they were queued;
* with a token, the **token watcher** warns before expiry and kicks after the grace.

Idle detection is not a task of the connection: the server's one sweeper
(:func:`.watchdogs.sweep_idle`) walks ``server.live`` (the busy ones, ``server.busy``,
more often) and sends a ServerPing to a client
silent for half its ``silence_limit``, and cuts it at the limit (half-open detection).
The limit follows the client's last Ping: ``idle_timeout`` (10 s) while it has something
in progress, ``standby_timeout`` (90 s) in standby (after login, and after
``Ping(standby=True)``), so idle users cost the server a heartbeat every 30 s, not 3 s.

How the connection ended (``outcome``) decides the close code and whether the session
ends or is detached for a resume; see ``_CLOSE``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from rtmcall.engine.codes import PeerMessageError
from rtmcall.engine.frames import (
    STANDBY_PING,
    Deliver,
    Error,
    FrameError,
    Login,
    Logout,
    Ping,
    Pong,
    Query,
    Renew,
    Result,
    Send,
    ServerPong,
    Subscribe,
    Unsubscribe,
    decode_client_frame,
    encode,
    peer_msg_problem,
    user_id_problem,
)

from . import replies, requests, watchdogs
from ._ws import ServerWebSocket
from .login import login_phase

if TYPE_CHECKING:
    from .serve import Server
    from .session import Session

log = logging.getLogger("rtmcall.server")

#: Most frames the writer sends in one write.
_BATCH = 64

#: outcome -> (close code, close reason, the session ends rather than waiting for a resume)
_CLOSE: dict[str, tuple[int, str, bool]] = {
    "dropped": (1000, "", False),
    "idle": (1008, "idle timeout", False),
    "too_big": (1009, "frame too large", False),
    "internal": (1011, "internal error", False),
    "superseded": (1000, "session resumed on another connection", False),
    "login_failed": (1008, "login failed", False),
    "login_timeout": (1008, "login timeout", False),
    "logout": (1000, "logout", True),
    "kicked": (1000, "kicked", True),
    "slow_reader": (1008, "outbound queue overflow", True),
    "shutdown": (1001, "server shutdown", True),
}

_OK = PeerMessageError.OK
_CACHED = PeerMessageError.CACHED_BY_SERVER


class Connection:
    """Serves one accepted WebSocket; implements :class:`~.session.Link`."""

    __slots__ = (
        "server",
        "ws",
        "peer",
        "session",
        "outcome",
        "last_rx",
        "_silence_limit",
        "pinged_for",
        "_scope",
        "_finishing",
        "__weakref__",
    )

    def __init__(self, server: Server, ws: WebSocketConnection, peer: str) -> None:
        self.server = server
        self.ws = ws
        self.peer = peer
        self.session: Session | None = None
        self.outcome = "dropped"
        self.last_rx = trio.current_time()
        self._silence_limit = server.config.standby_timeout  # standby until it pings
        self._scope = trio.CancelScope()
        self._finishing = False
        #: ``last_rx`` when the idle sweeper pinged this connection (once per silence).
        self.pinged_for = float("-inf")
        if isinstance(ws, ServerWebSocket):
            ws.ping_listener = self  # (cleared when the connection ends: no cycle left)

    @property
    def silence_limit(self) -> float:
        """Silence after which this connection is cut: the client's heartbeat promise (see
        ``ServerConfig.idle_timeout`` and ``standby_timeout``). Below the standby limit the
        connection is in ``server.busy``, which the idle sweeper walks more often (also
        during login, if a peer message probed it then: harmless, and ``run`` takes it out
        of both sets when it ends)."""
        return self._silence_limit

    @silence_limit.setter
    def silence_limit(self, limit: float) -> None:
        self._silence_limit = limit
        if limit < self.server.config.standby_timeout:
            self.server.busy.add(self)
        else:
            self.server.busy.discard(self)

    # --- Link -----------------------------------------------------------------------------

    def finish(self) -> None:
        self.outcome = "kicked"
        self._finishing = True
        deadline = trio.current_time() + self.server.config.shutdown_grace
        self._scope.deadline = min(self._scope.deadline, deadline)
        if self.session is not None:
            self.session.wake()

    def cut(self, why: str) -> None:
        self.outcome = why
        self._scope.cancel()
        if why == "slow_reader":
            self.server.stats.slow_readers += 1
            log.warning("%s: outbound queue overflow, cutting a slow reader", self.who())

    # --- life cycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it ends. Never raises except Cancelled.

        Error handling: an unexpected exception is logged and counted, and closes this
        connection only (1011); the session is kept for a resume.
        """
        try:
            self.session = await login_phase(self)
            if self.session is not None:
                async with trio.open_nursery() as nursery:
                    # The nursery's scope becomes the connection's (a cancel scope less per
                    # connection), with any cut or kick that came since the login.
                    early, self._scope = self._scope, nursery.cancel_scope
                    self._scope.deadline = early.deadline
                    if early.cancel_called:
                        self._scope.cancel()
                    nursery.start_soon(self._writer)
                    self.server.live.add(self)
                    if self.session.token_expires_at is not None:
                        nursery.start_soon(watchdogs.watch_token, self)
                    await self._reader()
                    nursery.cancel_scope.cancel()
        except Exception:
            self.outcome = "internal"
            self.server.stats.internal_errors += 1
            log.exception("connection %s (%s): unexpected error", self.peer, self.who())
        finally:
            self.server.live.discard(self)
            self.server.busy.discard(self)
            if isinstance(self.ws, ServerWebSocket):
                self.ws.ping_listener = None
            if trio.current_effective_deadline() == float("-inf") or self.server.stopping:
                self.outcome = "shutdown"
            with trio.move_on_after(self.server.config.shutdown_grace, shield=True):
                await self._close()

    async def _close(self) -> None:
        code, reason, ends = _CLOSE[self.outcome]
        session = self.session
        if session is not None:
            if ends or session.ended:
                await self.server.end_session(session, session.end_reason or reason)
            elif session.link is self:
                session.detach()
                await self.server.hub.update(session)
                if session.ended:
                    # Handed over to another node meanwhile (its client resumed there
                    # before this drop was noticed): no copy of it stays here.
                    await self.server.end_session(session, session.end_reason or reason)
                else:
                    self.server.start_reaper(session)
                    log.info("%s: connection dropped (%s), resumable", self.who(), self.outcome)
        if self.outcome == "shutdown":
            await self.send_now_raw(replies.BYE)
        await self.ws.aclose(code, reason or None)

    def probe(self) -> None:
        """A peer message was queued for this client. In standby its line may have died
        unnoticed (the 90 s limit): switch to the busy limit and count the silence so far
        as half of it, so the sweeper pings it at once and cuts it 5 s later unless it
        answers — the caller of a silently dead callee sees PEER_OFFLINE within seconds,
        not 90 s. A live SDK client answers the ping, and goes busy anyway."""
        idle = self.server.config.idle_timeout
        if self.silence_limit > idle:
            self.silence_limit = idle
            self.last_rx = max(self.last_rx, trio.current_time() - idle / 2)

    def ping_received(self, payload: bytes) -> None:
        """A WebSocket ping (the WebSocket layer answered it): the client is alive; with
        the standby payload, as ``Ping(standby=True)``."""
        self.last_rx = trio.current_time()
        self.server.stats.ws_pings += 1
        if payload.startswith(STANDBY_PING):
            self.silence_limit = self.server.config.standby_timeout

    def fragment_received(self) -> None:
        """Part of a message (a frame of a fragmented one): alive, however slow the drip."""
        self.last_rx = trio.current_time()

    def who(self) -> str:
        s = self.session
        return f"user {s.user!r} session {s.id[:8]}" if s is not None else "not logged in"

    async def send_now(self, frame: Any) -> None:
        """Write a frame directly, outside of the writer (login phase, shutdown)."""
        await self.send_now_raw(encode(frame))

    async def send_now_raw(self, data: bytes) -> None:
        try:
            await self.ws.send_message(data.decode())
            self.server.stats.frames_out += 1
        except ConnectionClosed:
            pass

    # --- tasks ----------------------------------------------------------------------------

    async def _reader(self) -> None:
        ws = self.ws
        stats = self.server.stats
        session = self.session
        assert session is not None
        handlers = _HANDLERS
        on_send = self._on_send
        max_bytes = self.server.config.max_frame_bytes
        suspicious = max_bytes // 4  # a str this long may be over max_bytes in UTF-8
        while True:
            try:
                data = await ws.get_message()
            except ConnectionClosed as exc:
                if exc.reason is not None and exc.reason.code == 1009:
                    self.outcome = "too_big"
                return
            self.last_rx = trio.current_time()
            stats.frames_in += 1
            if session.ended:
                continue  # kicked: the writer is flushing the Kicked frame, then we close
            if len(data) > suspicious and isinstance(data, str):
                if len(data.encode("utf-8", "surrogatepass")) > max_bytes:
                    self.outcome = "too_big"
                    return
            try:
                frame = decode_client_frame(data)
            except FrameError as exc:
                stats.bad_frames += 1
                session.push(encode(replies.bad_frame_reply(data, exc)))
                continue
            if type(frame) is Send:
                await on_send(frame)
            elif await handlers[type(frame)](self, frame):
                return

    async def _writer(self) -> None:
        session = self.session
        assert session is not None
        outbox = session.outbox
        ws = self.ws
        # Frames that queued up while the last write was in flight go out in one write
        # (coalescing: under load, fewer syscalls and checkpoints per frame).
        send_many = getattr(ws, "send_messages", None)
        stats = self.server.stats
        try:
            while True:
                while outbox:
                    count = min(len(outbox), _BATCH)
                    if count == 1 or send_many is None:
                        count = 1
                        await ws.send_message(outbox[0].decode())
                    else:
                        await send_many([outbox[i].decode() for i in range(count)])
                    if session.link is not self:
                        return  # superseded by a resume: the frames stay queued for it
                    for _ in range(count):
                        session.pop()
                    stats.frames_out += count
                if self._finishing:
                    break
                await session.wait_output()
        except ConnectionClosed:
            pass
        self._scope.cancel()

    # --- frame handlers (return True to stop reading) ---------------------------------------

    def reply(self, frame: Any) -> None:
        assert self.session is not None
        self.session.push(encode(frame))

    async def _on_send(self, frame: Send) -> None:
        await self._route(frame)
        # Only now (its failure Result, if any, is queued): Deliver and ServerPong tell the
        # client every Send up to ``last_rid`` was handled, and a quiet one without a
        # Result as delivered. Set before, a Deliver queued by another connection while
        # this one awaits the hub could overtake the failure Result.
        session = self.session
        assert session is not None
        if frame.rid > session.last_rid:
            session.last_rid = frame.rid

    async def _route(self, frame: Send) -> None:
        server = self.server
        stats = server.stats
        session = self.session
        assert session is not None
        user = session.user
        rid = frame.rid
        if frame.ack is not None:
            session.ack(frame.ack)
        again = session.answered_before(rid)
        if again is not None:
            if again:  # (a quiet Send that was delivered had no answer, and gets none)
                session.push(again)  # a repeat after a resume: answered, not delivered twice
            return
        if not server.message_limits.allow(user):
            stats.rate_limited += 1
            self.reply(
                Result(
                    rid=rid,
                    code=PeerMessageError.TOO_OFTEN,
                    message=f"more than {server.config.rate_messages} peer messages in "
                    f"{server.config.rate_messages_per:g} s",
                )
            )
            return
        to = frame.to
        msg = frame.msg
        problem = user_id_problem(to)
        if problem is not None:
            stats.bad_frames += 1
            self.reply(Result(rid=rid, code=PeerMessageError.INVALID_USERID, message=problem))
            return
        problem = peer_msg_problem(msg)
        if problem is not None:
            stats.bad_frames += 1
            self.reply(Result(rid=rid, code=PeerMessageError.INVALID_MESSAGE, message=problem))
            return
        ledger = server.ledger
        problem = ledger.check(user, to, msg)
        if problem is not None:
            stats.unauthorized_ignored += 1
            log.info("%s: ignored a frame to %r: %s", self.who(), to, problem)
            self.reply(Result(rid=rid, code=PeerMessageError.INVALID_MESSAGE, message=problem))
            return
        code = await server.hub.deliver(to, encode(Deliver(sender=user, msg=msg)))
        if code == _OK or code == _CACHED:
            stats.messages_routed += 1
            if code == _CACHED:
                stats.messages_cached += 1
            ledger.note(user, to, msg)
        else:
            stats.messages_unreachable += 1
        observer = server.observer
        if observer is not None:
            observer.sent(user, session.id, to, msg, code)
        if frame.quiet and (code == _OK or code == _CACHED):
            session.remember_answer(rid, b"")  # delivered: the next pong says so
            return
        result = encode(Result(rid=rid, code=int(code)))
        session.remember_answer(rid, result)
        session.push(result)

    async def _on_ping(self, frame: Ping) -> bool:
        session = self.session
        assert session is not None
        if frame.ack is not None:
            session.ack(frame.ack)
        self.server.stats.pings += 1
        config = self.server.config
        self.silence_limit = config.standby_timeout if frame.standby else config.idle_timeout
        session.push(encode(ServerPong(rid=session.last_rid)) if session.last_rid else replies.PONG)
        return False

    async def _on_pong(self, frame: Pong) -> bool:
        return False  # last_rx was updated: that is all a Pong is for

    async def _on_logout(self, frame: Logout) -> bool:
        self.outcome = "logout"
        assert self.session is not None
        self.session.ended = True
        self.session.end_reason = "logout"
        return True

    async def _on_login(self, frame: Login) -> bool:
        self.reply(Error(code="forbidden", message="already logged in on this connection"))
        return False


#: Frame type -> handler(conn, frame), one table for every connection (a dict of bound
#: handlers per connection cost ~1 KiB each).
_HANDLERS: dict[type, Callable[[Any, Any], Awaitable[bool]]] = {
    Query: requests.on_query,
    Subscribe: requests.on_subscribe,
    Unsubscribe: requests.on_unsubscribe,
    Renew: requests.on_renew,
    Ping: Connection._on_ping,
    Pong: Connection._on_pong,
    Logout: Connection._on_logout,
    Login: Connection._on_login,
}
