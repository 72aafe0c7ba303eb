"""Invitation states in words and colours, shared by the table, the text lines and the demo.

Terminal states must be told apart at a glance — accepted, refused, canceled and every
failure reason — which is what users of other CLI softphones missed most.
"""

from __future__ import annotations

from rtmcall.engine.codes import (
    LocalInvitationError,
    LocalInvitationState,
    RemoteInvitationError,
    RemoteInvitationState,
)

L = LocalInvitationState
R = RemoteInvitationState

_LOCAL: dict[LocalInvitationState, tuple[str, str]] = {
    L.IDLE: ("created", "dim"),
    L.SENT_TO_REMOTE: ("calling…", "cyan"),
    L.RECEIVED_BY_REMOTE: ("ringing", "bold cyan"),
    L.ACCEPTED_BY_REMOTE: ("accepted", "bold green"),
    L.REFUSED_BY_REMOTE: ("refused", "bold magenta"),
    L.CANCELED: ("canceled", "yellow"),
    L.FAILURE: ("failed", "bold red"),
}
_REMOTE: dict[RemoteInvitationState, tuple[str, str]] = {
    R.IDLE: ("new", "dim"),
    R.INVITATION_RECEIVED: ("RINGING", "bold blink black on yellow"),
    R.ACCEPT_SENT_TO_LOCAL: ("accepting…", "green"),
    R.REFUSED: ("refused", "bold magenta"),
    R.ACCEPTED: ("accepted", "bold green"),
    R.CANCELED: ("canceled by caller", "yellow"),
    R.FAILURE: ("failed", "bold red"),
}
_LOCAL_ERRORS: dict[LocalInvitationError, str] = {
    LocalInvitationError.OK: "",
    LocalInvitationError.PEER_OFFLINE: "peer offline",
    LocalInvitationError.PEER_NO_RESPONSE: "no response",
    LocalInvitationError.INVITATION_EXPIRE: "expired",
    # Agora's NOT_LOGGEDIN: the session was lost under the call (a server restart, a drop
    # longer than the resume window) or the call was sent while it was; never a logout.
    LocalInvitationError.NOT_LOGGEDIN: "connection lost",
}
_REMOTE_ERRORS: dict[RemoteInvitationError, str] = {
    RemoteInvitationError.OK: "",
    RemoteInvitationError.PEER_OFFLINE: "caller offline",
    RemoteInvitationError.ACCEPT_FAILURE: "accept not confirmed",
    RemoteInvitationError.INVITATION_EXPIRE: "expired",
}


def error_words(error: LocalInvitationError | RemoteInvitationError) -> str:
    if isinstance(error, LocalInvitationError):
        return _LOCAL_ERRORS.get(error, error.name)
    return _REMOTE_ERRORS.get(error, error.name)


def describe(
    state: LocalInvitationState | RemoteInvitationState,
    error: LocalInvitationError | RemoteInvitationError,
) -> tuple[str, str]:
    """(words, rich style) for a state; a failure names its reason."""
    if isinstance(state, LocalInvitationState):
        words, style = _LOCAL[state]
    else:
        words, style = _REMOTE[state]
    if state.name == "FAILURE":
        reason = error_words(error)
        if reason:
            words = f"failed: {reason}"
    return words, style


def is_ringing_here(state: LocalInvitationState | RemoteInvitationState) -> bool:
    """An incoming invitation waiting for us to answer: the row that must not be missed."""
    return state is R.INVITATION_RECEIVED
