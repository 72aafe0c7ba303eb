"""What an idle node costs: CPU per second of nodes with no connections (issue 14).

    .venv/bin/python bench/idle_nodes.py [--before DIR] [--runs 2] [--seconds 10]

Per sample, fresh processes: one node with the in-memory hub; two nodes over a fresh
``redis-server`` (and the Redis itself). CPU time is read from ``/proc/PID/task/*/schedstat``
(nanoseconds on a CPU, every thread) and voluntary context switches (each one a sleep, so
a wake-up) over ``--seconds``. ``--before DIR``: also two nodes running the rtmcall found in
DIR (``git archive <commit> rtmcall | tar -x -C DIR``), alternating with the current code.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_out import node, redis_server  # noqa: E402


def _cpu_ns(pid: int) -> int:
    tasks = glob.glob(f"/proc/{pid}/task/*/schedstat")
    return sum(int(Path(f).read_text().split()[0]) for f in tasks)


def _switches(pid: int) -> int:
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        for line in Path(status).read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                total += int(line.split()[1])
    return total


def sample(kind: str, seconds: float, before: str | None) -> tuple[list[float], list[float]]:
    with ExitStack() as stack:
        if kind == "one":
            _, pid = stack.enter_context(node(None))
            pids = [pid]
        else:
            redis, redis_pid = stack.enter_context(redis_server())
            src = before if kind == "two-before" else None
            pids = [stack.enter_context(node(redis, src=src))[1] for _ in range(2)] + [redis_pid]
        time.sleep(2)
        cpu0, sw0 = [_cpu_ns(p) for p in pids], [_switches(p) for p in pids]
        time.sleep(seconds)
        cpu1, sw1 = [_cpu_ns(p) for p in pids], [_switches(p) for p in pids]
    ms = [(b - a) / 1e6 / seconds for a, b in zip(cpu0, cpu1, strict=True)]
    wakes = [(b - a) / seconds for a, b in zip(sw0, sw1, strict=True)]
    return ms, wakes


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--before", metavar="DIR")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    kinds = ["one", "two"] + (["two-before"] if args.before else [])
    for run in range(args.runs):
        for kind in kinds if run % 2 == 0 else kinds[::-1]:
            ms, wakes = sample(kind, args.seconds, args.before)
            print(f"run {run + 1} {kind:10} CPU ms/s {' + '.join(f'{m:.2f}' for m in ms)} "
                  f"= {sum(ms):.2f}; wake-ups/s {' + '.join(f'{w:.1f}' for w in wakes)}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
