"""Counters of one server process, for tests, logs and the bench.

Plain integer attributes, incremented in place on the hot path (no locks: trio runs one
task at a time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Stats:
    #: Connections open now (including ones still handshaking or logging in).
    connections: int = 0
    connections_total: int = 0
    #: Refused because ``max_connections`` was reached.
    connections_refused: int = 0
    #: Live sessions now (attached or inside their resume window).
    sessions: int = 0
    logins: int = 0
    logins_failed: int = 0
    resumes: int = 0
    kicks: int = 0
    #: Sessions ended because their resume window passed.
    sessions_expired: int = 0
    frames_in: int = 0
    frames_out: int = 0
    #: Ping frames (busy heartbeats) and WebSocket pings (the SDK's standby heartbeat).
    pings: int = 0
    ws_pings: int = 0
    #: Frames answered with Error(bad_frame) or an INVALID_* Result.
    bad_frames: int = 0
    #: Peer messages handed to the receiver (OK) or buffered for it (CACHED_BY_SERVER).
    messages_routed: int = 0
    messages_cached: int = 0
    messages_unreachable: int = 0
    #: Frames refused by a rate limit (messages and logins).
    rate_limited: int = 0
    #: Invitation frames dropped because the sender is not the party allowed to send them.
    unauthorized_ignored: int = 0
    #: Connections cut because their outbound queue overflowed.
    slow_readers: int = 0
    idle_timeouts: int = 0
    login_timeouts: int = 0
    token_expiries: int = 0
    #: Unexpected exceptions caught in a connection (each closed that connection only).
    internal_errors: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)
