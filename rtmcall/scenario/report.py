"""Reports of scenario runs: ``PASS``/``FAIL`` lines, ``--json`` lines, JUnit XML, and the
live view of a run on a terminal (pure functions of the runner's state, like the softphone's
table)."""

from __future__ import annotations

import json
import os
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from rtmcall.cli.formats.states import describe

from .runner import ScenarioResult, ScenarioRun, StepResult


def result_line(result: ScenarioResult) -> str:
    """``PASS name (1.2 s)`` or ``FAIL name: step 4 (…): what went wrong``."""
    if result.ok:
        return f"PASS {result.title} ({result.duration:.1f} s)"
    return f"FAIL {result.title}: {result.failure} ({result.duration:.1f} s)"


def step_json(run: ScenarioRun, step: StepResult) -> dict[str, Any]:
    return {
        "type": "step",
        "scenario": run.scenario.name,
        "run": run.result.run,
        "step": step.number,
        "text": step.text,
        "ok": step.ok,
        "started": round(step.started, 4),
        "elapsed": round(step.elapsed, 4),
        "message": step.message,
    }


def scenario_json(result: ScenarioResult) -> dict[str, Any]:
    return {
        "type": "scenario",
        "name": result.scenario.name,
        "file": result.scenario.file,
        "run": result.run,
        "runs": result.runs,
        "run_id": result.run_id,
        "ok": result.ok,
        "duration": round(result.duration, 4),
        "failure": result.failure,
        "failed_step": result.failed_step,
        "interrupted": result.interrupted,
        "outcomes": result.outcomes,
        "warnings": result.warnings,
    }


def summary_json(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    failed = sum(not r.ok for r in results)
    return {"type": "summary", "passed": len(results) - failed, "failed": failed}


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _events_text(result: ScenarioResult) -> str:
    """Every actor's events in time order, each marked with the step that took it."""
    lines: list[tuple[float, str]] = []
    for actor, events in result.events.items():
        for rec in events:
            taken = f"  [taken by step {rec.taken_by}]" if rec.taken_by else ""
            lines.append((rec.at, f"{rec.at:8.3f}s {actor}: {dumps(rec.obj)}{taken}"))
    lines.sort(key=lambda item: item[0])
    return "\n".join(text for _, text in lines)


def _steps_text(result: ScenarioResult) -> str:
    return "\n".join(
        f"{'ok  ' if s.ok else 'FAIL'} step {s.number:<6} {s.elapsed * 1000:8.1f} ms  {s.text}"
        + (f"\n      {s.message}" if s.message else "")
        for s in result.steps
    )


def junit_xml(results: Sequence[ScenarioResult]) -> ET.ElementTree:
    """JUnit XML as GitHub Actions, GitLab and Jenkins read it: one ``testsuite`` per file,
    one ``testcase`` per scenario run, a ``failure`` with the message, the steps and every
    actor's events in ``system-out``."""
    root = ET.Element("testsuites", name="rtmcall scenario")
    by_file: dict[str, list[ScenarioResult]] = {}
    for r in results:
        by_file.setdefault(r.scenario.file, []).append(r)
    host = socket.gethostname()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    total_tests = total_failures = 0
    total_time = 0.0
    for file, rs in by_file.items():
        failures = sum(not r.ok for r in rs)
        took = sum(r.duration for r in rs)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=file,
            tests=str(len(rs)),
            failures=str(failures),
            errors="0",
            skipped="0",
            time=f"{took:.3f}",
            timestamp=stamp,
            hostname=host,
        )
        for r in rs:
            case = ET.SubElement(
                suite,
                "testcase",
                name=r.title,
                classname=Path(file).stem,
                file=file,
                line=str(r.scenario.line),
                time=f"{r.duration:.3f}",
            )
            if not r.ok:
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=r.failure or "failed",
                    type="Interrupted" if r.interrupted else "ScenarioFailure",
                )
                failure.text = f"{r.failure}\n\n{_steps_text(r)}"
            out = ET.SubElement(case, "system-out")
            out.text = f"run {r.run_id}\n{_steps_text(r)}\n\n{_events_text(r)}\n"
        total_tests += len(rs)
        total_failures += failures
        total_time += took
    root.set("tests", str(total_tests))
    root.set("failures", str(total_failures))
    root.set("errors", "0")
    root.set("time", f"{total_time:.3f}")
    return ET.ElementTree(root)


def write_junit(path: str, results: Sequence[ScenarioResult]) -> None:
    tree = junit_xml(results)
    ET.indent(tree)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)


# --- the live view ------------------------------------------------------------------------

_MARK = {True: Text("✓", style="green"), False: Text("✗", style="bold red")}


def build_live_view(
    run: ScenarioRun,
    running: Sequence[tuple[str, str]],
    done: Sequence[StepResult],
    *,
    height: int = 24,
    width: int = 100,
) -> Group:
    """The steps so far (ticked, the running ones marked) and every invitation's two ends."""
    title = Text(f"▶ {run.result.title}", style="bold")
    steps = Table(box=None, show_header=False, pad_edge=False, expand=False)
    steps.add_column(no_wrap=True)
    steps.add_column(justify="right", no_wrap=True)
    steps.add_column(no_wrap=True, overflow="ellipsis", max_width=max(20, width - 20))
    rows: list[tuple[Text, str, str]] = []
    for s in done:
        rows.append((_MARK[s.ok], f"{s.elapsed:.2f}s", f"{s.number}  {s.text}"))
    for number, text in running:
        rows.append((Text("…", style="yellow"), "", f"{number}  {text}"))
    budget = max(3, height // 2 - 2)
    for row in rows[-budget:]:
        steps.add_row(*row)
    invs = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False)
    invs.add_column("invitation", no_wrap=True)
    invs.add_column("call", no_wrap=True)
    invs.add_column("caller sees", no_wrap=True, overflow="ellipsis", max_width=24)
    invs.add_column("callee sees", no_wrap=True, overflow="ellipsis", max_width=24)
    for inv_id, held in list(run.sides().items())[-budget:]:
        caller = next((i for _, i in held if i.direction == "out"), None)
        callee = next((i for _, i in held if i.direction == "in"), None)
        info = caller or callee
        assert info is not None
        cells = []
        for side in (caller, callee):
            if side is None:
                cells.append(Text("—", style="dim"))
            else:
                words, style = describe(side.state, side.error)
                cells.append(Text(words, style=style))
        invs.add_row(run.names.get(inv_id, inv_id[:6]), f"{info.caller} → {info.callee}", *cells)
    return Group(title, steps, _actors_line(run, width), invs)


def _actors_line(run: ScenarioRun, width: int) -> Text:
    """Each actor in a word or two: logged in or not, and what its line does."""
    line = Text(no_wrap=True, overflow="ellipsis")
    shown = list(run.actors.values())
    for i, actor in enumerate(shown[:12]):
        if i:
            line.append(" · ", style="dim")
        if actor.killed:
            word, style = "killed", "bold red"
        elif actor.proxy.is_down:
            word, style = "line down", "bold red"
        elif not actor.live:
            word, style = "logged out", "dim"
        elif actor.proxy.latency:
            word, style = f"+{actor.proxy.latency * 1000:.0f} ms", "yellow"
        else:
            word, style = "online", "green"
        line.append(f"{actor.name} ")
        line.append(word, style=style)
    if len(shown) > 12:
        line.append(f" · … {len(shown) - 12} more", style="dim")
    line.truncate(max(20, width))
    return line
