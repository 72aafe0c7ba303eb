"""The hub: who is logged in where, routing between sessions, presence.

Session and connection code talk only to the :class:`Hub` protocol, so a Redis-backed hub
(several server processes sharing users) can replace :class:`MemoryHub` without touching
them. The contract every hub keeps:

* One live session per user id. ``register`` makes a session the user's session and
  kicks the older one (``Session.kick(REMOTE_LOGIN)``), wherever it lives.
* ``deliver`` never waits for the receiver's socket: it hands the frame to the receiving
  session's ``push`` (locally, or via the node that holds it) and returns the
  PeerMessageError code. Frames from one sender are delivered in the order of the
  ``deliver`` calls (the sender's connection calls it from one task, one at a time), which
  is the FIFO the invitation protocol relies on.
* Presence is derived from the registered session: ONLINE while attached, UNREACHABLE
  while detached (inside its resume window), OFFLINE otherwise. Every change is pushed to
  the subscribers once, as ``Presence(rid=None, states={user: state})``.

Methods are async because a networked hub needs to be; MemoryHub's never suspend, which
keeps its operations atomic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from rtmcall.engine.codes import ConnectionChangeReason, PeerMessageError, PeerOnlineState
from rtmcall.engine.frames import Presence, encode

from .config import ServerConfig
from .session import Session

_OFFLINE = PeerOnlineState.OFFLINE


class HubUnavailable(RuntimeError):
    """The shared store cannot be reached: the operation was not done. Any hub may raise
    it from ``register``, ``presence`` and ``subscribe``; the server answers the client
    with a retryable error instead of closing its connection."""


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str


class HubListener(Protocol):
    """What a distributed hub tells the server's invitation observer (``listener``)."""

    def remote_message(self, data: bytes, session: Session) -> None:
        """A Deliver frame another node routed to a local session was handed to it."""

    def user_left(self, user: str) -> None:
        """The presence stream says ``user`` (on another node) went OFFLINE (logged out,
        kicked, not resumed, their node stopped), watched here or not."""

    def node_gone(self, node: str, users: list[str]) -> None:
        """``node`` was found gone (died: not stopped) with the sessions of ``users``."""

    def peer_offline(self, user: str) -> None:
        """A user watched here went OFFLINE (also when a login elsewhere replaced it)."""

    def session_moved(self, session: Session, node: str) -> list[dict[str, Any]]:
        """A local session was handed over to ``node`` (resume on any node): it lives on
        there (its end here follows, with the reason ``resumed on node …``). Returns what
        goes along with it for :meth:`session_adopted` there (JSON-ready)."""

    def session_adopted(self, session: Session, carried: list[dict[str, Any]]) -> None:
        """A session handed over from another node arrived (its client is resuming here),
        with what :meth:`session_moved` returned there."""


class Hub(Protocol):
    async def register(self, session: Session) -> Session | None:
        """Make ``session`` its user's session. An older local session of the same user
        is kicked (REMOTE_LOGIN) and returned, for the log; a remote one is kicked by its
        own node and None is returned."""
        ...

    async def unregister(self, session: Session) -> None:
        """Forget ``session`` (ended) and its subscriptions. A no-op for the user's
        registration when another session has replaced it."""
        ...

    async def update(self, session: Session) -> None:
        """``session`` was attached or detached: push its new presence if it changed."""
        ...

    async def deliver(self, to: str, data: bytes) -> PeerMessageError:
        """Route one encoded Deliver frame to ``to``'s session (see the module doc)."""
        ...

    async def presence(self, users: list[str]) -> dict[str, int]:
        """PeerOnlineState of each user."""
        ...

    async def subscribe(self, session: Session, users: list[str]) -> dict[str, int]:
        """Push changes of ``users`` to ``session`` from now on; returns their states."""
        ...

    async def unsubscribe(self, session: Session, users: list[str]) -> None: ...

    async def adopt(self, user: str, session_id: str, config: ServerConfig) -> Session | None:
        """Resume on any node: the session ``session_id`` of ``user`` that another node
        holds, handed over to this one (detached, registered here), or None."""
        ...

    async def health(self) -> Health: ...

    async def aclose(self) -> None: ...


class MemoryHub:
    """The in-process hub: dictionaries, no I/O (one server process)."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        #: user -> sessions subscribed to that user's presence.
        self._watchers: dict[str, set[Session]] = {}
        #: Last state pushed per user (absent: OFFLINE), so only changes are pushed.
        self._published: dict[str, PeerOnlineState] = {}

    async def register(self, session: Session) -> Session | None:
        previous = self._sessions.get(session.user)
        self._sessions[session.user] = session
        if previous is not None and previous is not session:
            previous.kick(
                ConnectionChangeReason.REMOTE_LOGIN,
                f"user {session.user!r} logged in from another connection",
            )
            # The old session is gone, with its invitations: its peers must hear that
            # (OFFLINE) even though the user is back at once (ONLINE just after).
            if self._published.pop(session.user, _OFFLINE) != _OFFLINE:
                self._push(session.user, _OFFLINE)
        else:
            previous = None
        self._publish(session.user)
        return previous

    async def unregister(self, session: Session) -> None:
        for user in session.subscriptions:
            watchers = self._watchers.get(user)
            if watchers is not None:
                watchers.discard(session)
                if not watchers:
                    del self._watchers[user]
        session.subscriptions.clear()
        if self._sessions.get(session.user) is session:
            del self._sessions[session.user]
            self._publish(session.user)

    async def update(self, session: Session) -> None:
        if self._sessions.get(session.user) is session:
            self._publish(session.user)

    async def deliver(self, to: str, data: bytes) -> PeerMessageError:
        session = self._sessions.get(to)
        if session is None:
            return PeerMessageError.PEER_UNREACHABLE
        return session.push_message(data)

    async def presence(self, users: list[str]) -> dict[str, int]:
        return {user: int(self._state(user)) for user in users}

    async def subscribe(self, session: Session, users: list[str]) -> dict[str, int]:
        for user in users:
            if user not in session.subscriptions:
                session.subscriptions.add(user)
                self._watchers.setdefault(user, set()).add(session)
        return await self.presence(users)

    async def unsubscribe(self, session: Session, users: list[str]) -> None:
        for user in users:
            if user in session.subscriptions:
                session.subscriptions.discard(user)
                watchers = self._watchers.get(user)
                if watchers is not None:
                    watchers.discard(session)
                    if not watchers:
                        del self._watchers[user]

    async def adopt(self, user: str, session_id: str, config: ServerConfig) -> Session | None:
        return None  # one process: every session of it is in ``Server.sessions``

    async def health(self) -> Health:
        return Health(True, f"memory hub: {len(self._sessions)} sessions")

    async def aclose(self) -> None:
        pass

    def _state(self, user: str) -> PeerOnlineState:
        session = self._sessions.get(user)
        return _OFFLINE if session is None else session.online_state

    def _publish(self, user: str) -> None:
        state = self._state(user)
        if self._published.get(user, _OFFLINE) == state:
            return
        if state == _OFFLINE:
            del self._published[user]
        else:
            self._published[user] = state
        self._push(user, state)

    def _push(self, user: str, state: PeerOnlineState) -> None:
        watchers = self._watchers.get(user)
        if watchers:
            data = encode(Presence(states={user: int(state)}))
            for watcher in list(watchers):
                watcher.push(data)
