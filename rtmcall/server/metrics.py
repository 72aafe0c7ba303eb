"""Prometheus metrics of one server node (``--metrics``, ``/metrics``).

Everything goes through ``prometheus_client``: one :class:`CollectorRegistry` per server
(tests run many in one process) and its text exposition. Every metric has a ``node``
label.

The hot path pays nothing for most of them: connections, logins, frames and peer
messages are the plain integers of :class:`~.stats.Stats` that the server counts anyway,
read by a custom collector only when ``/metrics`` is scraped. Only invitation lifecycle
events (a few per invitation) touch ``prometheus_client`` objects.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .observer import CallEnd, InvitationObserver, InvitationRecord, Outcome

if TYPE_CHECKING:
    from .calllog import CallLog
    from .serve import Server
    from .webhooks import WebhookSender

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Call-setup time buckets (seconds): a LAN handshake is milliseconds, a person seconds.
SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)
#: Call duration buckets (seconds): a wrong number to an hour-long meeting.
CALL_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


class ServerMetrics:
    """The registry of one node, and the observer sink that counts invitations.

    The invitation counters are plain integers too (a ``prometheus_client`` Counter takes
    a lock per ``inc``); the collector hands them to the registry as metric families at
    scrape time, the setup-time histogram with its cumulative buckets.
    """

    def __init__(self, server: Server, node: str) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        self.call_log: CallLog | None = None
        self.webhooks: WebhookSender | None = None
        self.missed = 0
        #: The observer's own counts (sent, ringing, callee offline); set by ``Operations``.
        self.observer: InvitationObserver | None = None
        #: outcome -> caller's error name ("" unless failed) -> count
        self.ended: dict[str, dict[str, int]] = {o.value: {} for o in Outcome}
        for o in (Outcome.ACCEPTED, Outcome.REFUSED, Outcome.CANCELED):
            self.ended[o.value][""] = 0
        #: Observations per SETUP_BUCKETS slot (the last: above every bound), and their sum.
        self.setup_counts = [0] * (len(SETUP_BUCKETS) + 1)
        self.setup_sum = 0.0
        #: Calls ended, by how (CallEnd), and their durations per CALL_BUCKETS slot.
        self.calls_ended: dict[str, int] = {c.value: 0 for c in CallEnd}
        self.call_counts = [0] * (len(CALL_BUCKETS) + 1)
        self.call_sum = 0.0
        self.registry.register(_ServerCollector(server, self))

    # --- ObserverSink ---------------------------------------------------------------------

    def invitation_event(self, kind: str, record: InvitationRecord) -> None:
        if kind != "ended":
            if kind == "call_ended":
                self.calls_ended[record.call_end] += 1  # type: ignore[index]
                seconds = record.call_seconds or 0.0
                self.call_counts[bisect_left(CALL_BUCKETS, seconds)] += 1
                self.call_sum += seconds
            return
        by_error = self.ended[record.outcome]  # type: ignore[index]
        error = record.error.name if record.error else ""
        by_error[error] = by_error.get(error, 0) + 1
        answered = record.answered_at
        if answered is None:
            if error:  # failed or canceled, never answered: missed (InvitationRecord.missed)
                self.missed += 1
            elif record.outcome is Outcome.CANCELED:
                self.missed += 1
        elif record.outcome is Outcome.ACCEPTED:
            setup = answered - record.sent_at  # (InvitationRecord.setup_seconds, inlined)
            self.setup_counts[bisect_left(SETUP_BUCKETS, setup)] += 1
            self.setup_sum += setup

    def families(self) -> Iterator[Metric]:
        node = self.node
        obs = self.observer
        for name, doc, count in (
            (
                "rtmcall_invitations_sent",
                "Invitations sent by this node's users (first Invite of each id).",
                obs.sent_total if obs else 0,
            ),
            (
                "rtmcall_invitations_callee_offline",
                "Invitations whose first Invite found the callee logged out (callee.offline).",
                obs.callee_offline_total if obs else 0,
            ),
            (
                "rtmcall_invitations_ringing",
                "Invitations the callee's client acknowledged (it rang).",
                obs.ringing_total if obs else 0,
            ),
            (
                "rtmcall_invitations_missed",
                "Invitations that ended without the callee's accept or refuse.",
                self.missed,
            ),
        ):
            family = CounterMetricFamily(name, doc, labels=["node"])
            family.add_metric([node], count)
            yield family
        ended = CounterMetricFamily(
            "rtmcall_invitations",
            "Invitations ended, by outcome and (for failures) the caller's error.",
            labels=["node", "outcome", "error"],
        )
        for outcome, by_error in self.ended.items():
            for error, count in sorted(by_error.items()):
                ended.add_metric([node, outcome, error], count)
        yield ended
        setup = HistogramMetricFamily(
            "rtmcall_call_setup_seconds",
            "Invite to accept, as the server saw them (accepted invitations).",
            labels=["node"],
        )
        cumulative = list(accumulate(self.setup_counts))
        bounds = [*(floatToGoString(b) for b in SETUP_BUCKETS), "+Inf"]
        setup.add_metric([node], list(zip(bounds, cumulative, strict=True)), self.setup_sum)
        yield setup
        calls = CounterMetricFamily(
            "rtmcall_calls_ended",
            "Calls (accepted invitations) ended, by how: hangup_by_caller, hangup_by_callee, "
            "caller_offline, callee_offline, max_duration, server_shutdown.",
            labels=["node", "end"],
        )
        for end, count in self.calls_ended.items():
            calls.add_metric([node, end], count)
        yield calls
        duration = HistogramMetricFamily(
            "rtmcall_call_duration_seconds",
            "Calls' durations, Confirm to hang-up, as the server saw them.",
            labels=["node"],
        )
        cumulative = list(accumulate(self.call_counts))
        bounds = [*(floatToGoString(b) for b in CALL_BUCKETS), "+Inf"]
        duration.add_metric([node], list(zip(bounds, cumulative, strict=True)), self.call_sum)
        yield duration

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ServerCollector(Collector):
    """The server's plain counters, read at scrape time."""

    def __init__(self, server: Server, metrics: ServerMetrics) -> None:
        self._server = server
        self._metrics = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(())  # (collected fresh each time: nothing to check up front)

    def collect(self) -> Iterator[Metric]:
        server = self._server
        node = self._metrics.node
        s = server.stats

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["node"])
            family.add_metric([node], value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=["node"])
            family.add_metric([node], value)
            return family

        def by(
            name: str,
            doc: str,
            label: str,
            values: dict[str, float],
            kind: type = CounterMetricFamily,
        ) -> Metric:
            family = kind(name, doc, labels=["node", label])
            for key, value in values.items():
                family.add_metric([node, key], value)
            return family

        yield gauge(
            "rtmcall_up", "1 while the node serves (0 while it stops).", 0 if server.stopping else 1
        )
        yield gauge("rtmcall_connections", "Connections open now (any phase).", s.connections)
        yield counter("rtmcall_connections_opened", "Connections accepted.", s.connections_total)
        yield counter(
            "rtmcall_connections_refused",
            "Connections refused: server full.",
            s.connections_refused,
        )
        yield gauge(
            "rtmcall_users_online", "Logged-in users with a live connection.", len(server.live)
        )
        yield gauge(
            "rtmcall_sessions", "Sessions, including those waiting for a resume.", s.sessions
        )
        yield by(
            "rtmcall_logins",
            "Login attempts by result.",
            "result",
            {
                "ok": s.logins,
                "resumed": s.resumes,
                "failed": s.logins_failed,
                "timeout": s.login_timeouts,
            },
        )
        yield counter("rtmcall_kicks", "Sessions kicked by a newer login.", s.kicks)
        yield counter(
            "rtmcall_sessions_expired", "Sessions ended: not resumed in time.", s.sessions_expired
        )
        yield counter("rtmcall_frames_in", "WebSocket messages received.", s.frames_in)
        yield counter("rtmcall_frames_out", "WebSocket messages sent.", s.frames_out)
        yield by(
            "rtmcall_peer_messages",
            "Peer messages (Send) by delivery result.",
            "result",
            {
                "delivered": s.messages_routed - s.messages_cached,
                "cached": s.messages_cached,
                "unreachable": s.messages_unreachable,
            },
        )
        yield by(
            "rtmcall_frames_refused",
            "Frames refused: malformed, over a rate limit, or not the sender's to send.",
            "reason",
            {
                "bad_frame": s.bad_frames,
                "rate_limited": s.rate_limited,
                "unauthorized": s.unauthorized_ignored,
            },
        )
        yield by(
            "rtmcall_heartbeats",
            "Client heartbeats: Ping frames and WebSocket pings.",
            "kind",
            {"ping": s.pings, "ws_ping": s.ws_pings},
        )
        yield by(
            "rtmcall_disconnects",
            "Connections cut by the server.",
            "reason",
            {
                "slow_reader": s.slow_readers,
                "idle": s.idle_timeouts,
                "token_expired": s.token_expiries,
            },
        )
        yield counter(
            "rtmcall_internal_errors",
            "Unexpected errors (each closed one connection).",
            s.internal_errors,
        )
        observer = server.observer
        if observer is not None:
            yield gauge(
                "rtmcall_invitations_in_progress",
                "Invitations sent and not yet ended (this node's callers).",
                len(observer.open),
            )
            yield gauge(
                "rtmcall_calls_in_progress",
                "Calls on now: accepted and not yet hung up (this node's callers).",
                len(observer.calls),
            )
        yield from self._metrics.families()
        yield from self._redis(node)
        yield from self._sinks(node)

    def _redis(self, node: str) -> Iterator[Metric]:
        hub = self._server.hub
        if not hasattr(hub, "redis"):
            return
        up = GaugeMetricFamily("rtmcall_redis_up", "1 while Redis answers.", labels=["node"])
        up.add_metric([node], 1 if getattr(hub, "_redis_ok", False) else 0)
        yield up
        peers = getattr(hub, "link_peers", [])
        links = GaugeMetricFamily(
            "rtmcall_node_links_up", "Links from this node to other nodes, up.", labels=["node"]
        )
        links.add_metric([node], sum(1 for p in peers if p.up))
        yield links
        batches = CounterMetricFamily(
            "rtmcall_node_link_batches",
            "Batches sent to other nodes over links (each once; resends not counted).",
            labels=["node"],
        )
        batches.add_metric([node], sum(p.batches for p in peers))
        yield batches
        for name, attr, doc in (
            ("rtmcall_redis_operations", "ops", "Redis operations that succeeded."),
            ("rtmcall_redis_errors", "errors", "Redis operations that failed or timed out."),
            ("rtmcall_redis_frames_lost", "dropped", "Frames for sessions gone from this node."),
        ):
            family = CounterMetricFamily(name, doc, labels=["node"])
            family.add_metric([node], getattr(hub, attr, 0))
            yield family

    def _sinks(self, node: str) -> Iterator[Metric]:
        call_log = self._metrics.call_log
        if call_log is not None:
            family = CounterMetricFamily(
                "rtmcall_call_log_lines", "Call log lines by result.", labels=["node", "result"]
            )
            family.add_metric([node, "written"], call_log.lines)
            family.add_metric([node, "failed"], call_log.errors)
            yield family
        webhooks = self._metrics.webhooks
        if webhooks is None:
            return
        backlog = GaugeMetricFamily(
            "rtmcall_webhook_backlog",
            "Webhook events queued or being delivered.",
            labels=["node", "endpoint"],
        )
        events = CounterMetricFamily(
            "rtmcall_webhook_events",
            "Webhook events by fate: delivered, failed (gave up), dropped (queue full).",
            labels=["node", "endpoint", "result"],
        )
        attempts = CounterMetricFamily(
            "rtmcall_webhook_attempts",
            "Webhook HTTP attempts by result (2xx, 4xx, 5xx, timeout, error).",
            labels=["node", "endpoint", "result"],
        )
        for endpoint in webhooks.endpoints:
            st = endpoint.stats
            backlog.add_metric([node, st.url], endpoint.backlog)
            events.add_metric([node, st.url, "delivered"], st.delivered)
            events.add_metric([node, st.url, "failed"], st.failed)
            events.add_metric([node, st.url, "dropped"], st.dropped)
            for result in ("2xx", "4xx", "5xx", "timeout", "error"):
                attempts.add_metric([node, st.url, result], st.attempts.get(result, 0))
        yield backlog
        yield events
        yield attempts
