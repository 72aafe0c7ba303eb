"""What the engine hands back: invitation events (Agora's callbacks) and effects
(frames to send, timers to arm or disarm, peers whose presence to watch).

Every engine call returns a ``list[Output]``; the driver performs the effects in order and
passes the events on to the application.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .codes import (
    CallEndReason,
    InvitationApiCallError,
    LocalInvitationError,
    LocalInvitationState,
    RemoteInvitationError,
    RemoteInvitationState,
)
from .frames import PeerMsg

# --- snapshots --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalInvitationInfo:
    """An outgoing invitation as it was when the event happened."""

    id: str
    caller: str
    callee: str
    content: str
    channel_id: str
    response: str
    state: LocalInvitationState
    error: LocalInvitationError
    #: The caller's own lifetime for this invitation (None: the default).
    lifetime: float | None
    #: Why it was refused (``declined``, ``busy``); "" unless REFUSED_BY_REMOTE.
    reason: str = ""

    direction = "out"

    @property
    def peer(self) -> str:
        return self.callee


@dataclass(frozen=True, slots=True)
class RemoteInvitationInfo:
    """An incoming invitation as it was when the event happened."""

    id: str
    caller: str
    callee: str
    content: str
    channel_id: str
    response: str
    state: RemoteInvitationState
    error: RemoteInvitationError
    lifetime: float | None
    #: Why we refused it (``declined``, ``busy``); "" unless REFUSED.
    reason: str = ""

    direction = "in"

    @property
    def peer(self) -> str:
        return self.caller


InvitationInfo: TypeAlias = LocalInvitationInfo | RemoteInvitationInfo

# --- events (Agora's callback names without "on") ---------------------------------------


@dataclass(frozen=True, slots=True)
class InvitationEvent:
    invitation: InvitationInfo

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True)
class LocalInvitationReceivedByPeer(InvitationEvent):
    invitation: LocalInvitationInfo


@dataclass(frozen=True, slots=True)
class LocalInvitationAccepted(InvitationEvent):
    invitation: LocalInvitationInfo
    response: str


@dataclass(frozen=True, slots=True)
class LocalInvitationRefused(InvitationEvent):
    invitation: LocalInvitationInfo
    response: str
    #: ``declined`` (a person refused) or ``busy`` (SPEC §6).
    reason: str = "declined"


@dataclass(frozen=True, slots=True)
class LocalInvitationCanceled(InvitationEvent):
    invitation: LocalInvitationInfo


@dataclass(frozen=True, slots=True)
class LocalInvitationFailure(InvitationEvent):
    invitation: LocalInvitationInfo
    error: LocalInvitationError


@dataclass(frozen=True, slots=True)
class RemoteInvitationReceived(InvitationEvent):
    invitation: RemoteInvitationInfo


@dataclass(frozen=True, slots=True)
class RemoteInvitationAccepted(InvitationEvent):
    invitation: RemoteInvitationInfo


@dataclass(frozen=True, slots=True)
class RemoteInvitationRefused(InvitationEvent):
    invitation: RemoteInvitationInfo


@dataclass(frozen=True, slots=True)
class RemoteInvitationCanceled(InvitationEvent):
    invitation: RemoteInvitationInfo


@dataclass(frozen=True, slots=True)
class RemoteInvitationFailure(InvitationEvent):
    invitation: RemoteInvitationInfo
    error: RemoteInvitationError


# --- calls (SPEC §6, an extension) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallInfo:
    """A call (an accepted invitation, until it is hung up), as it was at the event."""

    #: The invitation's id.
    id: str
    caller: str
    callee: str
    #: ``out``: we were the caller; ``in``: the callee.
    direction: str
    #: Set once it ended.
    reason: CallEndReason | None = None

    @property
    def peer(self) -> str:
        return self.callee if self.direction == "out" else self.caller


@dataclass(frozen=True, slots=True)
class CallEvent:
    call: CallInfo

    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True)
class CallStarted(CallEvent):
    """The invitation was accepted (ACCEPTED_BY_REMOTE / ACCEPTED): the call is on."""


@dataclass(frozen=True, slots=True)
class CallEnded(CallEvent):
    """The call ended, on this side, for ``reason``. ``duration``: seconds since it started
    (the engine has no clock: the SDK's driver fills it in from trio's clock)."""

    reason: CallEndReason
    duration: float = 0.0


# --- effects ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendPeer:
    """Send ``msg`` to ``to`` as a peer message. Report the server's delivery result back
    with ``engine.delivery_result(ref, code)``."""

    to: str
    msg: PeerMsg
    ref: int


#: Opaque, hashable timer name: (kind, invitation key).
TimerKey: TypeAlias = tuple[str, str]


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Arm (or re-arm) ``key`` to fire ``seconds`` from now: then call
    ``engine.timer_fired(key)``."""

    key: TimerKey
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    key: TimerKey


@dataclass(frozen=True, slots=True)
class WatchPeer:
    """Subscribe to ``peer``'s presence and report changes with ``engine.peer_state``."""

    peer: str


@dataclass(frozen=True, slots=True)
class UnwatchPeer:
    peer: str


Effect: TypeAlias = SendPeer | StartTimer | CancelTimer | WatchPeer | UnwatchPeer
Output: TypeAlias = InvitationEvent | CallEvent | Effect


class ApiCallError(Exception):
    """An API call was refused; nothing changed.

    Attributes:
      code: the InvitationApiCallError.
      message: what was refused and why, precisely (names the call, the invitation id and
        its state).
      call: the API call refused (``send``, ``cancel``, ``accept``, ``refuse``,
        ``create_local_invitation``).
      invitation_id: the invitation it was about (None for a refused create).
      state: the invitation's state then (None when there is no such invitation).
      problem: for INVALID_ARGUMENT, what is wrong with the argument, in words.
    """

    def __init__(
        self,
        code: InvitationApiCallError,
        message: str,
        *,
        call: str | None = None,
        invitation_id: str | None = None,
        state: LocalInvitationState | RemoteInvitationState | None = None,
        problem: str | None = None,
    ) -> None:
        super().__init__(f"{message} ({code.name})")
        self.code = code
        self.message = message
        self.call = call
        self.invitation_id = invitation_id
        self.state = state
        self.problem = problem


__all__ = [
    "ApiCallError",
    "CallEnded",
    "CallEvent",
    "CallInfo",
    "CallStarted",
    "CancelTimer",
    "Effect",
    "InvitationEvent",
    "InvitationInfo",
    "LocalInvitationAccepted",
    "LocalInvitationCanceled",
    "LocalInvitationFailure",
    "LocalInvitationInfo",
    "LocalInvitationReceivedByPeer",
    "LocalInvitationRefused",
    "Output",
    "RemoteInvitationAccepted",
    "RemoteInvitationCanceled",
    "RemoteInvitationFailure",
    "RemoteInvitationInfo",
    "RemoteInvitationReceived",
    "RemoteInvitationRefused",
    "SendPeer",
    "StartTimer",
    "TimerKey",
    "UnwatchPeer",
    "WatchPeer",
]
