"""Client settings: the protocol windows (passed to the engine) and the transport's."""

from __future__ import annotations

from dataclasses import dataclass

from rtmcall.engine.engine import EngineConfig


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Every duration is in seconds, on trio's clock (so tests can use a MockClock)."""

    #: Caller: wait this long for the callee's ACK (then PEER_OFFLINE / PEER_NO_RESPONSE).
    no_response_timeout: float = 30.0
    #: How long an invitation rings, unless the caller gives it its own lifetime.
    lifetime: float = 60.0
    #: Callee: wait this long for the caller's confirm after accepting (ACCEPT_FAILURE).
    confirm_timeout: float = 5.0
    #: Extra time the caller's lifetime backstop runs beyond the callee's (see EngineConfig).
    expire_grace: float = 2.0
    #: Reaching the server (TCP, TLS, WebSocket handshake) and the login answer, each.
    connect_timeout: float = 5.0
    #: The connection is dead when nothing at all was received for this long.
    heartbeat_timeout: float = 9.0
    #: Reconnect by itself after a dropped connection, resuming the session.
    reconnect: bool = True
    #: The first reconnect attempt comes a random 0 to this many seconds after a drop;
    #: then ``reconnect_delay`` doubling up to ``reconnect_max_delay``, each delay a random
    #: 50-100 % of that (jitter), so a server back after an outage of less than
    #: ``reconnect_patient_after`` s is tried again within ``reconnect_max_delay`` s.
    #: Longer outages back off up to ``reconnect_patient_max_delay``. See ``backoff``.
    reconnect_first_delay: float = 0.25
    reconnect_delay: float = 0.25
    reconnect_max_delay: float = 1.5
    reconnect_patient_after: float = 60.0
    reconnect_patient_max_delay: float = 5.0
    #: Stop reconnecting (ABORTED) this long after a drop. None: keep trying; the session and
    #: its invitations still end when the server's resume window has passed.
    give_up_after: float | None = None
    #: How long query/subscribe/renew/send_message wait for the server's answer.
    request_timeout: float = 10.0
    #: Events buffered per subscriber of ``client.events()`` before new ones are dropped for
    #: that subscriber (and counted): a subscriber that does not read never blocks the client.
    event_buffer: int = 10_000
    #: Answer arriving invitations with the automatic ACK (False: an app that never answers).
    auto_ack: bool = True
    #: SPEC §6: an invitation that arrives while another rings (either way) or a call is
    #: on: ``ring`` (default) or ``refuse`` at once with reason ``busy``.
    when_busy: str = "ring"
    #: Do not disturb from the start (``client.set_dnd`` changes it): every invitation is
    #: refused at once with reason ``busy``.
    dnd: bool = False
    #: Hold a call after each accept until one side hangs up (SPEC §6; ``client.hangup``).
    #: False: the accept ends everything, as in Agora 1.x.
    calls: bool = True

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            no_response_timeout=self.no_response_timeout,
            lifetime=self.lifetime,
            confirm_timeout=self.confirm_timeout,
            expire_grace=self.expire_grace,
            auto_ack=self.auto_ack,
            when_busy=self.when_busy,
            dnd=self.dnd,
            calls=self.calls,
        )
