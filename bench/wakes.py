"""Where a node's CPU goes, counted: wake-ups, scheduler passes and task steps per handshake.

    .venv/bin/python bench/wakes.py [--runs 2] [--duration 10] [--before DIR] [--name wakes]

The scale-out load (``scale_out.py``: 150 handshakes/s over 200 pairs from
``lean_rtmcall.py``, every server process pinned to core 0, the load on core 1) against one
node and against two nodes over Redis (callers on A, callees on B), alternating. Each
server counts its own wake-ups over the same window (``server_proc --wakes``,
:mod:`rtmcall.bench.wakes`); the table gives them per handshake with the CPU, and what
woke each process (the tasks its first pass ran: ``_reader_task`` a client's WebSocket,
``_run_handler`` a link from the other node, ``_reader`` a link's acks, ``_watchdog`` the
hub's tick). ``--before DIR`` adds one node and two nodes running the rtmcall in DIR (copy this
tree's ``rtmcall/bench/server_proc.py`` and ``wakes.py`` there first).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import psutil
from scale_out import PY, ROOT, node, redis_server

RATE, PAIRS = 150.0, 200


def sample(kind: str, args: argparse.Namespace, tmp: str) -> dict[str, dict]:
    with ExitStack() as stack:
        files = {}

        def start(tag: str, redis: str | None, src: str | None = None) -> tuple[str, int]:
            files[tag] = os.path.join(tmp, f"{kind}-{tag}.json")
            return stack.enter_context(node(redis, src=src, extra=("--wakes", files[tag])))

        if kind in ("one", "one-before"):
            url, pid = start("node", None, args.before if kind == "one-before" else None)
            pids, extra = {"node": pid}, []
        else:
            redis, _ = stack.enter_context(redis_server())
            src = args.before if kind == "two-before" else None
            a_url, a_pid = start("A", redis, src)
            b_url, b_pid = start("B", redis, src)
            url, pids, extra = a_url, {"A": a_pid, "B": b_pid}, ["--callee-url", b_url]
        for pid in pids.values():
            psutil.Process(pid).cpu_affinity([0])
        load = subprocess.Popen(
            [PY, str(ROOT / "bench" / "lean_rtmcall.py"), url, "--pairs", str(PAIRS), "--rate",
             str(RATE), "--duration", str(args.duration), "--warmup", "2", *extra],
            stdout=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {1}),
        )  # fmt: skip
        try:
            time.sleep(5)  # logins and the warm-up
            window = args.duration - 3
            cpu0 = {t: sum(psutil.Process(p).cpu_times()[:2]) for t, p in pids.items()}
            for p in pids.values():
                os.kill(p, signal.SIGUSR1)
            time.sleep(window)
            for p in pids.values():
                os.kill(p, signal.SIGUSR1)
            cpu1 = {t: sum(psutil.Process(p).cpu_times()[:2]) for t, p in pids.items()}
        finally:
            load.wait(args.duration + 60)
        time.sleep(0.2)
        ops = RATE * window  # (paced: the load keeps the rate while it runs)
        out = {}
        for tag in pids:
            data = json.loads(Path(files[tag]).read_text())
            out[tag] = {
                "cpu_us": (cpu1[tag] - cpu0[tag]) / ops * 1e6,
                **{k: data[k] / ops for k in ("wakes", "passes", "steps")},
                "causes": {c: n / ops for c, n in data["causes"].items()},
                "stepped": {c: n / ops for c, n in data.get("stepped", {}).items()},
            }
        return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--before", metavar="DIR")
    p.add_argument("--name", default="wakes")
    args = p.parse_args()
    kinds = ["one", "two"] + (["one-before", "two-before"] if args.before else [])
    got: dict[str, list[dict]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for kind in kinds if run % 2 == 0 else kinds[::-1]:
                got[kind].append(sample(kind, args, tmp))
    print("| per handshake (medians) | CPU µs | wake-ups | passes | task steps |")
    print("|---|---|---|---|---|")
    for kind, samples in got.items():
        for tag in samples[0]:
            row = [statistics.median(s[tag][m] for s in samples)
                   for m in ("cpu_us", "wakes", "passes", "steps")]  # fmt: skip
            print(f"| {kind} {tag} | {row[0]:.0f} | {row[1]:.2f} | {row[2]:.1f} | {row[3]:.1f} |")
    print()
    for kind, samples in got.items():
        for tag in samples[0]:
            causes: Counter[str] = Counter()
            for s in samples:
                causes.update(s[tag]["causes"])
            top = ", ".join(f"{c} {n / len(samples):.2f}" for c, n in causes.most_common(6))
            print(f"{kind} {tag}: woken by {top}")
            stepped: Counter[str] = Counter()
            for s in samples:
                stepped.update(s[tag].get("stepped", {}))
            top = ", ".join(f"{c} {n / len(samples):.2f}" for c, n in stepped.most_common(8))
            print(f"{kind} {tag}: steps {top}")
    out = ROOT / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}-{args.name}.json"
    out.write_text(json.dumps({"args": vars(args), "samples": got}, indent=1))
    print(f"\n{out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
