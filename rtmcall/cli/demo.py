"""``rtmcall demo``: a server and several users in one process, playing every outcome.

On a terminal a Rich ``Live`` table shows both ends of every invitation as it moves; in a
pipe each scenario prints progress lines instead. The end is a summary of expected vs actual
outcome per invitation, and the exit status says whether all matched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial

import trio
from rich.console import Console
from rich.live import Live
from rich.text import Text

from rtmcall.client import ClientConfig
from rtmcall.server import ServerConfig, serve

from .demo_scenarios import SCENARIOS
from .demo_view import Result, build_live_table, build_summary, pair
from .demo_world import Check, World
from .runtime import NOT_AS_ASKED, OK, USAGE

#: The protocol windows at --speed 1, in seconds.
NO_RESPONSE, LIFETIME, CONFIRM, GRACE = 1.5, 2.0, 1.0, 0.5
#: Longest a scenario may take to settle (scaled) before it counts as differing.
SETTLE = 8.0


def _result(w: World, check: Check) -> Result:
    rinv = w.remote(check.callee, check.invitation)
    actual = pair(check.invitation.info(), rinv.info() if rinv else None)
    return Result(check.scenario, check.expected, actual)


async def _play(w: World, console: Console, names: Sequence[str], live: bool) -> None:
    for name in names:
        words, scenario = SCENARIOS[name]
        if not live:
            console.print(Text(f"▶ {name}: {words}", style="bold"))
        first = len(w.checks)
        try:
            await scenario(w)
            mine = w.checks[first:]
            await w.until(lambda: all(w.settled(c) for c in mine), SETTLE)  # noqa: B023
        except trio.TooSlowError:
            console.print(Text(f"  {name}: did not settle in time", style="bold red"))
        if not live:
            for check in w.checks[first:]:
                r = _result(w, check)
                mark = "✓" if r.ok else f"✗ expected {' or '.join(r.expected)}"
                console.print(f"  {r.scenario}: {r.actual} {mark}")
        await w.sleep(0.3)


def _live_table(w: World, console: Console):  # type: ignore[no-untyped-def]
    now = time.monotonic()
    # Keep the table on one screen: older rows scroll away, the summary lists them all.
    size = console.size
    return build_live_table(w.rows(now), now, max_rows=max(3, size.height - 8), width=size.width)


async def _refresh(live: Live, w: World, console: Console) -> None:
    while True:
        live.update(_live_table(w, console), refresh=True)
        await trio.sleep(0.1)


async def _demo(speed: float, names: Sequence[str], console: Console) -> int:
    scale = 1.0 / speed
    config = ClientConfig(
        no_response_timeout=NO_RESPONSE * scale,
        lifetime=LIFETIME * scale,
        confirm_timeout=CONFIRM * scale,
        expire_grace=GRACE * scale,
    )
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve, "127.0.0.1", 0, config=ServerConfig()))
        console.print(f"server on {server.url}; users alice, bob, carol, mute logged in")
        w = World(server.url, config, nursery, scale)
        for user in ("alice", "bob", "carol"):
            await w.login(user)
        await w.login_mute("mute")
        if console.is_terminal:
            with Live(console=console, auto_refresh=False, transient=False) as live:
                async with trio.open_nursery() as display:
                    display.start_soon(_refresh, live, w, console)
                    await _play(w, console, names, live=True)
                    display.cancel_scope.cancel()
                live.update(_live_table(w, console), refresh=True)
        else:
            await _play(w, console, names, live=False)
        results = [_result(w, check) for check in w.checks]
        nursery.cancel_scope.cancel()  # every user logs out; the server stops
    console.print(build_summary(results))
    bad = [r for r in results if not r.ok]
    took = time.monotonic() - started
    if bad:
        console.print(Text(f"{len(bad)} outcome(s) differ ({took:.1f} s)", style="bold red"))
        return NOT_AS_ASKED
    console.print(Text(f"all {len(results)} outcomes as expected ({took:.1f} s)", style="green"))
    return OK


def run_demo(speed: float = 1.0, only: Sequence[str] = ()) -> int:
    console = Console(highlight=False)
    if not console.is_terminal:  # a log file or CI: wide enough for the summary's states
        console = Console(highlight=False, width=120)
    unknown = [name for name in only if name not in SCENARIOS]
    if unknown:
        console.print(
            f"rtmcall demo: no scenario {unknown[0]!r}; there are: {', '.join(SCENARIOS)}"
        )
        return USAGE
    # The server's and clients' own logs would interleave with the table: errors only.
    logging.getLogger("rtmcall").setLevel(logging.ERROR)
    names = [name for name in SCENARIOS if not only or name in only]
    try:
        return trio.run(_demo, speed, names, console)
    except KeyboardInterrupt:
        return NOT_AS_ASKED
