"""One node vs two nodes over Redis at the same offered load (issue 14).

    .venv/bin/python bench/scale_out.py [--rate 150] [--pairs 200] [--duration 10]
                                        [--runs 3] [--pin] [--load lean|uv] [--workers]
                                        [--streams] [--batch] [--before DIR] [--profile DIR]

Per sample, fresh processes: a real ``redis-server`` (no persistence) and rtmcall's bench
server (``python -m rtmcall.bench.server_proc``, the real ``serve()``) — one node with the
in-memory hub, or two nodes sharing the Redis with callers on node A and callees on node B
(every peer message crosses Redis). ``lean_rtmcall.py`` (rtmcall's real frames from lean
clients, paced at ``--rate`` handshakes/s over ``--pairs`` pairs) drives them; CPU is
read per process (user + system, ``psutil``) over the measured window: each node and
Redis, summed into the server CPU per accepted handshake. Configurations alternate
(one, two, one, two, …); the table shows medians of ``--runs`` samples and the ratios.

``--load uv`` drives them with ``uv_load.py`` instead (asyncio + uvloop + ``websockets``,
written from the README alone, as the issue's outside measurement; ``pip install uvloop
websockets``), ``--results`` asks a Result for every Send; ``--batch`` adds both
configurations with the nodes under ``SCHED_BATCH``.

``--workers`` adds ``rtmcall server --workers 2 --redis`` (the supervisor, two workers on
one port and Redis: pairs land on the workers as the kernel spreads the connections, so
about half the messages cross Redis). ``--profile DIR`` runs node A of one more two-node
sample under cProfile (CPU time) and writes ``DIR/node-a.pstats``.

Results go to ``results/<date>-scale-out.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is needed: apt-get install redis-server")
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="rtmcall-bench-redis-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tmp],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def node(
    redis: str | None,
    profile: str | None = None,
    src: str | None = None,
    links: bool = True,
    extra: tuple[str, ...] = (),
) -> Iterator[tuple[str, int]]:
    """A bench server; ``src``: a directory with another rtmcall (``--before``);
    ``extra``: more server_proc options."""
    cmd = [PY, "-m", "rtmcall.bench.server_proc", *extra]
    env = dict(os.environ, PYTHONPATH=src) if src else None
    if redis:
        cmd += ["--redis", redis]
    if not links:
        cmd += ["--no-links"]
    if profile:
        cmd += ["--profile", profile]
    # (Run in ``src``: ``python -m`` puts the working directory first on sys.path.)
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=src
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 4 or line[0] != "URL":
            raise RuntimeError(f"server did not start: {line}")
        yield line[1], int(line[3])
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # EOF: it stops (and writes its profile)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def workers(redis: str) -> Iterator[tuple[str, list[int]]]:
    port = _free_port()
    proc = subprocess.Popen(
        [PY, "-m", "rtmcall.cli", "server", "--port", str(port), "--redis", redis,
         "--workers", "2", "-q", "--rate-messages", "1000000000", "--rate-messages-per",
         "1", "--rate-logins", "1000000"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("rtmcall server listening on"):
            raise RuntimeError(f"workers did not start: {line!r}")
        pids = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children()]
        yield line.split()[-1], pids
    finally:
        proc.terminate()
        proc.wait(20)


def load(
    url: str,
    callee_url: str | None,
    pids: list[int],
    args: argparse.Namespace,
    odd_pairs_url: str | None = None,
) -> dict:
    generator = "uv_load.py" if args.load == "uv" else "lean_rtmcall.py"
    cmd = [PY, str(ROOT / "bench" / generator), url, "--pairs", str(args.pairs),
           "--rate", str(args.rate), "--duration", str(args.duration), "--warmup",
           str(args.warmup), "--server-pid", str(pids[0])]  # fmt: skip
    for pid in pids[1:]:
        cmd += ["--also-pid", str(pid)]
    if callee_url:
        cmd += ["--callee-url", callee_url]
    if odd_pairs_url:
        cmd += ["--odd-pairs-url", odd_pairs_url]
    if args.results:
        cmd += ["--results"]
    loadavg = os.getloadavg()[0]
    pin = None
    if args.pin:
        # As the outside measurement: every server process on core 0, the load
        # generator on core 1.
        for pid in pids:
            psutil.Process(pid).cpu_affinity([0])
        pin = partial(os.sched_setaffinity, 0, {1})
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=args.duration + 240, preexec_fn=pin
    )
    start = done.stdout.find("{")
    if start < 0:
        raise RuntimeError(f"no output from the load generator: {done.stderr[-2000:]}")
    data = json.loads(done.stdout[start:])
    by_pid = {int(k): v for k, v in (data["server_cpu_s_by_pid"] or {}).items()}
    ops = data["ops"]
    return {
        "ops": ops,
        "ops_per_s": data["ops_per_s"],
        "cpu_us_per_op": data["server_cpu_us_per_op"],
        "cpu_us_per_op_by_process": [by_pid.get(p, 0.0) / ops * 1e6 if ops else None for p in pids],
        "p50_ms": data["outcome"]["p50"],
        "p99_ms": data["outcome"]["p99"],
        "errors": data["errors"],
        "loadavg": loadavg,
    }


def _batch(pids: list[int]) -> list[int]:
    """Run these (the nodes, not Redis) under SCHED_BATCH: a node woken by another does
    not preempt it (``--batch``)."""
    for pid in pids:
        os.sched_setscheduler(pid, os.SCHED_BATCH, os.sched_param(0))
    return pids


def sample(kind: str, args: argparse.Namespace, profile: str | None = None) -> dict:
    with ExitStack() as stack:
        if kind == "one-batch":
            url, pid = stack.enter_context(node(None))
            return load(url, None, _batch([pid]), args)
        if kind == "two-batch":
            redis, redis_pid = stack.enter_context(redis_server())
            a_url, a_pid = stack.enter_context(node(redis))
            b_url, b_pid = stack.enter_context(node(redis))
            return load(a_url, b_url, [*_batch([a_pid, b_pid]), redis_pid], args)
        if kind == "one":
            url, pid = stack.enter_context(node(None))
            return load(url, None, [pid], args)
        redis, redis_pid = stack.enter_context(redis_server())
        if kind == "two":
            a_url, a_pid = stack.enter_context(node(redis, profile))
            b_url, b_pid = stack.enter_context(node(redis))
            return load(a_url, b_url, [a_pid, b_pid, redis_pid], args)
        if kind == "two-streams":
            a_url, a_pid = stack.enter_context(node(redis, links=False))
            b_url, b_pid = stack.enter_context(node(redis, links=False))
            return load(a_url, b_url, [a_pid, b_pid, redis_pid], args)
        if kind == "two-before":
            a_url, a_pid = stack.enter_context(node(redis, src=args.before))
            b_url, b_pid = stack.enter_context(node(redis, src=args.before))
            return load(a_url, b_url, [a_pid, b_pid, redis_pid], args)
        if kind == "two-local":
            a_url, a_pid = stack.enter_context(node(redis))
            b_url, b_pid = stack.enter_context(node(redis))
            return load(a_url, None, [a_pid, b_pid, redis_pid], args, odd_pairs_url=b_url)
        if kind == "one-redis":
            url, pid = stack.enter_context(node(redis))
            return load(url, None, [pid, redis_pid], args)
        if kind == "workers2":
            url, pids = stack.enter_context(workers(redis))
            return load(url, None, [*pids, redis_pid], args)
    raise ValueError(kind)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rate", type=float, default=150.0)
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", action="store_true")
    p.add_argument(
        "--pin", action="store_true", help="servers and Redis on core 0, the load on core 1"
    )
    p.add_argument(
        "--streams", action="store_true", help="also two nodes without links (Redis streams)"
    )
    p.add_argument(
        "--before",
        metavar="DIR",
        help="also two nodes running the rtmcall package found in DIR (e.g. the code "
        "before this change: git archive <commit> rtmcall | tar -x -C DIR)",
    )
    p.add_argument(
        "--diagnose",
        action="store_true",
        help="also one node with the Redis hub, and two nodes with each pair on one node",
    )
    p.add_argument(
        "--load",
        choices=("lean", "uv"),
        default="lean",
        help="the load generator: lean_rtmcall.py (trio) or uv_load.py (asyncio + uvloop, "
        "written from the README alone, as the outside measurement's)",
    )
    p.add_argument("--results", action="store_true", help="a Result for every Send")
    p.add_argument(
        "--batch", action="store_true", help="also both configurations under SCHED_BATCH"
    )
    p.add_argument("--profile", metavar="DIR")
    p.add_argument("--name", default="scale-out")
    args = p.parse_args()
    kinds = ["one", "two"] + (["two-streams"] if args.streams else [])
    kinds += ["workers2"] if args.workers else []
    kinds += ["one-redis", "two-local"] if args.diagnose else []
    kinds += ["two-before"] if args.before else []
    kinds += ["one-batch", "two-batch"] if args.batch else []
    samples: dict[str, list[dict]] = {k: [] for k in kinds}
    for run in range(args.runs):
        for kind in kinds if run % 2 == 0 else kinds[::-1]:
            s = sample(kind, args)
            samples[kind].append(s)
            print(f"run {run + 1} {kind:8} {s['ops_per_s']:6.1f}/s "
                  f"{s['cpu_us_per_op']:7.0f} µs/handshake "
                  f"({' + '.join(f'{c:.0f}' for c in s['cpu_us_per_op_by_process'])}) "
                  f"p50 {s['p50_ms']:.1f} p99 {s['p99_ms']:.1f} ms "
                  f"errors {s['errors']} load {s['loadavg']:.2f}", flush=True)  # fmt: skip
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        sample("two", args, profile=str(Path(args.profile) / "node-a.pstats"))
    med = {
        k: {
            m: statistics.median(s[m] for s in v)
            for m in ("ops_per_s", "cpu_us_per_op", "p50_ms", "p99_ms")
        }
        for k, v in samples.items()
    }
    print()
    print(f"| at {args.rate:g} handshakes/s, {args.pairs} pairs | handshakes/s | server CPU "
          "µs/handshake | × one node | p50 ms | p99 ms | × one node |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    one = med["one"]
    names = {"one": "one node", "two": "two nodes + Redis (callers on A, callees on B)",
             "two-streams": "two nodes + Redis, no links (through Redis streams)",
             "workers2": "--workers 2 + Redis (one port)",
             "one-redis": "one node, Redis hub (every pair local)",
             "two-local": "two nodes + Redis, each pair on one node",
             "two-before": "two nodes + Redis, the code in --before DIR",
             "one-batch": "one node, SCHED_BATCH",
             "two-batch": "two nodes + Redis, SCHED_BATCH"}  # fmt: skip
    for k, m in med.items():
        print(f"| {names[k]} | {m['ops_per_s']:.1f} | {m['cpu_us_per_op']:.0f} | "
              f"{m['cpu_us_per_op'] / one['cpu_us_per_op']:.2f} | {m['p50_ms']:.1f} | "
              f"{m['p99_ms']:.1f} | {m['p99_ms'] / one['p99_ms']:.2f} |")  # fmt: skip
    # Each run's ratio to the "one" sample next to it (the machine drifts within a run).
    ratios = {
        k: statistics.median(
            s["cpu_us_per_op"] / o["cpu_us_per_op"] for s, o in zip(v, samples["one"], strict=True)
        )
        for k, v in samples.items()
        if k != "one"
    }
    print()
    for k, r in ratios.items():
        print(f"{names[k]}: median of the runs' CPU ratios to one node {r:.2f}")
    out = ROOT / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}-{args.name}.json"
    out.write_text(
        json.dumps(
            {"args": vars(args), "samples": samples, "medians": med, "ratios": ratios}, indent=1
        )
    )
    print(f"\n{out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
