"""Readable one-line descriptions of events, for pipe mode without ``--json``, the one-shot
commands and the interactive console's log. Plain text (no markup) so it can go anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

from rtmcall.engine.codes import PeerOnlineState
from rtmcall.engine.events import (
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
from .states import error_words


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


def local_invitation_sent(
    info: InvitationInfo, peer_online: bool | None = None, within: float | None = None
) -> str:
    line = f"call {short_id(info.id)} to {info.callee}: sent{_extras(info)}"
    if peer_online is False:
        window = f" within {within:g} s" if within is not None else ""
        line += f"; {info.callee} is offline — it rings if {info.callee} logs in{window}"
    return line


def api_call_error(message: str, code_name: str, command: str) -> str:
    return f"{command}: refused, {message} [{code_name}]"


def peers_online(states: Mapping[str, PeerOnlineState]) -> str:
    return ", ".join(f"{peer} is {state.name.lower()}" for peer, state in states.items())
