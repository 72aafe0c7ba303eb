"""``rtmcall demo``: the scenario files shipped in the package (``rtmcall/scenario/demo/``),
played one after the other by the scenario runner, with every outcome of SPEC §2.

On a terminal a Rich ``Live`` table shows both ends of every invitation as it moves; in a
pipe each scenario prints progress lines instead. The end is a summary of expected vs actual
outcome per invitation (each file's ``outcomes``), and the exit status says whether all
matched and every scenario passed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import trio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from rtmcall.scenario.load import load_paths
from rtmcall.scenario.model import Scenario
from rtmcall.scenario.runner import ScenarioResult, ScenarioRun

from ..runtime import NOT_AS_ASKED, OK, USAGE
from .view import DemoRow, Result, build_live_table, build_summary, pair

#: Where the demo's scenario files live (copy one to start your own).
DEMO_DIR = Path(__file__).resolve().parents[2] / "scenario" / "demo"


def demo_scenarios() -> list[Scenario]:
    return load_paths([DEMO_DIR])


def _label(scenario: Scenario, name: str, index: int) -> str:
    count = len(scenario.outcomes)
    return scenario.name if count <= 1 else f"{scenario.name} {index}/{count}"


class _Board:
    """Every invitation the demo made so far, both ends, for the live table."""

    def __init__(self) -> None:
        self.finished: list[DemoRow] = []
        self.run: ScenarioRun | None = None

    def rows(self, now: float) -> list[DemoRow]:
        return self.finished + (self._rows(self.run, now, live=True) if self.run else [])

    def close(self, run: ScenarioRun) -> None:
        self.finished += self._rows(run, time.monotonic(), live=False)
        self.run = None

    @staticmethod
    def _rows(run: ScenarioRun, now: float, *, live: bool) -> list[DemoRow]:
        rows = []
        held = run.sides()
        trio_now = trio.current_time()
        names = list(run.scenario.outcomes) or list(run.ids)
        for index, name in enumerate(names, 1):
            inv_id = run.ids.get(name)
            if inv_id is None:
                continue
            caller, callee = run.ends(held.get(inv_id, []))
            # A killed caller's row still shows what its app saw last.
            caller = caller or next(
                ((a, i) for a, i in held.get(inv_id, []) if i.direction == "out"), None
            )
            if caller is None:
                continue
            actor, info = caller
            deadline = None
            inv = actor.phone.client.local_invitations.get(inv_id) if actor.phone else None
            if live and inv is not None and inv.live and not actor.killed:
                at = actor.phone.client.timer_deadline(inv)  # type: ignore[union-attr]
                if at is not None and not math.isinf(at):
                    deadline = now + (at - trio_now)
            label = _label(run.scenario, name, index)
            rows.append(DemoRow(label, info, callee, deadline))
        return rows


def _results(result: ScenarioResult) -> list[Result]:
    scenario = result.scenario
    out = []
    for index, (name, expected) in enumerate(scenario.outcomes.items(), 1):
        actual = result.outcomes.get(name, pair(None, None))
        out.append(Result(_label(scenario, name, index), expected, actual))
    return out


def _live_table(board: _Board, console: Console):  # type: ignore[no-untyped-def]
    now = time.monotonic()
    size = console.size  # one screen: older rows scroll away, the summary lists them all
    return build_live_table(
        board.rows(now), now, max_rows=max(3, size.height - 8), width=size.width
    )


async def _refresh(live: Live, board: _Board, console: Console) -> None:
    while True:
        live.update(_live_table(board, console), refresh=True)
        await trio.sleep(0.1)


async def _play(
    scenarios: Sequence[Scenario], scale: float, console: Console, live: Live | None
) -> list[ScenarioResult]:
    board = _Board()
    results = []
    async with trio.open_nursery() as display:
        if live is not None:
            display.start_soon(_refresh, live, board, console)
        for scenario in scenarios:
            if live is None:
                console.print(Text(f"▶ {scenario.name}: {scenario.description}", style="bold"))
            run = ScenarioRun(scenario, scale=scale)  # the table is redrawn on a timer
            board.run = run
            result = await run.play()
            board.close(run)
            results.append(result)
            if live is None:
                for r in _results(result):
                    mark = "✓" if r.ok else f"✗ expected {' or '.join(r.expected)}"
                    console.print(f"  {r.scenario}: {r.actual} {mark}")
            if not result.ok:
                console.print(Text(f"  {scenario.name}: {result.failure}", style="bold red"))
        if live is not None:
            live.update(_live_table(board, console), refresh=True)
        display.cancel_scope.cancel()
    return results


async def _demo(speed: float, scenarios: Sequence[Scenario], console: Console) -> int:
    started = time.monotonic()
    users = sorted({a.user for s in scenarios for a in s.actors.values()})
    who = ", ".join(users)
    console.print(f"{len(scenarios)} scenarios with users {who}; each on its own server")
    if console.is_terminal:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            results = await _play(scenarios, 1.0 / speed, console, live)
    else:
        results = await _play(scenarios, 1.0 / speed, console, None)
    outcomes = [r for result in results for r in _results(result)]
    console.print(build_summary(outcomes))
    took = time.monotonic() - started
    bad = [r for r in outcomes if not r.ok]
    failed = [r for r in results if not r.ok]
    if bad or failed:
        what = f"{len(bad)} outcome(s) differ" if bad else f"{len(failed)} scenario(s) failed"
        console.print(Text(f"{what} ({took:.1f} s)", style="bold red"))
        return NOT_AS_ASKED
    console.print(Text(f"all {len(outcomes)} outcomes as expected ({took:.1f} s)", style="green"))
    return OK


def list_demo(console: Console | None = None) -> int:
    console = console or Console(highlight=False)
    for s in demo_scenarios():
        console.print(f"{s.name:<16} {s.description}", markup=False, soft_wrap=True)
    console.print(f"files: {DEMO_DIR}", markup=False, soft_wrap=True)
    return OK


def run_demo(speed: float = 1.0, only: Sequence[str] = ()) -> int:
    console = Console(highlight=False)
    if not console.is_terminal:  # a log file or CI: wide enough for the summary's states
        console = Console(highlight=False, width=120)
    scenarios = demo_scenarios()
    names = [s.name for s in scenarios]
    unknown = [name for name in only if name not in names]
    if unknown:
        console.print(f"rtmcall demo: no scenario {unknown[0]!r}; there are: {', '.join(names)}")
        return USAGE
    # The server's and clients' own logs would interleave with the table: errors only.
    logging.getLogger("rtmcall").setLevel(logging.ERROR)
    chosen = [s for s in scenarios if not only or s.name in only]
    try:
        return trio.run(_demo, speed, chosen, console)
    except KeyboardInterrupt:
        return NOT_AS_ASKED
