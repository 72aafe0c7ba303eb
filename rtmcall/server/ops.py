"""Operating a server: the invitation observer and what it feeds (metrics, the call log,
webhooks), and the plain-HTTP ``/metrics`` endpoint.

``serve(..., ops=OpsOptions(...))`` turns it on; without it the server runs none of
this (``Server.observer`` is None and the hot path checks only that).

``/metrics`` is served two ways: on the server's own port (``metrics=True``; a plain
``GET /metrics`` is told apart from a WebSocket opening request by peeking at the first
bytes of a new TCP connection, so WebSocket connections are untouched), or on a port of
its own (``metrics_port``; also the way for a TLS server, whose bytes cannot be peeked).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .calllog import CallLog
from .observer import InvitationObserver, ObserverSink, ObserverWindows

if TYPE_CHECKING:
    import h11

    from .metrics import ServerMetrics
    from .serve import Server
    from .session import Session
    from .webhooks import WebhookConfig, WebhookSender

# (prometheus_client, httpx and h11 are imported when their part is turned on: together
# they would add ~0.1 s to every ``import rtmcall.server``.)

log = logging.getLogger("rtmcall.server")

METRICS_PATH = "/metrics"
_PEEK = b"GET " + METRICS_PATH.encode()


@dataclass(frozen=True)
class OpsOptions:
    #: Serve ``/metrics`` on the server's port.
    metrics: bool = False
    #: Serve ``/metrics`` on this port instead (0: a free one; see ``Operations.metrics_url``).
    metrics_port: int | None = None
    #: Address for ``metrics_port`` (None: the server's host).
    metrics_host: str | None = None
    #: ``"-"`` for stdout, else a file path (appended to).
    call_log: str | None = None
    call_log_max_bytes: int = 100 * 1024 * 1024
    call_log_backups: int = 5
    webhooks: WebhookConfig | None = None
    #: The ``node`` label and the nodes in the call log (default: the hub's node id, else
    #: host:port).
    node: str | None = None
    windows: ObserverWindows = field(default_factory=ObserverWindows)

    @property
    def enabled(self) -> bool:
        return bool(
            self.metrics
            or self.metrics_port is not None
            or self.call_log
            or (self.webhooks and self.webhooks.urls)
        )


class Operations:
    """The observer, its sinks and the metrics endpoint of one running server."""

    def __init__(self, server: Server, options: OpsOptions) -> None:
        self.options = options
        self.node = (
            options.node or getattr(server.hub, "node_id", None) or server.url.split("://", 1)[-1]
        )
        self.server = server
        sinks: list[ObserverSink] = []
        self.metrics: ServerMetrics | None = None
        if options.metrics or options.metrics_port is not None:
            from .metrics import ServerMetrics

            self.metrics = ServerMetrics(server, self.node)
            sinks.append(self.metrics)
        self.call_log: CallLog | None = None
        if options.call_log:
            self.call_log = CallLog(
                options.call_log,
                max_bytes=options.call_log_max_bytes,
                backups=options.call_log_backups,
            )
            sinks.append(self.call_log)
        self.webhooks: WebhookSender | None = None
        if options.webhooks is not None and options.webhooks.urls:
            from .webhooks import WebhookSender

            self.webhooks = WebhookSender(options.webhooks, self.node)
            sinks.append(self.webhooks)
        if self.metrics is not None:
            self.metrics.call_log = self.call_log
            self.metrics.webhooks = self.webhooks
        self.observer = InvitationObserver(
            self.node, trio.current_time, time.time, sinks, options.windows
        )
        if self.metrics is not None:
            self.metrics.observer = self.observer
        #: Sessions told online (user.online) and not yet offline.
        self._online: set[str] = set()
        #: Sessions handed over to another node whose end here is still to come.
        self._moved: set[str] = set()
        #: ``http://host:port/metrics`` when metrics are on.
        self.metrics_url: str | None = None
        hub = server.hub
        if hasattr(hub, "listener"):
            hub.listener = self  # (RedisHub: remote deliveries and presence)

    @property
    def metrics_on_main_port(self) -> bool:
        return self.options.metrics and self.options.metrics_port is None

    # --- hooks from the server and the hub ------------------------------------------------

    def user_online(self, session: Session, resumed: bool = False) -> None:
        """A session began here: a login, or (``resumed``) one handed over from another
        node."""
        if self.webhooks is not None:
            self._online.add(session.id)
            self.webhooks.user_event(True, session.user, session.id, resumed=resumed)

    def session_ended(self, session: Session, why: str) -> None:
        if session.id in self._moved:
            self._moved.discard(session.id)  # (the observer was told at the handover)
        elif not (self.server.stopping or why == "server shutdown"):
            # (a stopping server's ``observer.shutdown`` ends what is open: the reason is
            # the shutdown, not the sessions it ends; "server shutdown" is the ``why`` of
            # the connections and reapers it cancels)
            self.observer.session_ended(session.user, session.id)
        if self.webhooks is not None and session.id in self._online:
            self._online.discard(session.id)
            self.webhooks.user_event(False, session.user, session.id, why)

    def remote_message(self, data: bytes, session: Session) -> None:
        self.observer.delivered(data, session.user, session.id)

    def user_left(self, user: str) -> None:
        self.observer.caller_left(user)

    def node_gone(self, node: str, users: list[str]) -> None:
        self.observer.node_gone(node, users)

    def peer_offline(self, user: str) -> None:
        self.observer.peer_offline(user)

    def session_moved(self, session: Session, node: str) -> list[dict[str, Any]]:
        self._moved.add(session.id)
        return self.observer.session_moved(session.user, session.id)

    def session_adopted(self, session: Session, carried: list[dict[str, Any]]) -> None:
        self.observer.adopt(carried)

    # --- tasks ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The backstop clock, webhook delivery and the metrics port, until cancelled (then
        :meth:`close`)."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._expire_loop)
                if self.webhooks is not None:
                    await nursery.start(self.webhooks.run)
                if self.options.metrics_port is not None:
                    host = self.options.metrics_host or self.server.host or None
                    listeners = await nursery.start(
                        partial(
                            trio.serve_tcp, self.serve_http, self.options.metrics_port, host=host
                        )
                    )
                    address, port = listeners[0].socket.getsockname()[:2]
                    self.metrics_url = _http_url(address, port)
                elif self.metrics is not None:
                    self.metrics_url = self.server.url.replace("ws", "http", 1) + METRICS_PATH
                if self.metrics_url is not None:
                    log.info("metrics on %s", self.metrics_url)
                task_status.started()
        finally:
            self.observer.shutdown()  # (at the stop's start: the calls' ends are then)

    async def close(self, drain: float) -> None:
        """The server stopped (call it after :meth:`run` ended, shielded): the webhooks
        still queued — those of the stop itself among them: the invitations and calls it
        ended ``server_shutdown``, the sessions it closed — get up to ``drain`` seconds to
        go out."""
        if self.call_log is not None:
            self.call_log.close()
        if self.webhooks is not None:
            await self.webhooks.drain(drain)

    async def _expire_loop(self) -> None:
        observer = self.observer
        while True:
            next_deadline = observer.expire()
            await trio.sleep(min(max(next_deadline - trio.current_time(), 0.05), 1.0))

    # --- plain HTTP -----------------------------------------------------------------------

    async def sniff(self, stream: trio.SocketStream, wait: float) -> str:
        """What a new connection's first bytes are, peeked (nothing is consumed: a
        WebSocket handshake goes on as if nothing happened): ``"metrics"`` for a plain
        ``GET /metrics``, ``"other"`` for anything else, ``"silent"`` when nothing came
        within ``wait`` (the handshake timeout: the connection is closed)."""
        sock = stream.socket
        with trio.move_on_after(wait):
            while True:
                head = await sock.recv(len(_PEEK), socket.MSG_PEEK)
                if len(head) >= len(_PEEK) or not head or not _PEEK.startswith(head):
                    return "metrics" if head == _PEEK else "other"
                await trio.sleep(0.01)  # a request arriving byte by byte
        return "silent"

    async def serve_http(self, stream: trio.abc.Stream) -> None:
        """Answer one HTTP request (``GET /metrics``; 404 otherwise), then close.

        Resource handling: the stream is always closed.
        """
        import h11

        from .metrics import CONTENT_TYPE

        conn = h11.Connection(h11.SERVER)
        try:
            with trio.move_on_after(self.server.config.handshake_timeout):
                request = await _read_request(conn, stream)
                if request is None:
                    return
                path = request.target.decode("latin-1").split("?", 1)[0]
                if request.method not in (b"GET", b"HEAD"):
                    status, ctype, body = 405, "text/plain", b"only GET\n"
                elif path == METRICS_PATH and self.metrics is not None:
                    status, ctype, body = 200, CONTENT_TYPE, self.metrics.render()
                else:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                headers = [
                    ("Content-Type", ctype),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                ]
                out = conn.send(h11.Response(status_code=status, headers=headers))
                if request.method != b"HEAD":
                    out += conn.send(h11.Data(data=body))
                out += conn.send(h11.EndOfMessage())
                await stream.send_all(out)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError) as exc:
            log.debug("metrics request failed: %r", exc)
        finally:
            await trio.aclose_forcefully(stream)


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Request | None:
    import h11

    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(16384)
            conn.receive_data(data)
            if not data:
                return None
            continue
        if isinstance(event, h11.Request):
            return event
        return None


def _http_url(address: str, port: int) -> str:
    if address in ("0.0.0.0", "::"):
        address = "127.0.0.1" if address == "0.0.0.0" else "::1"
    if ":" in address:
        address = f"[{address}]"
    return f"http://{address}:{port}{METRICS_PATH}"
