"""Readable one-line descriptions of events, for pipe mode without ``--json``, the one-shot
commands and the interactive console's log. Plain text (no markup) so it can go anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

from rtmcall.engine.codes import (
    LOCAL_TERMINAL,
    ConnectionChangeReason,
    ConnectionState,
    InvitationApiCallError,
    PeerOnlineState,
)
from rtmcall.engine.events import (
    ApiCallError,
    InvitationEvent,
    InvitationInfo,
    LocalInvitationAccepted,
    LocalInvitationCanceled,
    LocalInvitationFailure,
    LocalInvitationReceivedByPeer,
    LocalInvitationRefused,
    RemoteInvitationAccepted,
    RemoteInvitationCanceled,
    RemoteInvitationFailure,
    RemoteInvitationReceived,
    RemoteInvitationRefused,
)

from .rows import short_id
from .states import describe, error_words

API = InvitationApiCallError


def _extras(info: InvitationInfo, *, response: bool = False) -> str:
    parts = []
    if info.content:
        parts.append(f"content {info.content!r}")
    if info.channel_id:
        parts.append(f"channel {info.channel_id!r}")
    if response and info.response:
        parts.append(f"response {info.response!r}")
    return f" ({', '.join(parts)})" if parts else ""


def invitation_event(ev: InvitationEvent, *, hints: bool = False) -> str:
    """One line for ``ev``; ``hints`` adds what to type (only where someone types)."""
    info = ev.invitation
    sid = short_id(info.id)
    out = f"call {sid} to {info.callee}"
    inc = f"incoming call {sid} from {info.caller}"
    match ev:
        case LocalInvitationReceivedByPeer():
            return f"{out}: ringing at {info.callee}"
        case LocalInvitationAccepted():
            return f"{out}: ACCEPTED{_extras(info, response=True)}"
        case LocalInvitationRefused():
            return f"{out}: REFUSED{_extras(info, response=True)}"
        case LocalInvitationCanceled():
            return f"{out}: canceled"
        case LocalInvitationFailure(error=err):
            return f"{out}: FAILED, {error_words(err)} ({err.name})"
        case RemoteInvitationReceived():
            hint = ", type accept or refuse" if hints else ""
            return f"{inc}{_extras(info)}: RINGING{hint}"
        case RemoteInvitationAccepted():
            return f"{inc}: accepted, the call is on{_extras(info, response=True)}"
        case RemoteInvitationRefused():
            return f"{inc}: refused{_extras(info, response=True)}"
        case RemoteInvitationCanceled():
            return f"{inc}: canceled by {info.caller}"
        case RemoteInvitationFailure(error=err):
            return f"{inc}: FAILED, {error_words(err)} ({err.name})"
    return f"{ev.name} {sid}"


#: Connection states in words (ConnectionState names).
_CONNECTION_WORDS = {
    "CONNECTING": "connecting to the server",
    "CONNECTED": "connected",
    "RECONNECTING": "connection lost, reconnecting",
    "DISCONNECTED": "logged out",
    "ABORTED": "the session ended",
}


def connection_state(state: ConnectionState, reason: ConnectionChangeReason) -> str:
    """``connection lost, reconnecting [RECONNECTING, INTERRUPTED]``."""
    words = _CONNECTION_WORDS.get(state.name, state.name.lower())
    return f"{words} [{state.name}, {reason.name}]"


def invitation_line(info: InvitationInfo) -> str:
    """One invitation for ``list``: ``8cc51f  → out  bob  failed: peer offline (content
    'hi') [FAILURE, PEER_OFFLINE]``."""
    arrow = "→ out" if info.direction == "out" else "← in "
    words, _ = describe(info.state, info.error)
    codes = info.state.name + (f", {info.error.name}" if info.error else "")
    extras = _extras(info, response=True)
    return f"{short_id(info.id)}  {arrow}  {info.peer}  {words}{extras} [{codes}]"


def local_invitation_sent(
    info: InvitationInfo, peer_online: bool | None = None, within: float | None = None
) -> str:
    line = f"call {short_id(info.id)} to {info.callee}: sent{_extras(info)}"
    if peer_online is False:
        window = f" within {within:g} s" if within is not None else ""
        line += f"; {info.callee} is offline — it rings if {info.callee} logs in{window}"
    return line


_ALREADY = {
    API.ALREADY_SENT: "that call was already sent",
    API.NOT_STARTED: "that call was not sent yet",
}


def api_call_error(
    exc: ApiCallError,
    command: str,
    info: InvitationInfo | None = None,
    peer: str | None = None,
) -> str:
    """A refused command in the user's words: ``cancel 8cc51f: that call already ended
    [ALREADY_END]`` — the command, the 6-character id the table shows (or the peer of a
    refused ``call``), what is wrong, Agora's code in brackets. (The engine's precise
    message stays in JSON's ``message``.)"""
    code = exc.code
    inv_id = info.id if info is not None else exc.invitation_id
    if command == "call" or inv_id is None:
        subject = f"{command} {peer}" if peer else command
    else:
        subject = f"{command} {short_id(inv_id)}"
    if code is API.INVALID_ARGUMENT:
        words = _invalid_argument(exc, command, info)
    elif code is API.ALREADY_ACCEPT:
        words = "you already accepted that call"
        if command == "refuse":
            words += "; it can no longer be refused"
    elif code is API.ALREADY_END:
        canceling = (
            info is not None and info.direction == "out" and info.state not in LOCAL_TERMINAL
        )
        words = "you already canceled that call" if canceling else "that call already ended"
    else:
        words = _ALREADY.get(code, exc.message)
    return f"{subject}: {words} [{code.name}]"


def _invalid_argument(exc: ApiCallError, command: str, info: InvitationInfo | None) -> str:
    if info is not None and command in ("accept", "refuse") and info.direction == "out":
        return f"only the callee can {command}; this is your call to {info.callee}"
    if info is not None and command == "cancel" and info.direction == "in":
        return f"only the caller can cancel; this call is from {info.caller} (refuse it)"
    if info is None and command in ("accept", "refuse", "cancel"):
        return "no call has that id (type list to see them)"
    return exc.problem or exc.message


#: A refused request (RequestFailed.code) in words.
_REQUEST_WORDS = {
    "too_often": "too many requests; wait a moment and try again",
    "timeout": "the server did not answer in time",
    "unavailable": "the server cannot answer that now; try again",
    "forbidden": "the server does not allow that",
    "invalid_user": "not a valid user id",
}


def rtm_error(exc: Exception) -> str:
    """A client error (:class:`rtmcall.client.errors.RtmError`) in the user's words."""
    from rtmcall.client.errors import InvalidArgument, NotLoggedIn, RequestFailed

    if isinstance(exc, InvalidArgument):
        return exc.problem
    if isinstance(exc, NotLoggedIn):
        return "not connected to the server right now"
    if isinstance(exc, RequestFailed):
        words = _REQUEST_WORDS.get(exc.code, exc.message or exc.code)
        return f"{words} [{exc.code}]"
    return str(exc)


def peers_online(states: Mapping[str, PeerOnlineState]) -> str:
    return ", ".join(f"{peer} is {state.name.lower()}" for peer, state in states.items())
