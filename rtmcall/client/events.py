"""Client events beyond the ten invitation events of :mod:`rtmcall.engine.events`.

Agora's RtmClient callbacks, without ``on``: connection state changes, presence changes of
subscribed peers, plain peer messages, and the token-expiry warning. Frozen, slotted
dataclasses with a ``name`` like the engine's events, so one ``match`` handles them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from rtmcall.engine.codes import ConnectionChangeReason, ConnectionState, PeerOnlineState
from rtmcall.engine.events import CallEvent, InvitationEvent


@dataclass(frozen=True, slots=True)
class _ClientEvent:
    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True)
class ConnectionStateChanged(_ClientEvent):
    """The session's connection state changed (Agora's onConnectionStateChanged)."""

    state: ConnectionState
    reason: ConnectionChangeReason


@dataclass(frozen=True, slots=True)
class PeersOnlineStatusChanged(_ClientEvent):
    """Online states of peers the application subscribed to: once right after
    :meth:`~rtmcall.client.RtmClient.subscribe_peers_online_status`, then on every change."""

    states: dict[str, PeerOnlineState]


@dataclass(frozen=True, slots=True)
class MessageFromPeer(_ClientEvent):
    """A plain peer message (not part of the invitation protocol)."""

    peer: str
    text: str


@dataclass(frozen=True, slots=True)
class TokenPrivilegeWillExpire(_ClientEvent):
    """The login token expires in ``seconds``: call ``renew_token`` before then."""

    seconds: float


ClientEvent: TypeAlias = (
    InvitationEvent
    | CallEvent
    | ConnectionStateChanged
    | PeersOnlineStatusChanged
    | MessageFromPeer
    | TokenPrivilegeWillExpire
)

__all__ = [
    "ClientEvent",
    "ConnectionStateChanged",
    "MessageFromPeer",
    "PeersOnlineStatusChanged",
    "TokenPrivilegeWillExpire",
]
