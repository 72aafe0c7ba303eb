"""A seconds-long smoke run of ``run_bench`` against its embedded server subprocess.

No timed assertions: only that every call ends as expected, with no errors, and that the
result renders (table and JSON).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import trio

from rtmcall.bench import BenchOptions, BenchSnapshot, run_bench
from rtmcall.bench.command import bench_command


@pytest.mark.parametrize("mode", ["accept", "refuse", "cancel"])
async def test_smoke(mode: str) -> None:
    snapshots: list[BenchSnapshot] = []
    with trio.fail_after(60):
        result = await run_bench(
            BenchOptions(pairs=2, calls=20, mode=mode, idle=2), progress=snapshots.append
        )
    assert result.errors == {}
    assert result.unexpected == {}
    assert result.ok
    assert result.handshakes == 20
    assert result.outcome.count == 20
    assert result.received_by_peer.count == 20
    assert result.embedded
    assert snapshots and snapshots[-1].phase == "done"
    data = json.loads(result.to_json())
    assert data["ok"] is True and data["handshakes"] == 20


def test_report_renders() -> None:
    from rich.console import Console

    from rtmcall.bench.report import render_progress, render_result
    from rtmcall.bench.result import BenchResult, LatencyStats

    stats = LatencyStats.of([0.001, 0.002, 0.003])
    result = BenchResult(
        server="ws://x",
        embedded=False,
        pairs=1,
        mode="accept",
        idle=0,
        rate=None,
        elapsed=1.0,
        handshakes=3,
        handshakes_per_s=3.0,
        received_by_peer=stats,
        outcome=stats,
        unexpected={"LocalInvitationFailure(PEER_NO_RESPONSE)": 1},
    )
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    console.print(render_result(result))
    snap = BenchSnapshot("measure", 2, 2, 0.5, 1.0, 3, None, 0, 1)
    console.print(render_progress(snap))
    text = out.getvalue()
    assert "Accepted" in text and "PEER_NO_RESPONSE" in text and "1 unexpected" in text
    assert stats.p50 == pytest.approx(2.0)


def test_command_usage_errors() -> None:
    assert bench_command(pairs=0) == 2
    assert bench_command(mode="nope") == 2


def test_the_headline_is_one_line_when_not_on_a_terminal(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["RTMCALL_CONFIG_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "rtmcall.cli", "bench", "--pairs", "2", "--calls", "10"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    headline = done.stdout.splitlines()[0]
    assert len(headline) > 80  # longer than rich's default width off a terminal...
    assert "handshakes" in headline and headline.endswith("embedded server")  # ...yet whole
