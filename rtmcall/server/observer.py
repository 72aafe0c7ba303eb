"""The server's view of every invitation's life: who called whom, when it rang, how it ended.

The server relays every invitation message (and the authority ledger already checks who
may send what), so it can tell each invitation's outcome without asking the clients. This
module is that bookkeeping, sans-IO like the engine (no trio, no sockets; the clocks are
passed in): :class:`InvitationObserver` is fed

* ``sent(...)``: an invitation message a local user sent, with its delivery result;
* ``delivered(...)``: one another node delivered to a local user (Redis hub);
* ``session_ended(...)`` / ``peer_offline(...)``: a party went away for good;
* ``expire(now)``: the clock, for the backstop deadlines;

and tells its :class:`ObserverSink` s (metrics, call log, webhooks) what happened:
``sent``, ``callee_offline`` (the Invite found the callee logged out: the moment for a
push), ``ringing`` and ``ended`` (once per invitation, with the outcome).

Which node observes: the **caller's**. Records are only created for Invites sent by a
local user, so with several nodes over Redis each invitation is logged by exactly one
node; the callee's messages reach that node either from a local sender or through the
hub's remote delivery.

The outcome follows the engines' transition tables (``rtmcall/engine/invitation.py``),
seen from the wire: Confirm ends it accepted, Refuse refused, CancelAck (or a Cancel that
could not be delivered) canceled, End failed with the End's reason, and a party going
offline fails it the way the peer's engine does on its presence going OFFLINE. The only
outcome no frame announces is a caller that gave up on a callee who never logged in; the
SDK sends an End for it (delivered or not, the server sees it). Clients that send
nothing are covered by backstop deadlines (the SPEC's default windows plus a grace): such
outcomes are marked ``inferred``.

Calls (SPEC §6): an accepted invitation (its Confirm relayed) starts a call, held in
:attr:`InvitationObserver.calls` until the first Hangup (or HangupAck) relayed between its
two parties, either party's session ending for good (logout, kick, not resumed in time;
presence OFFLINE for a callee on another node), a backstop (``ObserverWindows.call``:
clients that never hang up, Agora 1.x ones), or the server's shutdown. Its end is an event
of its own, ``call_ended``, told to every sink, with :attr:`InvitationRecord.call_end`
(:class:`CallEnd`) and the duration from the Confirm. ``ended`` is still told at the
accept (the invitation's outcome); the call log writes an accepted invitation's line at
``call_ended`` instead, so each invitation still has one line.
"""

from __future__ import annotations

import datetime
import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Protocol

import msgspec

from rtmcall.engine.codes import LocalInvitationError, PeerMessageError, RemoteInvitationError
from rtmcall.engine.frames import (
    Accept,
    Ack,
    Cancel,
    CancelAck,
    Confirm,
    End,
    Hangup,
    HangupAck,
    Invite,
    PeerMsg,
    Refuse,
    Text,
)

_DELIVERED = (PeerMessageError.OK, PeerMessageError.CACHED_BY_SERVER)
#: Stale heap entries tolerated beyond the live ones before :meth:`_compact` rebuilds.
_SLACK = 1024

L = LocalInvitationError
R = RemoteInvitationError


class Phase(Enum):
    #: The Invite was seen; no ACK yet.
    SENT = "sent"
    #: The callee's ACK (or any answer) was seen: it rings there.
    RINGING = "ringing"
    #: The callee accepted; the caller's Confirm is awaited.
    ACCEPTING = "accepting"
    #: The caller canceled; the callee's CancelAck (or a crossing Refuse) is awaited.
    CANCELING = "canceling"
    ENDED = "ended"


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    CANCELED = "canceled"
    FAILED = "failed"


class CallEnd(StrEnum):
    """How a call ended, as the server saw it (the call log's ``call_end``)."""

    #: The caller's Hangup was relayed (or the callee's HangupAck, the Hangup unseen).
    HANGUP_BY_CALLER = "hangup_by_caller"
    HANGUP_BY_CALLEE = "hangup_by_callee"
    #: The caller's session ended for good (logout, kicked, not resumed in time).
    CALLER_OFFLINE = "caller_offline"
    #: The callee's session ended for good (or, on another node, its presence went OFFLINE).
    CALLEE_OFFLINE = "callee_offline"
    #: No hang-up within ``ObserverWindows.call`` (clients that never send one).
    MAX_DURATION = "max_duration"
    #: The server stopped while the call was on.
    SERVER_SHUTDOWN = "server_shutdown"


#: End.reason (from either side) -> (caller's error, callee's error), as the engines map it.
_END: dict[str, tuple[L, R]] = {
    "offline": (L.PEER_OFFLINE, R.PEER_OFFLINE),
    "no_response": (L.PEER_NO_RESPONSE, R.INVITATION_EXPIRE),
    "expire": (L.INVITATION_EXPIRE, R.INVITATION_EXPIRE),
    "accept_failure": (L.PEER_NO_RESPONSE, R.ACCEPT_FAILURE),
}


@dataclass(eq=False, slots=True)
class InvitationRecord:
    """One invitation as the server saw it. Times (``*_at``) are on the server's
    monotonic clock; ``wall_offset`` turns them into seconds since the epoch (read once
    per invitation: the hot path does no wall-clock reads)."""

    id: str
    caller: str
    callee: str
    caller_node: str
    caller_session: str
    sent_at: float
    wall_offset: float
    content: str = ""
    channel_id: str = ""
    lifetime: float | None = None
    #: The node that holds the callee, when this node saw it (None: unknown, remote).
    callee_node: str | None = None
    callee_session: str | None = None
    phase: Phase = Phase.SENT
    #: An Invite reached the callee's session (delivered or cached for it).
    delivered: bool = False
    #: The first Invite found the callee logged out (``callee_offline`` was told).
    callee_was_offline: bool = False
    #: The callee rang before the caller canceled (CANCELING: RINGING vs SENT).
    rang: bool = False
    ringing_at: float | None = None
    answered_at: float | None = None
    canceled_at: float | None = None
    ended_at: float | None = None
    outcome: Outcome | None = None
    error: L = L.OK
    callee_error: R = R.OK
    #: End.reason of a failure, or the refuse reason (``busy``/``declined``) when sent.
    reason: str | None = None
    response: str = ""
    #: The outcome came from a backstop deadline, not from a frame.
    inferred: bool = False
    #: A call (accepted): when it ended (it started at ``ended_at``, the Confirm) and how.
    call_ended_at: float | None = None
    call_end: CallEnd | None = None
    #: Followed by the callee's node for the caller's (which logs it), in case that node
    #: dies: then this node logs it (:meth:`InvitationObserver.node_gone`).
    shadow: bool = False

    @property
    def call_seconds(self) -> float | None:
        """The call's duration, Confirm to its end (None: no call, or still on)."""
        if self.call_ended_at is None or self.ended_at is None:
            return None
        return self.call_ended_at - self.ended_at

    @property
    def setup_seconds(self) -> float | None:
        """Invite to accept, as the server saw them (None unless it was accepted)."""
        if self.answered_at is None or self.outcome is not Outcome.ACCEPTED:
            return None
        return self.answered_at - self.sent_at

    @property
    def missed(self) -> bool:
        """Ended without the callee's accept or refuse (canceled, expired, unanswered,
        offline): SPEC §6's missed call, from the callee's side."""
        return self.outcome in (Outcome.CANCELED, Outcome.FAILED) and self.answered_at is None

    def wall(self, t: float | None) -> str | None:
        """A time of this record in ISO 8601 UTC (None stays None)."""
        return None if t is None else _iso(t + self.wall_offset)

    def as_dict(self) -> dict[str, object]:
        """The call log's and the webhooks' view (JSON-ready)."""
        return {
            "id": self.id,
            "caller": self.caller,
            "callee": self.callee,
            "caller_node": self.caller_node,
            "callee_node": self.callee_node,
            "content": self.content,
            "channel_id": self.channel_id,
            "sent_at": self.wall(self.sent_at),
            "ringing_at": self.wall(self.ringing_at),
            "answered_at": self.wall(self.answered_at),
            "ended_at": self.wall(self.ended_at),
            "outcome": self.outcome.value if self.outcome is not None else None,
            "error": self.error.name if self.error else None,
            "error_code": int(self.error) if self.error else None,
            "callee_error": self.callee_error.name if self.callee_error else None,
            "callee_error_code": int(self.callee_error) if self.callee_error else None,
            "reason": self.reason,
            "response": self.response,
            "setup_ms": None if self.setup_seconds is None else round(self.setup_seconds * 1e3, 1),
            "callee_was_offline": self.callee_was_offline,
            "missed": self.missed if self.outcome is not None else None,
            "inferred": self.inferred,
            "call_ended_at": self.wall(self.call_ended_at),
            "call_duration": None if self.call_seconds is None else round(self.call_seconds, 3),
            "call_end": self.call_end.value if self.call_end is not None else None,
        }


_iso_second: list[Any] = [None, ""]  # (whole second, its text): lines come in bursts


def _iso(t: float | None) -> str | None:
    """``2026-12-01T20:48:41.123Z`` (UTC, milliseconds)."""
    if t is None:
        return None
    second = int(t)
    if _iso_second[0] != second:
        stamp = datetime.datetime.fromtimestamp(second, datetime.UTC)
        _iso_second[0] = second
        _iso_second[1] = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_iso_second[1]}.{int((t - second) * 1000):03d}Z"


class ObserverSink(Protocol):
    """Told of invitation lifecycle events (must not block or raise). A sink with a true
    ``every_event`` attribute hears every kind; others only ``ended`` and ``call_ended``
    (the observer counts the rest itself, so most invitations cost one sink call, an
    accepted one two)."""

    def invitation_event(self, kind: str, record: InvitationRecord) -> None:
        """``kind``: ``sent``, ``callee_offline``, ``ringing``, ``ended`` or (an accepted
        invitation's call, told to every sink) ``call_ended``."""


@dataclass(frozen=True, slots=True)
class ObserverWindows:
    """Backstop deadlines: how long a phase may last before the server calls the
    outcome itself (the SPEC's default client windows plus ``grace``)."""

    no_response: float = 30.0
    lifetime: float = 60.0
    confirm: float = 5.0
    grace: float = 5.0
    #: Ended invitations remembered, to absorb their late and repeated frames.
    keep_ended: int = 10_000
    #: The longest a call is held without a hang-up (then it ends ``max_duration``).
    call: float = 12 * 3600.0


class InvitationObserver:
    """Derives invitation outcomes from the frames a node relays (see the module doc)."""

    def __init__(
        self,
        node: str,
        clock: Callable[[], float],
        wall: Callable[[], float],
        sinks: Iterable[ObserverSink] = (),
        windows: ObserverWindows = ObserverWindows(),
    ) -> None:
        self.node = node
        self._clock = clock
        self._wall = wall
        self.sinks: list[ObserverSink] = list(sinks)
        #: The sinks told of ``sent``, ``callee_offline`` and ``ringing`` too.
        self._every = [k for k in self.sinks if getattr(k, "every_event", False)]
        self.windows = windows
        self._keep_ended = windows.keep_ended
        #: Open invitations by id (in progress only: ended ones leave at once).
        self.open: dict[str, InvitationRecord] = {}
        #: Calls in progress by id (accepted invitations not yet hung up).
        self.calls: dict[str, InvitationRecord] = {}
        #: Shadows (``InvitationRecord.shadow``): invitations and calls from callers on
        #: other nodes to local callees, followed silently; and when they are let go.
        self.shadows: dict[str, InvitationRecord] = {}
        self.shadow_calls: dict[str, InvitationRecord] = {}
        self._shadow_heap: list[tuple[float, str]] = []
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._heap: list[tuple[float, str]] = []
        self.sent_total = 0
        self.callee_offline_total = 0
        self.ringing_total = 0
        self.ended_total = 0
        self.calls_ended_total = 0

    # --- inputs -------------------------------------------------------------------------

    def sent(self, sender: str, session: str, to: str, msg: PeerMsg, code: int) -> None:
        """A local user (``session``) sent ``msg`` to ``to``; the hub answered ``code``."""
        kind = type(msg)
        if kind is Text:
            return
        if kind is Hangup or kind is HangupAck:
            call = self.calls.get(msg.id) or self.shadow_calls.get(msg.id)  # type: ignore[union-attr]
            if call is None and kind is Hangup:
                record = self.open.get(msg.id) or self.shadows.get(msg.id)  # type: ignore[union-attr]
                if (
                    record is not None
                    and record.phase is Phase.ACCEPTING
                    and (sender, to) == (record.caller, record.callee)
                ):
                    # The caller hangs up in place of a Confirm that was lost: it implies
                    # the Confirm, as at the callee's engine.
                    self._end(record, Outcome.ACCEPTED)
                    call = self.calls.get(msg.id) or self.shadow_calls.get(msg.id)  # type: ignore[union-attr]
            if call is not None:
                self._call_msg(call, sender, to, kind)
            return
        delivered = code in _DELIVERED
        if kind is Invite:
            self._on_invite(sender, session, to, msg, delivered)  # type: ignore[arg-type]
            return
        record = self.open.get(msg.id) or self.shadows.get(msg.id)  # type: ignore[union-attr]
        if record is None:
            return
        if sender == record.callee and to == record.caller:
            if record.callee_session is None:
                record.callee_node = self.node
                record.callee_session = session
            self._from_callee(record, msg)
        elif sender == record.caller and to == record.callee:
            self._from_caller(record, msg, delivered)

    def delivered(self, data: bytes, user: str, session: str) -> None:
        """A Deliver frame (encoded) that another node routed to local ``user``'s
        ``session``: the callee's answers, when the callee is on another node; an
        invitation (and what follows it) from a caller on another node, followed as a
        shadow."""
        if b'"k":"text"' in data:  # (inside a string it would be escaped)
            return
        try:
            frame = _deliver_decoder.decode(data)
        except msgspec.DecodeError:  # not ours to judge: the receiver's engine does
            return
        msg = frame.msg
        kind = type(msg)
        if msg is None or kind is Text:
            return
        if kind is Invite:
            self._shadow(frame.sender, user, session, msg)  # type: ignore[arg-type]
            return
        if kind is Hangup or kind is HangupAck:
            call = self.calls.get(msg.id)
            if call is not None and frame.sender == call.callee:
                self._call_msg(call, call.callee, call.caller, kind)
            elif (call := self.shadow_calls.get(msg.id)) and frame.sender == call.caller:
                self._call_msg(call, call.caller, call.callee, kind)
            return
        record = self.open.get(msg.id)  # type: ignore[union-attr]
        if record is not None:
            if frame.sender == record.callee:
                self._from_callee(record, msg)
        elif (record := self.shadows.get(msg.id)) is not None and frame.sender == record.caller:  # type: ignore[union-attr]
            self._from_caller(record, msg, True)

    def _shadow(self, caller: str, callee: str, session: str, msg: Invite) -> None:
        inv_id = msg.id
        if inv_id in self.shadows or inv_id in self.shadow_calls or inv_id in self.open:
            return
        if inv_id in self._ended:
            return
        now = self._clock()
        record = InvitationRecord(
            msg.id, caller, callee, "", "", now, self._wall() - now, msg.content, msg.channel,
            msg.lifetime, self.node, session,
        )  # fmt: skip
        record.delivered = True
        record.shadow = True
        self.shadows[msg.id] = record
        heapq.heappush(self._shadow_heap, (now + self._shadow_life(msg.lifetime), msg.id))

    def _shadow_life(self, lifetime: float | None) -> float:
        """The longest an invitation can be open, every window run out (and a grace)."""
        w = self.windows
        return w.no_response + (lifetime or w.lifetime) + w.confirm + 2 * w.grace

    def node_gone(self, node: str, users: Iterable[str]) -> None:
        """``node`` died (found gone, not stopped) with these users' sessions on it: the
        invitations and calls of its callers that this node shadowed end here, as their
        callees see them (the caller OFFLINE), ``inferred``, with ``caller_node`` the
        dead node, and are logged here: that node cannot."""
        callers = set(users)
        for record in self._shadowed(lambda r: r.caller in callers):
            self._drop_shadow(record)
            record.shadow = False
            record.caller_node = node
            record.inferred = True
            if record.phase is Phase.ENDED:  # (a call)
                self.calls[record.id] = record
                self._end_call(record, CallEnd.CALLER_OFFLINE)
            else:
                self.open[record.id] = record
                record.reason = "caller_node_lost"
                self._caller_gone(record)

    def caller_left(self, user: str) -> None:
        """``user`` (on another node) is OFFLINE, or logged in elsewhere: their node ended
        (and logged) what they had; this node's shadows of it go."""
        for record in self._shadowed(lambda r: r.caller == user):
            self._drop_shadow(record)

    def session_ended(self, user: str, session: str) -> None:
        """A local session ended for good: its invitations fail as its peers' engines
        fail them (their presence says OFFLINE)."""
        for record in self._of(user):
            if record.caller == user and record.caller_session == session:
                self._caller_gone(record)
            elif record.callee == user and record.callee_session == session:
                self._callee_gone(record)
        for record in self._calls_of(user):
            if record.caller == user and record.caller_session == session:
                self._end_call(record, CallEnd.CALLER_OFFLINE)
            elif record.callee == user and record.callee_session == session:
                self._end_call(record, CallEnd.CALLEE_OFFLINE)
        for record in self._shadowed_of(user, session):  # (the caller's node logs those)
            self._drop_shadow(record)

    def _shadowed(self, which: Callable[[InvitationRecord], bool]) -> list[InvitationRecord]:
        """The shadows (open ones and calls) ``which`` picks."""
        if not (self.shadows or self.shadow_calls):
            return []
        return [
            r for table in (self.shadows, self.shadow_calls) for r in table.values() if which(r)
        ]

    def _shadowed_of(self, callee: str, session: str) -> list[InvitationRecord]:
        return self._shadowed(lambda r: r.callee == callee and r.callee_session == session)

    def _drop_shadow(self, record: InvitationRecord) -> None:
        """Let go of a shadow (a call's are ENDED: its invitation was accepted)."""
        table = self.shadow_calls if record.phase is Phase.ENDED else self.shadows
        table.pop(record.id, None)

    def session_moved(self, user: str, session: str) -> list[dict[str, Any]]:
        """A local session was handed over to another node (resume on any node). A
        callee's invitations and calls go on here, the callee now remote (its answers and
        hang-ups come through the hub, its going offline by presence). A caller's move
        with the session: they leave this node without a word and are returned, for the
        new node's :meth:`adopt` (the caller's node observes)."""
        carried = []
        for record in self._of(user):
            if record.callee == user and record.callee_session == session:
                record.callee_node = record.callee_session = None
            elif record.caller == user and record.caller_session == session:
                del self.open[record.id]
                carried.append(_carry(record, self.node))
        for record in self._calls_of(user):
            if record.callee == user and record.callee_session == session:
                record.callee_node = record.callee_session = None
            elif record.caller == user and record.caller_session == session:
                del self.calls[record.id]
                carried.append(_carry(record, self.node))
        for record in self._shadowed_of(user, session):
            self._drop_shadow(record)
            carried.append(_carry(record, self.node))
        return carried

    def adopt(self, carried: Iterable[dict[str, Any]]) -> None:
        """Invitations and calls of a caller whose session was handed over here (what
        :meth:`session_moved` returned on its old node): observed here from now on, as
        if they had started here (a call's end, an invitation's outcome: once, here)."""
        now, wall = self._clock(), self._wall()
        for data in carried:
            try:
                record = _uncarry(data, now, wall)
            except (KeyError, TypeError, ValueError):
                continue  # (another version's: not ours to guess)
            if record.id in self.open or record.id in self.calls:
                continue
            if record.shadow:  # (its callee moved here; its caller is elsewhere)
                record.callee_node = self.node
                if record.phase is Phase.ENDED:
                    self.shadow_calls[record.id] = record
                    deadline = (record.ended_at or now) + self.windows.call
                else:
                    self.shadows[record.id] = record
                    deadline = now + self._shadow_life(record.lifetime)
                heapq.heappush(self._shadow_heap, (deadline, record.id))
                continue
            # The caller moved to its callee's node: the record, not the shadow, from now
            # on; the shadow knows the callee's session here.
            shadow = self.shadows.pop(record.id, None) or self.shadow_calls.pop(record.id, None)
            if shadow is not None:
                record.callee_node, record.callee_session = self.node, shadow.callee_session
            record.caller_node = self.node
            if record.phase is Phase.ENDED:
                self.calls[record.id] = record
                assert record.ended_at is not None
                heapq.heappush(self._heap, (record.ended_at + self.windows.call, record.id))
            else:
                self.open[record.id] = record
                heapq.heappush(self._heap, (self._due(record), record.id))

    def peer_offline(self, user: str) -> None:
        """Presence says ``user`` (on another node) is OFFLINE."""
        for record in self._of(user):
            if record.callee == user and record.callee_node != self.node:
                self._callee_gone(record)
        for record in self._calls_of(user):
            if record.callee == user and record.callee_node != self.node:
                self._end_call(record, CallEnd.CALLEE_OFFLINE)

    def expire(self, now: float | None = None) -> float:
        """End invitations whose backstop deadline passed; the next deadline (inf: none)."""
        now = self._clock() if now is None else now
        self._compact()
        shadows = self._shadow_heap
        while shadows and shadows[0][0] <= now:
            _, inv_id = heapq.heappop(shadows)
            # (a shadow outlived any window: its callee's engine gave up on it long ago)
            self.shadows.pop(inv_id, None)
            record = self.shadow_calls.get(inv_id)
            if record is not None and now >= (record.ended_at or 0) + self.windows.call:
                del self.shadow_calls[inv_id]
        heap = self._heap
        while heap:
            deadline, inv_id = heap[0]
            if deadline > now:
                return deadline
            record = self.open.get(inv_id)
            if record is None:
                heapq.heappop(heap)  # ended (or a call past the invitation's first entry)
                call = self.calls.get(inv_id)
                if call is not None and now >= call.ended_at + self.windows.call:  # type: ignore[operator]
                    self._end_call(call, CallEnd.MAX_DURATION)
                continue
            due = self._due(record)
            if due > now:
                heapq.heapreplace(heap, (due, inv_id))  # a later phase: its own window
            else:
                heapq.heappop(heap)
                self._timed_out(record)
        return float("inf")

    def _compact(self) -> None:
        """Drop the heaps' entries of what ended before its deadline (a call hung up
        leaves a 12 h entry behind): once they outnumber the live ones, so memory follows
        the invitations and calls in progress, not the calls of the last 12 hours."""
        for heap, tables in (
            (self._heap, (self.open, self.calls)),
            (self._shadow_heap, (self.shadows, self.shadow_calls)),
        ):
            live = sum(len(t) for t in tables)
            if len(heap) > 2 * live + _SLACK:
                heap[:] = [e for e in heap if any(e[1] in t for t in tables)]
                heapq.heapify(heap)

    def _due(self, record: InvitationRecord) -> float:
        """When the record's current phase runs out (its window plus the grace).

        The heap holds one entry per invitation, pushed when it opened (the no-response
        window); when it comes up, the current phase's own deadline is pushed instead,
        so the hot path does no heap work after the Invite. A phase whose window is
        shorter than no-response (confirm, cancel) is so called at the earliest when
        that first entry comes up: these are backstops for clients that went silent."""
        w = self.windows
        phase = record.phase
        if phase is Phase.SENT:
            start, window = record.sent_at, w.no_response
        elif phase is Phase.RINGING:
            start, window = record.ringing_at, record.lifetime or w.lifetime
        elif phase is Phase.ACCEPTING:
            start, window = record.answered_at, w.confirm
        else:
            start, window = record.canceled_at, w.confirm
        return (start or record.sent_at) + window + w.grace

    def shutdown(self) -> None:
        """The server stops: every open invitation ends as its clients will see it once
        their sessions are gone (FAILED, caller NOT_LOGGEDIN), ``inferred``, with the
        reason ``server_shutdown``."""
        for record in list(self.open.values()):
            record.inferred = True
            record.reason = "server_shutdown"
            self._end(record, Outcome.FAILED, L.NOT_LOGGEDIN, R.PEER_OFFLINE)
        for record in list(self.calls.values()):
            self._end_call(record, CallEnd.SERVER_SHUTDOWN)

    def _of(self, user: str) -> list[InvitationRecord]:
        # A scan, not an index: sessions end far less often than invitations start, and
        # only invitations in progress are open (an index costs allocations per call).
        return [r for r in self.open.values() if r.caller == user or r.callee == user]

    def _calls_of(self, user: str) -> list[InvitationRecord]:
        return [r for r in self.calls.values() if r.caller == user or r.callee == user]

    # --- transitions ----------------------------------------------------------------------

    def _on_invite(self, sender: str, session: str, to: str, msg: Invite, delivered: bool) -> None:
        record = self.open.get(msg.id)
        if record is None:
            if msg.id in self._ended:
                return  # a late repeat of an invitation that ended
            now = self._clock()
            # (positional: the fields' order; keywords cost more on the hot path)
            record = InvitationRecord(
                msg.id,
                sender,
                to,
                self.node,
                session,
                now,
                self._wall() - now,
                msg.content,
                msg.channel,
                msg.lifetime,
            )
            self.open[msg.id] = record
            first = now + self.windows.no_response + self.windows.grace
            heapq.heappush(self._heap, (first, msg.id))
            self.sent_total += 1
            if self._every:
                self._emit("sent", record)
            if not delivered:
                record.callee_was_offline = True
                self.callee_offline_total += 1
                if self._every:
                    self._emit("callee_offline", record)
        elif sender != record.caller or to != record.callee:
            return
        if delivered:
            record.delivered = True

    def _from_callee(self, record: InvitationRecord, msg: PeerMsg) -> None:
        P = Phase
        phase = record.phase
        kind = type(msg)
        if kind is Ack or kind is Accept:
            if phase is P.SENT:
                self._ring(record)
            elif phase is P.CANCELING and not record.rang:
                record.rang = True
            if kind is Accept and record.phase is P.RINGING:
                record.response = msg.response  # type: ignore[union-attr]
                record.answered_at = self._clock()
                record.phase = P.ACCEPTING
        elif kind is Refuse:
            if phase is P.SENT:
                self._ring(record)
            record.response = msg.response  # type: ignore[union-attr]
            record.answered_at = self._clock()
            record.reason = getattr(msg, "reason", None) or None
            self._end(record, Outcome.REFUSED)
        elif kind is CancelAck:
            self._end(record, Outcome.CANCELED)
        elif kind is End:
            error, callee_error = _END[msg.reason]  # type: ignore[union-attr]
            record.reason = msg.reason  # type: ignore[union-attr]
            self._end(record, Outcome.FAILED, error, callee_error)

    def _from_caller(self, record: InvitationRecord, msg: PeerMsg, delivered: bool) -> None:
        P = Phase
        kind = type(msg)
        if kind is Confirm:
            if record.phase in (P.ACCEPTING, P.RINGING):
                if record.answered_at is None:
                    record.answered_at = self._clock()
                self._end(record, Outcome.ACCEPTED)
        elif kind is Cancel:
            if record.phase in (P.SENT, P.RINGING, P.ACCEPTING):
                record.rang = record.phase is not P.SENT
                record.canceled_at = self._clock()
                record.phase = P.CANCELING
                # An ACCEPTING invitation canceled is not answered after all (the callee
                # ends CANCELED too).
                record.answered_at = None
            if record.phase is P.CANCELING and not delivered:
                self._end(record, Outcome.CANCELED)  # the engine's cancel_undelivered
        elif kind is End:
            error, callee_error = _END[msg.reason]  # type: ignore[union-attr]
            record.reason = msg.reason  # type: ignore[union-attr]
            self._end(record, Outcome.FAILED, error, callee_error)

    def _caller_gone(self, record: InvitationRecord) -> None:
        if record.phase is Phase.CANCELING:
            self._end(record, Outcome.CANCELED)
        else:
            self._end(record, Outcome.FAILED, L.NOT_LOGGEDIN, R.PEER_OFFLINE)

    def _callee_gone(self, record: InvitationRecord) -> None:
        P = Phase
        if record.phase is P.SENT:
            return  # the caller's engine keeps waiting for an ACK (SPEC: PEER_OFFLINE later)
        if record.phase is P.CANCELING and not record.rang:
            self._end(record, Outcome.CANCELED)
            return
        self._end(record, Outcome.FAILED, L.PEER_OFFLINE, R.PEER_OFFLINE)

    def _timed_out(self, record: InvitationRecord) -> None:
        P = Phase
        record.inferred = True
        if record.phase is P.SENT:
            error = L.PEER_NO_RESPONSE if record.delivered else L.PEER_OFFLINE
            callee = R.INVITATION_EXPIRE if record.delivered else R.PEER_OFFLINE
            self._end(record, Outcome.FAILED, error, callee)
        elif record.phase is P.RINGING:
            self._end(record, Outcome.FAILED, L.INVITATION_EXPIRE, R.INVITATION_EXPIRE)
        elif record.phase is P.ACCEPTING:
            self._end(record, Outcome.FAILED, L.PEER_NO_RESPONSE, R.ACCEPT_FAILURE)
        else:
            self._end(record, Outcome.CANCELED)

    def _ring(self, record: InvitationRecord) -> None:
        record.phase = Phase.RINGING
        record.delivered = True
        record.ringing_at = self._clock()
        if record.shadow:
            return
        self.ringing_total += 1
        if self._every:
            self._emit("ringing", record)

    def _end(
        self, record: InvitationRecord, outcome: Outcome, error: L = L.OK, callee: R = R.OK
    ) -> None:
        if record.phase is Phase.ENDED:
            return
        record.phase = Phase.ENDED
        record.outcome = outcome
        record.error = error
        record.callee_error = callee
        record.ended_at = self._clock()
        ended = self._ended
        ended[record.id] = None  # (its late and repeated frames change nothing)
        if len(ended) > self._keep_ended:
            ended.popitem(last=False)
        if record.shadow:
            del self.shadows[record.id]
            if outcome is Outcome.ACCEPTED:
                self.shadow_calls[record.id] = record
                deadline = record.ended_at + self.windows.call
                heapq.heappush(self._shadow_heap, (deadline, record.id))
            return
        del self.open[record.id]
        self.ended_total += 1
        if outcome is Outcome.ACCEPTED:
            # The call starts (before the sinks hear ``ended``: the call log waits for it).
            self.calls[record.id] = record
            heapq.heappush(self._heap, (record.ended_at + self.windows.call, record.id))
        for sink in self.sinks:
            sink.invitation_event("ended", record)

    def _call_msg(self, record: InvitationRecord, sender: str, to: str, kind: type) -> None:
        """A Hangup (or HangupAck) relayed about a call in progress."""
        if sender == record.caller and to == record.callee:
            by_caller = kind is Hangup
        elif sender == record.callee and to == record.caller:
            by_caller = kind is HangupAck
        else:
            return
        self._end_call(record, CallEnd.HANGUP_BY_CALLER if by_caller else CallEnd.HANGUP_BY_CALLEE)

    def _end_call(self, record: InvitationRecord, how: CallEnd) -> None:
        if record.shadow:
            self.shadow_calls.pop(record.id, None)
            return
        if self.calls.pop(record.id, None) is None:
            return
        record.call_ended_at = self._clock()
        record.call_end = how
        self.calls_ended_total += 1
        for sink in self.sinks:
            sink.invitation_event("call_ended", record)

    def _emit(self, kind: str, record: InvitationRecord) -> None:
        for sink in self._every:
            sink.invitation_event(kind, record)


#: The times of a record, carried as wall-clock seconds (each node has its own clock).
_TIMES = ("sent_at", "ringing_at", "answered_at", "canceled_at", "ended_at", "call_ended_at")
_CARRIED = (
    "id", "caller", "callee", "caller_session", "content", "channel_id", "lifetime",
    "callee_node", "callee_session", "delivered", "callee_was_offline", "rang", "reason",
    "response", "inferred", "shadow", "caller_node",
)  # fmt: skip


def _carry(record: InvitationRecord, node: str) -> dict[str, Any]:
    """A record as JSON-ready data for the node a session moves to."""
    data: dict[str, Any] = {name: getattr(record, name) for name in _CARRIED}
    for name in _TIMES:
        t = getattr(record, name)
        data[name] = None if t is None else t + record.wall_offset
    data["phase"] = record.phase.value
    data["from"] = node
    return data


def _uncarry(data: dict[str, Any], now: float, wall: float) -> InvitationRecord:
    """The record :func:`_carry` made, on this node's clock (observed by this node)."""
    offset = wall - now
    record = InvitationRecord(
        str(data["id"]), str(data["caller"]), str(data["callee"]), "", "", 0.0, offset
    )
    for name in _CARRIED:
        setattr(record, name, data[name])
    for name in _TIMES:
        t = data[name]
        setattr(record, name, None if t is None else float(t) - offset)
    record.phase = Phase(data["phase"])
    if record.phase is Phase.ENDED:
        record.outcome = Outcome.ACCEPTED  # (only calls in progress are carried ended)
    return record


class _DeliverView(msgspec.Struct):
    """A Deliver frame's two fields this module needs (the others are ignored)."""

    sender: str = msgspec.field(name="from")
    msg: PeerMsg | None = None


_deliver_decoder = msgspec.json.Decoder(_DeliverView)
