"""Every limit and timer of the relay server, in one place.

The defaults come from Agora RTM (rate limits, token lifetime), Centrifugo and
ejabberd/Prosody (queue sizes, timeouts) and are documented in ``SECURITY.md``; tests pass
smaller values. Nothing here reads the environment or the command line: the CLI builds a
:class:`ServerConfig` from its flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtmcall.engine.frames import MAX_FRAME_BYTES


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Limits and timers of one server process. All durations are in seconds."""

    #: Most simultaneous WebSocket connections (including ones still handshaking); one more
    #: is accepted and closed with 1013 (try again later).
    max_connections: int = 10_000
    #: Largest WebSocket message, in bytes; a larger one closes the connection with 1009.
    max_frame_bytes: int = MAX_FRAME_BYTES
    #: The TCP+TLS+WebSocket handshake must finish within this.
    handshake_timeout: float = 10.0
    #: A connection must log in within this, or it is told LoginFail(TIMEOUT) and closed.
    login_timeout: float = 10.0
    #: A connection that sent nothing for this long is closed (half-open detection); it is
    #: sent a ServerPing at half of it. This one applies after a ``Ping`` without
    #: ``standby``: the client has something in progress (an invitation).
    idle_timeout: float = 10.0
    #: Told to clients in LoginOk: send at least a Ping this often (while busy).
    heartbeat: float = 3.0
    #: The same two for a connection in standby (nothing in progress: after login, and
    #: after a ``Ping(standby=True)``): what MQTT's keep-alive and Phoenix's heartbeat do,
    #: under the 60 s a reverse proxy commonly allows a silent WebSocket.
    standby_timeout: float = 90.0
    standby_heartbeat: float = 30.0
    #: A session whose connection dropped is kept this long for a resume.
    resume_window: float = 10.0
    #: Frames queued for one connection before it counts as a slow reader and is cut.
    outbound_queue_frames: int = 1024
    #: Bytes queued for one connection before it counts as a slow reader and is cut.
    outbound_queue_bytes: int = 1024 * 1024
    #: Frames kept for a detached session (inside its resume window); more (or more than
    #: ``outbound_queue_bytes``) are refused with PEER_UNREACHABLE.
    resume_buffer_frames: int = 256
    #: Peer messages kept after sending until the client acknowledges them (Ping.ack), to
    #: send again after a resume: what was in flight when a connection dropped is not lost.
    unacked_frames: int = 1024
    #: Send requests remembered per session, so that a Send the client repeats after a
    #: resume (it never saw the answer) is answered again, not delivered twice.
    remembered_sends: int = 512
    #: Frames the WebSocket layer buffers between the socket and the session's reader.
    receive_queue_frames: int = 16
    #: Peer messages per user: ``rate_messages`` per ``rate_messages_per`` seconds (Agora).
    rate_messages: int = 180
    rate_messages_per: float = 3.0
    #: Logins per user id: ``rate_logins`` per ``rate_logins_per`` seconds (Agora).
    rate_logins: int = 2
    rate_logins_per: float = 1.0
    #: Most users one session may watch with Subscribe.
    max_subscriptions: int = 1024
    #: TokenExpiring is sent this long before the session's token expires.
    token_warning: float = 30.0
    #: A session whose token expired (and was not renewed) is closed this long after.
    token_grace: float = 5.0
    #: Longest token lifetime accepted (``exp`` minus now), Agora's 24 h.
    max_token_ttl: float = 24 * 3600.0
    #: On shutdown, time given to every connection to receive Bye and close.
    shutdown_grace: float = 2.0
    #: Invitation ids remembered to enforce who may answer them (issue 4 "Authority").
    max_tracked_invitations: int = 100_000
    #: How long an invitation id is remembered beyond its lifetime (no-ACK and confirm
    #: windows plus a margin) and after it ended.
    invitation_margin: float = 120.0
    #: Lifetime assumed for an Invite that does not carry one (the callee's default).
    invitation_default_lifetime: float = 60.0
    #: Browser origins (the ``Origin`` header) allowed to connect; ``"*"`` allows all.
    #: Requests without an Origin (every non-browser client) are always allowed. When
    #: empty, browsers are allowed only if the server has a secret: otherwise any web page
    #: the user visits could log in as anyone on a loopback server (cross-site WebSocket
    #: hijacking).
    allowed_origins: tuple[str, ...] = ()
    #: Serve without a secret on a non-loopback address (the CLI's ``--insecure``).
    insecure: bool = False
