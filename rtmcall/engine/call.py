"""The call: a third state machine, after the two invitation machines of ``invitation.py``.

Agora RTM 1.x stops at "accepted": the invitation is over and the application must invent
what comes next. rtmcall's extension (SPEC §6) keeps a *call* from the accept until one side
hangs up, the peer goes offline beyond its resume window, or our own session ends. The
invitation machines are not touched: a call starts when its invitation reaches
ACCEPTED_BY_REMOTE (caller) or ACCEPTED (callee) and has the invitation's id.

The same two rules as ``invitation.py``: every move is in the table below, and nothing here
does I/O or reads a clock (the one timer is named and armed by the driver).

Why a ``HANGING_UP`` phase: the user's hang-up ends the call at once (``CallEnded`` with
HANGUP_LOCAL, no waiting), but the peer must learn of it. The server never loses a frame
while the resume window holds; beyond it the peer's session ends and presence tells us
(PEER_OFFLINE on our side, SESSION_LOST on theirs). That leaves frames lost some other way
(Redis pub/sub between nodes, a server restart): so the hanger-up keeps the call in
``HANGING_UP`` and resends its Hangup every ``confirm_timeout`` until the peer's
``HangupAck`` (at most ``HANGUP_TRIES`` times). Public view: a call in HANGING_UP has ended.

Races: a Hangup crossing a Hangup ends both sides with HANGUP_LOCAL (each hung up); a
Hangup that arrives at a callee still waiting for the caller's Confirm implies the Confirm
(the caller only hangs up calls it confirmed): the callee's invitation becomes ACCEPTED and
its call ends at once with HANGUP_REMOTE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .codes import CallEndReason
from .events import CallInfo

#: How many times a Hangup is sent before the hanger-up stops waiting for its HangupAck.
HANGUP_TRIES = 3


class CallPhase(Enum):
    #: Both sides are in the call.
    ACTIVE = "active"
    #: We hung up (the call has ended for the application); waiting for the peer's
    #: HangupAck, resending our Hangup meanwhile.
    HANGING_UP = "hanging_up"
    #: Over on this side.
    ENDED = "ended"


#: Phases in which the call is over for the application (``CallEnded`` was emitted).
CALL_OVER = frozenset({CallPhase.HANGING_UP, CallPhase.ENDED})
CALL_TERMINAL = frozenset({CallPhase.ENDED})

# Inputs:
#   hangup                  API call (HANGUP_LOCAL)
#   hangup_msg              the peer's Hangup arrived (HANGUP_REMOTE)
#   hangup_ack              the peer's HangupAck arrived
#   hangup_timeout          no HangupAck yet: send the Hangup again
#   hangup_give_up          no HangupAck after HANGUP_TRIES Hangups: stop waiting
#   peer_gone               the peer's side of the invitation failed after all (its End
#                           arrived: it never got our Confirm) (PEER_OFFLINE)
#   peer_offline            presence says the peer is gone (PEER_OFFLINE)
#   session_lost            our own session ended (SESSION_LOST)
#   session_replaced        our session ended and a fresh one took its place at once (a
#                           server lost): SESSION_LOST too, but the peer may not have seen
#                           us go offline, so we hang up on the new session, resending
#                           until its HangupAck as after a hang-up of our own
# A (phase, input) pair that is not in the table is ignored (duplicates, late frames).

P = CallPhase
CALL_TRANSITIONS: dict[P, dict[str, P]] = {
    P.ACTIVE: {
        "hangup": P.HANGING_UP,
        "hangup_msg": P.ENDED,
        "peer_gone": P.ENDED,
        "peer_offline": P.ENDED,
        "session_lost": P.ENDED,
        "session_replaced": P.HANGING_UP,
    },
    P.HANGING_UP: {
        # Both hung up at once: each side's reason is its own HANGUP_LOCAL.
        "hangup_msg": P.ENDED,
        "hangup_ack": P.ENDED,
        "hangup_timeout": P.HANGING_UP,
        "hangup_give_up": P.ENDED,
        "peer_gone": P.ENDED,
        "peer_offline": P.ENDED,
        "session_lost": P.ENDED,
        "session_replaced": P.HANGING_UP,
    },
}

#: The reason a transition *out of ACTIVE* gives the call (the CallEnded event's).
CALL_END_REASON: dict[str, CallEndReason] = {
    "hangup": CallEndReason.HANGUP_LOCAL,
    "hangup_msg": CallEndReason.HANGUP_REMOTE,
    "peer_gone": CallEndReason.PEER_OFFLINE,
    "peer_offline": CallEndReason.PEER_OFFLINE,
    "session_lost": CallEndReason.SESSION_LOST,
    "session_replaced": CallEndReason.SESSION_LOST,
}

#: Timers that run in each phase.
CALL_TIMERS: dict[P, tuple[str, ...]] = {
    P.HANGING_UP: ("hangup",),
}


@dataclass(eq=False)
class Call:
    """One call of ours (read its fields; change it only through the engine)."""

    #: The invitation's id.
    id: str
    caller: str
    callee: str
    #: ``out``: we were the caller.
    direction: str
    phase: CallPhase = CallPhase.ACTIVE
    reason: CallEndReason | None = None
    #: Hangups sent so far (while HANGING_UP).
    tries: int = 0
    timers: set[str] = field(default_factory=set)

    @property
    def peer(self) -> str:
        return self.callee if self.direction == "out" else self.caller

    @property
    def active(self) -> bool:
        """The call is on (not hung up, not ended)."""
        return self.phase is CallPhase.ACTIVE

    @property
    def live(self) -> bool:
        """The engine still has work for it (ACTIVE, or HANGING_UP)."""
        return self.phase not in CALL_TERMINAL

    @property
    def terminal(self) -> bool:
        return self.phase in CALL_TERMINAL

    def info(self) -> CallInfo:
        return CallInfo(
            id=self.id,
            caller=self.caller,
            callee=self.callee,
            direction=self.direction,
            reason=self.reason,
        )
