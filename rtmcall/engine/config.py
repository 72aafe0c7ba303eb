"""The engine's settings: the protocol's windows and the call policies (SPEC §2, §6)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The protocol's windows, in seconds (SPEC §2 "Timers")."""

    #: Caller: how long to wait for the callee's ACK (PEER_OFFLINE / PEER_NO_RESPONSE).
    no_response_timeout: float = 30.0
    #: How long an invitation rings, from the callee's receipt, unless the caller set its own.
    lifetime: float = 60.0
    #: Callee: how long to wait for the caller's confirm after accepting (ACCEPT_FAILURE).
    #: Caller: how long to wait for the callee's answer to a cancel before calling it done.
    confirm_timeout: float = 5.0
    #: The caller's lifetime timer is only a backstop for an expiry message that never came
    #: (the callee's clock started first and it says when the invitation expired); it runs
    #: this much longer so that the callee's word wins in the normal case.
    expire_grace: float = 2.0
    #: Finished invitations remembered to absorb late and duplicate messages.
    keep_finished: int = 1000
    #: Peers whose presence stays watched after their last invitation ended (the most
    #: recent ones): a peer called again and again costs no subscribe/unsubscribe each time.
    keep_watching: int = 64
    #: Callee: answer an arriving invitation with the automatic ACK. False models an app that
    #: is online but never answers (scenario actors with ``ack: false``): invitations are
    #: ignored altogether, no event, no ACK, so the caller ends PEER_NO_RESPONSE.
    auto_ack: bool = True
    #: What an invitation that arrives while another is in progress (ringing, either way,
    #: or a call) does (SPEC §6): ``ring`` as usual, or ``refuse`` at once with reason busy.
    when_busy: str = "ring"
    #: Do not disturb at the start (``CallEngine.set_dnd`` changes it): every invitation is
    #: refused at once with reason busy.
    dnd: bool = False
    #: Hold a call after each accept (SPEC §6) until a hang-up. False: Agora 1.x's
    #: behaviour, the accept ends everything (a load generator that never hangs up).
    calls: bool = True
    #: A peer message the server refused as over the rate limit (TOO_OFTEN) is sent again
    #: after this backoff, doubled on each further refusal up to ``resend_max`` — for as
    #: long as its invitation's window (lifetime + grace; for a call's messages, the
    #: hang-up's tries) allows.
    resend_first: float = 0.5
    resend_max: float = 2.0


#: The refuse reasons (frames.RefuseReason).
REFUSE_REASONS = ("declined", "busy")
WHEN_BUSY = ("ring", "refuse")
