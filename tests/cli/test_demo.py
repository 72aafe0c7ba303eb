"""``rtmcall demo``: its exit status says whether every outcome matched."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from rtmcall.cli.demo import run as demo
from rtmcall.cli.demo.view import DemoRow, Result, build_live_table, build_summary, pair
from rtmcall.engine.codes import LocalInvitationState, RemoteInvitationError, RemoteInvitationState
from rtmcall.engine.events import LocalInvitationInfo, RemoteInvitationInfo
from rtmcall.scenario.load import load_text

from .conftest import REPO, RTMCALL, cli_env


def test_the_whole_demo_passes(config_dir: Path) -> None:
    proc = subprocess.run(
        [*RTMCALL, "demo", "--speed", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(config_dir),
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "all 13 outcomes as expected" in out
    for scenario in demo.demo_scenarios():
        assert f"▶ {scenario.name}:" in out  # not a terminal: progress lines
    assert "FAILURE(ACCEPT_FAILURE)" in out  # the outcome the old demo lacked
    assert "DIFFERS" not in out


def test_every_demo_scenario_is_a_shipped_scenario_file() -> None:
    files = sorted(demo.DEMO_DIR.glob("*.yaml"))
    assert len(files) == 11
    names = [s.name for s in demo.demo_scenarios()]
    assert names[:3] == ["accept", "refuse", "cancel"] and "accept-failure" in names
    # The same files play with `rtmcall scenario` (a user copies one to start their own).
    assert all(s.outcomes for s in demo.demo_scenarios())


def render(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


async def test_a_differing_outcome_fails_the_demo() -> None:
    text = (demo.DEMO_DIR / "01-accept.yaml").read_text()
    text = text.replace(
        "outcomes: {c1: ACCEPTED_BY_REMOTE / ACCEPTED}",
        "outcomes: {c1: REFUSED_BY_REMOTE / REFUSED}",
    )
    scenarios = load_text(text, "accept.yaml")
    console = Console(file=io.StringIO(), width=160, color_system=None)
    assert await demo._demo(4.0, scenarios, console) == 1
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "DIFFERS" in out and "1 outcome(s) differ" in out


def test_unknown_scenario_is_a_usage_error() -> None:
    assert demo.run_demo(only=["nope"]) == 2


def test_demo_list_names_the_scenarios_and_their_folder(config_dir: Path) -> None:
    proc = subprocess.run(
        [*RTMCALL, "demo", "--list"], capture_output=True, text=True, timeout=30,
        env=cli_env(config_dir), cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "accept-failure" in proc.stdout and str(demo.DEMO_DIR) in proc.stdout


def test_demo_tables_are_pure() -> None:
    caller = LocalInvitationInfo(
        "abcdef123", "alice", "bob", "hi", "", "", LocalInvitationState.RECEIVED_BY_REMOTE, 0, None
    )  # type: ignore[arg-type]
    callee = RemoteInvitationInfo(
        "abcdef123",
        "alice",
        "bob",
        "hi",
        "",
        "",
        RemoteInvitationState.INVITATION_RECEIVED,
        0,
        None,
    )  # type: ignore[arg-type]
    text = render(build_live_table([DemoRow("accept", caller, callee, deadline=12.0)], now=10.0))
    assert "alice → bob" in text and "ringing" in text and "RINGING" in text and "2.0s" in text
    assert "content" in text and "hi" in text
    narrow = build_live_table([DemoRow("accept", caller, callee, 12.0)], now=10.0, width=80)
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(narrow)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "2.0s" in text and "content" not in text  # free text gave way, nothing cut
    failed = RemoteInvitationInfo(
        "x", "alice", "bob", "", "", "", RemoteInvitationState.FAILURE,
        RemoteInvitationError.INVITATION_EXPIRE, None,
    )  # fmt: skip
    assert pair(None, failed) == "— / FAILURE(INVITATION_EXPIRE)"
    summary = render(
        build_summary([Result("a", ("X / Y",), "X / Y"), Result("b", ("X / Y",), "Z / Y")])
    )
    assert "✓ ok" in summary and "✗ DIFFERS" in summary


def _pair(content: str, response: str, caller: str = "alice", callee: str = "bob") -> DemoRow:
    out = LocalInvitationInfo(
        "id" + content,
        caller,
        callee,
        content,
        "",
        response,
        LocalInvitationState.REFUSED_BY_REMOTE,
        0,
        None,
    )  # type: ignore[arg-type]
    back = RemoteInvitationInfo(
        "id" + content, caller, callee, content, "", response,
        RemoteInvitationState.FAILURE, RemoteInvitationError.PEER_OFFLINE, None,
    )  # fmt: skip  # type: ignore[arg-type]
    return DemoRow("several at once 2/3", out, back)


@pytest.mark.parametrize("width", [80, 100, 120, 160, 200])
def test_the_live_table_keeps_its_columns_as_rows_arrive(width: int) -> None:
    rows = [
        _pair("", ""),
        _pair("oops, wrong number", "one call at a time"),
        _pair("x", "y", "carol", "frank"),
    ]
    headers = []
    for n in range(1, len(rows) + 1):
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(build_live_table(rows[:n], now=0.0, width=width))
        text = console.file.getvalue()  # type: ignore[attr-defined]
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= width
        headers.append(next(line for line in lines if "scenario" in line))
        assert "failed: caller offline" in text  # a state is never cut
    assert len(set(headers)) == 1, headers  # the columns did not move
    if width >= 160:  # room enough: the demo's texts are shown whole
        assert "oops, wrong number" in text and "one call at a time" in text
