"""The trio client SDK: :class:`RtmClient` (login, invitations, presence, peer messages).

::

    async with rtmcall.client.connect("ws://127.0.0.1:8765", "alice") as client:
        async with client.events() as events:
            await client.call("bob", content="hi")
            async for event in events:
                print(event.name)
"""

from rtmcall.engine.codes import CallEndReason
from rtmcall.engine.events import ApiCallError, CallEnded, CallStarted

from .client import RtmClient, connect
from .config import ClientConfig
from .errors import (
    ConnectFailed,
    InvalidArgument,
    LoginFailed,
    NotLoggedIn,
    RequestFailed,
    RtmError,
)
from .events import (
    ClientEvent,
    ConnectionStateChanged,
    MessageFromPeer,
    PeersOnlineStatusChanged,
    TokenPrivilegeWillExpire,
)

__all__ = [
    "ApiCallError",
    "CallEndReason",
    "CallEnded",
    "CallStarted",
    "ClientConfig",
    "ClientEvent",
    "ConnectFailed",
    "ConnectionStateChanged",
    "InvalidArgument",
    "LoginFailed",
    "MessageFromPeer",
    "NotLoggedIn",
    "PeersOnlineStatusChanged",
    "RequestFailed",
    "RtmClient",
    "RtmError",
    "TokenPrivilegeWillExpire",
    "connect",
]
