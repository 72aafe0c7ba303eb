"""Running ``rtmcall top``: read every node's metrics, show them live or once."""

from __future__ import annotations

import os
import sys
import time

import httpx
import trio
from rich.console import Console
from rich.live import Live

from .view import NodeReading, build_view, parse_node, rows


async def read_node(client: httpx.AsyncClient, url: str, wait: float) -> NodeReading:
    at = time.monotonic()
    try:
        with trio.fail_after(wait):
            answer = await client.get(url)
    except (httpx.HTTPError, trio.TooSlowError, OSError) as exc:
        why = "timed out" if isinstance(exc, trio.TooSlowError) else type(exc).__name__
        return NodeReading(source=url, at=at, error=why)
    if answer.status_code != 200:
        return NodeReading(source=url, at=at, error=f"HTTP {answer.status_code} (--metrics off?)")
    try:
        return parse_node(url, at, answer.text)
    except ValueError as exc:
        return NodeReading(source=url, at=at, error=f"not metrics: {exc}")


async def read_all(client: httpx.AsyncClient, urls: list[str], wait: float) -> list[NodeReading]:
    readings: list[NodeReading | None] = [None] * len(urls)

    async def one(i: int) -> None:
        readings[i] = await read_node(client, urls[i], wait)

    async with trio.open_nursery() as nursery:
        for i in range(len(urls)):
            nursery.start_soon(one, i)
    return [r for r in readings if r is not None]


async def run_top(urls: list[str], interval: float, wait: float, once: bool) -> int:
    live = not once and sys.stdin.isatty() and sys.stdout.isatty()
    async with httpx.AsyncClient() as client:
        if not live:
            first = await read_all(client, urls, wait)
            await trio.sleep(interval)
            latest = await read_all(client, urls, wait)
            # Plain text, as wide as the table needs (a file or a pipe does not wrap).
            console = Console(color_system=None, width=200)
            before = {r.source: r for r in first}
            console.print(build_view(rows(latest, before)))
            return 3 if any(r.error for r in latest) else 0
        return await _live(client, urls, interval, wait)


async def _live(client: httpx.AsyncClient, urls: list[str], interval: float, wait: float) -> int:
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    console = Console()
    previous: dict[str, NodeReading] = {}
    try:
        with Live(console=console, auto_refresh=False, screen=False) as view:
            async with trio.open_nursery() as nursery:

                async def keys() -> None:
                    while True:
                        await trio.lowlevel.wait_readable(fd)
                        data = os.read(fd, 64)
                        if not data or b"q" in data.lower() or b"\x03" in data:
                            nursery.cancel_scope.cancel()
                            return

                nursery.start_soon(keys)
                while True:
                    latest = await read_all(client, urls, wait)
                    title = f"rtmcall top · every {interval:g} s · q quits"
                    view.update(build_view(rows(latest, previous), title), refresh=True)
                    previous = {r.source: r for r in latest}
                    await trio.sleep(interval)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    return 0
