"""Who may send what about an invitation (issue 4, "Authority").

The server stamps every routed frame with its real sender, so a client engine can already
tell its peer from a stranger. This ledger adds a second line at the server: it remembers,
for each invitation id it routed an Invite for, the caller and the callee, and refuses

* Ack / Accept / Refuse / CancelAck unless sent by the callee to the caller,
* Confirm / Cancel (and a repeated Invite) unless sent by the caller to the callee,
* End unless sent between the two,
* Hangup / HangupAck (a call, SPEC §6) unless sent between the two *and* after the
  caller's Confirm went through here (before that there is no call to hang up) — but the
  caller's Hangup passes before it too: it implies the Confirm (a caller that lost its
  Confirm with a server answers the callee's repeated accept with it), and the caller may
  send a Confirm at any moment anyway,

so a third user who learned an invitation id cannot answer or cancel it. Ids it does not
know (never seen, or forgotten) pass: the engines ignore frames about invitations they do
not have, so forgetting only removes this second line, never correctness.

Memory is bounded: at most ``max_entries`` ids, each forgotten after the invitation's
lifetime plus a margin, or ``margin`` after a frame that ends it. Calls (ids whose Confirm
went through) are kept apart, since a call may last hours: at most ``max_calls`` of them,
the oldest forgotten first, each ``margin`` after its hang-up (so clients that never hang
up, Agora 1.x ones, can only push out older calls, never ringing invitations). With a
distributed hub each process only knows the invitations its own users sent (the caller's
node sees the Invite and the Confirm; the callee's node lets the callee's frames pass as
unknown ids).
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable

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

_FROM_CALLER = (Invite, Confirm, Cancel)
_FROM_CALLEE = (Ack, Accept, Refuse, CancelAck)
#: Frames after which the invitation is over (Cancel is not: an accept may still cross it).
_ENDING = (Confirm, Refuse, CancelAck, End)
_CALL = (Hangup, HangupAck)


class InvitationLedger:
    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_entries: int = 100_000,
        margin: float = 120.0,
        default_lifetime: float = 60.0,
        max_calls: int | None = None,
    ) -> None:
        self._clock = clock
        self._max = max_entries
        self._margin = margin
        self._default_lifetime = default_lifetime
        #: invitation id -> (caller, callee, forget at)
        self._calls: dict[str, tuple[str, str, float]] = {}
        #: (forget at, id), lazily cleaned: an entry is stale when the dict disagrees.
        self._heap: list[tuple[float, str]] = []
        #: Calls: id -> (caller, callee, forget at: inf while on), oldest confirmed first.
        self._on: OrderedDict[str, tuple[str, str, float]] = OrderedDict()
        self._max_calls = max_entries if max_calls is None else max_calls

    def __len__(self) -> int:
        return len(self._calls)

    def check(self, sender: str, to: str, msg: PeerMsg) -> str | None:
        """Why ``sender`` may not send ``msg`` to ``to``, or None when it may."""
        if type(msg) is Text:
            return None
        if isinstance(msg, _CALL):
            return self._check_call(sender, to, msg)
        entry = self._calls.get(msg.id)  # type: ignore[union-attr]
        if entry is None:
            return None
        caller, callee, _ = entry
        if isinstance(msg, _FROM_CALLER):
            if sender != caller or to != callee:
                if isinstance(msg, Invite):
                    return f"invitation id {msg.id!r} is already in use"
                return f"only the caller of invitation {msg.id!r} may send {_kind(msg)}"
        elif isinstance(msg, _FROM_CALLEE):
            if sender != callee or to != caller:
                return f"only the callee of invitation {msg.id!r} may send {_kind(msg)}"
        elif {sender, to} != {caller, callee}:
            return f"only the caller and callee of invitation {msg.id!r} may end it"
        return None

    def _check_call(self, sender: str, to: str, msg: Hangup | HangupAck) -> str | None:
        call = self._on.get(msg.id)
        if call is not None and call[2] <= self._clock():
            del self._on[msg.id]  # hung up long ago: forget it
            call = None
        if call is None:
            entry = self._calls.get(msg.id)
            if entry is None:
                return None  # unknown here (another node's, or forgotten): the engines judge
            if type(msg) is Hangup and sender == entry[0] and to == entry[1]:
                return None  # the caller's: implies its Confirm (a callee not accepting ignores it)
            return f"invitation {msg.id!r} was never accepted: there is no call to hang up"
        if {sender, to} != {call[0], call[1]}:
            return f"only the caller and callee of call {msg.id!r} may hang it up"
        return None

    def note(self, sender: str, to: str, msg: PeerMsg) -> None:
        """Record a frame that was routed (after :meth:`check` allowed it)."""
        if type(msg) is Text:
            return
        now = self._clock()
        inv_id: str = msg.id  # type: ignore[union-attr]
        if isinstance(msg, _CALL):
            call = self._on.get(inv_id)
            entry = self._calls.get(inv_id)
            if call is None and entry is not None and type(msg) is Hangup and sender == entry[0]:
                # The caller's Hangup in place of its Confirm: the call, over at once (its
                # HangupAck and resent Hangups pass for a while).
                self._on[inv_id] = (entry[0], entry[1], now + self._margin)
                return
            if call is not None and call[2] == math.inf:
                # Keep it a little for the HangupAck and any resent Hangup.
                self._on[inv_id] = (call[0], call[1], now + self._margin)
            return
        if isinstance(msg, Confirm):
            entry = self._calls.get(inv_id)
            if entry is not None and inv_id not in self._on:
                self._on[inv_id] = (entry[0], entry[1], math.inf)
                while len(self._on) > self._max_calls:
                    old, _ = self._on.popitem(last=False)
                    self._calls.pop(old, None)  # (else its hang-up would look premature)
        self._expire(now)
        if isinstance(msg, Invite):
            if inv_id not in self._calls:
                lifetime = msg.lifetime or self._default_lifetime
                self._remember(inv_id, sender, to, now + lifetime + self._margin)
        elif isinstance(msg, _ENDING):
            entry = self._calls.get(inv_id)
            if entry is not None and entry[2] > now + self._margin:
                self._remember(inv_id, entry[0], entry[1], now + self._margin)

    def _remember(self, inv_id: str, caller: str, callee: str, forget_at: float) -> None:
        self._calls[inv_id] = (caller, callee, forget_at)
        heapq.heappush(self._heap, (forget_at, inv_id))
        while len(self._calls) > self._max:
            self._pop_one()

    def _expire(self, now: float) -> None:
        heap = self._heap
        calls = self._calls
        while heap and heap[0][0] <= now:
            forget_at, inv_id = heapq.heappop(heap)
            entry = calls.get(inv_id)
            if entry is not None and entry[2] == forget_at:
                del calls[inv_id]
        # Stale heap entries (shortened expiries) can pile up; rebuild when they dominate.
        if len(heap) > 2 * len(self._calls) + 1024:
            self._heap = [(e[2], k) for k, e in self._calls.items()]
            heapq.heapify(self._heap)

    def _pop_one(self) -> None:
        """Forget the id that would be forgotten first (capacity eviction)."""
        while self._heap:
            forget_at, inv_id = heapq.heappop(self._heap)
            entry = self._calls.get(inv_id)
            if entry is not None and entry[2] == forget_at:
                del self._calls[inv_id]
                return


def _kind(msg: PeerMsg) -> str:
    return type(msg).__name__.lower()
