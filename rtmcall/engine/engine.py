"""The per-session invitation engine: sans-IO.

:class:`CallEngine` holds every invitation of one logged-in user, outgoing
(:class:`LocalInvitation`) and incoming (:class:`RemoteInvitation`). It takes inputs —

* API calls: :meth:`~CallEngine.create_local_invitation`, :meth:`~CallEngine.send`,
  :meth:`~CallEngine.cancel`, :meth:`~CallEngine.accept`, :meth:`~CallEngine.refuse`,
  and for calls (SPEC §6) :meth:`~CallEngine.hangup` and :meth:`~CallEngine.set_dnd`;
* a peer message that arrived: :meth:`~CallEngine.receive`;
* the server's delivery result for one we sent: :meth:`~CallEngine.delivery_result`;
* a timer that fired: :meth:`~CallEngine.timer_fired`;
* a peer's presence change: :meth:`~CallEngine.peer_state`;
* our own session starting or ending: :meth:`~CallEngine.set_logged_in`,
  :meth:`~CallEngine.session_lost`, and a fresh session replacing a lost one:
  :meth:`~CallEngine.session_renewed`; our connection going down and up again while the
  session is held (reconnecting): :meth:`~CallEngine.set_connected`;

and returns a list of outputs (``events.py``): events for the application, and effects for
the driver — send this peer message, arm or disarm this timer, watch this peer's presence.
It never blocks, never reads a clock, never touches a socket.

Which input moves which invitation where is in ``invitation.py``'s tables, and which moves
a call (an accepted invitation, until its hang-up) in ``call.py``'s; this module only
translates inputs and performs the effects of each transition. The busy policy
(``EngineConfig.when_busy``) and do-not-disturb refuse a new invitation at once, with the
refuse reason ``busy``. A peer message the server refuses as over the sender's rate limit
(TOO_OFTEN) is sent again on a backoff timer (``resend``), in order per invitation, while
it still applies and within the invitation's window (``resend.py``).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Callable

from . import frames as f
from .call import (
    CALL_END_REASON,
    CALL_TIMERS,
    CALL_TRANSITIONS,
    HANGUP_TRIES,
    Call,
    CallPhase,
)
from .codes import (
    InvitationApiCallError,
    LocalInvitationError,
    LocalInvitationState,
    PeerMessageError,
    PeerOnlineState,
    RemoteInvitationError,
    RemoteInvitationState,
)
from .config import REFUSE_REASONS, WHEN_BUSY, EngineConfig
from .events import (
    ApiCallError,
    CallEnded,
    CallStarted,
    CancelTimer,
    LocalInvitationAccepted,
    LocalInvitationCanceled,
    LocalInvitationFailure,
    LocalInvitationReceivedByPeer,
    LocalInvitationRefused,
    Output,
    RemoteInvitationAccepted,
    RemoteInvitationCanceled,
    RemoteInvitationFailure,
    RemoteInvitationReceived,
    RemoteInvitationRefused,
    SendPeer,
    StartTimer,
    TimerKey,
    UnwatchPeer,
    WatchPeer,
)
from .invitation import (
    CALLEE_TERMINAL,
    CALLEE_TIMERS,
    CALLEE_TRANSITIONS,
    CALLER_CANCELING,
    CALLER_TERMINAL,
    CALLER_TIMERS,
    CALLER_TRANSITIONS,
    CONFIRM_EXTENSIONS,
    REACCEPTS,
    CalleePhase,
    CallerPhase,
    LocalInvitation,
    RemoteInvitation,
)
from .resend import RESEND, WANTED, Resends, Waiting

API = InvitationApiCallError
#: Sends whose delivery result is still awaited, at most (a reply to an older one is
#: ignored: the invitation timers end what a lost reply would have ended).
_MAX_REFS = 4096

# Failure reasons on the wire (frames.End.reason) and their meaning on each side.
_CALLER_ERROR_TO_REASON: dict[LocalInvitationError, f.EndReason] = {
    LocalInvitationError.PEER_OFFLINE: "offline",
    LocalInvitationError.PEER_NO_RESPONSE: "no_response",
    LocalInvitationError.INVITATION_EXPIRE: "expire",
    LocalInvitationError.NOT_LOGGEDIN: "offline",
}
_CALLEE_ERROR_TO_REASON: dict[RemoteInvitationError, f.EndReason] = {
    RemoteInvitationError.PEER_OFFLINE: "offline",
    RemoteInvitationError.ACCEPT_FAILURE: "accept_failure",
    RemoteInvitationError.INVITATION_EXPIRE: "expire",
}
_REASON_TO_CALLER_ERROR: dict[str, LocalInvitationError] = {
    "offline": LocalInvitationError.PEER_OFFLINE,
    "no_response": LocalInvitationError.PEER_NO_RESPONSE,
    "expire": LocalInvitationError.INVITATION_EXPIRE,
    "accept_failure": LocalInvitationError.PEER_NO_RESPONSE,
}
_REASON_TO_CALLEE_ERROR: dict[str, RemoteInvitationError] = {
    "offline": RemoteInvitationError.PEER_OFFLINE,
    # The caller gave up waiting for our ACK: the invitation is over, as if it expired.
    "no_response": RemoteInvitationError.INVITATION_EXPIRE,
    "expire": RemoteInvitationError.INVITATION_EXPIRE,
    "accept_failure": RemoteInvitationError.ACCEPT_FAILURE,
}


def _caller_ended(phase: CallerPhase) -> bool:
    """The caller's lifecycle is over for the API: a terminal phase, or a cancel already on
    its way (the invitation may still end REFUSED if the callee refused first, but nothing
    the caller can call changes that any more)."""
    return phase in CALLER_TERMINAL or phase in CALLER_CANCELING


#: What the engine tracks per peer: invitations both ways, and calls.
_Tracked = LocalInvitation | RemoteInvitation | Call


def _new_uuid() -> str:
    return uuid.uuid4().hex


class CallEngine:
    """All invitations of one user, and the rules that move them.

    Args:
      user: our user id.
      config: the protocol windows.
      new_id: makes invitation ids; uuid4 hex by default (unique across the service).
    """

    def __init__(
        self,
        user: str,
        config: EngineConfig | None = None,
        *,
        new_id: Callable[[], str] = _new_uuid,
    ) -> None:
        self.user = user
        self.config = config or EngineConfig()
        self._new_id = new_id
        self.local: dict[str, LocalInvitation] = {}
        self.remote: dict[str, RemoteInvitation] = {}
        #: Calls (accepted invitations) by the invitation's id (SPEC §6).
        self.calls: dict[str, Call] = {}
        if self.config.when_busy not in WHEN_BUSY:
            raise ValueError(f"when_busy must be ring or refuse, not {self.config.when_busy!r}")
        #: Do not disturb: every new invitation is refused with reason busy.
        self.dnd = self.config.dnd
        #: The busy policy now (``set_when_busy`` changes it): ``ring`` or ``refuse``.
        self.when_busy = self.config.when_busy
        #: Whether our session is logged in; ``send`` fails with NOT_LOGGEDIN otherwise.
        self.logged_in = False
        #: Whether our connection is up (False while the client reconnects: the session is
        #: held, and what we send waits in the client for the resume).
        self.connected = True
        self._next_ref = 0
        #: ref -> (side, invitation id, message kind, message), for delivery results we
        #: act on: every send (any may come back TOO_OFTEN, and is then sent again).
        #: (Only failures may be reported, with quiet sends: bounded, oldest forgotten.)
        self._refs: OrderedDict[int, tuple[str, str, str, f.PeerMsg]] = OrderedDict()
        #: Rate-limited messages waiting to be sent again, by invitation id.
        self._resend = Resends(self.config.resend_first, self.config.resend_max)
        #: Invitations (by id) a rate-limited message of which was given up: the server
        #: refused it for longer than the invitation's window, so it was lost, as on a
        #: dead line, and the two sides may end differently (most recent last, bounded).
        self.gave_up = self._resend.gave_up
        #: Last presence of every watched peer (for a new invitation to a watched peer).
        self._presence: dict[str, PeerOnlineState] = {}
        #: Live invitations by peer: who must be watched, and what a presence change hits.
        self._live: dict[str, dict[tuple[str, str], _Tracked]] = {}
        #: Peers watched although no invitation with them is live, least recent first.
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._watched: set[str] = set()
        self._watch_changes: list[WatchPeer | UnwatchPeer] = []
        self._finished: deque[tuple[str, str]] = deque()
        #: What ``session_lost(replaced=True)`` ended, (side, id): the new session tells
        #: the peers (``session_renewed``), who may never have seen us go offline.
        self._tell_on_renew: list[tuple[str, str]] = []
        #: The messages waiting for their resend when the session was replaced.
        self._send_on_renew: list[Waiting] = []

    # --- API calls --------------------------------------------------------------------

    def create_local_invitation(
        self,
        callee: str,
        *,
        content: str = "",
        channel_id: str = "",
        lifetime: float | None = None,
    ) -> LocalInvitation:
        """A new outgoing invitation in IDLE. Raises ApiCallError(INVALID_ARGUMENT)."""
        problem = f.user_id_problem(callee)
        if problem is None and callee == self.user:
            problem = "you cannot invite yourself"
        if problem is None and not isinstance(content, str):
            problem = "content must be text"
        if problem is None and len(content.encode("utf-8")) > f.MAX_CONTENT_BYTES:
            problem = "content is longer than 8 KB of UTF-8"
        if problem is None and not isinstance(channel_id, str):
            problem = "channel_id must be text"
        if problem is None and len(channel_id.encode("utf-8")) > f.MAX_CHANNEL_BYTES:
            problem = "channel_id is longer than 64 bytes of UTF-8"
        if problem is None and lifetime is not None:
            if not isinstance(lifetime, int | float) or not 0 < lifetime <= f.MAX_LIFETIME:
                problem = f"lifetime must be more than 0 and at most {f.MAX_LIFETIME:g} seconds"
        if problem is not None:
            raise ApiCallError(
                API.INVALID_ARGUMENT,
                f"create_local_invitation: {problem}",
                call="create_local_invitation",
                problem=problem,
            )
        inv = LocalInvitation(
            id=self._new_id(),
            caller=self.user,
            callee=callee,
            content=content,
            channel_id=channel_id,
            lifetime=float(lifetime) if lifetime is not None else None,
        )
        self.local[inv.id] = inv
        return inv

    def send(self, invitation: LocalInvitation | str) -> list[Output]:
        """Send an IDLE invitation. ALREADY_SENT if sent, ALREADY_END if it ended (or we
        canceled it)."""
        inv = self._local_for("send", invitation)
        if inv.phase is not CallerPhase.IDLE:
            code = API.ALREADY_END if _caller_ended(inv.phase) else API.ALREADY_SENT
            raise self._refused("send", inv, code)
        out: list[Output] = []
        if not self.logged_in:
            inv.phase = CallerPhase.FAILED
            inv.error = LocalInvitationError.NOT_LOGGEDIN
            self._finish("L", inv.id)
            out.append(LocalInvitationFailure(inv.info(), inv.error))
            return out
        # (Reconnecting: the session is held, so the Invite waits for the resume and goes
        # then; if the no-ACK window ends first, it is NOT_LOGGEDIN, not the callee's fault.)
        inv.went_out = self.connected
        self._caller_step(inv, "send", out)
        return self._done(out)

    def cancel(self, invitation: LocalInvitation | str) -> list[Output]:
        """Cancel a sent invitation. NOT_STARTED before send, ALREADY_END after the end (and
        for a second cancel: the first one ended the lifecycle for the API)."""
        inv = self._local_for("cancel", invitation)
        if inv.phase is CallerPhase.IDLE:
            raise self._refused("cancel", inv, API.NOT_STARTED)
        if _caller_ended(inv.phase):
            raise self._refused("cancel", inv, API.ALREADY_END)
        out: list[Output] = []
        self._caller_step(inv, "cancel", out)
        return self._done(out)

    def accept(self, invitation: RemoteInvitation | str, response: str = "") -> list[Output]:
        """Accept a ringing invitation. ALREADY_ACCEPT if accepted and not yet confirmed,
        ALREADY_END once it ended (ACCEPTED included)."""
        inv = self._remote_for("accept", invitation)
        self._check_response("accept", inv, response)
        self._check_answerable("accept", inv)
        inv.response = response
        out: list[Output] = []
        self._callee_step(inv, "accept", out)
        return self._done(out)

    def refuse(
        self, invitation: RemoteInvitation | str, response: str = "", reason: str = "declined"
    ) -> list[Output]:
        """Refuse a ringing invitation; ``reason`` is ``declined`` (a person said no, the
        default) or ``busy``. ALREADY_ACCEPT if accepted and not yet confirmed, ALREADY_END
        once it ended (ACCEPTED included)."""
        inv = self._remote_for("refuse", invitation)
        self._check_response("refuse", inv, response)
        if reason not in REFUSE_REASONS:
            raise ApiCallError(
                API.INVALID_ARGUMENT,
                f"refuse: reason must be declined or busy, not {reason!r}",
                call="refuse",
                invitation_id=inv.id,
                state=inv.state,
                problem="the reason must be declined or busy",
            )
        self._check_answerable("refuse", inv)
        inv.response = response
        inv.reason = reason
        out: list[Output] = []
        self._callee_step(inv, "refuse", out)
        return self._done(out)

    def hangup(self, target: Call | LocalInvitation | RemoteInvitation | str) -> list[Output]:
        """End the call ``target`` (a call, its invitation, or their id): CallEnded with
        HANGUP_LOCAL here, HANGUP_REMOTE at the peer.

        Raises:
          ApiCallError: INVALID_ARGUMENT (no such call or invitation), NOT_STARTED (the
            invitation never became a call: it rings, waits for the confirm, or ended
            without an accept — cancel or refuse it instead), ALREADY_END (the call ended).
        """
        inv_id = target if isinstance(target, str) else getattr(target, "id", None)
        if not isinstance(inv_id, str):
            raise ApiCallError(API.INVALID_ARGUMENT, f"hangup: no call {target!r}")
        call = self.calls.get(inv_id)
        if call is None:
            inv = self.local.get(inv_id) or self.remote.get(inv_id)
            if inv is None:
                raise ApiCallError(API.INVALID_ARGUMENT, f"hangup: no call {inv_id!r}")
            # (by identity: the two IntEnums share numbers)
            state = inv.state
            if (
                state is LocalInvitationState.ACCEPTED_BY_REMOTE
                or state is RemoteInvitationState.ACCEPTED
            ):
                # (its call was forgotten, long ended)
                raise self._call_ended(inv_id, state)
            raise ApiCallError(
                API.NOT_STARTED,
                f"hangup cannot be done on invitation {inv_id} in state {inv.state.name}: "
                "it is not a call (it was never accepted)",
                call="hangup",
                invitation_id=inv_id,
                state=state,
            )
        if not call.active:
            inv = self.local.get(inv_id) or self.remote.get(inv_id)
            raise self._call_ended(inv_id, inv.state if inv is not None else None)
        out: list[Output] = []
        self._call_step(call, "hangup", out)
        return self._done(out)

    def set_dnd(self, on: bool) -> None:
        """Do not disturb: while on, every new invitation is refused at once (reason busy)."""
        self.dnd = bool(on)

    def set_when_busy(self, policy: str) -> None:
        """The busy policy from now on: ``ring``, or ``refuse`` (reason busy) an invitation
        that arrives while another rings or a call is on. Raises ApiCallError
        (INVALID_ARGUMENT) for another word."""
        if policy not in WHEN_BUSY:
            raise ApiCallError(
                API.INVALID_ARGUMENT, f"when_busy must be ring or refuse, not {policy!r}"
            )
        self.when_busy = policy

    # --- inputs from the network, the clock, presence --------------------------------

    def receive(self, sender: str, msg: f.PeerMsg) -> list[Output]:
        """A peer message from ``sender`` (as stamped by the server) arrived.

        Messages about an invitation from anyone but its peer are ignored, and so are
        duplicates and late arrivals that no longer apply (terminal states absorb them).
        """
        out: list[Output] = []
        match msg:
            case f.Invite():
                self._on_invite(sender, msg, out)
            case f.Ack() | f.Accept() | f.Refuse() | f.CancelAck():
                self._on_callee_msg(sender, msg, out)
            case f.Confirm() | f.Cancel():
                self._on_caller_msg(sender, msg, out)
            case f.Hangup() | f.HangupAck():
                self._on_call_msg(sender, msg, out)
            case f.End():
                # Both sides send End: it is about our outgoing invitation if we have one by
                # that id with that peer, else about an incoming one.
                inv_l = self.local.get(msg.id)
                if inv_l is not None and inv_l.callee == sender:
                    self._on_callee_msg(sender, msg, out)
                else:
                    self._on_caller_msg(sender, msg, out)
            case _:
                pass
        return self._done(out)

    def delivery_result(self, ref: int, code: int) -> list[Output]:
        """The server's answer (a PeerMessageError code) to the SendPeer with ``ref``.

        A driver may report only failures (quiet sends), but should report an accept's
        delivery too: the confirm window counts once an accept has reached the server, and
        is extended (up to ``CONFIRM_EXTENSIONS`` times) while none is known to have."""
        out: list[Output] = []
        entry = self._refs.pop(ref, None)
        if entry is None:
            return out
        side, inv_id, kind, msg = entry
        if code == PeerMessageError.TOO_OFTEN:
            self._too_often(out, side, inv_id, kind, msg, ref)
            return self._done(out)
        delivered = code in (PeerMessageError.OK, PeerMessageError.CACHED_BY_SERVER)
        offline = code == PeerMessageError.PEER_UNREACHABLE
        if side == "C":
            call = self.calls.get(inv_id)
            if call is not None and offline:
                self._call_step(call, "peer_offline", out)  # nobody to wait for
            return self._done(out)
        if side == "L":
            inv = self.local.get(inv_id)
            if inv is None:
                return out
            if kind == "invite" and inv.phase is CallerPhase.SENT:
                inv.undelivered = not delivered
                inv.seen_online = inv.seen_online or delivered
            elif kind == "cancel" and offline:
                self._caller_step(inv, "cancel_undelivered", out)
        else:
            rinv = self.remote.get(inv_id)
            if rinv is not None and offline and kind in ("ack", "accept"):
                self._callee_step(rinv, "undelivered", out, RemoteInvitationError.PEER_OFFLINE)
            elif rinv is not None and delivered and kind in ("accept", "accept_again"):
                first = not rinv.accept_reached
                rinv.accept_reached = True
                if first and rinv.confirm_extensions and "confirm" in rinv.timers:
                    # It reached the server only after the confirm window had run out (our
                    # line held it): the caller has it now, its confirm takes a round trip.
                    key = ("confirm", f"R:{rinv.id}")
                    out.append(StartTimer(key, self._duration("R", rinv, "confirm")))
        return self._done(out)

    def still_wanted(self, ref: int) -> bool:
        """Whether the message of the SendPeer ``ref`` still applies (its invitation is in a
        phase that wants it: ``resend.WANTED``). The client asks before it sends a message
        again after a reconnect: one the server never acknowledged, of an invitation that has
        ended here meanwhile (an accept whose confirm window ran out while the line was
        down), must not reach the peer late. True for a ref it no longer knows."""
        entry = self._refs.get(ref)
        if entry is None:
            return True
        side, inv_id, kind, _ = entry
        if side == "C":
            return True  # (a hang-up goes whatever came since: the peer's call must end)
        return self._wanted(side, inv_id, kind) is not None

    def timer_fired(self, key: TimerKey) -> list[Output]:
        """The timer ``key`` (from a StartTimer) ran out."""
        out: list[Output] = []
        kind, inv_key = key
        side, _, inv_id = inv_key.partition(":")
        if side == "Q":
            if kind == RESEND:
                self._resend_now(out, inv_id)
            return self._done(out)
        if side == "L":
            inv = self.local.get(inv_id)
            if inv is None or kind not in inv.timers:
                return out
            inv.timers.discard(kind)
            if kind == "no_ack":
                if not inv.went_out:
                    # Our own connection was down the whole window: the Invite never left
                    # this client, and the callee is not to blame.
                    error = LocalInvitationError.NOT_LOGGEDIN
                elif inv.seen_online:
                    error = LocalInvitationError.PEER_NO_RESPONSE
                else:
                    error = LocalInvitationError.PEER_OFFLINE
                self._caller_step(inv, "no_ack_timeout", out, error)
            elif kind == "lifetime":
                error = LocalInvitationError.INVITATION_EXPIRE
                self._caller_step(inv, "lifetime_timeout", out, error)
            elif kind == "cancel":
                self._caller_step(inv, "cancel_timeout", out)
        elif side == "C":
            call = self.calls.get(inv_id)
            if call is None or kind not in call.timers:
                return out
            call.timers.discard(kind)
            if kind == "hangup":
                give_up = call.tries >= HANGUP_TRIES
                self._call_step(call, "hangup_give_up" if give_up else "hangup_timeout", out)
        elif side == "R":
            rinv = self.remote.get(inv_id)
            if rinv is None or kind not in rinv.timers:
                return out
            rinv.timers.discard(kind)
            if kind == "lifetime":
                error = RemoteInvitationError.INVITATION_EXPIRE
                self._callee_step(rinv, "lifetime_timeout", out, error)
            elif kind == "confirm":
                if not rinv.accept_reached and rinv.confirm_extensions < CONFIRM_EXTENSIONS:
                    # No accept of ours has reached the server yet (our line is silent or
                    # reconnecting): the caller cannot have confirmed. Wait on (see
                    # invitation.py): ending now would be wrong once the line delivers it.
                    rinv.confirm_extensions += 1
                    rinv.timers.add(kind)
                    out.append(StartTimer(key, self._duration("R", rinv, kind)))
                    return self._done(out)
                error = (
                    RemoteInvitationError.PEER_OFFLINE
                    if rinv.caller_offline
                    else RemoteInvitationError.ACCEPT_FAILURE
                )
                self._callee_step(rinv, "confirm_timeout", out, error)
            elif kind == "reaccept" and rinv.phase is CalleePhase.ACCEPTING:
                self._send_accept_again(rinv, out)
                rinv.reaccepts += 1
                if rinv.reaccepts < REACCEPTS:
                    rinv.timers.add(kind)
                    out.append(StartTimer((kind, inv_key), self._duration("R", rinv, kind)))
        return self._done(out)

    def peer_state(self, peer: str, state: PeerOnlineState | int) -> list[Output]:
        """Presence says ``peer`` is now ``state`` (for a peer we asked to watch)."""
        out: list[Output] = []
        state = PeerOnlineState(state)
        if peer in self._watched:
            self._presence[peer] = state
        live = list(self._live.get(peer, {}).values())
        if state is PeerOnlineState.OFFLINE:
            for call in live:
                if isinstance(call, Call) and call.live:
                    self._call_step(call, "peer_offline", out)
        for inv in live:
            if not isinstance(inv, LocalInvitation) or not inv.live:
                continue
            if state is PeerOnlineState.OFFLINE:
                self._caller_step(inv, "peer_offline", out, LocalInvitationError.PEER_OFFLINE)
            elif inv.phase is CallerPhase.SENT:
                inv.seen_online = True
                if inv.undelivered and state is PeerOnlineState.ONLINE:
                    # The callee logged in within the no-ACK window: ring it after all.
                    inv.undelivered = False
                    self._send(out, "L", inv, self._invite_msg(inv), "invite")
        for rinv in live:
            if not isinstance(rinv, RemoteInvitation) or not rinv.live:
                continue
            if rinv.phase is CalleePhase.ACCEPTING:
                # Not over yet: the caller may have confirmed, and the confirm be lost with
                # its server; the accept goes again when the caller is back.
                if state is PeerOnlineState.OFFLINE:
                    rinv.caller_offline = True
                elif state is PeerOnlineState.ONLINE and rinv.caller_offline:
                    rinv.caller_offline = False
                    self._send_accept_again(rinv, out)
            elif state is PeerOnlineState.OFFLINE:
                self._callee_step(rinv, "peer_offline", out, RemoteInvitationError.PEER_OFFLINE)
        return self._done(out)

    def set_logged_in(self, logged_in: bool) -> None:
        """Our session is (or is no longer) logged in. Losing it: call session_lost."""
        self.logged_in = logged_in

    def set_connected(self, connected: bool) -> None:
        """Our connection is down (the client reconnects; the session is held, and what we
        send meanwhile waits for the resume) or up again. An invitation sent while it was
        down whose no-ACK window ends before it comes up fails NOT_LOGGEDIN: it never left
        this client, so PEER_OFFLINE or PEER_NO_RESPONSE would blame the callee."""
        self.connected = connected
        if connected:
            for inv in self.live_invitations():
                if isinstance(inv, LocalInvitation):
                    inv.went_out = True

    def session_lost(self, *, replaced: bool = False) -> list[Output]:
        """Our session ended (logout, kicked, gave up reconnecting): every live invitation
        fails now — the caller's with NOT_LOGGEDIN, the callee's with PEER_OFFLINE.

        ``replaced``: a fresh session has already taken its place (its server was lost, a
        node killed, say): what was in flight is lost, but an invitation we accepted keeps
        waiting for the caller's confirm (its confirm window still runs), and
        :meth:`session_renewed`, called next, sends the accept again on the new session,
        and tells the peers of what ended here (they may not have seen us go offline: the
        new login can reach their server before the old server's death does)."""
        self.logged_in = False
        out: list[Output] = []
        ended: list[tuple[str, str]] = []
        for inv in self.live_invitations():
            if isinstance(inv, LocalInvitation):
                if self._caller_step(inv, "session_lost", out, LocalInvitationError.NOT_LOGGEDIN):
                    ended.append(("L", inv.id))
            elif not (replaced and inv.phase is CalleePhase.ACCEPTING):
                if self._callee_step(inv, "session_lost", out, RemoteInvitationError.PEER_OFFLINE):
                    ended.append(("R", inv.id))
        for call in self.live_calls():
            self._call_step(call, "session_replaced" if replaced else "session_lost", out)
        self._tell_on_renew = ended if replaced else []
        # Nothing can be sent any more: keep only the events and timer cancellations.
        out = [o for o in out if not isinstance(o, SendPeer)]
        self._refs.clear()
        if replaced:
            # What waits for its resend (refused as too often) is not lost: the new session
            # sends it, if it still applies.
            disarm, self._send_on_renew = self._resend.take()
            out.extend(disarm)
        else:
            out.extend(self._resend.clear())
            self._send_on_renew = []
        return self._done(out)

    def session_renewed(self) -> list[Output]:
        """A fresh session is logged in in place of one that was lost (after
        ``session_lost(replaced=True)``): the accepts still waiting for a confirm go again,
        since whatever the lost session had in flight may be gone; messages that waited for
        their resend (refused as too often) go now, if they still apply; and what the lost
        session ended is told to the peers: an End (offline) for each invitation, a Hangup for each
        call (resent until the peer's HangupAck), so that nothing is left ringing or talking
        over there."""
        self.logged_in = True
        out: list[Output] = []
        waiting, self._send_on_renew = self._send_on_renew, []
        self._send_again(out, waiting)
        tell, self._tell_on_renew = self._tell_on_renew, []
        for side, inv_id in tell:
            target = self._target(side, inv_id)
            if target is not None:
                self._send(out, side, target, f.End(id=inv_id, reason="offline"), "end")
        for call in self.live_calls():
            if call.phase is CallPhase.HANGING_UP:
                call.tries += 1
                self._send(out, "C", call, f.Hangup(id=call.id), "hangup")
        for inv in self.live_invitations():
            if isinstance(inv, RemoteInvitation) and inv.phase is CalleePhase.ACCEPTING:
                self._send_accept_again(inv, out)
        return self._done(out)

    # --- queries ----------------------------------------------------------------------

    def live_invitations(self) -> list[LocalInvitation | RemoteInvitation]:
        return [
            inv
            for by_id in self._live.values()
            for inv in by_id.values()
            if not isinstance(inv, Call)
        ]

    def live_calls(self) -> list[Call]:
        """Calls the engine still works on: on, or hung up and waiting for the peer's ack."""
        return [c for by_id in self._live.values() for c in by_id.values() if isinstance(c, Call)]

    def active_calls(self) -> list[Call]:
        """Calls that are on."""
        return [c for c in self.live_calls() if c.active]

    @property
    def busy(self) -> bool:
        """An invitation or a call is in progress (sent or received, not yet ended)."""
        return bool(self._live)

    def in_progress(self) -> bool:
        """For the busy policy: an invitation rings (either way) or a call is on."""
        return any(not isinstance(o, Call) or o.active for o in self._all_live())

    def _all_live(self) -> list[LocalInvitation | RemoteInvitation | Call]:
        return [o for by_id in self._live.values() for o in by_id.values()]

    @property
    def watched_peers(self) -> frozenset[str]:
        """The peers whose presence the engine asked to watch (and not yet to unwatch)."""
        return frozenset(self._watched)

    # --- caller side ------------------------------------------------------------------

    def _on_callee_msg(
        self, sender: str, msg: f.Ack | f.Accept | f.Refuse | f.CancelAck | f.End, out: list[Output]
    ) -> None:
        inv = self.local.get(msg.id)
        if inv is None or inv.callee != sender or inv.phase is CallerPhase.IDLE:
            return  # not ours, or not from its callee: ignore
        if inv.terminal:
            call = self.calls.get(inv.id)
            if isinstance(msg, f.End) and call is not None:
                # The callee never got our Confirm (ACCEPT_FAILURE): no call over there.
                self._call_step(call, "peer_gone", out)
            self._caller_reply_after_end(inv, msg, out)
            return
        if not isinstance(msg, f.Ack | f.CancelAck) and inv.phase in (
            CallerPhase.SENT,
            CallerPhase.CANCELING_SENT,
        ):
            # The ACK was lost or overtaken: the callee's answer implies it rang.
            self._caller_step(inv, "ack", out)
        match msg:
            case f.Ack():
                inv.seen_online = True
                self._caller_step(inv, "ack", out)
            case f.Accept():
                if inv.phase is CallerPhase.RINGING:
                    inv.response = msg.response
                self._caller_step(inv, "accept", out)
            case f.Refuse():
                inv.response = msg.response
                inv.reason = msg.reason
                self._caller_step(inv, "refuse", out)
            case f.CancelAck():
                self._caller_step(inv, "cancel_ack", out)
            case f.End():
                self._caller_step(inv, "end", out, _REASON_TO_CALLER_ERROR[msg.reason])

    def _caller_reply_after_end(
        self, inv: LocalInvitation, msg: f.PeerMsg, out: list[Output]
    ) -> None:
        """The callee still thinks the invitation lives: tell it how it ended here, so that
        nothing is left ringing (a late Invite, a lost Cancel, a lost Confirm)."""
        if not isinstance(msg, f.Ack | f.Accept):
            return
        if inv.phase is CallerPhase.CANCELED:
            self._send(out, "L", inv, f.Cancel(id=inv.id), "cancel_again")
        elif inv.phase is CallerPhase.FAILED:
            reason = _CALLER_ERROR_TO_REASON.get(inv.error, "expire")
            self._send(out, "L", inv, f.End(id=inv.id, reason=reason), "end")
        elif inv.phase is CallerPhase.ACCEPTED and isinstance(msg, f.Accept):
            # The callee repeats its accept: our confirm did not reach it (lost with a
            # server, say). Confirm again — or, when our call is over meanwhile (our
            # session was lost, the callee went offline, we hung up), hang up: a hang-up
            # implies the confirm and ends the call over there at once.
            call = self.calls.get(inv.id)
            if call is not None and not call.active:
                self._send(out, "C", call, f.Hangup(id=call.id), "hangup_again")
            else:
                self._send(out, "L", inv, f.Confirm(id=inv.id), "confirm")

    def _caller_step(
        self,
        inv: LocalInvitation,
        what: str,
        out: list[Output],
        error: LocalInvitationError = LocalInvitationError.OK,
    ) -> bool:
        """Apply input ``what``; ``error`` is recorded if it ends in FAILED. False: ignored."""
        new = CALLER_TRANSITIONS.get(inv.phase, {}).get(what)
        if new is None:
            return False
        old = inv.phase
        inv.phase = new
        if new is CallerPhase.FAILED:
            inv.error = error
        call = None
        if new is CallerPhase.ACCEPTED and self.config.calls:
            call = self._open_call(inv, "out")  # before _ended: the peer stays watched
        if old is CallerPhase.IDLE:
            self._became_live("L", inv)
            # A peer we already watch: its presence is known (no new subscription answer
            # will come to tell us).
            if (
                self._presence.get(inv.callee, PeerOnlineState.OFFLINE)
                is not PeerOnlineState.OFFLINE
            ):
                inv.seen_online = True
        elif new in CALLER_TERMINAL:
            self._ended("L", inv)
        self._retime(out, "L", inv, CALLER_TIMERS.get(new, ()))
        P = CallerPhase
        # Effects of the transition.
        if what == "send":
            self._send(out, "L", inv, self._invite_msg(inv), "invite")
        elif what == "cancel":
            self._send(out, "L", inv, f.Cancel(id=inv.id), "cancel")
        elif what == "accept" and new is P.ACCEPTED:
            self._send(out, "L", inv, f.Confirm(id=inv.id), "confirm")
        elif what == "no_ack_timeout" or (what == "lifetime_timeout" and inv.seen_online):
            # Also to a callee who never logged in (PEER_OFFLINE): it is not delivered, but
            # the server sees it and so knows the outcome (its call log, metrics, webhooks).
            reason = _CALLER_ERROR_TO_REASON[inv.error]
            self._send(out, "L", inv, f.End(id=inv.id, reason=reason), "end")
        # Events for the new phase.
        info = inv.info()
        if new in (P.RINGING, P.CANCELING_RINGING) and old in (P.SENT, P.CANCELING_SENT):
            out.append(LocalInvitationReceivedByPeer(info))
        elif new is P.ACCEPTED:
            out.append(LocalInvitationAccepted(info, inv.response))
        elif new is P.REFUSED:
            out.append(LocalInvitationRefused(info, inv.response, inv.reason or "declined"))
        elif new is P.CANCELED:
            out.append(LocalInvitationCanceled(info))
        elif new is P.FAILED:
            out.append(LocalInvitationFailure(info, inv.error))
        if new in CALLER_TERMINAL:
            self._finish("L", inv.id)
        if call is not None:
            out.append(CallStarted(call.info()))
        return True

    @staticmethod
    def _invite_msg(inv: LocalInvitation) -> f.Invite:
        return f.Invite(
            id=inv.id, content=inv.content, channel=inv.channel_id, lifetime=inv.lifetime
        )

    # --- callee side ------------------------------------------------------------------

    def _on_invite(self, sender: str, msg: f.Invite, out: list[Output]) -> None:
        if f.peer_msg_problem(msg) is not None or sender == self.user or not self.config.auto_ack:
            return
        rinv = self.remote.get(msg.id)
        if rinv is not None:
            if rinv.caller != sender:
                return  # someone else's id: ignore
            if rinv.live:
                self._send(out, "R", rinv, f.Ack(id=rinv.id), "ack")  # duplicate: ACK again
            else:
                self._callee_reply_after_end(rinv, out)
            return
        # SPEC §6: busy (another invitation rings, or a call is on) or do-not-disturb.
        refuse_busy = self.dnd or (self.when_busy == "refuse" and self.in_progress())
        rinv = RemoteInvitation(
            id=msg.id,
            caller=sender,
            callee=self.user,
            content=msg.content,
            channel_id=msg.channel,
            lifetime=msg.lifetime,
        )
        if refuse_busy:
            rinv.reason = "busy"  # (so that the Received event already tells: no ringing)
        self.remote[rinv.id] = rinv
        self._became_live("R", rinv)
        self._retime(out, "R", rinv, CALLEE_TIMERS[CalleePhase.RINGING])
        out.append(RemoteInvitationReceived(rinv.info()))
        self._send(out, "R", rinv, f.Ack(id=rinv.id), "ack")
        if refuse_busy:
            self._callee_step(rinv, "refuse", out)

    def _on_caller_msg(
        self, sender: str, msg: f.Confirm | f.Cancel | f.End, out: list[Output]
    ) -> None:
        rinv = self.remote.get(msg.id)
        if rinv is None or rinv.caller != sender:
            return
        if rinv.terminal:
            call = self.calls.get(rinv.id)
            if isinstance(msg, f.End) and call is not None:
                self._call_step(call, "peer_gone", out)
            if isinstance(msg, f.Cancel):
                self._callee_reply_after_end(rinv, out)
            return
        match msg:
            case f.Confirm():
                self._callee_step(rinv, "confirm", out)
            case f.Cancel():
                self._callee_step(rinv, "cancel", out)
            case f.End():
                self._callee_step(rinv, "end", out, _REASON_TO_CALLEE_ERROR[msg.reason])

    def _callee_reply_after_end(self, rinv: RemoteInvitation, out: list[Output]) -> None:
        """The caller still thinks it lives: repeat how it ended here."""
        if rinv.phase is CalleePhase.REFUSED:
            self._send(out, "R", rinv, self._refuse_msg(rinv), "refuse")
        elif rinv.phase is CalleePhase.CANCELED:
            self._send(out, "R", rinv, f.CancelAck(id=rinv.id), "cancel_ack")
        elif rinv.phase is CalleePhase.FAILED:
            reason = _CALLEE_ERROR_TO_REASON.get(rinv.error, "expire")
            self._send(out, "R", rinv, f.End(id=rinv.id, reason=reason), "end")

    def _callee_step(
        self,
        rinv: RemoteInvitation,
        what: str,
        out: list[Output],
        error: RemoteInvitationError = RemoteInvitationError.OK,
    ) -> bool:
        """Apply input ``what``; ``error`` is recorded if it ends in FAILED. False: ignored."""
        new = CALLEE_TRANSITIONS.get(rinv.phase, {}).get(what)
        if new is None:
            return False
        rinv.phase = new
        if new is CalleePhase.FAILED:
            rinv.error = error
        accepted = new is CalleePhase.ACCEPTED and self.config.calls
        call = self._open_call(rinv, "in") if accepted else None
        if new in CALLEE_TERMINAL:
            self._ended("R", rinv)
        self._retime(out, "R", rinv, CALLEE_TIMERS.get(new, ()))
        P = CalleePhase
        if what == "accept":
            self._send(out, "R", rinv, f.Accept(id=rinv.id, response=rinv.response), "accept")
        elif what == "refuse":
            self._send(out, "R", rinv, self._refuse_msg(rinv), "refuse")
        elif what == "cancel":
            self._send(out, "R", rinv, f.CancelAck(id=rinv.id), "cancel_ack")
        elif what in ("lifetime_timeout", "confirm_timeout"):
            reason = _CALLEE_ERROR_TO_REASON[rinv.error]
            self._send(out, "R", rinv, f.End(id=rinv.id, reason=reason), "end")
        info = rinv.info()
        if new is P.ACCEPTED:
            out.append(RemoteInvitationAccepted(info))
        elif new is P.REFUSED:
            out.append(RemoteInvitationRefused(info))
        elif new is P.CANCELED:
            out.append(RemoteInvitationCanceled(info))
        elif new is P.FAILED:
            out.append(RemoteInvitationFailure(info, rinv.error))
        if new in CALLEE_TERMINAL:
            self._finish("R", rinv.id)
        if call is not None:
            out.append(CallStarted(call.info()))
        return True

    def _send_accept_again(self, rinv: RemoteInvitation, out: list[Output]) -> None:
        """Still waiting for the caller's confirm: the accept again (its delivery result
        does not count: only the first accept finding the caller offline fails it)."""
        self._send(out, "R", rinv, f.Accept(id=rinv.id, response=rinv.response), "accept_again")

    @staticmethod
    def _refuse_msg(rinv: RemoteInvitation) -> f.Refuse:
        reason = "busy" if rinv.reason == "busy" else "declined"
        return f.Refuse(id=rinv.id, response=rinv.response, reason=reason)

    # --- calls (SPEC §6; the table is in call.py) --------------------------------------

    def _open_call(self, inv: LocalInvitation | RemoteInvitation, direction: str) -> Call:
        """The invitation was accepted: its call starts (the event comes after the
        invitation's own)."""
        call = Call(id=inv.id, caller=inv.caller, callee=inv.callee, direction=direction)
        self.calls[call.id] = call
        self._became_live("C", call)
        return call

    def _on_call_msg(self, sender: str, msg: f.Hangup | f.HangupAck, out: list[Output]) -> None:
        call = self.calls.get(msg.id)
        if call is None and isinstance(msg, f.Hangup):
            rinv = self.remote.get(msg.id)
            if rinv is not None and rinv.caller == sender and rinv.phase is CalleePhase.ACCEPTING:
                # The caller hangs up only calls it confirmed: the Hangup implies the
                # Confirm (which was lost or overtaken).
                self._callee_step(rinv, "confirm", out)
                call = self.calls.get(msg.id)
        if call is None or call.peer != sender:
            return  # not a call of ours with the sender
        if isinstance(msg, f.Hangup):
            if not self._call_step(call, "hangup_msg", out):
                # Ended here already: answer so that the peer stops resending.
                self._send(out, "C", call, f.HangupAck(id=call.id), "hangup_ack")
        else:
            self._call_step(call, "hangup_ack", out)

    def _call_step(self, call: Call, what: str, out: list[Output]) -> bool:
        """Apply input ``what`` to a call. False: ignored (not in the table)."""
        new = CALL_TRANSITIONS.get(call.phase, {}).get(what)
        if new is None:
            return False
        old = call.phase
        call.phase = new
        if old is CallPhase.ACTIVE:
            call.reason = CALL_END_REASON[what]
        if new is CallPhase.ENDED:
            self._ended("C", call)
        self._retime(out, "C", call, CALL_TIMERS.get(new, ()))
        if what in ("hangup", "hangup_timeout"):
            call.tries += 1
            self._send(out, "C", call, f.Hangup(id=call.id), "hangup")
        elif what == "hangup_msg":
            self._send(out, "C", call, f.HangupAck(id=call.id), "hangup_ack")
        if old is CallPhase.ACTIVE and call.reason is not None:
            out.append(CallEnded(call.info(), call.reason))
        if new is CallPhase.ENDED:
            self._finish("C", call.id)
        return True

    # --- helpers ----------------------------------------------------------------------

    def _send(
        self,
        out: list[Output],
        side: str,
        inv: _Tracked,
        msg: f.PeerMsg,
        kind: str,
    ) -> None:
        self._next_ref += 1
        ref = self._next_ref
        if self._resend.queue_behind(inv.id, (ref, side, kind, msg)):
            # Earlier messages of this invitation wait for the resend timer: this one goes
            # after them, so that the peer sees them in the order they were made.
            return
        refs = self._refs
        refs[ref] = (side, inv.id, kind, msg)
        if len(refs) > _MAX_REFS:
            refs.popitem(last=False)
        out.append(SendPeer(inv.peer, msg, ref))

    def _target(self, side: str, inv_id: str) -> _Tracked | None:
        table: dict = {"L": self.local, "R": self.remote, "C": self.calls}[side]
        return table.get(inv_id)

    def _wanted(self, side: str, inv_id: str, kind: str) -> _Tracked | None:
        """The invitation (or call) a message is about, if the message still applies."""
        target = self._target(side, inv_id)
        if target is None or target.phase not in WANTED.get((side, kind), ()):
            return None
        return target

    def _too_often(
        self, out: list[Output], side: str, inv_id: str, kind: str, msg: f.PeerMsg, ref: int
    ) -> None:
        """The server refused a send as over our rate limit: send it again after a backoff
        (with whatever else of this invitation is made meanwhile, in order), unless it no
        longer applies or the invitation's window is spent (its own timers end it then)."""
        target = self._wanted(side, inv_id, kind)
        if target is None:
            return
        budget = self._resend_budget(side, target)
        timer = self._resend.refused(inv_id, (ref, side, kind, msg), budget)
        if timer is not None:
            out.append(timer)

    def _resend_budget(self, side: str, target: _Tracked) -> float:
        cfg = self.config
        if side == "C":
            return HANGUP_TRIES * cfg.confirm_timeout
        lifetime = target.lifetime if target.lifetime is not None else cfg.lifetime  # type: ignore[union-attr]
        return lifetime + cfg.expire_grace

    def _resend_now(self, out: list[Output], inv_id: str) -> None:
        """The resend timer fired: send the waiting messages that still apply, in order."""
        self._send_again(out, self._resend.due(inv_id))
        if all(self._target(side, inv_id) is None for side in "LRC"):
            self._resend.settled(inv_id)  # (forgotten meanwhile)

    def _send_again(self, out: list[Output], waiting: list[Waiting]) -> None:
        """Send messages that waited (refused as too often), in order, those that still
        apply."""
        for _, side, kind, msg in waiting:
            target = self._wanted(side, msg.id, kind)  # type: ignore[union-attr]
            if target is not None:
                self._send(out, side, target, msg, kind)

    def _retime(
        self,
        out: list[Output],
        side: str,
        inv: _Tracked,
        wanted: tuple[str, ...],
    ) -> None:
        """Disarm the timers of the phase we left, arm those of the phase we entered."""
        key = f"{side}:{inv.id}"
        for kind in sorted(inv.timers - set(wanted)):
            out.append(CancelTimer((kind, key)))
        for kind in wanted:
            if kind not in inv.timers:
                out.append(StartTimer((kind, key), self._duration(side, inv, kind)))
        inv.timers = set(wanted)

    def _duration(self, side: str, inv: _Tracked, kind: str) -> float:
        cfg = self.config
        if kind == "no_ack":
            return cfg.no_response_timeout
        if kind == "lifetime":
            lifetime = inv.lifetime if inv.lifetime is not None else cfg.lifetime
            return lifetime + cfg.expire_grace if side == "L" else lifetime
        if kind == "reaccept":
            return cfg.confirm_timeout / 4
        return cfg.confirm_timeout  # "confirm", "cancel" and the call's "hangup"

    def _finish(self, side: str, inv_id: str) -> None:
        """Remember a finished invitation for a while; forget the oldest beyond the cap."""
        self._finished.append((side, inv_id))
        while len(self._finished) > self.config.keep_finished:
            old_side, old_id = self._finished.popleft()
            table: dict = {"L": self.local, "R": self.remote, "C": self.calls}[old_side]
            old = table.get(old_id)
            if old is not None and old.terminal:
                del table[old_id]
                self._resend.settled(old_id)

    def _became_live(self, side: str, inv: _Tracked) -> None:
        peer = inv.peer
        self._live.setdefault(peer, {})[(side, inv.id)] = inv
        self._recent.pop(peer, None)
        if peer not in self._watched:
            self._watched.add(peer)
            self._watch_changes.append(WatchPeer(peer))

    def _ended(self, side: str, inv: _Tracked) -> None:
        peer = inv.peer
        by_id = self._live.get(peer)
        if by_id is None or by_id.pop((side, inv.id), None) is None or by_id:
            return
        del self._live[peer]
        # Keep watching it for a while (the next call to it needs no subscribe).
        self._recent[peer] = None
        while len(self._recent) > self.config.keep_watching:
            gone, _ = self._recent.popitem(last=False)
            self._watched.discard(gone)
            self._presence.pop(gone, None)
            self._watch_changes.append(UnwatchPeer(gone))

    def _done(self, out: list[Output]) -> list[Output]:
        """Append the presence watches that changed. We watch every peer we have a live
        invitation with (to resend an Invite when a callee comes online, and to fail an
        invitation when its peer goes offline), and the ``keep_watching`` most recent
        others."""
        if self._watch_changes:
            out.extend(self._watch_changes)
            self._watch_changes = []
        return out

    def _local_for(self, call: str, invitation: LocalInvitation | str) -> LocalInvitation:
        inv_id = invitation.id if isinstance(invitation, LocalInvitation) else invitation
        inv = self.local.get(inv_id) if isinstance(inv_id, str) else None
        if inv is None:
            raise ApiCallError(
                API.INVALID_ARGUMENT,
                f"{call}: no outgoing invitation {inv_id!r}",
                call=call,
                invitation_id=inv_id if isinstance(inv_id, str) else None,
                problem="no outgoing invitation has that id",
            )
        return inv

    def _remote_for(self, call: str, invitation: RemoteInvitation | str) -> RemoteInvitation:
        inv_id = invitation.id if isinstance(invitation, RemoteInvitation) else invitation
        inv = self.remote.get(inv_id) if isinstance(inv_id, str) else None
        if inv is None:
            raise ApiCallError(
                API.INVALID_ARGUMENT,
                f"{call}: no incoming invitation {inv_id!r}",
                call=call,
                invitation_id=inv_id if isinstance(inv_id, str) else None,
                problem="no incoming invitation has that id",
            )
        return inv

    @staticmethod
    def _check_response(call: str, inv: RemoteInvitation, response: str) -> None:
        problem = None
        if not isinstance(response, str):
            problem = "the response must be text"
        elif len(response.encode("utf-8")) > f.MAX_RESPONSE_BYTES:
            problem = "the response is longer than 8 KB of UTF-8"
        if problem is not None:
            raise ApiCallError(
                API.INVALID_ARGUMENT,
                f"{call}: {problem}",
                call=call,
                invitation_id=inv.id,
                state=inv.state,
                problem=problem,
            )

    def _check_answerable(self, call: str, inv: RemoteInvitation) -> None:
        # SPEC §2: after the end (an accepted call included) ALREADY_END; accepted but not
        # yet confirmed, ALREADY_ACCEPT (for a refuse too: the accept is on its way).
        if inv.phase is CalleePhase.RINGING:
            return
        code = API.ALREADY_END if inv.terminal else API.ALREADY_ACCEPT
        raise self._refused(call, inv, code)

    @staticmethod
    def _call_ended(
        inv_id: str, state: LocalInvitationState | RemoteInvitationState | None
    ) -> ApiCallError:
        return ApiCallError(
            API.ALREADY_END,
            f"hangup cannot be done on invitation {inv_id}: its call ended",
            call="hangup",
            invitation_id=inv_id,
            state=state,
        )

    @staticmethod
    def _refused(
        call: str, inv: LocalInvitation | RemoteInvitation, code: InvitationApiCallError
    ) -> ApiCallError:
        return ApiCallError(
            code,
            f"{call} cannot be done on invitation {inv.id} in state {inv.state.name}",
            call=call,
            invitation_id=inv.id,
            state=inv.state,
        )
