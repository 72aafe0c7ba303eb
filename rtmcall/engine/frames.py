"""The wire format: every frame that crosses a WebSocket, as msgspec structs.

Three tagged unions:

* :data:`PeerMsg` (tag field ``"k"``): the invitation protocol itself. These are peer
  messages: a client puts one in a :class:`Send`, the server checks it and hands it to the
  peer inside a :class:`Deliver`, stamped with the sender taken from the session.
* :data:`ClientFrame` (tag field ``"t"``): what a client may send to the server.
* :data:`ServerFrame` (tag field ``"t"``): what the server sends to a client.

Decoding is strict (unknown fields, wrong types and missing fields are errors) and the
structural limits are in the types; the limits msgspec cannot express (UTF-8 byte lengths,
the user-id alphabet) are checked by :func:`peer_msg_problem` and :func:`user_id_problem`.
Nothing here does I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

# --- limits (SPEC §2) -------------------------------------------------------------------

#: Invitation content, in bytes of UTF-8.
MAX_CONTENT_BYTES = 8 * 1024
#: Accept/refuse response, in bytes of UTF-8.
MAX_RESPONSE_BYTES = 8 * 1024
#: Channel id, in bytes of UTF-8.
MAX_CHANNEL_BYTES = 64
#: User id, in bytes (the alphabet is ASCII).
MAX_USER_ID_BYTES = 64
#: A whole peer message, encoded.
MAX_PEER_MESSAGE_BYTES = 32 * 1024
#: A whole WebSocket frame; the server closes with 1009 above this.
MAX_FRAME_BYTES = 64 * 1024
#: An invitation's own lifetime may not exceed one day.
MAX_LIFETIME = 24 * 3600.0
#: Most users in one presence query or subscription frame.
MAX_PEERS_PER_QUERY = 256

_USER_ID_RE = re.compile(r"[a-zA-Z0-9 !#$%&()+\-:;<=.>?@\[\]^_{}|~,]{1,64}")
_INVITATION_ID_RE = re.compile(r"[A-Za-z0-9_\-]{1,64}")

UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_USER_ID_BYTES)]
InvitationId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
RequestId = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
# Character bounds are a cheap first filter; byte bounds are checked afterwards.
Content = Annotated[str, msgspec.Meta(max_length=MAX_CONTENT_BYTES)]
Response = Annotated[str, msgspec.Meta(max_length=MAX_RESPONSE_BYTES)]
Channel = Annotated[str, msgspec.Meta(max_length=MAX_CHANNEL_BYTES)]
Lifetime = Annotated[float, msgspec.Meta(gt=0, le=MAX_LIFETIME)]
TokenStr = Annotated[str, msgspec.Meta(max_length=4096)]
UserList = Annotated[list[UserId], msgspec.Meta(max_length=MAX_PEERS_PER_QUERY)]


def user_id_problem(user: str) -> str | None:
    """Why ``user`` is not a valid user id, or None when it is (SPEC §2 "Limits")."""
    if not isinstance(user, str) or not user:
        return "user id must be 1-64 characters"
    if len(user.encode("utf-8")) > MAX_USER_ID_BYTES:
        return "user id is longer than 64 bytes"
    if not _USER_ID_RE.fullmatch(user):
        return (
            f"user id {user!r} has characters outside a-z, A-Z, 0-9, space and "
            '"!#$%&()+-:;<=.>?@[]^_{}|~,"'
        )
    if user == "null":
        return "user id may not be 'null'"
    if user != user.strip(" "):
        return "user id may not start or end with a space"
    return None


def invitation_id_ok(inv_id: str) -> bool:
    return bool(_INVITATION_ID_RE.fullmatch(inv_id))


class _Msg(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag_field="k"
):
    pass


# --- peer messages: the invitation protocol ------------------------------------------------
# Caller -> callee: invite, confirm, cancel, end.  Callee -> caller: ack, accept, refuse,
# cancel_ack, end.  See rtmcall/engine/invitation.py for who may send what, and when.


class Invite(_Msg, tag="invite"):
    id: InvitationId
    content: Content = ""
    channel: Channel = ""
    #: The caller's chosen lifetime for the ringing phase (seconds); None: the callee's default.
    lifetime: Lifetime | None = None


class Ack(_Msg, tag="ack"):
    """Automatic reply of the callee's client on receiving an Invite: it rings here."""

    id: InvitationId


class Accept(_Msg, tag="accept"):
    id: InvitationId
    response: Response = ""


class Confirm(_Msg, tag="confirm"):
    """Third leg of the accept handshake: the caller confirms the callee's accept."""

    id: InvitationId


#: Why a callee refused (SPEC §6, an extension): a person said no, or the phone was busy
#: (``--when-busy refuse``, do-not-disturb). Absent on the wire: declined.
RefuseReason = Literal["declined", "busy"]


class Refuse(_Msg, tag="refuse"):
    id: InvitationId
    response: Response = ""
    reason: RefuseReason = "declined"


class Cancel(_Msg, tag="cancel"):
    id: InvitationId


class CancelAck(_Msg, tag="cancel_ack"):
    """The callee took the caller's cancel: it is CANCELED there too."""

    id: InvitationId


#: Why an invitation ended in FAILURE, in words both sides understand.
EndReason = Literal["expire", "no_response", "offline", "accept_failure"]


class End(_Msg, tag="end"):
    """The sender's side of the invitation ended in FAILURE; the receiver should follow."""

    id: InvitationId
    reason: EndReason


# --- peer messages of a call (SPEC §6, an extension beyond Agora 1.x) ----------------------
# Once an invitation is accepted both sides hold a call with the invitation's id. Either side
# ends it with Hangup; the other answers HangupAck (the hanger-up resends its Hangup a few
# times until then, for a frame lost beyond the server's resume guarantees). See
# rtmcall/engine/call.py.


class Hangup(_Msg, tag="hangup"):
    """The sender hung up the call ``id``."""

    id: InvitationId


class HangupAck(_Msg, tag="hangup_ack"):
    """The sender took the peer's Hangup: the call is over on both sides."""

    id: InvitationId


class Text(_Msg, tag="text"):
    """A plain peer message (Agora's sendMessageToPeer), not part of the invitation protocol."""

    text: Annotated[str, msgspec.Meta(max_length=MAX_PEER_MESSAGE_BYTES)]


PeerMsg = (
    Invite | Ack | Accept | Confirm | Refuse | Cancel | CancelAck | End | Hangup | HangupAck | Text
)
INVITATION_MSGS = (Invite, Ack, Accept, Confirm, Refuse, Cancel, CancelAck, End)
CALL_MSGS = (Hangup, HangupAck)


def peer_msg_problem(msg: PeerMsg) -> str | None:
    """Limits msgspec cannot express: UTF-8 byte lengths. None when ``msg`` is fine."""
    if isinstance(msg, Invite):
        if len(msg.content.encode("utf-8")) > MAX_CONTENT_BYTES:
            return "content is longer than 8 KB of UTF-8"
        if len(msg.channel.encode("utf-8")) > MAX_CHANNEL_BYTES:
            return "channel_id is longer than 64 bytes of UTF-8"
    elif isinstance(msg, Accept | Refuse):
        if len(msg.response.encode("utf-8")) > MAX_RESPONSE_BYTES:
            return "response is longer than 8 KB of UTF-8"
    elif isinstance(msg, Text):
        if len(msg.text.encode("utf-8")) > MAX_PEER_MESSAGE_BYTES:
            return "peer message is longer than 32 KB of UTF-8"
    return None


# --- client -> server -------------------------------------------------------------------


class _CFrame(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag_field="t"
):
    pass


class Login(_CFrame, tag="login"):
    user: UserId
    #: A JWT (HS256) naming ``user``; required when the server has a secret.
    token: TokenStr | None = None
    #: The session id from an earlier LoginOk, to resume that session after a drop.
    resume: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    #: With ``resume``: the highest Deliver ``seq`` received; later ones are sent again.
    ack: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Send(_CFrame, tag="send"):
    """Send a peer message. The server answers with a Result carrying the same ``rid``."""

    rid: RequestId
    to: UserId
    msg: PeerMsg
    #: Answer only when it was not delivered (or was refused). A delivered (or cached)
    #: quiet Send gets no Result: ServerPong.rid acknowledges them in bulk. Halves the
    #: frames of a call setup; the SDK sends its invitation messages quietly.
    quiet: bool = False
    #: As ``Ping.ack``: the highest Deliver ``seq`` received so far. Carried on every Send,
    #: so a client whose frames flow both ways needs no Ping to acknowledge.
    ack: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Query(_CFrame, tag="query"):
    """Ask for peers' online state; answered by a Presence with the same ``rid``."""

    rid: RequestId
    users: UserList


class Subscribe(_CFrame, tag="sub"):
    """Be told whenever these peers' online state changes (and once, now)."""

    rid: RequestId
    users: UserList


class Unsubscribe(_CFrame, tag="unsub"):
    rid: RequestId
    users: UserList


class Renew(_CFrame, tag="renew"):
    """Replace the session's token before it expires."""

    rid: RequestId
    token: TokenStr


class Ping(_CFrame, tag="ping"):
    #: The highest Deliver ``seq`` received so far: the server may forget those frames.
    ack: Annotated[int, msgspec.Meta(ge=0)] | None = None
    #: Nothing is in progress on this side: the next Ping comes within
    #: ``LoginOk.standby_heartbeat`` (not ``heartbeat``), and the server waits that much
    #: longer before it calls the connection dead. False: within ``heartbeat``.
    standby: bool = False


#: A client's WebSocket ping (RFC 6455 control frame) whose payload starts with this says
#: what ``Ping(standby=True)`` says, with nothing to acknowledge: the SDK's standby
#: heartbeat, answered by the server's WebSocket layer (the pong) without waking the
#: session. Any other WebSocket ping only shows the client is alive.
STANDBY_PING = b"standby"


class Pong(_CFrame, tag="pong"):
    pass


class Logout(_CFrame, tag="logout"):
    pass


ClientFrame = Login | Send | Query | Subscribe | Unsubscribe | Renew | Ping | Pong | Logout


# --- server -> client -------------------------------------------------------------------


class _SFrame(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag_field="t"
):
    pass


class LoginOk(_SFrame, tag="login_ok"):
    user: str
    #: Opaque id to resume this session after a dropped connection.
    session: str
    resumed: bool = False
    #: The client should send something (a Ping at least) this often, in seconds, while
    #: something is in progress (an invitation, a request, messages to acknowledge).
    heartbeat: float = 3.0
    #: ... and this often when nothing is (a WebSocket ping with the ``STANDBY_PING``
    #: payload, or ``Ping(standby=True)``).
    standby_heartbeat: float = 30.0
    #: A dropped session is kept this long for a resume, in seconds.
    resume_window: float = 10.0
    #: Seconds until the token expires, when logged in with one.
    token_expires_in: float | None = None


class LoginFail(_SFrame, tag="login_fail"):
    #: A LoginError code.
    reason: int
    message: str = ""


class Result(_SFrame, tag="result"):
    """Delivery result of a Send: a PeerMessageError code (0: delivered)."""

    rid: int
    code: int = 0
    message: str = ""


class Deliver(_SFrame, tag="msg"):
    """A peer message from ``sender`` (stamped by the server from the sender's session)."""

    sender: str = msgspec.field(name="from")
    msg: PeerMsg
    #: Position in this session's stream of peer messages (1, 2, …). The server keeps
    #: what the client has not acknowledged (Ping.ack, Login.ack) and sends it again on a
    #: resume; the client drops any seq it has already seen. A drop shorter than the resume
    #: window so loses no peer message, in either direction.
    seq: int | None = None
    #: As ``ServerPong.rid``: the highest Send rid the receiving session has handled when
    #: this was queued (every quiet Send up to it arrived).
    rid: int | None = None


class Presence(_SFrame, tag="presence"):
    """Online states (PeerOnlineState codes): the answer to a Query/Subscribe (``rid`` set)
    or a pushed change for a subscription (``rid`` None)."""

    states: dict[str, int]
    rid: int | None = None


class Kicked(_SFrame, tag="kicked"):
    """The server ended this session; ``reason`` is a ConnectionChangeReason code."""

    reason: int
    message: str = ""


class Error(_SFrame, tag="error"):
    """A frame was refused. ``code`` is a short word: bad_frame, not_logged_in, too_often,
    too_large, invalid_user, invalid_message, forbidden, unavailable, internal."""

    code: str
    message: str
    rid: int | None = None


class ServerPing(_SFrame, tag="ping"):
    pass


class ServerPong(_SFrame, tag="pong"):
    #: The highest Send rid this session has handled (every quiet Send up to it arrived).
    rid: int | None = None


class TokenExpiring(_SFrame, tag="token_expiring"):
    #: Seconds left before the session's token expires.
    seconds: float


class Renewed(_SFrame, tag="renewed"):
    rid: int
    token_expires_in: float


class Bye(_SFrame, tag="bye"):
    """The server is going away (shutdown); the client should reconnect later."""

    reason: str = "shutdown"


ServerFrame = (
    LoginOk
    | LoginFail
    | Result
    | Deliver
    | Presence
    | Kicked
    | Error
    | ServerPing
    | ServerPong
    | TokenExpiring
    | Renewed
    | Bye
)

# --- codecs -----------------------------------------------------------------------------

encoder = msgspec.json.Encoder()
client_frame_decoder = msgspec.json.Decoder(ClientFrame)
server_frame_decoder = msgspec.json.Decoder(ServerFrame)
peer_msg_decoder = msgspec.json.Decoder(PeerMsg)


class FrameError(ValueError):
    """A frame could not be decoded: malformed JSON, wrong types, unknown type, missing
    fields. The message says which; it is safe to send back to the peer."""


def encode(frame: msgspec.Struct) -> bytes:
    return encoder.encode(frame)


def decode_client_frame(data: bytes | str) -> ClientFrame:
    """Decode one client frame. Raises FrameError (and nothing else) on bad input."""
    try:
        return client_frame_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(str(exc)) from None
    except (RecursionError, UnicodeError, OverflowError, ValueError) as exc:
        raise FrameError(f"malformed frame: {exc}") from None


def decode_server_frame(data: bytes | str) -> ServerFrame:
    """Decode one server frame. Raises FrameError (and nothing else) on bad input."""
    try:
        return server_frame_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(str(exc)) from None
    except (RecursionError, UnicodeError, OverflowError, ValueError) as exc:
        raise FrameError(f"malformed frame: {exc}") from None
