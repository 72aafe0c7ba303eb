"""Agora's enums, with Agora's numeric values (SPEC §2 and §3).

The numbers appear in JSON output and in the API, so they must never change.
"""

from __future__ import annotations

from enum import IntEnum


class LocalInvitationState(IntEnum):
    """State of an invitation on the caller's side."""

    #: Created, not sent yet.
    IDLE = 0
    #: Sent; no ACK from the callee yet.
    SENT_TO_REMOTE = 1
    #: The callee's client ACKed: it is ringing there.
    RECEIVED_BY_REMOTE = 2
    #: Terminal: the callee accepted (and we confirmed).
    ACCEPTED_BY_REMOTE = 3
    #: Terminal: the callee refused.
    REFUSED_BY_REMOTE = 4
    #: Terminal: we canceled.
    CANCELED = 5
    #: Terminal: see the LocalInvitationError.
    FAILURE = 6


class RemoteInvitationState(IntEnum):
    """State of an invitation on the callee's side."""

    IDLE = 0
    #: Ringing here.
    INVITATION_RECEIVED = 1
    #: We accepted; waiting for the caller's confirm.
    ACCEPT_SENT_TO_LOCAL = 2
    #: Terminal: we refused.
    REFUSED = 3
    #: Terminal: the caller confirmed our accept.
    ACCEPTED = 4
    #: Terminal: the caller canceled.
    CANCELED = 5
    #: Terminal: see the RemoteInvitationError.
    FAILURE = 6


class LocalInvitationError(IntEnum):
    OK = 0
    PEER_OFFLINE = 1
    PEER_NO_RESPONSE = 2
    INVITATION_EXPIRE = 3
    NOT_LOGGEDIN = 4


class RemoteInvitationError(IntEnum):
    OK = 0
    PEER_OFFLINE = 1
    ACCEPT_FAILURE = 2
    INVITATION_EXPIRE = 3


class InvitationApiCallError(IntEnum):
    OK = 0
    INVALID_ARGUMENT = 1
    NOT_STARTED = 2
    ALREADY_END = 3
    ALREADY_ACCEPT = 4
    ALREADY_SENT = 5


class CallEndReason(IntEnum):
    """Why a call ended (SPEC §6, an extension: Agora 1.x stops at the accept)."""

    #: We hung up.
    HANGUP_LOCAL = 1
    #: The peer hung up.
    HANGUP_REMOTE = 2
    #: The peer went offline (beyond its resume window) or its side of the call failed.
    PEER_OFFLINE = 3
    #: Our own session ended (logout, kicked, gave up reconnecting).
    SESSION_LOST = 4


class ConnectionState(IntEnum):
    DISCONNECTED = 1
    CONNECTING = 2
    CONNECTED = 3
    RECONNECTING = 4
    ABORTED = 5


class ConnectionChangeReason(IntEnum):
    LOGIN = 1
    LOGIN_SUCCESS = 2
    LOGIN_FAILURE = 3
    LOGIN_TIMEOUT = 4
    INTERRUPTED = 5
    LOGOUT = 6
    BANNED_BY_SERVER = 7
    REMOTE_LOGIN = 8


class LoginError(IntEnum):
    """Agora's LOGIN_ERR codes (the reason a login fails)."""

    OK = 0
    UNKNOWN = 1
    REJECTED = 2
    INVALID_ARGUMENT = 3
    INVALID_APP_ID = 4
    INVALID_TOKEN = 5
    TOKEN_EXPIRED = 6
    NOT_AUTHORIZED = 7
    ALREADY_LOGGED_IN = 8
    TIMEOUT = 9
    TOO_OFTEN = 10
    NOT_INITIALIZED = 101


class PeerOnlineState(IntEnum):
    ONLINE = 0
    UNREACHABLE = 1
    OFFLINE = 2


class PeerMessageError(IntEnum):
    """Agora's PEER_MESSAGE_ERR codes: the delivery result of a peer message."""

    OK = 0
    FAILURE = 1
    SENT_TIMEOUT = 2
    PEER_UNREACHABLE = 3
    CACHED_BY_SERVER = 4
    TOO_OFTEN = 5
    INVALID_USERID = 6
    INVALID_MESSAGE = 7
    NOT_LOGGEDIN = 102


LOCAL_TERMINAL = frozenset(
    {
        LocalInvitationState.ACCEPTED_BY_REMOTE,
        LocalInvitationState.REFUSED_BY_REMOTE,
        LocalInvitationState.CANCELED,
        LocalInvitationState.FAILURE,
    }
)
REMOTE_TERMINAL = frozenset(
    {
        RemoteInvitationState.REFUSED,
        RemoteInvitationState.ACCEPTED,
        RemoteInvitationState.CANCELED,
        RemoteInvitationState.FAILURE,
    }
)

#: The terminal pairs (caller state, callee state) that agree (SPEC §2 "Agreement"): when
#: both ends of an invitation have ended, their pair is one of these.
AGREEING_STATES = frozenset(
    {
        (LocalInvitationState.ACCEPTED_BY_REMOTE, RemoteInvitationState.ACCEPTED),
        (LocalInvitationState.REFUSED_BY_REMOTE, RemoteInvitationState.REFUSED),
        (LocalInvitationState.CANCELED, RemoteInvitationState.CANCELED),
        (LocalInvitationState.FAILURE, RemoteInvitationState.FAILURE),
    }
)
