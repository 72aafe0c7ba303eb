"""The two invitation state machines, as transition tables.

Two rules, as in h11's ``_state.py``:

1. Everything that moves an invitation from one phase to another is in the tables below.
   The engine (``engine.py``) only turns API calls, received peer messages, delivery results,
   timers and presence changes into *inputs* and performs the effects of the transition.
2. No I/O, no clock: timers are named here and armed by whoever drives the engine.

Why "phases" and not Agora's states directly: the caller has two extra phases,
``CANCELING_SENT`` and ``CANCELING_RINGING``. Agreement (SPEC §2: both ends that reach a
terminal state agree) needs one side to be the authority while the invitation rings, and
here it is the callee: its accept, refuse, expiry or cancel-acknowledgement decides. So a
caller that cancels waits (one round trip, at most the confirm window) for the callee's
answer: usually ``cancel_ack`` (both CANCELED), but if the callee refused first the caller
ends REFUSED_BY_REMOTE like the callee, and if the callee accepted first the caller's cancel
(already on its way) cancels that accept on arrival, so both end CANCELED — SPEC's "a caller
that has already canceled answers an accept with its cancel". The public state of a
canceling invitation is still the Agora state it was canceled from.

The third leg of the accept handshake belongs to the caller: the callee is ACCEPTED only
when the caller's ``confirm`` arrives. Until then the callee holds the handshake open, like
TCP's SYN-RECEIVED: it sends its accept again (the ``reaccept`` timer, every quarter of
the confirm window but the last, whose end is the window's; at once when its own session
is replaced by a fresh one, or when the caller comes back online) and a caller that has
already confirmed answers a repeated accept with its confirm again — or, if its call has
ended meanwhile, with its hang-up, which implies the confirm. A caller going offline does
not end an accepting invitation at once: its confirm may be lost with the caller's server
(a node killed between the caller seeing the accept and the confirm leaving it) and come
again after the caller logs in elsewhere. The confirm window ends it: PEER_OFFLINE if the
caller is still offline then, else ACCEPT_FAILURE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .codes import LocalInvitationError, RemoteInvitationError
from .codes import LocalInvitationState as LS
from .codes import RemoteInvitationState as RS
from .events import LocalInvitationInfo, RemoteInvitationInfo


class CallerPhase(Enum):
    #: Created; ``send`` not called yet.
    IDLE = "idle"
    #: Invite sent (or waiting for the callee to come online); no ACK yet.
    SENT = "sent"
    #: ACKed: ringing at the callee.
    RINGING = "ringing"
    #: Canceled before any ACK; waiting for the callee's answer to the cancel.
    CANCELING_SENT = "canceling_sent"
    #: Canceled while ringing; waiting for the callee's answer to the cancel.
    CANCELING_RINGING = "canceling_ringing"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    CANCELED = "canceled"
    FAILED = "failed"


class CalleePhase(Enum):
    #: Ringing here; the ACK went back.
    RINGING = "ringing"
    #: We accepted; waiting for the caller's confirm.
    ACCEPTING = "accepting"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    CANCELED = "canceled"
    FAILED = "failed"


#: The Agora state each phase shows to the application.
CALLER_STATE: dict[CallerPhase, LS] = {
    CallerPhase.IDLE: LS.IDLE,
    CallerPhase.SENT: LS.SENT_TO_REMOTE,
    CallerPhase.RINGING: LS.RECEIVED_BY_REMOTE,
    CallerPhase.CANCELING_SENT: LS.SENT_TO_REMOTE,
    CallerPhase.CANCELING_RINGING: LS.RECEIVED_BY_REMOTE,
    CallerPhase.ACCEPTED: LS.ACCEPTED_BY_REMOTE,
    CallerPhase.REFUSED: LS.REFUSED_BY_REMOTE,
    CallerPhase.CANCELED: LS.CANCELED,
    CallerPhase.FAILED: LS.FAILURE,
}

CALLEE_STATE: dict[CalleePhase, RS] = {
    CalleePhase.RINGING: RS.INVITATION_RECEIVED,
    CalleePhase.ACCEPTING: RS.ACCEPT_SENT_TO_LOCAL,
    CalleePhase.ACCEPTED: RS.ACCEPTED,
    CalleePhase.REFUSED: RS.REFUSED,
    CalleePhase.CANCELED: RS.CANCELED,
    CalleePhase.FAILED: RS.FAILURE,
}

CALLER_TERMINAL = frozenset(
    {CallerPhase.ACCEPTED, CallerPhase.REFUSED, CallerPhase.CANCELED, CallerPhase.FAILED}
)
#: The caller canceled and waits for the callee's answer: for the API the lifecycle is
#: over (a second cancel, or a send, is ALREADY_END), though the end state is not known yet.
CALLER_CANCELING = frozenset({CallerPhase.CANCELING_SENT, CallerPhase.CANCELING_RINGING})
CALLEE_TERMINAL = frozenset(
    {CalleePhase.ACCEPTED, CalleePhase.REFUSED, CalleePhase.CANCELED, CalleePhase.FAILED}
)

# --- caller --------------------------------------------------------------------------------
# Inputs:
#   send, cancel                  API calls
#   ack, accept, refuse,          peer messages from the callee
#   cancel_ack, end
#   no_ack_timeout                the no-ACK window ran out (PEER_OFFLINE / PEER_NO_RESPONSE)
#   lifetime_timeout              backstop: the callee's expiry never arrived (INVITATION_EXPIRE)
#   cancel_timeout                the callee never answered our cancel: we are CANCELED anyway
#   cancel_undelivered            our cancel found nobody: CANCELED
#   peer_offline                  presence says the callee is gone (PEER_OFFLINE)
#   session_lost                  our own session ended (NOT_LOGGEDIN)
# A (phase, input) pair that is not in the table is ignored: that is how duplicate, late and
# out-of-order messages are absorbed. Terminal phases have no entries at all.

C = CallerPhase
CALLER_TRANSITIONS: dict[C, dict[str, C]] = {
    C.IDLE: {"send": C.SENT},
    C.SENT: {
        "ack": C.RINGING,
        "accept": C.ACCEPTED,
        "refuse": C.REFUSED,
        "cancel": C.CANCELING_SENT,
        "end": C.FAILED,
        "no_ack_timeout": C.FAILED,
        "session_lost": C.FAILED,
    },
    C.RINGING: {
        "accept": C.ACCEPTED,
        "refuse": C.REFUSED,
        "cancel": C.CANCELING_RINGING,
        "end": C.FAILED,
        "lifetime_timeout": C.FAILED,
        "peer_offline": C.FAILED,
        "session_lost": C.FAILED,
    },
    C.CANCELING_SENT: {
        "ack": C.CANCELING_RINGING,
        # Our cancel is already on its way and will cancel this accept at the callee.
        "accept": C.CANCELED,
        "refuse": C.REFUSED,
        "cancel_ack": C.CANCELED,
        "end": C.FAILED,
        "cancel_timeout": C.CANCELED,
        "cancel_undelivered": C.CANCELED,
        # Nobody ever rang: the cancel stands.
        "peer_offline": C.CANCELED,
        "session_lost": C.FAILED,
    },
    C.CANCELING_RINGING: {
        "accept": C.CANCELED,
        "refuse": C.REFUSED,
        "cancel_ack": C.CANCELED,
        "end": C.FAILED,
        "cancel_timeout": C.CANCELED,
        "cancel_undelivered": C.CANCELED,
        "peer_offline": C.FAILED,
        "session_lost": C.FAILED,
    },
}

#: Timers that run in each caller phase (kind -> which config window sets its duration).
CALLER_TIMERS: dict[C, tuple[str, ...]] = {
    C.SENT: ("no_ack",),
    C.RINGING: ("lifetime",),
    C.CANCELING_SENT: ("cancel",),
    C.CANCELING_RINGING: ("cancel",),
}

# --- callee --------------------------------------------------------------------------------
# Inputs:
#   accept, refuse                API calls
#   confirm, cancel, end          peer messages from the caller
#   lifetime_timeout              nobody acted while it rang (INVITATION_EXPIRE)
#   confirm_timeout               accepted but no confirm came (ACCEPT_FAILURE; PEER_OFFLINE
#                                 if presence says the caller is offline at that moment)
#   undelivered                   our ack/first accept found the caller offline (PEER_OFFLINE)
#   peer_offline                  presence says the caller is gone (PEER_OFFLINE); while
#                                 ACCEPTING not an input: the confirm may still come
#   session_lost                  our own session ended for good (PEER_OFFLINE); one
#                                 replaced by a fresh session keeps ACCEPTING (and the
#                                 accept is sent again on it)
# The ``reaccept`` timer of ACCEPTING moves nothing: it sends the accept again, at most
# REACCEPTS times (a quarter of the confirm window apart: a fourth would go with its end).
REACCEPTS = 3
# The ``confirm`` timer is ``confirm_timeout`` only once an accept of ours has reached the
# server (its delivery result said delivered, or kept for the resuming caller): before that
# the caller cannot have it, and cannot have confirmed. When the window ends with no accept
# known to have reached the server — our own line is silent or reconnecting, and the accept
# waits in it — ending FAILURE would be a guess that the accept is lost, and a wrong one as
# soon as the line delivers it (the caller ACCEPTED_BY_REMOTE, we FAILURE). So the window is
# extended instead, a whole window at a time, at most CONFIRM_EXTENSIONS times (bounded: a
# dead line is noticed and reconnected, or the session lost, within that); and an accept
# that reaches the server during an extension starts a fresh window from then.
CONFIRM_EXTENSIONS = 3

E = CalleePhase
CALLEE_TRANSITIONS: dict[E, dict[str, E]] = {
    E.RINGING: {
        "accept": E.ACCEPTING,
        "refuse": E.REFUSED,
        "cancel": E.CANCELED,
        "end": E.FAILED,
        "lifetime_timeout": E.FAILED,
        "undelivered": E.FAILED,
        "peer_offline": E.FAILED,
        "session_lost": E.FAILED,
    },
    E.ACCEPTING: {
        "confirm": E.ACCEPTED,
        "cancel": E.CANCELED,
        "end": E.FAILED,
        "confirm_timeout": E.FAILED,
        "undelivered": E.FAILED,
        "session_lost": E.FAILED,
    },
}

CALLEE_TIMERS: dict[E, tuple[str, ...]] = {
    E.RINGING: ("lifetime",),
    E.ACCEPTING: ("confirm", "reaccept"),
}


# --- the invitations themselves ------------------------------------------------------------
# (What the engine holds per invitation; the tables above move them, ``engine.py`` applies.)


@dataclass(eq=False)
class _Invitation:
    """What both ends of an invitation hold."""

    id: str
    caller: str
    callee: str
    content: str = ""
    channel_id: str = ""
    #: The caller's own lifetime for this invitation (None: the default).
    lifetime: float | None = None
    response: str = ""
    #: Why it was refused (``declined``, ``busy``), once refused.
    reason: str = ""
    #: Kinds of the timers armed for it now (see ``invitation.py``'s *_TIMERS tables).
    timers: set[str] = field(default_factory=set)

    def _snapshot(self, kind: type, state: object, error: object) -> object:
        return kind(
            id=self.id,
            caller=self.caller,
            callee=self.callee,
            content=self.content,
            channel_id=self.channel_id,
            response=self.response,
            state=state,
            error=error,
            lifetime=self.lifetime,
            reason=self.reason,
        )


@dataclass(eq=False)
class LocalInvitation(_Invitation):
    """An outgoing invitation (Agora's LocalInvitation). Read its fields; change it only
    through the engine."""

    phase: CallerPhase = CallerPhase.IDLE
    error: LocalInvitationError = LocalInvitationError.OK
    #: The callee was logged in at some moment since send (delivery or presence said so).
    seen_online: bool = False
    #: The last Invite we sent was not delivered: resend when the callee comes online.
    undelivered: bool = False
    #: Our connection was up at some moment since send (False: it was RECONNECTING all
    #: along, so the Invite waited in our client and cannot have reached anyone).
    went_out: bool = False

    @property
    def state(self) -> LS:
        return CALLER_STATE[self.phase]

    @property
    def peer(self) -> str:
        return self.callee

    @property
    def terminal(self) -> bool:
        return self.phase in CALLER_TERMINAL

    @property
    def live(self) -> bool:
        return self.phase is not CallerPhase.IDLE and self.phase not in CALLER_TERMINAL

    def info(self) -> LocalInvitationInfo:
        """A frozen snapshot, as events carry."""
        return self._snapshot(LocalInvitationInfo, self.state, self.error)  # type: ignore[return-value]


@dataclass(eq=False)
class RemoteInvitation(_Invitation):
    """An incoming invitation (Agora's RemoteInvitation)."""

    phase: CalleePhase = CalleePhase.RINGING
    error: RemoteInvitationError = RemoteInvitationError.OK
    #: While ACCEPTING: presence said the caller went offline (the accept goes again when
    #: it is back).
    caller_offline: bool = False
    #: While ACCEPTING: how often the ``reaccept`` timer has sent the accept again.
    reaccepts: int = 0
    #: An accept of ours reached the server (delivered, or kept for the resuming caller).
    accept_reached: bool = False
    #: How often the confirm window was extended, no accept having reached the server.
    confirm_extensions: int = 0

    @property
    def state(self) -> RS:
        return CALLEE_STATE[self.phase]

    @property
    def peer(self) -> str:
        return self.caller

    @property
    def terminal(self) -> bool:
        return self.phase in CALLEE_TERMINAL

    @property
    def live(self) -> bool:
        return self.phase not in CALLEE_TERMINAL

    def info(self) -> RemoteInvitationInfo:
        """A frozen snapshot, as events carry."""
        return self._snapshot(RemoteInvitationInfo, self.state, self.error)  # type: ignore[return-value]
