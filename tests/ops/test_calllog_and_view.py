"""The call log's rotation and failure handling, and ``rtmcall top``'s pure view."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from rich.console import Console

from rtmcall.cli.cmd.top import metrics_url
from rtmcall.cli.top.view import build_view, parse_node, quantile, rows
from rtmcall.server.calllog import CallLog


def test_the_call_log_rotates_by_size_and_keeps_its_backups(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    log = CallLog(str(path), max_bytes=1000, backups=2)
    for i in range(100):
        log.write({"id": f"inv{i:03d}", "pad": "x" * 80})
    log.close()
    files = [path, Path(f"{path}.1"), Path(f"{path}.2")]
    assert all(p.exists() for p in files) and not Path(f"{path}.3").exists()
    assert all(p.stat().st_size < 1000 + 200 for p in files)
    kept = [json.loads(line)["id"] for p in reversed(files) for line in p.read_text().splitlines()]
    assert kept == sorted(kept) and kept[-1] == "inv099"  # the newest, in order, none torn
    assert log.lines == 100 and log.errors == 0


def test_a_call_log_that_fails_warns_once_then_again_when_it_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "later"
    with caplog.at_level(logging.WARNING, logger="rtmcall.server"):
        log = CallLog(str(folder / "calls.jsonl"))
        for _ in range(3):
            log.write({"id": "lost"})
        folder.mkdir()
        log.write({"id": "kept"})
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "cannot be written" in m]) == 1
    assert any("writing again" in m for m in messages)
    assert (log.errors, log.lines) == (3, 1)
    assert json.loads((folder / "calls.jsonl").read_text()) == {"id": "kept"}


METRICS = """\
# TYPE rtmcall_up gauge
rtmcall_up{node="a"} 1.0
# TYPE rtmcall_users_online gauge
rtmcall_users_online{node="a"} 12.0
# TYPE rtmcall_invitations_sent_total counter
rtmcall_invitations_sent_total{node="a"} %(sent)s
# TYPE rtmcall_invitations_total counter
rtmcall_invitations_total{error="",node="a",outcome="accepted"} 7.0
rtmcall_invitations_total{error="PEER_OFFLINE",node="a",outcome="failed"} 2.0
# TYPE rtmcall_call_setup_seconds histogram
rtmcall_call_setup_seconds_bucket{le="0.01",node="a"} 4.0
rtmcall_call_setup_seconds_bucket{le="0.1",node="a"} 6.0
rtmcall_call_setup_seconds_bucket{le="+Inf",node="a"} 7.0
rtmcall_call_setup_seconds_count{node="a"} 7.0
rtmcall_call_setup_seconds_sum{node="a"} 0.5
# TYPE rtmcall_calls_in_progress gauge
rtmcall_calls_in_progress{node="a"} 3.0
# TYPE rtmcall_redis_up gauge
rtmcall_redis_up{node="a"} 0.0
# TYPE rtmcall_webhook_backlog gauge
rtmcall_webhook_backlog{endpoint="http://x/h",node="a"} 40.0
# TYPE rtmcall_webhook_events_total counter
rtmcall_webhook_events_total{endpoint="http://x/h",node="a",result="dropped"} 3.0
"""


def test_top_shows_rates_outcomes_percentiles_redis_and_the_backlog() -> None:
    before = parse_node("http://a/metrics", 10.0, METRICS % {"sent": "5.0"})
    after = parse_node("http://a/metrics", 12.0, METRICS % {"sent": "15.0"})
    down = parse_node("http://b/metrics", 12.0, "")
    down.error = "ConnectError"
    (row_a, row_b) = rows([after, down], {before.source: before})
    assert row_a.per_second == 5.0  # (15 - 5) / 2 s
    assert row_a.p50 is not None and row_a.p50 <= 0.01
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(build_view([row_a, row_b]))
    text = out.getvalue()
    line = next(x for x in text.splitlines() if x.startswith("│ a "))
    cells = [c.strip() for c in line.split("│")[1:-1]]
    # node, status, users, calls/s, live, in call, accepted, refused, canceled, failed, missed
    assert cells[:11] == ["a", "up", "12", "5.0", "0", "3", "7", "0", "0", "2", "0"]
    assert cells[13] == "DOWN" and cells[14] == "40 queued, 3 dropped"
    assert "DOWN http://b/metrics: ConnectError" in text
    assert "failed by error: PEER_OFFLINE 2" in text
    assert "1/2 up" in text


def test_quantiles_as_prometheus_computes_them() -> None:
    buckets = [(0.01, 4.0), (0.1, 6.0), (float("inf"), 7.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01 * 3.5 / 4)
    assert quantile(0.75, buckets) == pytest.approx(0.01 + 0.09 * (5.25 - 4) / 2)
    assert quantile(0.99, buckets) == 0.1  # in +Inf: the highest finite bound
    assert quantile(0.5, []) is None


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("ws://127.0.0.1:8765", "http://127.0.0.1:8765/metrics"),
        ("wss://rtm.example:443/", "https://rtm.example:443/metrics"),
        ("http://10.0.0.5:9100", "http://10.0.0.5:9100/metrics"),
        ("http://10.0.0.5:9100/custom", "http://10.0.0.5:9100/custom"),
        ("127.0.0.1:8765", None),
        ("ftp://x", None),
    ],
)
def test_top_server_urls(given: str, read: str | None) -> None:
    assert metrics_url(given) == read
