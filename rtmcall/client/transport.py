"""The client's connection to the server: connect, log in, heartbeat, reconnect and resume.

:class:`Transport` keeps one logical *session* alive over a sequence of WebSocket
connections. It owns the only write path (an outbox drained by one writer task, so frames
leave in the order they were queued) and the table of requests awaiting an answer
(``rid`` → callback). It knows frames, not invitations: unsolicited frames and session
changes go to a :class:`TransportHandler` (the client).

Session rules:

* Heartbeat: a Ping every ``LoginOk.heartbeat`` s (3) while something is in progress, every
  ``standby_heartbeat`` s (30) otherwise (``Ping.standby`` says which; see ``_heartbeat``).
* A dropped connection (closed, or no answer to a Ping within ``heartbeat_timeout``, or
  silent for longer than the heartbeat allows, or the server's Bye)
  is RECONNECTING/INTERRUPTED; the transport reconnects (a quick first retry, then
  jittered backoff: :mod:`.backoff`) and logs in with
  ``resume=`` the session id. Requests that were sent but not answered are sent again
  first, then whatever was queued meanwhile (at-least-once; the invitation protocol absorbs
  duplicates, and the server answers a repeated Send it had handled from its cache) — but
  not a peer message its sender no longer wants (``wanted``: an accept whose invitation
  ended while the line was down): it either reached the server before the drop, and then
  the peer has it already, or it did not, and then it must not reach the peer late. The
  other way, the server numbers peer messages (``Deliver.seq``); we ack the highest seen
  in each Ping, each Send and the resuming Login, and drop any seen twice.
* If the server's resume window passes first, or the server answers with a fresh session,
  the old session is lost: pending peer messages are answered NOT_LOGGEDIN and the handler's
  ``on_session_lost`` runs (the engine fails live invitations; with ``replaced`` — a fresh
  session already took its place — it keeps an accept waiting for its confirm, and the new
  session tells the peers what ended). Reconnecting goes on with a fresh login unless
  ``give_up_after`` says stop.
* Kicked → ABORTED with the server's reason; a login refused on reconnect → ABORTED/
  LOGIN_FAILURE; logout → DISCONNECTED/LOGOUT. These end the transport.
"""

from __future__ import annotations

import logging
import math
import random
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from rtmcall.engine import frames as f
from rtmcall.engine.codes import (
    ConnectionChangeReason,
    ConnectionState,
    LoginError,
    PeerMessageError,
)

from .backoff import Backoff
from .config import ClientConfig
from .errors import ConnectFailed, LoginFailed
from .websocket import open_connection, split_urls

log = logging.getLogger("rtmcall.client")

#: A connection that stayed up this long (s) ends an outage: its next drop starts the
#: reconnect backoff afresh, with a quick first retry.
STABLE_CONNECTION = 10.0

CS = ConnectionState
Why = ConnectionChangeReason
#: Why one connection ended.
Ended = Literal["dropped", "kicked", "logout"]
#: Frames that answer a request: matched to it by ``rid``.
AnswerFrame = f.Result | f.Presence | f.Renewed | f.Error
OnAnswer = Callable[[AnswerFrame], None]


class TransportHandler(Protocol):
    def on_state(self, state: ConnectionState, reason: ConnectionChangeReason) -> None: ...

    def on_session(self, ok: f.LoginOk, fresh: bool) -> None:
        """Logged in; ``fresh``: a new session (not a resume of the previous one)."""

    def on_session_lost(self, replaced: bool) -> None:
        """The session is gone; ``replaced``: a fresh session has already taken its place
        (``on_session`` follows at once)."""

    def on_frame(self, frame: f.ServerFrame) -> None:
        """A frame that is not the answer to a request (Deliver, pushed Presence, …)."""

    def busy(self) -> bool:
        """Something is in progress (an invitation): heartbeat every ``heartbeat`` s, so
        that a dead line is noticed within seconds, not within the standby timeout."""


# --- the session --------------------------------------------------------------------------


@dataclass(eq=False)
class _Request:
    frame: f.ClientFrame
    on_answer: OnAnswer | None
    sent: bool = False
    #: Asked before the frame goes again on a new connection; False: drop it.
    wanted: Callable[[], bool] | None = None


def _not_logged_in(frame: f.ClientFrame, rid: int) -> AnswerFrame:
    """The answer a request gets when there is no session to carry it."""
    if isinstance(frame, f.Send):
        return f.Result(rid=rid, code=PeerMessageError.NOT_LOGGEDIN, message="not logged in")
    return f.Error(code="not_logged_in", message="not logged in", rid=rid)


class Transport:
    """Keeps the session alive; see the module docstring.

    Args:
      url: ``ws://`` or ``wss://`` URL of the server.
      user: our user id.
      token: login token (JWT) when the server requires one.
      config: timeouts and reconnect policy.
      ssl_context: for ``wss://`` with a private CA; None: the system's trust store.
      handler: gets state changes, session changes and unsolicited frames.
    """

    def __init__(
        self,
        url: str,
        user: str,
        *,
        token: str | None,
        config: ClientConfig,
        ssl_context: ssl.SSLContext | None,
        handler: TransportHandler,
    ) -> None:
        #: Every node it may use (``url`` may list several, comma-separated); ``url`` is
        #: the one in use: kept while it answers, the next one tried when it does not.
        self.urls = split_urls(url)
        self._url_at = 0
        self.url = self.urls[0]
        self.user = user
        self.token = token
        self.config = config
        self.ssl_context = ssl_context
        self.handler = handler
        self.state = CS.DISCONNECTED
        #: The latest LoginOk (heartbeat, resume window, token expiry).
        self.login_ok: f.LoginOk | None = None
        #: Session id to resume; None when there is no session.
        self._session: str | None = None
        self._outbox: deque[f.ClientFrame] = deque()
        self._outbox_changed = trio.Event()
        self._drained = trio.Event()
        self._requests: dict[int, _Request] = {}
        self._next_rid = 0
        self._go = trio.Event()
        self._conn_scope: trio.CancelScope | None = None
        self._run_scope: trio.CancelScope | None = None
        self._kicked: f.Kicked | None = None
        self._finished = False
        #: Highest Deliver ``seq`` handled in this session (None: the server numbers none).
        #: Told to the server in Ping/Login ``ack`` so a resume resends only what we lack.
        self._rx_seq: int | None = None
        #: ``_rx_seq`` as of the last Ping (nothing new to acknowledge when equal).
        self._acked_seq: int | None = None
        #: The reader's silence deadline (moved on per frame; pulled in per Ping).
        self._silent: trio.CancelScope | None = None
        #: How long the reader waits for the next frame: depends on the heartbeat mode.
        self._patience = config.heartbeat_timeout
        #: The server was last told standby (as it assumes of a new connection); a
        #: request then wakes the heartbeat, which says busy at once.
        self._standby = True
        self._wake_heartbeat = trio.Event()
        #: ``Deliver.rid`` may retire quiet Sends: not after a resume until the first
        #: ServerPong (a replayed Deliver carries the rid of before the drop, and may
        #: overtake the repeated answer to a failed quiet Send we sent again).
        self._trust_deliver_rid = True
        #: A Deliver was received / a Send sent since the heartbeat's last tick.
        self._rx_flag = False
        self._tx_flag = False
        #: The reconnect backoff's jitter (tests may seed it).
        self._rng = random.Random()
        #: The backoff of the latest outage, when it began, and when we last logged in.
        self._backoff: Backoff | None = None
        self._down_since = 0.0
        self._up_since = 0.0

    # --- requests and the outbox ---------------------------------------------------------

    @property
    def logged_in(self) -> bool:
        """We hold a session (possibly reconnecting to it)."""
        return self._session is not None

    def next_rid(self) -> int:
        self._next_rid += 1
        return self._next_rid

    def send(
        self,
        frame: f.ClientFrame,
        on_answer: OnAnswer | None = None,
        *,
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        """Queue ``frame``; frames leave in queue order. If it carries a ``rid``, call
        ``on_answer`` with the server's answer — or, when the session ends first, with a
        not-logged-in answer. ``wanted``: asked when a new connection would send the frame
        (again, or for the first time after a drop); False drops it, unanswered. Never
        blocks."""
        rid = getattr(frame, "rid", None)
        if self._finished or (self._session is None and isinstance(frame, f.Send)):
            if rid is not None and on_answer is not None:
                on_answer(_not_logged_in(frame, rid))
            return
        if rid is not None:
            self._requests[rid] = _Request(frame, on_answer, wanted=wanted)
            if self._standby:
                self._wake_heartbeat.set()
        self._outbox.append(frame)
        self._outbox_changed.set()
        if self._drained.is_set():
            self._drained = trio.Event()

    def forget(self, rid: int) -> None:
        """Stop waiting for the answer to ``rid`` (the caller timed out)."""
        self._requests.pop(rid, None)

    def _answer(self, rid: int, frame: AnswerFrame) -> bool:
        req = self._requests.pop(rid, None)
        if req is None:
            return False
        if req.on_answer is not None:
            req.on_answer(frame)
        return True

    def _retire_quiet(self, upto: int) -> None:
        """The server has handled every Send up to ``upto``: the quiet ones among them that
        got no Result were delivered (a failure would have been answered)."""
        done = [
            rid
            for rid, req in self._requests.items()
            if rid <= upto and req.sent and isinstance(req.frame, f.Send) and req.frame.quiet
        ]
        for rid in done:
            del self._requests[rid]

    def _fail_requests(self, only_sends: bool) -> None:
        """Answer pending requests "not logged in" (only peer messages, or all)."""
        for rid, req in list(self._requests.items()):
            if only_sends and not isinstance(req.frame, f.Send):
                continue
            self._answer(rid, _not_logged_in(req.frame, rid))
        if only_sends:
            self._outbox = deque(fr for fr in self._outbox if not isinstance(fr, f.Send))
        else:
            self._outbox.clear()

    def _requeue(self) -> None:
        """On a new connection: resend requests that got no answer, then the queue.
        Heartbeats and logins of the old connection are stale, and so are requests their
        sender no longer wants (see the module docstring)."""
        stale = (f.Ping, f.Pong, f.Login, f.Logout)
        unwanted = {
            rid for rid, r in self._requests.items() if r.wanted is not None and not r.wanted()
        }
        for rid in unwanted:
            del self._requests[rid]
        resend = [r.frame for r in self._requests.values() if r.sent]
        for r in self._requests.values():
            r.sent = False
        queued = [
            fr
            for fr in self._outbox
            if not isinstance(fr, stale) and getattr(fr, "rid", None) not in unwanted
        ]
        self._outbox = deque([*resend, *queued])
        self._outbox_changed.set()

    async def _writer(self, ws: WebSocketConnection) -> None:
        while True:
            while self._outbox:
                frame = self._outbox[0]
                out = frame
                if type(frame) is f.Send:
                    self._tx_flag = True
                    if self._rx_seq is not None:
                        # Acknowledge what we have on the way (no Ping needed for it).
                        out = msgspec.structs.replace(frame, ack=self._rx_seq)
                        self._acked_seq = self._rx_seq
                try:
                    await ws.send_message(f.encode(out).decode())
                except ConnectionClosed:
                    return  # the reader notices too, and ends the connection
                if self._outbox and self._outbox[0] is frame:
                    self._outbox.popleft()
                rid = getattr(frame, "rid", None)
                if rid is not None and rid in self._requests:
                    self._requests[rid].sent = True
            self._drained.set()
            await self._outbox_changed.wait()
            self._outbox_changed = trio.Event()

    # --- state -------------------------------------------------------------------------

    def _set_state(self, state: ConnectionState, reason: ConnectionChangeReason) -> None:
        if state is self.state:
            return
        self.state = state
        self.handler.on_state(state, reason)

    def _lose_session(self, replaced: bool = False) -> None:
        """The session is gone for good: pending peer messages fail, the engine is told
        (``replaced``: a fresh session has already taken its place)."""
        if self._session is None:
            return
        self._session = None
        self._fail_requests(only_sends=True)
        self.handler.on_session_lost(replaced)

    def _finish(self, state: ConnectionState, reason: ConnectionChangeReason) -> None:
        self._set_state(state, reason)
        self._lose_session()
        self._finished = True
        self._fail_requests(only_sends=False)
        if self._run_scope is not None:
            self._run_scope.cancel()

    def go(self) -> None:
        """Start handling frames (the client calls this once its subscribers can listen)."""
        self._go.set()

    def abort(self) -> None:
        """Cut the current connection abruptly, as a network failure would (for tests and
        for "the network changed" hints). The transport reconnects as usual."""
        if self._conn_scope is not None:
            self._conn_scope.cancel()

    async def logout(self) -> None:
        """Log out (a Logout frame, flushed for at most a second) and stop. Idempotent."""
        if self._finished:
            return
        if self.state is CS.CONNECTED:
            self.send(f.Logout())
            with trio.move_on_after(1.0):
                await self._drained.wait()
        self._finish(CS.DISCONNECTED, Why.LOGOUT)
        await trio.lowlevel.checkpoint()

    # --- the connection loop -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[f.LoginOk] = trio.TASK_STATUS_IGNORED):
        """Connect and log in, report started (with the LoginOk), then keep the session
        alive until logout, kick or give-up.

        Raises (before started only):
          ConnectFailed, LoginFailed.
        """
        with trio.CancelScope() as self._run_scope:
            self._set_state(CS.CONNECTING, Why.LOGIN)
            try:
                ended = await self._first_connection(task_status)
            except ConnectFailed:
                self._finish(CS.DISCONNECTED, Why.LOGIN_FAILURE)
                raise
            except LoginFailed as exc:
                why = Why.LOGIN_TIMEOUT if exc.reason is LoginError.TIMEOUT else Why.LOGIN_FAILURE
                self._finish(CS.DISCONNECTED, why)
                raise
            while ended == "dropped":
                ended = await self._reconnect()
            if ended == "kicked":
                code = self._kicked.reason if self._kicked else Why.REMOTE_LOGIN
                try:
                    why = Why(code)
                except ValueError:
                    why = Why.REMOTE_LOGIN
                self._finish(CS.ABORTED, why)

    async def _first_connection(self, task_status: trio.TaskStatus[f.LoginOk]) -> Ended | None:
        """The first node of ``urls`` that answers (the error of the last one if none): a
        node that cannot be reached, or that cannot log anyone in now (TIMEOUT: its Redis
        is away, say), is passed over."""
        last = len(self.urls) - 1
        for i, url in enumerate(self.urls):
            self.url, self._url_at = url, i
            try:
                return await self._connection(task_status=task_status)
            except ConnectFailed as exc:
                if i == last:
                    raise
                log.info("%s: %s; trying the next server", self.user, exc.message)
            except LoginFailed as exc:
                if i == last or exc.reason is not LoginError.TIMEOUT:
                    raise
                log.info("%s: %s; trying the next server", self.user, exc)
        raise AssertionError("unreachable")  # (urls is never empty)

    def _next_url_at_once(self, first_at: int) -> bool:
        """Move on to the next of several URLs (the node in use does not answer); True:
        try it at once (it resumes the session as well), False: a whole round failed,
        so the backoff applies."""
        if len(self.urls) == 1:
            return False
        self._url_at = (self._url_at + 1) % len(self.urls)
        self.url = self.urls[self._url_at]
        return self._url_at != first_at

    async def _reconnect(self) -> Ended:
        """Reconnect with backoff until a connection logs in; return how that one ended."""
        cfg = self.config
        if not cfg.reconnect:
            self._finish(CS.ABORTED, Why.INTERRUPTED)
            return "logout"
        self._set_state(CS.RECONNECTING, Why.INTERRUPTED)
        now = trio.current_time()
        window = self.login_ok.resume_window if self.login_ok else 0.0
        resume_deadline = now + window
        give_up = now + cfg.give_up_after if cfg.give_up_after is not None else math.inf
        backoff = self._backoff
        if backoff is None or now - self._up_since >= STABLE_CONNECTION:
            # A new outage. (A connection that dropped soon after logging in goes on with
            # the backoff of the outage before it: a server that takes logins and drops
            # them at once is not hammered with quick retries.)
            backoff = self._backoff = Backoff(
                first=cfg.reconnect_first_delay,
                base=cfg.reconnect_delay,
                cap=cfg.reconnect_max_delay,
                patient_after=cfg.reconnect_patient_after,
                patient_cap=cfg.reconnect_patient_max_delay,
                rng=self._rng,
            )
            self._down_since = now
        dropped_at = self._down_since
        delay = backoff.next_delay(now - dropped_at)
        first_at = self._url_at
        while True:
            now = trio.current_time()
            if self._session is not None and now >= resume_deadline:
                log.info("%s: resume window passed; the session is lost", self.user)
                self._lose_session()
            if now >= give_up:
                self._finish(CS.ABORTED, Why.LOGIN_TIMEOUT)
                return "logout"
            deadline = min(resume_deadline if self._session is not None else math.inf, give_up)
            with trio.move_on_at(deadline):
                await trio.sleep(delay)
            delay = backoff.next_delay(trio.current_time() - dropped_at)
            if trio.current_time() >= deadline:
                continue
            # The deadline bounds connecting and logging in only (``_connection`` lifts
            # it once logged in): a resumed connection may then live as long as it likes.
            try:
                ended = await self._connection(deadline=deadline)
            except ConnectFailed as exc:
                log.info("%s: reconnect failed: %s", self.user, exc.message)
                if self._next_url_at_once(first_at):
                    delay = 0.0
                continue
            except LoginFailed as exc:
                if exc.reason is LoginError.TIMEOUT and self._next_url_at_once(first_at):
                    delay = 0.0  # (that node cannot log anyone in now)
                    continue
                if exc.reason in (LoginError.TOO_OFTEN, LoginError.TIMEOUT):
                    continue
                if self._session is not None:
                    # The server would not resume it: try once more as a new session.
                    log.info("%s: resume refused (%s)", self.user, exc)
                    self._lose_session()
                    delay = 0.0
                    continue
                self._finish(CS.ABORTED, Why.LOGIN_FAILURE)
                return "logout"
            if ended is not None:
                return ended

    async def _connection(
        self,
        *,
        deadline: float = math.inf,
        task_status: trio.TaskStatus[f.LoginOk] | None = None,
    ) -> Ended | None:
        """One connection: connect, log in (both before ``deadline``), then serve it.
        None: the deadline passed before the login completed."""
        with trio.CancelScope(deadline=deadline) as scope:
            async with open_connection(
                self.url, self.ssl_context, self.config.connect_timeout
            ) as ws:
                ok = await self._login(ws)
                scope.deadline = math.inf
                self._logged_in(ok)
                if task_status is not None:
                    task_status.started(ok)
                await self._go.wait()
                return await self._serve(ws)
        return None

    async def _login(self, ws: WebSocketConnection) -> f.LoginOk:
        # A resume acknowledges what came (0: nothing yet, so that the server sends again
        # what it wrote into the line that died: without an ack it would not).
        ack = (self._rx_seq or 0) if self._session is not None else None
        login = f.Login(user=self.user, token=self.token, resume=self._session, ack=ack)
        timeout = self.config.connect_timeout
        try:
            with trio.fail_after(timeout):
                await ws.send_message(f.encode(login).decode())
                while True:
                    frame = f.decode_server_frame(await ws.get_message())
                    match frame:
                        case f.LoginOk():
                            return frame
                        case f.LoginFail(reason=reason, message=message):
                            try:
                                code = LoginError(reason)
                            except ValueError:
                                code = LoginError.UNKNOWN
                            raise LoginFailed(code, message)
                        case f.Error(message=message):
                            raise LoginFailed(LoginError.REJECTED, message)
                        case _:
                            continue  # a ping before the answer: nothing to do
        except trio.TooSlowError:
            raise LoginFailed(LoginError.TIMEOUT, f"no answer within {timeout:g} s") from None
        except ConnectionClosed as exc:
            raise ConnectFailed(self.url, f"connection closed during login ({exc})") from None
        except f.FrameError as exc:
            raise LoginFailed(LoginError.UNKNOWN, f"bad answer from server: {exc}") from None

    def _logged_in(self, ok: f.LoginOk) -> None:
        self._up_since = trio.current_time()
        fresh = not ok.resumed
        if fresh:
            # Whatever the server had for us is gone (or there was nothing): a new session.
            self._lose_session(replaced=True)
            self._rx_seq = None
        self.login_ok = ok
        self._trust_deliver_rid = not ok.resumed
        self._session = ok.session
        self._requeue()
        self._set_state(CS.CONNECTED, Why.LOGIN_SUCCESS)
        self.handler.on_session(ok, fresh)

    async def _serve(self, ws: WebSocketConnection) -> Ended:
        """Run the writer, heartbeat and reader on a logged-in connection until it ends."""
        try:
            with trio.CancelScope() as self._conn_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, ws)
                    nursery.start_soon(self._heartbeat, ws)
                    ended = await self._reader(ws)
                    nursery.cancel_scope.cancel()
                    return ended
            return "dropped"  # abort() cut it
        finally:
            self._conn_scope = None

    async def _heartbeat(self, ws: WebSocketConnection) -> None:
        """Ping every ``heartbeat`` s while busy, every ``standby_heartbeat`` s otherwise.

        Busy: the handler says so (an invitation in progress), requests await answers
        (quiet Sends are retired by the pong), or Delivers await acknowledgement. A busy
        heartbeat is a ``Ping`` frame (with the ack) — none while peer messages flow both
        ways (each Send carries the ack, each Deliver the rid the server handled); a
        standby one a WebSocket ping with the standby payload. The server times the
        connection out according to the last one; it assumes standby after login. Every
        heartbeat must be answered within ``heartbeat_timeout`` (or the connection is dead
        and the transport reconnects).
        """
        fast, slow = self._intervals()
        self._standby = True  # what the server assumes of a new connection
        last_ping = trio.current_time()
        next_tick = last_ping + fast
        pings = 0
        while True:
            with trio.move_on_at(next_tick):
                await self._wake_heartbeat.wait()
            self._wake_heartbeat = trio.Event()
            busy = self.handler.busy() or bool(self._requests) or self._rx_seq != self._acked_seq
            now = trio.current_time()
            next_tick = now + fast
            flowing = self._rx_flag and self._tx_flag
            self._rx_flag = self._tx_flag = False
            if busy and not self._standby and flowing and self._trust_deliver_rid:
                # Busy, and peer messages flowed both ways since the last tick: our Sends
                # carry the acks (what arrived since goes with the next one, or the next
                # Ping once the flow stops) and the server's Delivers the handled rid.
                continue
            # Standby: a Ping within ``slow`` of the previous one (at the tick closest to
            # it). Entering or leaving busy: a Ping at once to say so.
            if not busy and self._standby and now - last_ping < slow - fast / 2:
                continue
            self._standby = not busy
            last_ping = now
            self._patience = self._patience_for(self._standby)
            silent = self._silent
            if silent is not None:
                silent.deadline = min(silent.deadline, now + self.config.heartbeat_timeout)
            if busy:
                self._acked_seq = self._rx_seq
                self.send(f.Ping(ack=self._rx_seq))
                continue
            # Standby: nothing to acknowledge (not busy), so a WebSocket ping does, and
            # the server's WebSocket layer answers it without waking the session. No pong
            # within heartbeat_timeout: the line is dead (the reader does not see pongs,
            # and other frames may still trickle in), reconnect.
            pings += 1
            with trio.move_on_after(self.config.heartbeat_timeout) as waiting:
                try:
                    await ws.ping(b"%s %d" % (f.STANDBY_PING, pings))
                except ConnectionClosed:
                    return
            if waiting.cancelled_caught:
                log.info(
                    "%s: no pong within %g s; connection dead",
                    self.user,
                    self.config.heartbeat_timeout,
                )
                self.abort()
                return
            if silent is not None:
                silent.deadline = max(silent.deadline, trio.current_time() + self._patience)

    def _intervals(self) -> tuple[float, float]:
        """(busy, standby) heartbeat intervals, from the LoginOk."""
        ok = self.login_ok
        if ok is None:
            return 3.0, 3.0
        return ok.heartbeat, max(ok.heartbeat, ok.standby_heartbeat)

    def _patience_for(self, standby: bool) -> float:
        """How long the server may stay silent: a few busy heartbeats, or until the next
        standby Ping plus the time its answer may take."""
        fast, slow = self._intervals()
        if standby and self.login_ok is not None:
            return slow + self.config.heartbeat_timeout
        return max(self.config.heartbeat_timeout, 2.5 * fast)

    async def _reader(self, ws: WebSocketConnection) -> Ended:
        # A new connection starts in standby (see _heartbeat).
        self._patience = self._patience_for(True)
        # One scope whose deadline moves on with every frame (not a scope per frame: this
        # loop runs for every frame the client receives).
        with trio.CancelScope(deadline=trio.current_time() + self._patience) as silent:
            self._silent = silent
            try:
                ended = await self._read_frames(ws, silent)
            finally:
                self._silent = None
        if silent.cancelled_caught:
            log.info("%s: the server went silent; connection dead", self.user)
            return "dropped"
        return ended

    async def _read_frames(self, ws: WebSocketConnection, silent: trio.CancelScope) -> Ended:
        while True:
            try:
                data = await ws.get_message()
            except ConnectionClosed:
                log.info("%s: connection closed", self.user)
                return "dropped"
            silent.deadline = trio.current_time() + self._patience
            try:
                frame = f.decode_server_frame(data)
            except f.FrameError as exc:
                log.warning("%s: undecodable frame from server: %s", self.user, exc)
                continue
            match frame:
                case f.ServerPing():
                    self.send(f.Pong())
                case f.ServerPong(rid=rid):
                    self._trust_deliver_rid = True
                    if rid is not None:
                        self._retire_quiet(rid)
                case f.Kicked():
                    self._kicked = frame
                    return "kicked"
                case f.Bye():
                    log.info("%s: server going away (%s)", self.user, frame.reason)
                    return "dropped"
                case f.Deliver(seq=seq) if seq is not None:
                    self._rx_flag = True
                    if frame.rid is not None and self._trust_deliver_rid:
                        self._retire_quiet(frame.rid)
                    if self._rx_seq is not None and seq <= self._rx_seq:
                        continue  # sent again after a resume, but we had it already
                    self._rx_seq = seq
                    self.handler.on_frame(frame)
                case f.Result() | f.Renewed():
                    self._answer(frame.rid, frame)
                case f.Presence(rid=rid) | f.Error(rid=rid) if rid is not None:
                    if not self._answer(rid, frame):
                        self.handler.on_frame(frame)
                case _:
                    self.handler.on_frame(frame)
