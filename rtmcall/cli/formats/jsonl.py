"""JSON lines for pipe mode (SPEC §4): one object per event, keys in a fixed order.

Every invitation line carries ``event``, ``id``, ``caller``, ``callee``, ``state`` (the enum
NAME) and ``state_code`` (its number), then ``content``, ``channel_id`` and ``response``;
``error``/``error_code`` appear when there is an error to report (a failure, a refused
command). Names and numbers are exactly the SPEC tables' — the engine's IntEnums.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

from rtmcall.engine.codes import InvitationApiCallError, LoginError, PeerOnlineState
from rtmcall.engine.events import (
    InvitationEvent,
    InvitationInfo,
    LocalInvitationFailure,
    LocalInvitationRefused,
    RemoteInvitationFailure,
    RemoteInvitationRefused,
)

JsonObject = dict[str, Any]


def _enum(obj: JsonObject, key: str, value: IntEnum) -> None:
    obj[key] = value.name
    obj[f"{key}_code"] = int(value)


def invitation(event: str, info: InvitationInfo) -> JsonObject:
    """The common shape of every line about one invitation."""
    obj: JsonObject = {"event": event, "id": info.id, "caller": info.caller}
    obj["callee"] = info.callee
    _enum(obj, "state", info.state)
    obj["content"] = info.content
    obj["channel_id"] = info.channel_id
    obj["response"] = info.response
    if info.error != 0:
        _enum(obj, "error", info.error)
    return obj


def invitation_event(ev: InvitationEvent) -> JsonObject:
    """One of the ten invitation events."""
    obj = invitation(ev.name, ev.invitation)
    if isinstance(ev, LocalInvitationFailure | RemoteInvitationFailure):
        _enum(obj, "error", ev.error)  # the event's own error wins over the snapshot's
    elif isinstance(ev, LocalInvitationRefused | RemoteInvitationRefused):
        # SPEC §6: why it was refused, ``declined`` (a person) or ``busy``.
        obj["reason"] = ev.invitation.reason or getattr(ev, "reason", "") or "declined"
    return obj


def local_invitation_sent(info: InvitationInfo, peer_online: bool | None = None) -> JsonObject:
    """The answer to ``call``: the new invitation's id, at once, and ``peer_online``:
    whether the callee was online when it was sent (false: it rings only if the callee logs
    in within the no-ACK window; null: the server could not tell)."""
    obj = invitation("LocalInvitationSent", info)
    obj["peer_online"] = peer_online
    return obj


def api_call_error(
    code: InvitationApiCallError,
    message: str,
    *,
    command: str,
    info: InvitationInfo | None = None,
    peer: str | None = None,
) -> JsonObject:
    """A command the engine refused; nothing changed. ``info`` is the invitation it was about
    (when there is one), else ``peer`` names the callee of a ``call`` that was refused."""
    if info is not None:
        obj = invitation("ApiCallError", info)
    else:
        obj = {"event": "ApiCallError", "id": None, "caller": None, "callee": peer}
    _enum(obj, "error", code)
    obj["command"] = command
    obj["message"] = message
    return obj


def login_success(user: str, server: str) -> JsonObject:
    return {"event": "LoginSuccess", "user": user, "server": server}


def login_failure(user: str, server: str, reason: LoginError, message: str) -> JsonObject:
    obj: JsonObject = {"event": "LoginFailure", "user": user, "server": server}
    _enum(obj, "error", reason)
    obj["message"] = message
    return obj


def peers_online(
    states: Mapping[str, PeerOnlineState], event: str = "PeersOnlineStatus"
) -> JsonObject:
    """Answer to ``online`` (or a subscription's change, with its event name)."""
    return {
        "event": event,
        "peers": {peer: state.name for peer, state in states.items()},
        "peer_codes": {peer: int(state) for peer, state in states.items()},
    }


def connection_state(state: IntEnum, reason: IntEnum) -> JsonObject:
    obj: JsonObject = {"event": "ConnectionStateChanged"}
    _enum(obj, "state", state)
    _enum(obj, "reason", reason)
    return obj


def message_from_peer(peer: str, text: str) -> JsonObject:
    return {"event": "MessageFromPeer", "peer": peer, "text": text}


def token_will_expire(seconds: float) -> JsonObject:
    return {"event": "TokenPrivilegeWillExpire", "seconds": round(seconds, 3)}


def error(message: str, **extra: Any) -> JsonObject:
    """Anything else that went wrong: a bad command line, a lost connection."""
    return {"event": "Error", "message": message, **extra}


def dumps(obj: JsonObject) -> str:
    """One line of compact JSON; non-ASCII text stays readable."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
