"""RtmClient: one logged-in user, its invitations, presence and messages, on trio.

Use it as an async context manager::

    async with RtmClient.connect("ws://127.0.0.1:8765", "alice") as client:
        async with client.events() as events:
            inv = await client.call("bob", content="hi")
            async for ev in events:
                ...

Inside, one nursery runs the transport (connection, heartbeat, reconnect), the timer task
of the engine driver, and nothing else: API calls run the engine synchronously in the
caller's task, and received frames run it in the transport's reader task. trio is
single-threaded, so the engine (not thread-safe) needs no lock as long as no ``await`` sits
between an engine call and applying its outputs — none does.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio

from rtmcall.engine import frames as f
from rtmcall.engine.call import Call
from rtmcall.engine.codes import (
    ConnectionChangeReason,
    ConnectionState,
    LoginError,
    PeerMessageError,
    PeerOnlineState,
)
from rtmcall.engine.engine import CallEngine, LocalInvitation, RemoteInvitation

from .config import ClientConfig
from .driver import Driver, delivery_code
from .errors import InvalidArgument, LoginFailed, NotLoggedIn, RequestFailed
from .events import (
    ClientEvent,
    ConnectionStateChanged,
    MessageFromPeer,
    TokenPrivilegeWillExpire,
)
from .fanout import EventFanout
from .transport import AnswerFrame, Transport
from .websocket import reraise_collapsed, split_urls

log = logging.getLogger("rtmcall.client")


class _Answer:
    """One request's answer, awaited by the caller."""

    def __init__(self) -> None:
        self.event = trio.Event()
        self.frame: AnswerFrame | None = None

    def set(self, frame: AnswerFrame) -> None:
        self.frame = frame
        self.event.set()


def _check_users(call: str, users: Iterable[str]) -> list[str]:
    if isinstance(users, str):
        users = [users]
    users = list(users)
    if not users:
        raise InvalidArgument(f"{call}: no users given", "no users given")
    for user in users:
        problem = f.user_id_problem(user)
        if problem is not None:
            raise InvalidArgument(f"{call}: {problem}", problem)
    return users


class RtmClient:
    """A logged-in RTM session with its call-invitation manager. Make one with
    :meth:`connect` (or :func:`rtmcall.client.connect`)."""

    def __init__(
        self,
        url: str,
        user: str,
        *,
        token: str | None = None,
        config: ClientConfig | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config or ClientConfig()
        self.engine = CallEngine(user, self.config.engine_config())
        self._fanout = EventFanout(self.config.event_buffer)
        self._transport = Transport(
            url,
            user,
            token=token,
            config=self.config,
            ssl_context=ssl_context,
            handler=self,
        )
        self._driver = Driver(self.engine, self._transport, self._fanout.publish)

    # --- lifecycle -----------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        user: str,
        *,
        token: str | None = None,
        config: ClientConfig | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> AsyncIterator[RtmClient]:
        """Connect to ``url``, log in as ``user``, and yield the client; log out on exit.

        Args:
          url: ``ws://host:port`` or ``wss://…``; or several nodes of one deployment,
            comma-separated: the client uses the first that answers, and when its
            connection drops and that node does not answer, resumes on the next.
          user: the user id to log in as.
          token: a login token (JWT) if the server requires one.
          config: timers and transport settings.
          ssl_context: trust for ``wss://`` (e.g. a private CA); None: the system's.

        Raises:
          ConnectFailed: the server is unreachable, TLS failed, or no answer within
            ``config.connect_timeout``.
          LoginFailed: the server refused the login (reason: a LoginError), or the user id
            is invalid (INVALID_ARGUMENT).

        Resource handling: on exit (normal, exception or cancellation) the client logs out
        (at most about a second, shielded), ends every event subscription and stops its
        tasks. Pending outgoing invitations are not canceled first (do it yourself if you
        want the callee told "canceled" rather than "peer offline").
        """
        problem = f.user_id_problem(user)
        if problem is not None:
            raise LoginFailed(LoginError.INVALID_ARGUMENT, problem)
        try:
            split_urls(url)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        client = cls(url, user, token=token, config=config, ssl_context=ssl_context)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(client._transport.run)
                nursery.start_soon(client._driver.timers.run)
                # Frames are handled only from here on: the caller's first ``events()``
                # call, made before its first checkpoint, sees every event.
                client._transport.go()
                try:
                    yield client
                finally:
                    with trio.CancelScope(shield=True):
                        with trio.move_on_after(2.0):
                            await client.logout()
                    client._fanout.close()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            reraise_collapsed(group)

    async def logout(self) -> None:
        """Log out: DISCONNECTED/LOGOUT; live invitations end (NOT_LOGGEDIN / PEER_OFFLINE).
        Idempotent; the client cannot log in again (connect anew)."""
        await self._transport.logout()

    # --- properties ----------------------------------------------------------------------

    @property
    def user(self) -> str:
        return self.engine.user

    @property
    def url(self) -> str:
        return self._transport.url

    @property
    def connection_state(self) -> ConnectionState:
        return self._transport.state

    @property
    def local_invitations(self) -> dict[str, LocalInvitation]:
        """Outgoing invitations by id (the engine's own dict: read only)."""
        return self.engine.local

    @property
    def remote_invitations(self) -> dict[str, RemoteInvitation]:
        """Incoming invitations by id (the engine's own dict: read only)."""
        return self.engine.remote

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def dropped_events(self) -> int:
        """Events dropped because a subscriber did not read (over all subscribers)."""
        return self._fanout.dropped

    def timer_deadline(self, invitation: LocalInvitation | RemoteInvitation) -> float | None:
        """The ``trio.current_time()`` at which the invitation's current timer fires (its
        no-ACK window, lifetime, or confirm window), or None when none runs."""
        return self._driver.timer_deadline(invitation)

    def events(self, max_buffer: int | None = None) -> trio.MemoryReceiveChannel[ClientEvent]:
        """A new subscription to every event from now on (invitation events and the client
        events of :mod:`rtmcall.client.events`). Any number may be open at once; each
        buffers up to ``max_buffer`` (default ``config.event_buffer``) unread events and
        then drops new ones for itself (counted in :attr:`dropped_events`). It ends when
        the client exits."""
        return self._fanout.subscribe(max_buffer)

    # --- invitations ---------------------------------------------------------------------

    def create_invitation(
        self,
        callee: str,
        *,
        content: str = "",
        channel_id: str = "",
        lifetime: float | None = None,
    ) -> LocalInvitation:
        """A new outgoing invitation, IDLE (Agora's createLocalInvitation).

        Raises:
          ApiCallError: INVALID_ARGUMENT (bad callee, content > 8 KB, channel > 64 bytes,
            lifetime not in (0, 86400]).
        """
        return self.engine.create_local_invitation(
            callee, content=content, channel_id=channel_id, lifetime=lifetime
        )

    async def send_invitation(self, invitation: LocalInvitation | str) -> None:
        """Send an IDLE invitation: SENT_TO_REMOTE, or FAILURE/NOT_LOGGEDIN at once when not
        logged in. While the client is RECONNECTING (the session is held) the invitation
        waits for the resume and goes out then; if the no-ACK window ends first, it fails
        NOT_LOGGEDIN. The outcome comes as events.

        Raises:
          ApiCallError: ALREADY_SENT, ALREADY_END (ended, or canceled), INVALID_ARGUMENT
            (unknown id).
        """
        self._driver.apply(self.engine.send(invitation))
        await trio.lowlevel.checkpoint()

    async def call(
        self,
        callee: str,
        *,
        content: str = "",
        channel_id: str = "",
        lifetime: float | None = None,
    ) -> LocalInvitation:
        """Create and send an invitation; returns it (SENT_TO_REMOTE, or FAILURE)."""
        inv = self.create_invitation(
            callee, content=content, channel_id=channel_id, lifetime=lifetime
        )
        await self.send_invitation(inv)
        return inv

    async def cancel(self, invitation: LocalInvitation | str) -> None:
        """Cancel an outgoing invitation.

        Raises:
          ApiCallError: NOT_STARTED (not sent), ALREADY_END, INVALID_ARGUMENT.
        """
        self._driver.apply(self.engine.cancel(invitation))
        await trio.lowlevel.checkpoint()

    async def accept(self, invitation: RemoteInvitation | str, response: str = "") -> None:
        """Accept a ringing invitation (ACCEPT_SENT_TO_LOCAL; ACCEPTED once the caller
        confirms).

        Raises:
          ApiCallError: ALREADY_ACCEPT (accepted, not yet confirmed), ALREADY_END (ended,
            ACCEPTED included), INVALID_ARGUMENT (response > 8 KB,
            unknown id).
        """
        self._driver.apply(self.engine.accept(invitation, response))
        await trio.lowlevel.checkpoint()

    async def refuse(
        self, invitation: RemoteInvitation | str, response: str = "", reason: str = "declined"
    ) -> None:
        """Refuse a ringing invitation (REFUSED). ``reason`` (SPEC §6): ``declined`` (a
        person said no; the default) or ``busy``; the caller's LocalInvitationRefused has it.

        Raises:
          ApiCallError: ALREADY_ACCEPT (accepted, not yet confirmed), ALREADY_END (ended,
            ACCEPTED included), INVALID_ARGUMENT (also a bad reason).
        """
        self._driver.apply(self.engine.refuse(invitation, response, reason))
        await trio.lowlevel.checkpoint()

    # --- calls (SPEC §6) ---------------------------------------------------------------

    async def hangup(self, call: Call | LocalInvitation | RemoteInvitation | str) -> None:
        """End a call (an accepted invitation): ``CallEnded`` with HANGUP_LOCAL here at once,
        HANGUP_REMOTE at the peer.

        Raises:
          ApiCallError: ALREADY_END (the call ended), NOT_STARTED (the invitation never
            became a call: it rings, waits for the confirm, or ended without an accept),
            INVALID_ARGUMENT (unknown id).
        """
        self._driver.apply(self.engine.hangup(call))
        await trio.lowlevel.checkpoint()

    @property
    def calls(self) -> dict[str, Call]:
        """Calls by id (the invitation's), on or ended (the engine's own dict: read only)."""
        return self.engine.calls

    def call_started_at(self, call: Call | str) -> float | None:
        """The ``trio.current_time()`` at which a call that is on started, else None."""
        return self._driver.call_started.get(call if isinstance(call, str) else call.id)

    @property
    def dnd(self) -> bool:
        """Do not disturb: every new invitation is refused at once with reason busy."""
        return self.engine.dnd

    def set_dnd(self, on: bool) -> None:
        """Turn do-not-disturb on or off (it starts as ``config.dnd``)."""
        self.engine.set_dnd(on)

    @property
    def when_busy(self) -> str:
        """The busy policy: ``ring`` or ``refuse`` (it starts as ``config.when_busy``)."""
        return self.engine.when_busy

    def set_when_busy(self, policy: str) -> None:
        """Change the busy policy (``ring`` or ``refuse``).

        Raises:
          ApiCallError: INVALID_ARGUMENT for another word.
        """
        self.engine.set_when_busy(policy)

    # --- presence, messages, token -------------------------------------------------------

    async def _request(self, frame: f.ClientFrame) -> AnswerFrame:
        """Send a request frame and wait for its answer (``config.request_timeout``).

        Raises:
          NotLoggedIn, RequestFailed.
        """
        if not self._transport.logged_in:
            raise NotLoggedIn(f"{self.user} is not logged in ({self.connection_state.name})")
        rid: int = frame.rid  # type: ignore[union-attr]
        answer = _Answer()
        self._transport.send(frame, answer.set)
        with trio.move_on_after(self.config.request_timeout):
            await answer.event.wait()
        if answer.frame is None:
            self._transport.forget(rid)
            raise RequestFailed("timeout", f"no answer within {self.config.request_timeout:g} s")
        if isinstance(answer.frame, f.Error):
            if answer.frame.code == "not_logged_in":
                raise NotLoggedIn(answer.frame.message)
            raise RequestFailed(answer.frame.code, answer.frame.message)
        return answer.frame

    async def query_peers_online_status(self, users: Iterable[str]) -> dict[str, PeerOnlineState]:
        """Ask whether these users are online now.

        Raises:
          InvalidArgument, NotLoggedIn, RequestFailed.
        """
        users = _check_users("query_peers_online_status", users)
        result: dict[str, PeerOnlineState] = {}
        for i in range(0, len(users), f.MAX_PEERS_PER_QUERY):
            chunk = users[i : i + f.MAX_PEERS_PER_QUERY]
            answer = await self._request(f.Query(rid=self._transport.next_rid(), users=chunk))
            if isinstance(answer, f.Presence):
                for peer, code in answer.states.items():
                    try:
                        result[peer] = PeerOnlineState(code)
                    except ValueError:
                        result[peer] = PeerOnlineState.UNREACHABLE
        return result

    async def subscribe_peers_online_status(self, users: Iterable[str]) -> None:
        """Be told of these users' online state: one PeersOnlineStatusChanged with their
        current states once subscribed, then one per change.

        Raises:
          InvalidArgument, NotLoggedIn, RequestFailed.
        """
        users = _check_users("subscribe_peers_online_status", users)
        self._driver.user_watch.update(users)
        for i in range(0, len(users), f.MAX_PEERS_PER_QUERY):
            chunk = users[i : i + f.MAX_PEERS_PER_QUERY]
            answer = await self._request(f.Subscribe(rid=self._transport.next_rid(), users=chunk))
            if isinstance(answer, f.Presence):
                self._driver.presence_update(answer.states, announce=chunk)

    async def unsubscribe_peers_online_status(self, users: Iterable[str]) -> None:
        """Stop telling about these users' online state.

        Raises:
          InvalidArgument.
        """
        users = _check_users("unsubscribe_peers_online_status", users)
        self._driver.user_watch.difference_update(users)
        gone = [u for u in users if u not in self._driver.engine_watch]
        if gone and self._transport.logged_in:
            self._driver.unsubscribe(gone)
        await trio.lowlevel.checkpoint()

    async def send_message_to_peer(self, peer: str, text: str) -> PeerMessageError:
        """Send a plain text message; returns the delivery result (OK: delivered,
        PEER_UNREACHABLE: the peer is offline, NOT_LOGGEDIN, SENT_TIMEOUT, …).

        Raises:
          InvalidArgument: bad peer id, or text over 32 KB of UTF-8.
        """
        problem = f.user_id_problem(peer)
        if problem is None and not isinstance(text, str):
            problem = "text must be a string"
        if problem is None:
            problem = f.peer_msg_problem(f.Text(text=text))
        if problem is not None:
            raise InvalidArgument(f"send_message_to_peer: {problem}", problem)
        try:
            answer = await self._request(
                f.Send(rid=self._transport.next_rid(), to=peer, msg=f.Text(text=text))
            )
        except NotLoggedIn:
            return PeerMessageError.NOT_LOGGEDIN
        except RequestFailed as exc:
            if exc.code == "timeout":
                return PeerMessageError.SENT_TIMEOUT
            return delivery_code(f.Error(code=exc.code, message=exc.message))
        return delivery_code(answer)

    async def renew_token(self, token: str) -> float:
        """Replace the session's token; returns the seconds until the new one expires.

        Raises:
          NotLoggedIn, RequestFailed (e.g. ``invalid_token``).
        """
        answer = await self._request(f.Renew(rid=self._transport.next_rid(), token=token))
        self._transport.token = token  # later reconnects log in with the new token
        return answer.token_expires_in if isinstance(answer, f.Renewed) else 0.0

    # --- TransportHandler ----------------------------------------------------------------

    def on_state(self, state: ConnectionState, reason: ConnectionChangeReason) -> None:
        log.info("%s: connection %s (%s)", self.user, state.name, reason.name)
        if state in (ConnectionState.CONNECTED, ConnectionState.RECONNECTING):
            # (What is sent while reconnecting waits for the resume.)
            self.engine.set_connected(state is ConnectionState.CONNECTED)
        self._fanout.publish(ConnectionStateChanged(state, reason))

    def on_session(self, ok: f.LoginOk, fresh: bool) -> None:
        self.engine.set_logged_in(True)
        if fresh:
            # (After a lost session: accepts still waiting for a confirm go again.)
            self._driver.apply(self.engine.session_renewed())
        # Subscriptions may be gone (new session) or have missed changes (resume): renew
        # them; the answers bring the current states to the engine and the application.
        self._driver.resubscribe()
        # (A token close to expiry is announced by the server's TokenExpiring frame.)

    def on_session_lost(self, replaced: bool = False) -> None:
        self._driver.apply(self.engine.session_lost(replaced=replaced))

    def busy(self) -> bool:
        return self.engine.busy

    def on_frame(self, frame: f.ServerFrame) -> None:
        match frame:
            case f.Deliver(sender=sender, msg=f.Text(text=text)):
                self._fanout.publish(MessageFromPeer(sender, text))
            case f.Deliver(sender=sender, msg=msg):
                self._driver.apply(self.engine.receive(sender, msg))
            case f.Presence(states=states):
                self._driver.presence_update(states)
            case f.TokenExpiring(seconds=seconds):
                self._fanout.publish(TokenPrivilegeWillExpire(seconds))
            case f.Error(code=code, message=message):
                log.warning("%s: server error %s: %s", self.user, code, message)
            case _:
                log.debug("%s: unexpected frame %r", self.user, frame)


#: ``async with connect(url, user) as client`` — the same as :meth:`RtmClient.connect`.
connect = RtmClient.connect
