"""Peer messages the server refused as over our rate limit (TOO_OFTEN), sent again: sans-IO.

:class:`Resends` keeps, per invitation (and its call), the messages waiting for their
resend timer and the backoff so far. The engine asks it whether a new message must queue
behind earlier ones (so that the peer sees them in the order they were made), hands it a
refused message, and, when the timer fires, takes back the messages to send again. Which
messages still apply when their turn comes is the engine's to say (:data:`WANTED`, by the
phase of their invitation); the backoff doubles from ``first`` up to ``most``, and stops
when it would outlast the invitation's ``budget`` (its longest window): that invitation is
then *given up*, and its own timers end it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from . import frames as f
from .call import CallPhase
from .events import CancelTimer, StartTimer
from .invitation import CALLER_CANCELING, CalleePhase, CallerPhase

#: The timer kind of the resends; its key is ``Q:<invitation id>``.
RESEND = "resend"

#: Which phases a message is still wanted in, by (side, kind): a message the server refused
#: with TOO_OFTEN is sent again only if its invitation (or call) is in one of them. (An ACK
#: once the callee answered, an Invite once the caller canceled, are obsolete: the answer
#: implies the ACK, and an Invite resent after its Cancel would ring for nothing. A Cancel
#: is still wanted once CANCELED: an accept that crossed it ended the caller CANCELED on
#: the promise that the Cancel is on its way.)
WANTED: dict[tuple[str, str], frozenset[object]] = {
    ("L", "invite"): frozenset({CallerPhase.SENT}),
    ("L", "cancel"): CALLER_CANCELING | {CallerPhase.CANCELED},
    ("L", "cancel_again"): frozenset({CallerPhase.CANCELED}),
    ("L", "confirm"): frozenset({CallerPhase.ACCEPTED}),
    ("L", "end"): frozenset({CallerPhase.FAILED}),
    ("R", "ack"): frozenset({CalleePhase.RINGING}),
    ("R", "accept"): frozenset({CalleePhase.ACCEPTING}),
    ("R", "accept_again"): frozenset({CalleePhase.ACCEPTING}),
    ("R", "refuse"): frozenset({CalleePhase.REFUSED}),
    ("R", "cancel_ack"): frozenset({CalleePhase.CANCELED}),
    ("R", "end"): frozenset({CalleePhase.FAILED}),
    ("C", "hangup"): frozenset({CallPhase.HANGING_UP}),
    ("C", "hangup_ack"): frozenset(CallPhase),
    ("C", "hangup_again"): frozenset(CallPhase),
}

#: How many invitation ids :attr:`Resends.gave_up` keeps.
GAVE_UP_KEPT = 1000

#: A message waiting: (order it was made in, side, kind, the message).
Waiting = tuple[int, str, str, f.PeerMsg]


@dataclass
class _Pending:
    """The rate-limited messages of one invitation, and its backoff so far."""

    #: How long the resends of this invitation may go on, in all.
    budget: float
    #: The next backoff delay, and the sum of those already waited.
    delay: float
    spent: float = 0.0
    queue: list[Waiting] = field(default_factory=list)
    armed: bool = False


def _timer(inv_id: str) -> tuple[str, str]:
    return (RESEND, f"Q:{inv_id}")


class Resends:
    """The messages of every invitation waiting to be sent again.

    Args:
      first: the first backoff delay, in seconds.
      most: the longest one (each resend doubles it up to this).
    """

    def __init__(self, first: float, most: float) -> None:
        self._first = first
        self._most = most
        self._pending: dict[str, _Pending] = {}
        #: Invitations (by id) a rate-limited message of which was given up: the server
        #: refused it for longer than the invitation's window, so it was lost, as on a
        #: dead line, and the two sides may end differently (most recent last, bounded).
        self.gave_up: dict[str, None] = {}

    def __iter__(self) -> Iterator[str]:
        """The invitations with messages waiting (or a backoff still remembered)."""
        return iter(self._pending)

    def queue_behind(self, inv_id: str, waiting: Waiting) -> bool:
        """Queue a new message behind the invitation's earlier ones if any wait for the
        timer (it then goes after them); False: nothing waits, send it now."""
        pending = self._pending.get(inv_id)
        if pending is None or not pending.queue:
            return False
        pending.queue.append(waiting)
        return True

    def refused(self, inv_id: str, waiting: Waiting, budget: float) -> StartTimer | None:
        """The server refused a message as too often: queue it for the resend timer (the
        timer to arm, when not armed yet), or give the invitation up if the next backoff
        would outlast ``budget`` (its window, counted from its first refusal)."""
        pending = self._pending.get(inv_id)
        if pending is None:
            pending = self._pending[inv_id] = _Pending(budget=budget, delay=self._first)
        if pending.spent + pending.delay > pending.budget:
            self.gave_up[inv_id] = None
            if len(self.gave_up) > GAVE_UP_KEPT:
                del self.gave_up[next(iter(self.gave_up))]
            return None
        pending.queue.append(waiting)
        if pending.armed:
            return None
        pending.armed = True
        return StartTimer(_timer(inv_id), pending.delay)

    def due(self, inv_id: str) -> list[Waiting]:
        """The resend timer of ``inv_id`` fired: its messages, in the order they were made
        (the next backoff doubles)."""
        pending = self._pending.get(inv_id)
        if pending is None or not pending.armed:
            return []
        pending.armed = False
        pending.spent += pending.delay
        pending.delay = min(pending.delay * 2, self._most)
        queue = sorted(pending.queue, key=lambda item: item[0])
        pending.queue = []
        return queue

    def settled(self, inv_id: str) -> None:
        """Forget the invitation's backoff if nothing of it waits (it was forgotten)."""
        pending = self._pending.get(inv_id)
        if pending is not None and not pending.queue and not pending.armed:
            del self._pending[inv_id]

    def take(self) -> tuple[list[CancelTimer], list[Waiting]]:
        """Our session was replaced by a fresh one: every waiting message, in the order
        they were made (for the new session to send), and the timers to disarm."""
        waiting = sorted(
            (item for pending in self._pending.values() for item in pending.queue),
            key=lambda item: item[0],
        )
        return self.clear(), waiting

    def clear(self) -> list[CancelTimer]:
        """Our session ended: nothing waits any more; the timers to disarm."""
        armed = [CancelTimer(_timer(i)) for i, pending in self._pending.items() if pending.armed]
        self._pending.clear()
        return armed
