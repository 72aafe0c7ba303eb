"""``serve()``: the relay server, made for ``await nursery.start(serve, ...)``.

Structure (one nursery): the listeners' accept loop spawns one handler per TCP stream,
which runs the WebSocket handshake and a :class:`~.connection.Connection`; resume-window
timers of detached sessions and the idle sweeper (:func:`.watchdogs.sweep_idle`, one
task for every connection) run beside them. Cancelling ``serve`` (or
``Server.shutdown()``) cancels all of it; every connection then sends Bye and closes with
1001 inside a short shielded grace.

Error handling: nothing a client does can end ``serve``. Each stream handler catches and
logs whatever escapes its connection.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import ssl
from collections.abc import Awaitable

import trio
from trio_websocket import WebSocketConnection, WebSocketRequest

from . import _ws_check
from ._ws import accept_websocket
from .authority import InvitationLedger
from .config import ServerConfig
from .connection import Connection
from .hub import Health, Hub, MemoryHub
from .observer import InvitationObserver
from .ops import Operations, OpsOptions
from .ratelimit import RateLimiter
from .session import Session
from .stats import Stats
from .watchdogs import sweep_idle

log = logging.getLogger("rtmcall.server")

#: The path of the health check (a WebSocket opening request answered with 200 or 503).
HEALTH_PATH = "/health"

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class Server:
    """A running server, as returned by ``nursery.start(serve, ...)``.

    Attributes:
        port: the bound TCP port (the first listener's, when the host had several).
        url: ``ws://host:port`` or ``wss://host:port``, for clients.
        stats: live counters (:class:`~.stats.Stats`).
    """

    def __init__(self, config: ServerConfig, hub: Hub, secret: str | None, tls: bool) -> None:
        self.config = config
        self.hub = hub
        self.secret = secret
        self.tls = tls
        self.stats = Stats()
        self.port = 0
        self.url = ""
        #: Live sessions of this process by session id (for resumes).
        self.sessions: dict[str, Session] = {}
        self.message_limits = RateLimiter(
            config.rate_messages, config.rate_messages_per, trio.current_time
        )
        self.login_limits = RateLimiter(
            config.rate_logins, config.rate_logins_per, trio.current_time
        )
        self.ledger = InvitationLedger(
            trio.current_time,
            max_entries=config.max_tracked_invitations,
            margin=config.invitation_margin,
            default_lifetime=config.invitation_default_lifetime,
        )
        self.stopping = False
        #: The bound host (as given to ``serve``).
        self.host: str | None = None
        #: Metrics, call log, webhooks (``serve(ops=...)``); None when none is on.
        self.ops: Operations | None = None
        #: ``ops.observer``, for the routing path (one attribute check when off).
        self.observer: InvitationObserver | None = None
        #: Logged-in connections being served, walked by the idle sweeper; ``busy``: those
        #: of them under the busy (shorter) silence limit, walked more often.
        self.live: set[Connection] = set()
        self.busy: set[Connection] = set()
        self._nursery: trio.Nursery | None = None
        self._stopped = trio.Event()

    # --- sessions -------------------------------------------------------------------------

    def add_session(self, session: Session) -> None:
        self.sessions[session.id] = session
        self.stats.sessions += 1

    async def end_session(self, session: Session, why: str) -> None:
        """Remove a session for good (idempotent): OFFLINE is pushed to its watchers."""
        if session.released:
            return
        session.released = True
        session.ended = True
        if session.reaper is not None:
            session.reaper.cancel()
            session.reaper = None
        self.sessions.pop(session.id, None)
        self.stats.sessions -= 1
        with trio.move_on_after(self.config.shutdown_grace, shield=True):
            await self.hub.unregister(session)
        if self.ops is not None:
            self.ops.session_ended(session, why)
        log.info("user %r session %s ended: %s", session.user, session.id[:8], why)

    def start_reaper(self, session: Session) -> None:
        """End ``session`` unless it is resumed within the resume window."""
        assert self._nursery is not None
        scope = trio.CancelScope()
        session.reaper = scope
        self._nursery.start_soon(self._reap, session, scope)

    async def _reap(self, session: Session, scope: trio.CancelScope) -> None:
        expired = False
        with scope:  # cancelled by a resume (attach) or a kick
            await trio.sleep(self.config.resume_window)
            expired = True
        if session.reaper is scope:
            session.reaper = None
        if session.link is not None:
            return  # resumed
        if trio.current_effective_deadline() == float("-inf"):
            why = "server shutdown"
        elif expired:
            why = "not resumed within the resume window"
            self.stats.sessions_expired += 1
        else:
            why = session.end_reason or "ended while disconnected"
        await self.end_session(session, why)

    # --- control --------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Tell every client Bye, close everything and make ``serve`` return."""
        self.stopping = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        await self._stopped.wait()

    async def health(self) -> Health:
        hub = await self.hub.health()
        if not hub.ok or self.stopping:
            return Health(False, "stopping" if self.stopping else hub.detail)
        s = self.stats
        return Health(True, f"{s.connections} connections, {s.sessions} sessions; {hub.detail}")

    # --- connections ----------------------------------------------------------------------

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        stats = self.stats
        stats.connections += 1
        stats.connections_total += 1
        try:
            ops = self.ops
            if ops is not None and ops.metrics_on_main_port and type(stream) is trio.SocketStream:
                kind = await ops.sniff(stream, self.config.handshake_timeout)
                if kind != "other":
                    if kind == "metrics":
                        await ops.serve_http(stream)
                    else:
                        await trio.aclose_forcefully(stream)
                    return
            await accept_websocket(
                stream,
                self._handle_websocket,
                refuse=self._refuse,
                respond=self._respond,
                max_message_size=self.config.max_frame_bytes,
                message_queue_size=self.config.receive_queue_frames,
                handshake_timeout=self.config.handshake_timeout,
                close_timeout=self.config.shutdown_grace,
            )
        except* Exception as group:
            stats.internal_errors += 1
            log.error("connection handler failed", exc_info=group.exceptions[0])
        finally:
            stats.connections -= 1

    def _refuse(self, request: WebSocketRequest) -> str | None:
        """Cross-site WebSocket hijacking guard: a browser always sends ``Origin``; other
        clients do not. See ``ServerConfig.allowed_origins``."""
        origin = next((v for k, v in request.headers if k.lower() == b"origin"), None)
        if origin is None:
            return None
        allowed = self.config.allowed_origins
        text = origin.decode("latin-1")
        if "*" in allowed or text in allowed or (not allowed and self.secret is not None):
            return None
        log.warning("refused a browser connection from origin %r", text)
        return f"origin {text!r} is not allowed (see --allowed-origin)"

    async def _respond(self, request: WebSocketRequest) -> tuple[int, bytes] | None:
        """``/health``: answer 200 (healthy) or 503 with a JSON body instead of upgrading,
        so that an operator or a load balancer can check a node (``rtmcall health``)."""
        if request.path.split("?", 1)[0] != HEALTH_PATH:
            return None
        health = await self.health()
        body = json.dumps({"ok": health.ok, "detail": health.detail, "url": self.url})
        return (200 if health.ok else 503), body.encode()

    def _handle_websocket(self, ws: WebSocketConnection) -> Awaitable[None]:
        # Not a coroutine itself: its frame would stay for the connection's lifetime.
        peer = _describe(ws)
        if self.stats.connections > self.config.max_connections:
            self.stats.connections_refused += 1
            log.warning("refused %s: %d connections open", peer, self.stats.connections - 1)
            return ws.aclose(1013, "server is full, try again later")
        return Connection(self, ws, peer).run()


def _describe(ws: WebSocketConnection) -> str:
    remote = ws.remote
    return f"{remote.address}:{remote.port}" if hasattr(remote, "address") else str(remote)


def _is_loopback(host: str | None) -> bool:
    if host is None or host == "":
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bound_address(listener: trio.abc.Listener[trio.abc.Stream]) -> tuple[str, int]:
    inner = getattr(listener, "transport_listener", listener)
    sock = inner.socket  # type: ignore[attr-defined]
    name = sock.getsockname()
    return name[0], name[1]


def _url(address: str, port: int, tls: bool) -> str:
    scheme = "wss" if tls else "ws"
    if address in ("0.0.0.0", "::"):
        address = "127.0.0.1" if address == "0.0.0.0" else "::1"
    if ":" in address:
        address = f"[{address}]"
    return f"{scheme}://{address}:{port}"


async def serve(
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    secret: str | None = None,
    hub: Hub | None = None,
    ssl_context: ssl.SSLContext | None = None,
    config: ServerConfig = ServerConfig(),
    reuse_port: bool = False,
    ops: OpsOptions | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the relay on ``host:port`` until cancelled (or ``Server.shutdown()``).

    Args:
        host: address or name to bind; None binds every interface.
        port: TCP port; 0 picks a free one (read it from the started :class:`Server`).
        secret: HS256 key; when set, every login needs a token (see :mod:`.tokens`).
        hub: where users and presence live; a fresh :class:`MemoryHub` by default.
        ssl_context: a server-side context to serve ``wss://``.
        config: limits and timers.
        reuse_port: bind with SO_REUSEPORT, sharing ``port`` with other processes
            (``--workers``; see :mod:`.workers`).
        ops: metrics, call log and webhooks (:mod:`.ops`); none by default.
        task_status: ``nursery.start`` passes the running :class:`Server` through it.

    Raises:
        ValueError: no secret on a non-loopback host without ``config.insecure``.
        UntestedWebSocketLibrary: trio-websocket or wsproto is not a tested version
            (see :mod:`._ws_check`).
        OSError: the address could not be bound.
    """
    _ws_check.check()  # an untested trio-websocket/wsproto: one clear error, not odd bugs
    if not secret and not _is_loopback(host) and not config.insecure:
        raise ValueError(
            f"refusing to serve {host or 'all interfaces'} without a secret: anyone could log "
            "in as anyone; give a secret, or set insecure=True (--insecure) to do it anyway"
        )
    if ops is not None and ops.metrics and ops.metrics_port is None and ssl_context is not None:
        raise ValueError("metrics on a TLS server need a port of their own (--metrics-port)")
    hub = MemoryHub() if hub is None else hub
    server = Server(config, hub, secret or None, ssl_context is not None)
    server.host = host
    if reuse_port:
        from .workers import open_reuseport_listeners

        listeners: list[trio.abc.Listener[trio.abc.Stream]] = await open_reuseport_listeners(
            host, port, ssl_context
        )
    elif ssl_context is None:
        listeners = list(await trio.open_tcp_listeners(port, host=host))
    else:
        listeners = list(
            await trio.open_ssl_over_tcp_listeners(
                port, ssl_context, host=host, https_compatible=True
            )
        )
    address, server.port = _bound_address(listeners[0])
    server.url = _url(address, server.port, server.tls)
    if ops is not None and ops.enabled:
        server.ops = Operations(server, ops)
        server.observer = server.ops.observer
    if not secret:
        log.warning("no secret: logins are not authenticated (anyone may use any user id)")
    elif len(secret.encode()) < 32:
        log.warning("the secret is shorter than 32 bytes; HS256 wants at least 32")
    try:
        async with trio.open_nursery() as nursery:
            server._nursery = nursery
            await nursery.start(trio.serve_listeners, server._handle_stream, listeners)
            nursery.start_soon(sweep_idle, server)
            if server.ops is not None:
                await nursery.start(server.ops.run)
            log.info("listening on %s", server.url)
            task_status.started(server)
            await trio.sleep_forever()
    finally:
        server.stopping = True
        for listener in listeners:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(listener)
        try:
            if server.ops is not None:
                with trio.CancelScope(shield=True):
                    await server.ops.close(server.config.shutdown_grace)
        finally:
            server._stopped.set()
        log.info("server on %s stopped", server.url)
