"""Sans-IO core: codes, wire frames, invitation state machines. Never imports trio."""

from .call import Call, CallPhase
from .codes import (
    CallEndReason,
    ConnectionChangeReason,
    ConnectionState,
    InvitationApiCallError,
    LocalInvitationError,
    LocalInvitationState,
    LoginError,
    PeerMessageError,
    PeerOnlineState,
    RemoteInvitationError,
    RemoteInvitationState,
)
from .engine import CallEngine, EngineConfig, LocalInvitation, RemoteInvitation
from .events import *  # noqa: F403
from .events import __all__ as _events_all

__all__ = [
    "Call",
    "CallEndReason",
    "CallEngine",
    "CallPhase",
    "ConnectionChangeReason",
    "ConnectionState",
    "EngineConfig",
    "InvitationApiCallError",
    "LocalInvitation",
    "LocalInvitationError",
    "LocalInvitationState",
    "LoginError",
    "PeerMessageError",
    "PeerOnlineState",
    "RemoteInvitation",
    "RemoteInvitationError",
    "RemoteInvitationState",
    *_events_all,
]
