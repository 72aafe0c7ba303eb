"""The baseline's load generator: raw trio-websocket clients, no SDK, no engine.

Speaks the protocol of ``raw_relay_*.py`` (first message: user name; then
``<to>\\n<body>``). Each pair plays the same four messages per operation as an rtmcall
accepted handshake — invite, ack, accept, confirm — with bodies byte for byte the size of
rtmcall's ``Send`` frames, and the caller measures send→ack and send→accept like
``rtmcall bench`` measures send→ReceivedByPeer and send→Accepted. Same phases, pacing and
counting as :mod:`rtmcall.bench.runner` (it shares its Tally and statistics).

    python bench/lean_load.py URL --pairs 50 --duration 5 [--rate R] [--server-pid PID]

prints one JSON object. ``--idle N`` instead connects N idle users, prints ``READY n``
and holds them until stdin closes (for the memory measurement).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import sys
import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from rtmcall.bench.result import LatencyStats
from rtmcall.bench.runner import _cpu_seconds, _rss
from rtmcall.bench.tally import Tally

CALL_TIMEOUT = 30.0


def _bodies(callee: str, caller: str, inv_id: str, rid: int) -> tuple[str, str, str, str]:
    """The four messages, as rtmcall's Send frames would encode them (same sizes)."""
    head = '{"t":"send","rid":%d,"to":"%s","msg":{"k":'
    return (
        f"{callee}\n" + head % (rid, callee) + f'"invite","id":"{inv_id}","content":"bench"}}}}',
        f"{caller}\n" + head % (rid, caller) + f'"ack","id":"{inv_id}"}}}}',
        f"{caller}\n" + head % (rid + 1, caller) + f'"accept","id":"{inv_id}","response":"ok"}}}}',
        f"{callee}\n" + head % (rid + 1, callee) + f'"confirm","id":"{inv_id}"}}}}',
    )


async def _callee(ws: WebSocketConnection, caller: str, tally: Tally) -> None:
    rid = 0
    while True:
        body = await ws.get_message()
        if '"k":"invite"' in body:
            start = body.index('"id":"') + 6
            inv_id = body[start : body.index('"', start)]
            rid += 2
            _, ack, accept, _ = _bodies("", caller, inv_id, rid)
            await ws.send_message(ack)
            await ws.send_message(accept)
        elif '"k":"confirm"' in body:
            tally.callee_done += 1


async def _caller(
    ws: WebSocketConnection,
    callee: str,
    caller: str,
    args: argparse.Namespace,
    tally: Tally,
    stop: trio.Event,
) -> None:
    interval = args.pairs / args.rate if args.rate else None
    next_at = trio.current_time() + random.random() * interval if interval else 0.0
    rid = 0
    while True:
        if interval is not None:
            with trio.move_on_at(next_at):
                await stop.wait()  # the run may end before our next slot
            next_at = max(next_at + interval, trio.current_time())
        may, measured = tally.take_call()
        if not may:
            stop.set()
            return
        rid += 2
        invite, _, _, confirm = _bodies(callee, caller, uuid.uuid4().hex, rid)
        t0 = time.perf_counter()
        with trio.move_on_after(CALL_TIMEOUT):
            await ws.send_message(invite)
            tally.placed += 1
            await ws.get_message()  # ack
            received = time.perf_counter() - t0
            await ws.get_message()  # accept
            outcome = time.perf_counter() - t0
            await ws.send_message(confirm)
            tally.call_ended(measured, True, received, outcome)
            continue
        tally.error("no ack/accept within 30 s")
        return


async def _pair(
    url: str,
    i: int,
    args: argparse.Namespace,
    tally: Tally,
    go: trio.Event,
    stop: trio.Event,
    done: list[int],
) -> None:
    caller, callee = f"{args.prefix}-c{i}", f"{args.prefix}-e{i}"
    async with open_websocket_url(url) as cws, open_websocket_url(url) as ews:
        await cws.send_message(caller)
        await ews.send_message(callee)
        tally.logged_in += 2
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_callee, ews, caller, tally)
            await go.wait()
            try:
                await _caller(cws, callee, caller, args, tally, stop)
            finally:
                done[0] += 1
            await trio.sleep_forever()  # the main task cancels us after the drain


async def run_load(url: str, args: argparse.Namespace, pair: Any = None) -> dict:
    """Log in the pairs, run the phases, return the result as a dict. ``pair``: the
    coroutine that runs one pair (default: this module's raw-relay pair)."""
    pair = pair or _pair
    tally = Tally(budget=args.calls)
    go = trio.Event()
    stop = trio.Event()
    done = [0]
    cpu0 = cpu1 = None
    by0: dict[int, float] = {}
    by1: dict[int, float] = {}
    with trio.move_on_after(args.duration + args.warmup + 60) as overall:
        async with trio.open_nursery() as nursery:
            for i in range(args.pairs):
                nursery.start_soon(pair, url, i, args, tally, go, stop, done)
            with trio.move_on_after(30):
                while tally.logged_in < 2 * args.pairs:  # noqa: ASYNC110 - runs once
                    await trio.sleep(0.01)
            # The relay registers a name when it reads it: give it a moment to.
            await trio.sleep(0.3)
            go.set()
            await trio.sleep(args.warmup)
            cpu0, by0 = _cpu(args)
            tally.window_start = time.perf_counter()
            if args.calls is None:
                await trio.sleep(args.duration)
                tally.close_window()
                cpu1, by1 = _cpu(args)
                stop.set()
            with trio.move_on_after(30):
                while done[0] < args.pairs or tally.callee_done < tally.placed:  # noqa: ASYNC110
                    await trio.sleep(0.005)
            if cpu1 is None:
                cpu1, by1 = _cpu(args)
            nursery.cancel_scope.cancel()
    if overall.cancelled_caught:
        tally.error("run did not finish in time")
    elapsed = tally.elapsed
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return {
        "server": url,
        "pairs": args.pairs,
        "rate": args.rate,
        "elapsed": elapsed,
        "ops": tally.handshakes,
        "ops_per_s": tally.handshakes / elapsed if elapsed else 0.0,
        "received_by_peer": _stats(tally.received),
        "outcome": _stats(tally.outcome),
        "errors": dict(tally.errors),
        "server_cpu_s": cpu,
        "server_cpu_us_per_op": cpu / tally.handshakes * 1e6 if cpu and tally.handshakes else None,
        # Each measured process's share (--server-pid, then every --also-pid).
        "server_cpu_s_by_pid": {p: by1[p] - by0[p] for p in by0} if cpu is not None else None,
        "server_rss": _rss(args.server_pid),
    }


def _cpu(args: argparse.Namespace) -> tuple[float | None, dict[int, float]]:
    """CPU seconds of the measured server processes, total and by pid."""
    pids = ([args.server_pid] if args.server_pid else []) + list(args.also_pid or ())
    if not pids:
        return None, {}
    by = {pid: _cpu_seconds(pid) or 0.0 for pid in pids}
    return sum(by.values()), by


def _stats(values: list[float]) -> dict:
    s = LatencyStats.of(values)
    return {k: getattr(s, k) for k in ("count", "p50", "p90", "p99", "max", "mean")}


async def hold_idle(url: str, count: int, prefix: str, ping: float) -> None:
    """``count`` idle users; with ``ping`` > 0 each sends a WebSocket ping every ``ping``
    s (the first at a random point of the first interval), as rtmcall's idle SDK users
    heartbeat in standby: the relay's cost of the same heartbeats."""
    limiter = trio.CapacityLimiter(64)
    ready = [0, 0]

    async def one(i: int) -> None:
        try:
            async with AsyncExitStack() as stack:
                async with limiter:
                    ws = await stack.enter_async_context(open_websocket_url(url))
                    await ws.send_message(f"{prefix}-i{i}")
                ready[0] += 1
                if ping <= 0:
                    await trio.sleep_forever()
                await trio.sleep(random.uniform(0, ping))
                for n in itertools.count():
                    await ws.ping(b"standby %d" % n)
                    await trio.sleep(ping)
        except (OSError, ConnectionClosed, HandshakeError):
            ready[1] += 1

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)
        while sum(ready) < count:  # noqa: ASYNC110 - runs once, at start
            await trio.sleep(0.02)
        print(f"READY {ready[0]} {ready[1]}", flush=True)
        await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
        nursery.cancel_scope.cancel()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--server-pid", type=int, default=None)
    parser.add_argument(
        "--also-pid", type=int, action="append", help="more server processes (Redis, nodes)"
    )
    parser.add_argument("--callee-url", default=None, help="lean_rtmcall.py: callees' node")
    parser.add_argument(
        "--odd-pairs-url", default=None, help="lean_rtmcall.py: odd pairs (both) on this node"
    )
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--ping", type=float, default=0.0, help="idle users: ping every S")
    parser.add_argument("--prefix", default=f"lean{random.randrange(10**6)}")
    parser.add_argument("--presence", action="store_true", help="lean_rtmcall.py only")
    parser.add_argument("--results", action="store_true", help="lean_rtmcall.py only")
    parser.add_argument("--no-heartbeat", action="store_true", help="lean_rtmcall.py only")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * args.pairs + args.idle + 256)), hard)
    )
    return args


def main() -> None:
    args = parse_args()
    if args.idle:
        trio.run(hold_idle, args.url, args.idle, args.prefix, args.ping)
    else:
        print(json.dumps(trio.run(run_load, args.url, args)))


if __name__ == "__main__":
    main()
