"""An outside load generator: asyncio + uvloop + ``websockets``, nothing of rtmcall's.

The issue 14 measurement is made from outside, with a load generator the project does not
ship, on asyncio and uvloop. This is one written the same way, from the wire protocol in
the README alone (it imports nothing from rtmcall), so that ``scale_out.py --load uv``
sees the servers as that measurement does: its clients write each frame as soon as it is
made (no trio scheduling between them), and the batching a node sees differs from what
the trio generators produce.

Per accepted handshake, as the SDK: the caller Sends ``invite``; the callee Sends ``ack``
and ``accept``; the caller, on the accept, Sends ``confirm`` (quiet Sends, as the SDK's
invitation messages; ``--results`` asks a Result for each). A Ping every heartbeat per
connection, answered Pings. Pacing: each caller starts a call every ``pairs / rate``
seconds from a random phase (an open loop, as ``lean_rtmcall.py``); the calls whose accept
arrives inside the measured window (after ``--warmup``, for ``--duration``) are counted,
and the CPU (user + system) of ``--server-pid``/``--also-pid`` over that window is divided
by them.

    .venv/bin/pip install uvloop websockets
    .venv/bin/python bench/uv_load.py URL [--callee-url URL] --pairs 200 --rate 150 \\
        --duration 8 --server-pid PID [--also-pid PID ...]

prints one JSON object with the keys ``scale_out.py`` reads from ``lean_rtmcall.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import time
import uuid
from collections import Counter

import psutil

try:
    import uvloop
    from websockets.asyncio.client import ClientConnection, connect
except ImportError as exc:  # pragma: no cover - optional
    raise SystemExit(f"{exc}: pip install uvloop websockets") from exc

CALL_TIMEOUT = 30.0


class Run:
    """What the callers saw, and the measured window."""

    def __init__(self) -> None:
        self.window: tuple[float, float] | None = None
        self.outcome: list[float] = []
        self.errors: Counter[str] = Counter()
        self.stop = False
        self.logged_in = 0
        self.all_in = asyncio.Event()
        self.pairs = 0

    def measured(self, end: float) -> bool:
        return self.window is not None and self.window[0] <= end <= self.window[1]


class Side:
    def __init__(self, ws: ClientConnection, quiet: bool) -> None:
        self.ws = ws
        self.rid = 0
        self.quiet = ',"quiet":true' if quiet else ""

    async def send(self, to: str, msg: str) -> None:
        self.rid += 1
        frame = f'{{"t":"send","rid":{self.rid},"to":"{to}","msg":{{{msg}}}{self.quiet}}}'
        await self.ws.send(frame)


async def login(ws: ClientConnection, user: str) -> float:
    await ws.send(json.dumps({"t": "login", "user": user}, separators=(",", ":")))
    while True:
        data = await ws.recv()
        if '"t":"login_ok"' in data:
            return float(json.loads(data).get("heartbeat", 3.0))
        if '"t":"login_fail"' in data:
            raise ConnectionError(data)


def invitation_id(data: str) -> str:
    start = data.index('"id":"', data.index('"msg":{')) + 6
    return data[start : data.index('"', start)]


async def heartbeat(ws: ClientConnection, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await ws.send('{"t":"ping"}')


async def callee(side: Side, caller: str) -> None:
    async for data in side.ws:
        if '"t":"msg"' not in data:
            if '"t":"ping"' in data:
                await side.ws.send('{"t":"pong"}')
            continue
        if '"k":"invite"' in data:
            inv = invitation_id(data)
            await side.send(caller, f'"k":"ack","id":"{inv}"')
            await side.send(caller, f'"k":"accept","id":"{inv}","response":"ok"')


async def caller(side: Side, callee_name: str, interval: float, run: Run) -> None:
    ws = side.ws
    loop = asyncio.get_running_loop()
    next_at = loop.time() + random.random() * interval
    while not run.stop:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        next_at = max(next_at + interval, loop.time())
        if run.stop:
            return
        inv = uuid.uuid4().hex
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                await side.send(callee_name, f'"k":"invite","id":"{inv}","content":"bench"')
                while True:
                    data = await ws.recv()
                    if '"t":"msg"' in data:
                        if '"k":"accept"' in data:
                            break
                    elif '"t":"ping"' in data:
                        await ws.send('{"t":"pong"}')
                    elif '"t":"result"' in data and '"code":' in data and '"code":0' not in data:
                        run.errors[data[:80]] += 1  # (a delivered Send's code is 0)
        except TimeoutError:
            run.errors["no accept within 30 s"] += 1
            return
        end = time.perf_counter()
        await side.send(callee_name, f'"k":"confirm","id":"{inv}"')
        if run.measured(end):
            run.outcome.append(end - t0)


async def pair(i: int, args: argparse.Namespace, run: Run, go: asyncio.Event) -> None:
    caller_name, callee_name = f"{args.prefix}-c{i}", f"{args.prefix}-e{i}"
    async with (
        connect(args.url, max_size=None, compression=None) as cws,
        connect(args.callee_url or args.url, max_size=None, compression=None) as ews,
    ):
        beat = await login(ews, callee_name)
        await login(cws, caller_name)
        run.logged_in += 1
        if run.logged_in == run.pairs:
            run.all_in.set()
        quiet = not args.results
        tasks = [
            asyncio.create_task(heartbeat(cws, beat)),
            asyncio.create_task(heartbeat(ews, beat)),
            asyncio.create_task(callee(Side(ews, quiet), caller_name)),
        ]
        try:
            await go.wait()
            await caller(Side(cws, quiet), callee_name, args.pairs / args.rate, run)
        finally:
            for t in tasks:
                t.cancel()


def cpu(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        out[pid] = t.user + t.system
    return out


async def main_async(args: argparse.Namespace) -> dict:
    run = Run()
    run.pairs = args.pairs
    go = asyncio.Event()
    pids = [args.server_pid, *(args.also_pid or [])] if args.server_pid else []
    tasks = [asyncio.create_task(pair(i, args, run, go)) for i in range(args.pairs)]
    waiting = asyncio.create_task(run.all_in.wait())
    await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        if t.done():
            t.result()  # a pair that could not log in: say why
    go.set()
    await asyncio.sleep(args.warmup)
    start, before, own = time.perf_counter(), cpu(pids), time.process_time()
    run.window = (start, start + args.duration)
    await asyncio.sleep(args.duration)
    after, end, own = cpu(pids), time.perf_counter(), time.process_time() - own
    run.stop = True
    await asyncio.sleep(0.2)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ops = len(run.outcome)
    by_pid = {pid: after[pid] - before[pid] for pid in pids}
    q = statistics.quantiles(run.outcome, n=100) if ops > 1 else [0.0] * 99
    return {
        "ops": ops,
        "ops_per_s": ops / (end - start),
        "server_cpu_us_per_op": sum(by_pid.values()) / ops * 1e6 if ops and pids else None,
        "server_cpu_s_by_pid": {str(k): v for k, v in by_pid.items()} if pids else None,
        "outcome": {"p50": q[49] * 1e3, "p99": q[98] * 1e3},
        "errors": dict(run.errors),
        "load_cpu_share": own / (end - start),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--callee-url", default=None)
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--rate", type=float, default=150.0)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--server-pid", type=int, default=None)
    p.add_argument("--also-pid", type=int, action="append")
    p.add_argument("--results", action="store_true", help="a Result for every Send")
    p.add_argument("--prefix", default=f"uv{random.randrange(10**6)}")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * args.pairs + 256)), hard))
    print(json.dumps(uvloop.run(main_async(args))))


if __name__ == "__main__":
    main()
