"""Rich renderings of a bench: the live progress line and the result table.

Pure functions from a snapshot/result to a renderable (the rich way: build, then show),
so tests can render them into a ``Console(file=StringIO())``. Imports rich, so only the
command imports this module.
"""

from __future__ import annotations

import math

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .result import BenchResult, LatencyStats
from .runner import BenchSnapshot


def render_progress(snap: BenchSnapshot) -> Group:
    """A bar (time or calls) and one line of counters."""
    if snap.phase == "login":
        total, done = max(snap.users, 1), snap.logged_in
        label = f"logging in {snap.logged_in}/{snap.users} users"
    elif snap.calls is not None:
        total, done = snap.calls, min(snap.handshakes, snap.calls)
        label = f"{snap.phase}: {snap.handshakes}/{snap.calls} calls"
    else:
        total = int((snap.duration or 1) * 100)
        done = min(int(snap.elapsed * 100), total)
        label = f"{snap.phase}: {snap.elapsed:.1f}/{snap.duration:g} s"
    if snap.phase == "warmup":
        done = 0
    line = Text(f"{label}  ·  {snap.handshakes} handshakes  ·  {snap.rate:,.0f}/s  ·  ")
    line.append(f"{snap.errors} errors", style="red" if snap.errors else "green")
    line.append("  ·  ")
    line.append(f"{snap.unexpected} unexpected", style="red" if snap.unexpected else "green")
    return Group(ProgressBar(total=total, completed=done, width=50), line)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def _latency_row(table: Table, name: str, stats: LatencyStats) -> None:
    table.add_row(
        name,
        str(stats.count),
        _ms(stats.p50),
        _ms(stats.p90),
        _ms(stats.p99),
        _ms(stats.max),
    )


def render_result(result: BenchResult) -> Group:
    """The summary: throughput, the latency table, errors and unexpected outcomes."""
    where = "embedded server" if result.embedded else result.server
    rate = f", offered {result.rate:g}/s" if result.rate else ", closed loop"
    head = Text.assemble(
        (f"{result.handshakes:,} handshakes", "bold"),
        f" ({result.mode}) in {result.elapsed:.2f} s = ",
        (f"{result.handshakes_per_s:,.0f}/s", "bold"),
        f"  ·  {result.pairs} pairs{rate}, {result.idle} idle users, {where}",
    )
    parts: list = [head]
    if result.server_cpu_us_per_handshake is not None:
        mem = f", RSS {result.server_rss / 2**20:.0f} MiB" if result.server_rss else ""
        parts.append(
            Text(f"server CPU {result.server_cpu_us_per_handshake:,.0f} µs per handshake{mem}")
        )
    table = Table(title="latency at the caller (ms)", title_justify="left")
    for column in ("from send to", "count", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="left" if column == "from send to" else "right")
    _latency_row(table, "ReceivedByPeer", result.received_by_peer)
    _latency_row(table, result.outcome_name.capitalize(), result.outcome)
    parts.append(table)
    for title, counts in (("errors", result.errors), ("unexpected outcomes", result.unexpected)):
        if counts:
            listing = Table(title=title, title_justify="left", title_style="bold red")
            listing.add_column("kind")
            listing.add_column("count", justify="right")
            for kind, count in sorted(counts.items(), key=lambda kv: -kv[1]):
                listing.add_row(kind, str(count))
            parts.append(listing)
        else:
            parts.append(Text(f"0 {title}", style="green"))
    return Group(*parts)
