"""``rtmcall scenario PATH…``: load every file (nothing runs if one has a problem), play the
chosen scenarios ``--repeat`` times each, one after the other, and report.

Exit status: 0 when every run passed, 1 when any failed or Ctrl-C stopped the run, 2 for a
file with problems or bad options (then nothing was started).
"""

from __future__ import annotations

import fnmatch
import logging
import re
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio
from rich.console import Console
from rich.live import Live

from . import report
from .load import ScenarioError, load_paths
from .model import Scenario
from .runner import QuietObserver, ScenarioResult, ScenarioRun, StepResult

OK, FAILED, USAGE = 0, 1, 2
_VAR_ARG = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", re.S)


@dataclass
class SuiteOptions:
    paths: Sequence[str]
    servers: Sequence[str] = ()
    variables: Sequence[str] = ()
    only: Sequence[str] = ()
    repeat: int = 1
    junit: str | None = None
    as_json: bool = False
    list_only: bool = False


class _Plain(QuietObserver):
    """Not a terminal (or ``--json``): nothing while it plays but ``--json``'s step lines;
    the result lines say the rest."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def step_ended(self, run: ScenarioRun, result: StepResult) -> None:
        if self.as_json:
            _write(report.dumps(report.step_json(run, result)))


class _LiveView:
    """A terminal: the steps tick and the invitations move while the scenario plays."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.run: ScenarioRun | None = None
        self.running: dict[str, str] = {}
        self.done: list[StepResult] = []
        self.dirty = False

    def begin(self, run: ScenarioRun) -> None:
        self.run, self.running, self.done = run, {}, []
        self.live = Live(console=self.console, auto_refresh=False, transient=True)
        self.live.start()

    def end(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def step_started(self, run: ScenarioRun, number: str, text: str) -> None:
        self.running[number] = text
        self.dirty = True

    def step_ended(self, run: ScenarioRun, result: StepResult) -> None:
        self.running.pop(result.number, None)
        self.done.append(result)
        self.dirty = True

    def changed(self, run: ScenarioRun) -> None:
        self.dirty = True

    def refresh(self) -> None:
        if self.live is None or self.run is None:
            return
        size = self.console.size
        view = report.build_live_view(
            self.run, list(self.running.items()), self.done, height=size.height, width=size.width
        )
        self.live.update(view, refresh=True)
        self.dirty = False

    async def keep_refreshing(self) -> None:
        while True:
            self.refresh()
            await trio.sleep(0.1)


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _variables(pairs: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    out: dict[str, str] = {}
    problems = []
    for pair in pairs:
        m = _VAR_ARG.match(pair)
        if not m:
            problems.append(f"--var {pair!r}: write NAME=VALUE (NAME: letters, digits, _)")
        elif m.group(1) in ("run", "i"):
            problems.append(f"--var {pair!r}: ${{{m.group(1)}}} is set by the runner")
        else:
            out[m.group(1)] = m.group(2)
    return out, problems


def _servers(urls: Sequence[str]) -> list[str]:
    from rtmcall.client.websocket import parse_url

    problems = []
    for url in urls:
        if url.startswith("wss://"):
            problems.append(
                f"--server {url}: wss:// is not supported by the fault proxy (use ws://)"
            )
            continue
        try:
            parse_url(url)
        except ValueError as exc:
            problems.append(f"--server {url!r}: give a ws://HOST:PORT URL ({exc})")
            continue
        if not re.match(r"ws://[^/\s]+", url):
            problems.append(f"--server {url!r}: give a ws://HOST:PORT URL")
    return problems


def select(scenarios: Sequence[Scenario], only: Sequence[str]) -> tuple[list[Scenario], list[str]]:
    """``--only NAME`` (a name, or a shell pattern such as ``'cancel*'``), repeatable."""
    if not only:
        return list(scenarios), []
    chosen = [s for s in scenarios if any(fnmatch.fnmatchcase(s.name, p) for p in only)]
    problems = [
        f"--only {p!r}: no scenario has that name (--list shows them)"
        for p in only
        if not any(fnmatch.fnmatchcase(s.name, p) for s in scenarios)
    ]
    return chosen, problems


def prepare(opts: SuiteOptions) -> tuple[list[Scenario], list[str]]:
    """Every problem of the options and files, or the scenarios to play."""
    variables, problems = _variables(opts.variables)
    problems += _servers(opts.servers)
    if opts.repeat < 1:
        problems.append("--repeat must be at least 1")
    if not opts.paths:
        problems.append("name at least one scenario file or folder")
    if problems:
        return [], problems
    try:
        scenarios = load_paths(opts.paths, variables=variables, servers=len(opts.servers) or None)
    except ScenarioError as exc:
        return [], exc.problems
    return select(scenarios, opts.only)


@dataclass
class _State:
    results: list[ScenarioResult] = field(default_factory=list)
    current: ScenarioRun | None = None
    interrupted: bool = False
    #: Warnings said so far (each once, on stderr, however many runs give it).
    warned: set[str] = field(default_factory=set)


async def _play_all(
    scenarios: Sequence[Scenario], opts: SuiteOptions, console: Console, state: _State
) -> None:
    live = console.is_terminal and not opts.as_json
    view = _LiveView(console) if live else None
    plain = _Plain(opts.as_json)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_on_sigint, state)
        for scenario in scenarios:
            for i in range(1, opts.repeat + 1):
                if state.interrupted:
                    break
                run = ScenarioRun(
                    scenario,
                    servers=opts.servers or None,
                    run=i,
                    runs=opts.repeat,
                    observer=view or plain,
                )
                state.current = run
                if view is not None:
                    view.begin(run)
                    async with trio.open_nursery() as display:
                        display.start_soon(view.keep_refreshing)
                        result = await run.play()
                        display.cancel_scope.cancel()
                    view.end()
                else:
                    result = await run.play()
                state.results.append(result)
                for warning in result.warnings:
                    if warning not in state.warned:
                        state.warned.add(warning)
                        sys.stderr.write(f"rtmcall scenario: warning: {warning}\n")
                _report(result, console, opts.as_json)
        nursery.cancel_scope.cancel()


def _report(result: ScenarioResult, console: Console, as_json: bool) -> None:
    if as_json:
        _write(report.dumps(report.scenario_json(result)))
        return
    line = report.result_line(result)
    style = "green" if result.ok else "bold red"
    console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)


async def _on_sigint(state: _State) -> None:
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            state.interrupted = True
            if state.current is not None:
                state.current.interrupt()


def run_suite(opts: SuiteOptions, console: Console | None = None) -> int:
    """Play the suite; returns the exit status."""
    console = console or Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    scenarios, problems = prepare(opts)
    if problems:
        for problem in problems:
            err.print(f"rtmcall scenario: {problem}", markup=False, soft_wrap=True)
        return USAGE
    if opts.list_only:
        for s in scenarios:
            about = f"  {s.description.strip().splitlines()[0]}" if s.description.strip() else ""
            console.print(f"{s.name}  ({s.file}:{s.line}){about}", markup=False, soft_wrap=True)
        return OK
    # The clients' and the embedded server's own logs would interleave with the report.
    logging.getLogger("rtmcall").setLevel(logging.ERROR)
    state = _State()
    trio.run(_play_all, scenarios, opts, console, state)
    results = state.results
    if opts.junit:
        try:
            report.write_junit(opts.junit, results)
        except OSError as exc:
            err.print(f"rtmcall scenario: cannot write {opts.junit}: {exc}", markup=False)
            return FAILED
    failed = [r for r in results if not r.ok]
    if opts.as_json:
        _write(report.dumps(report.summary_json(results)))
    else:
        total = len(results)
        if state.interrupted:
            console.print(f"interrupted after {total} run(s)", style="bold red")
        elif failed:
            console.print(f"{len(failed)} of {total} failed", style="bold red")
        else:
            console.print(f"all {total} passed", style="green")
    return FAILED if failed or state.interrupted else OK
