"""``rtmcall top``'s model and view: metrics text in, a Rich table out (pure functions).

:func:`parse_node` reads one node's ``/metrics`` (``prometheus_client``'s parser);
:func:`build_view` turns the latest and the previous reading of every node into a
renderable (rates come from the difference of the two).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table
from rich.text import Text

OUTCOMES = ("accepted", "refused", "canceled", "failed")


@dataclass
class NodeReading:
    """One scrape of one node (``error`` set when it could not be read)."""

    source: str
    at: float
    error: str | None = None
    node: str = ""
    up: bool = False
    users: float = 0
    connections: float = 0
    sent: float = 0
    in_progress: float = 0
    calls: float = 0
    missed: float = 0
    #: outcome -> count; failures also by error in ``failures``.
    outcomes: dict[str, float] = field(default_factory=dict)
    failures: dict[str, float] = field(default_factory=dict)
    #: Cumulative call-setup histogram: [(upper bound, count)], ascending.
    setup_buckets: list[tuple[float, float]] = field(default_factory=list)
    redis_up: bool | None = None
    redis_errors: float = 0
    webhook_backlog: float | None = None
    webhook_dropped: float = 0
    webhook_failed: float = 0


def parse_node(source: str, at: float, text: str) -> NodeReading:
    r = NodeReading(source=source, at=at)
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            r.node = labels.get("node", r.node)
            if name == "rtmcall_up":
                r.up = value == 1
            elif name == "rtmcall_users_online":
                r.users += value
            elif name == "rtmcall_connections":
                r.connections += value
            elif name == "rtmcall_invitations_sent_total":
                r.sent += value
            elif name == "rtmcall_invitations_in_progress":
                r.in_progress += value
            elif name == "rtmcall_calls_in_progress":
                r.calls += value
            elif name == "rtmcall_invitations_missed_total":
                r.missed += value
            elif name == "rtmcall_invitations_total":
                outcome = labels.get("outcome", "")
                r.outcomes[outcome] = r.outcomes.get(outcome, 0) + value
                if outcome == "failed":
                    error = labels.get("error") or "?"
                    r.failures[error] = r.failures.get(error, 0) + value
            elif name == "rtmcall_call_setup_seconds_bucket":
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0) + value
            elif name == "rtmcall_redis_up":
                r.redis_up = value == 1
            elif name == "rtmcall_redis_errors_total":
                r.redis_errors += value
            elif name == "rtmcall_webhook_backlog":
                r.webhook_backlog = (r.webhook_backlog or 0) + value
            elif name == "rtmcall_webhook_events_total":
                result = labels.get("result")
                if result == "dropped":
                    r.webhook_dropped += value
                elif result == "failed":
                    r.webhook_failed += value
    r.setup_buckets = sorted(buckets.items())
    return r


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile`` over cumulative ``buckets`` (None: empty)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            span = count - below
            return lower + (bound - lower) * ((rank - below) / span if span else 1.0)
        lower, below = bound, count
    return lower


def _minus(
    now: list[tuple[float, float]], then: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    old = dict(then)
    return [(bound, count - old.get(bound, 0)) for bound, count in now]


@dataclass
class NodeRow:
    name: str
    status: str
    users: float
    per_second: float | None
    in_progress: float
    outcomes: dict[str, float]
    missed: float
    p50: float | None
    p99: float | None
    redis: str
    webhooks: str
    failures: dict[str, float]
    #: Why the node could not be read (status DOWN).
    problem: str | None = None
    #: Calls in progress (accepted, not yet hung up).
    calls: float = 0


def rows(latest: list[NodeReading], previous: dict[str, NodeReading]) -> list[NodeRow]:
    """One row per node: counts of ``latest``; rates and setup percentiles over the time
    since ``previous`` (by source) when it saw calls, else since the node started."""
    out = []
    for r in latest:
        if r.error is not None:
            row = NodeRow(r.node or r.source, "DOWN", 0, None, 0, {}, 0, None, None, "", "", {})
            row.problem = f"{r.source}: {r.error}"
            out.append(row)
            continue
        before = previous.get(r.source)
        rate = None
        buckets = r.setup_buckets
        if before is not None and before.error is None and r.at > before.at:
            rate = max(0.0, (r.sent - before.sent) / (r.at - before.at))
            recent = _minus(r.setup_buckets, before.setup_buckets)
            if recent and recent[-1][1] > 0:
                buckets = recent
        if r.redis_up is None:
            redis = "–"
        else:
            redis = "ok" if r.redis_up else "DOWN"
            if r.redis_errors:
                redis += f" ({r.redis_errors:.0f} errors)"
        if r.webhook_backlog is None:
            hooks = "–"
        else:
            hooks = f"{r.webhook_backlog:.0f} queued"
            if r.webhook_dropped:
                hooks += f", {r.webhook_dropped:.0f} dropped"
            if r.webhook_failed:
                hooks += f", {r.webhook_failed:.0f} failed"
        out.append(
            NodeRow(
                r.node or r.source,
                "up" if r.up else "stopping",
                r.users,
                rate,
                r.in_progress,
                r.outcomes,
                r.missed,
                quantile(0.5, buckets),
                quantile(0.99, buckets),
                redis,
                hooks,
                r.failures,
                calls=r.calls,
            )
        )
    return out


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.1f} ms"


def _n(value: float) -> str:
    return f"{value:,.0f}"


def build_view(node_rows: list[NodeRow], title: str = "rtmcall top") -> Group:
    """The dashboard: a table of nodes (with a total) and the failures by error."""
    table = Table(title=title, title_justify="left", expand=False)
    for name, justify in (
        ("node", "left"),
        ("status", "left"),
        ("users", "right"),
        ("calls/s", "right"),
        ("live", "right"),
        ("in call", "right"),
        *((o, "right") for o in OUTCOMES),
        ("missed", "right"),
        ("setup p50", "right"),
        ("p99", "right"),
        ("redis", "left"),
        ("webhooks", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in node_rows:
        status = Text(row.status, style="green" if row.status == "up" else "bold red")
        table.add_row(
            row.name,
            status,
            _n(row.users),
            "–" if row.per_second is None else f"{row.per_second:.1f}",
            _n(row.in_progress),
            _n(row.calls),
            *(_n(row.outcomes.get(o, 0)) for o in OUTCOMES),
            _n(row.missed),
            _ms(row.p50),
            _ms(row.p99),
            row.redis,
            row.webhooks,
        )
    if len(node_rows) > 1:
        live = [r for r in node_rows if r.problem is None]
        rates = [r.per_second for r in live if r.per_second is not None]
        table.add_row(
            "total",
            f"{len(live)}/{len(node_rows)} up",
            _n(sum(r.users for r in live)),
            f"{sum(rates):.1f}" if rates else "–",
            _n(sum(r.in_progress for r in live)),
            _n(sum(r.calls for r in live)),
            *(_n(sum(r.outcomes.get(o, 0) for r in live)) for o in OUTCOMES),
            _n(sum(r.missed for r in live)),
            "",
            "",
            "",
            "",
            style="bold",
        )
    failures: dict[str, float] = {}
    for row in node_rows:
        for error, count in row.failures.items():
            failures[error] = failures.get(error, 0) + count
    parts: list[Table | Text] = [table]
    for row in node_rows:
        if row.problem is not None:
            parts.append(Text(f"DOWN {row.problem}", style="bold red"))
    if failures:
        text = ", ".join(f"{error} {_n(count)}" for error, count in sorted(failures.items()))
        parts.append(Text(f"failed by error: {text}"))
    return Group(*parts)
