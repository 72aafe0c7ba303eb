"""A logged-in session: one user, its outbound queue, its subscriptions.

A session outlives its connection. While *attached*, a connection's writer task drains
``outbox``; when the connection drops without a Logout the session is *detached* and keeps
collecting frames (up to ``resume_buffer_frames``) for ``resume_window`` seconds, so that a
new connection logging in with ``resume=<session id>`` picks them up in order. Then it
*ends*: it is gone from the hub and never comes back.

Peer messages are numbered (``Deliver.seq``) as they are queued and kept until the client
acknowledges them (``Ping.ack``, ``Login.ack``); a resume sends the unacknowledged ones
again, so a frame that was on the wire when the connection dropped is not lost (the client
drops the seqs it already has). A Send the client repeats after a resume is recognised by
its rid and answered again without a second delivery. Together: no peer message is lost or
duplicated by a drop shorter than the resume window.

Everything here is synchronous on purpose. ``push`` is what the hub calls to route a frame
to this session, from the *sender's* task: it must never wait for this session's socket,
so it only appends to a deque and wakes the writer. A reader too slow to keep the queue
under its bounds is cut (``Link.cut``) instead of slowing anyone down.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from collections.abc import Awaitable
from typing import Protocol

import trio

from rtmcall.engine.codes import ConnectionChangeReason, PeerMessageError, PeerOnlineState
from rtmcall.engine.frames import Kicked, encode

from .config import ServerConfig

_OK = PeerMessageError.OK
_CACHED = PeerMessageError.CACHED_BY_SERVER
_UNREACHABLE = PeerMessageError.PEER_UNREACHABLE


class Link(Protocol):
    """What a session needs from the connection it is attached to."""

    def finish(self) -> None:
        """Send what is queued (a Kicked frame last), then close."""

    def cut(self, why: str) -> None:
        """Close now, without flushing; ``why`` ends up in the log and the close reason."""

    def probe(self) -> None:
        """A peer message is on its way: a client in standby must now show it is alive
        within seconds (see ``Connection.probe``)."""


class Session:
    """One login of one user (see the module docstring for the life cycle)."""

    __slots__ = (
        "user",
        "id",
        "outbox",
        "outbox_bytes",
        "link",
        "ended",
        "end_reason",
        "released",
        "subscriptions",
        "token_expires_at",
        "token_changed",
        "reaper",
        "_waiter",
        "_max_frames",
        "_max_bytes",
        "_max_detached",
        "seq",
        "last_rid",
        "unacked",
        "generation",
        "answered",
        "_max_unacked",
        "_max_answered",
    )

    def __init__(self, user: str, config: ServerConfig) -> None:
        self.user = user
        #: Opaque, unguessable: knowing it is what allows a resume.
        self.id = secrets.token_urlsafe(18)
        #: Encoded server frames waiting for the writer, oldest first.
        self.outbox: deque[bytes] = deque()
        self.outbox_bytes = 0
        #: The attached connection, None while detached.
        self.link: Link | None = None
        #: Set as soon as the session is doomed (kick, logout, slow reader, window passed);
        #: from then on nothing is routed to it.
        self.ended = False
        self.end_reason = ""
        #: Set once the session was removed from the hub and the server (cleanup ran).
        self.released = False
        #: Users whose presence changes are pushed to this session.
        self.subscriptions: set[str] = set()
        #: Deadline on trio's clock when the token expires; None without a token.
        self.token_expires_at: float | None = None
        #: Set (and replaced) whenever the token is renewed, to wake the token watcher;
        #: None without a token (most sessions: no Event per session).
        self.token_changed: trio.Event | None = None
        #: Cancel scope of the resume-window timer while detached.
        self.reaper: trio.CancelScope | None = None
        #: The writer while it sleeps in ``wait_output`` (a ParkingLot and its OrderedDict
        #: cost ~0.5 KiB per session; there is one writer).
        self._waiter: trio.lowlevel.Task | None = None
        self._max_frames = config.outbound_queue_frames
        self._max_bytes = config.outbound_queue_bytes
        self._max_detached = config.resume_buffer_frames
        #: Last Deliver seq given out, and the numbered frames not yet acknowledged.
        self.seq = 0
        #: Highest Send rid handled (told in ServerPong: acknowledges quiet Sends).
        self.last_rid = 0
        #: Made at the first peer message (an empty deque is ~0.6 KiB; idle sessions get
        #: no peer messages).
        self.unacked: deque[tuple[int, bytes]] | None = None
        self._max_unacked = config.unacked_frames
        #: Bumped at every attach: tells a repeated Send from a reused rid.
        self.generation = 0
        #: rid -> (generation it was handled in, encoded Result), most recent last; made at
        #: the first Send (idle sessions send none).
        self.answered: OrderedDict[int, tuple[int, bytes]] | None = None
        self._max_answered = config.remembered_sends

    def __repr__(self) -> str:
        return f"<Session {self.user!r} {self.id[:8]}>"

    @property
    def online_state(self) -> PeerOnlineState:
        if self.ended:
            return PeerOnlineState.OFFLINE
        if self.link is None:
            return PeerOnlineState.UNREACHABLE
        return PeerOnlineState.ONLINE

    # --- routing ------------------------------------------------------------------------

    def push(self, data: bytes) -> PeerMessageError:
        """Queue one encoded frame; never blocks.

        Returns OK (queued for the live connection), CACHED_BY_SERVER (kept for a resume)
        or PEER_UNREACHABLE (the session ended, its resume buffer is full, or this frame
        overflowed a slow reader's queue, which cuts that reader).
        """
        if self.ended:
            return _UNREACHABLE
        outbox = self.outbox
        link = self.link
        if link is not None:
            size = len(data)
            if len(outbox) >= self._max_frames or self.outbox_bytes + size > self._max_bytes:
                self.ended = True
                self.end_reason = "outbound queue overflow (slow reader)"
                link.cut("slow_reader")
                return _UNREACHABLE
            outbox.append(data)
            self.outbox_bytes += size
            if self._waiter is not None:
                self.wake()
            return _OK
        size = len(data)
        if len(outbox) >= self._max_detached or self.outbox_bytes + size > self._max_bytes:
            return _UNREACHABLE
        outbox.append(data)
        self.outbox_bytes += size
        return _CACHED

    def push_message(self, data: bytes) -> PeerMessageError:
        """Queue one encoded Deliver frame, numbered (see the module docstring)."""
        if self.ended:
            return _UNREACHABLE
        seq = self.seq + 1
        # The frame was encoded once by the sender as {"t":"msg",...}: splice the seq in
        # rather than decoding and encoding it again.
        # The receiver's handled rid rides along too (its quiet Sends up to it arrived).
        last_rid = self.last_rid
        if last_rid:
            numbered = b'{"seq":%d,"rid":%d,' % (seq, last_rid) + data[1:]
        else:
            numbered = b'{"seq":%d,' % seq + data[1:]
        code = self.push(numbered)
        if code is _OK:
            link = self.link
            if link is not None:
                link.probe()
        if code is _OK or code is _CACHED:
            self.seq = seq
            unacked = self.unacked
            if unacked is None:
                unacked = self.unacked = deque()
            unacked.append((seq, numbered))
            if len(unacked) > self._max_unacked:
                unacked.popleft()  # a client that never acks: bounded memory, no replay
        return code

    def ack(self, seq: int) -> None:
        """The client has every peer message up to ``seq``."""
        unacked = self.unacked
        while unacked and unacked[0][0] <= seq:
            unacked.popleft()

    def replay(self, seq: int) -> None:
        """On a resume: the client has messages up to ``seq``; queue the rest again, in
        order, before anything else still queued."""
        self.ack(seq)
        if not self.unacked:
            return
        again = [data for _, data in self.unacked]
        queued = {id(d) for d in again}
        rest = [d for d in self.outbox if id(d) not in queued]
        self.outbox.clear()  # in place: a writer may hold a reference to it
        self.outbox.extend(again + rest)
        self.outbox_bytes = sum(len(d) for d in self.outbox)

    def answered_before(self, rid: int) -> bytes | None:
        """The Result already sent for Send ``rid`` on an earlier connection of this
        session (the client repeats unanswered Sends after a resume), else None."""
        entry = None if self.answered is None else self.answered.get(rid)
        if entry is None or entry[0] == self.generation:
            return None
        return entry[1]

    def remember_answer(self, rid: int, result: bytes) -> None:
        answered = self.answered
        if answered is None:
            answered = self.answered = OrderedDict()
        answered[rid] = (self.generation, result)
        answered.move_to_end(rid)
        if len(answered) > self._max_answered:
            answered.popitem(last=False)

    def push_first(self, data: bytes) -> None:
        """Put ``data`` before everything queued (LoginOk before buffered frames)."""
        self.outbox.appendleft(data)
        self.outbox_bytes += len(data)
        if self._waiter is not None:
            self.wake()

    def pop(self) -> None:
        """Drop the oldest frame once the writer has sent it."""
        self.outbox_bytes -= len(self.outbox.popleft())

    def wait_output(self) -> Awaitable[None]:
        """Sleep until something is pushed (the writer's only wait besides the socket).

        Returns trio's wait itself rather than being a coroutine (one frame less per idle
        connection). One task waits at a time; a new waiter wakes the previous one, as the
        next push would have (a cut connection's writer is no longer waiting anyway)."""
        self.wake()
        self._waiter = trio.lowlevel.current_task()
        return trio.lowlevel.wait_task_rescheduled(self._abort_wait)  # noqa: ASYNC105 - awaited by the caller

    def _abort_wait(self, raise_cancel: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)

    # --- life cycle ---------------------------------------------------------------------

    def attach(self, link: Link) -> None:
        self.link = link
        self.generation += 1
        if self.reaper is not None:
            self.reaper.cancel()
            self.reaper = None

    def detach(self) -> None:
        self.link = None
        self.wake()

    def kick(self, reason: ConnectionChangeReason, message: str) -> None:
        """End the session from outside (another login, token expiry): the client gets a
        Kicked frame after what is already queued, then its connection closes. A detached
        session just ends. Idempotent."""
        if self.ended:
            return
        self.ended = True
        self.end_reason = message
        if self.link is not None:
            data = encode(Kicked(reason=int(reason), message=message))
            self.outbox.append(data)
            self.outbox_bytes += len(data)
            self.link.finish()
        elif self.reaper is not None:
            self.reaper.cancel()

    def set_token_deadline(self, deadline: float | None) -> None:
        self.token_expires_at = deadline
        if self.token_changed is not None:
            self.token_changed.set()
        self.token_changed = None if deadline is None else trio.Event()
