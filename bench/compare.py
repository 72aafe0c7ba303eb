"""Side-by-side: rtmcall's server vs a minimal relay on the same stack, on this machine.

    python bench/compare.py [--runs 3] [--quick] [--name NAME] [--no-asyncio]

In one run, alternating A B A B (a fresh server process for every sample):

* **throughput and CPU** at 50 and 500 pairs: rtmcall carrying full accepted handshakes
  (``rtmcall bench``, closed loop) → R handshakes/s; the raw trio-websocket relay
  (``raw_relay_trio.py`` + ``lean_load.py``) carrying the same 4 messages per operation
  *at the same offered load R*, and closed loop (its maximum); rtmcall's server driven
  closed loop by lean clients speaking its protocol (``lean_rtmcall.py``: the server's
  limit, without the SDK's client-side cost); optionally the asyncio ``websockets``
  relay. CPU is the server process's own (psutil), over the measured window.
* **latency** at one fixed offered load L (both paced, below saturation): p99 send→Accepted.
* **idle**: RSS per idle logged-in connection at 1,000 and 5,000 users; server CPU per
  handshake at load L with 100 vs 5,000 idle users.
* **start-up**: ``rtmcall --help`` and a one-shot ``rtmcall call``.

Results go to ``bench/results/<date>-<name>.json``; a Markdown table for the README is
printed at the end. Medians over ``--runs``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path

import idle_phase
import procs
import report
from procs import ROOT, load, server
from startup import call_time, help_time

T0 = time.perf_counter()


def log(text: str) -> None:
    print(f"[{time.perf_counter() - T0:5.0f}s] {text}", file=sys.stderr, flush=True)


def describe(name: str, s: dict) -> str:
    def num(value: float | None, unit: str, digits: int = 0) -> str:
        return "?" if value is None else f"{value:,.{digits}f}{unit}"

    bad = f", {s['errors']} errors, {s['unexpected']} unexpected"
    return (
        f"{name}: {num(s['ops_per_s'], '/s')}, {num(s['cpu_us_per_op'], ' µs/op')}, "
        f"p99 {num(s['p99_ms'], ' ms', 1)}" + (bad if s["errors"] or s["unexpected"] else "")
    )


def machine() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    import trio
    import trio_websocket

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "trio": trio.__version__,
        "trio_websocket": trio_websocket.__version__,
    }


def throughput(args: argparse.Namespace, samples: dict) -> None:
    for run in range(args.runs):
        for pairs in args.pairs:
            key = str(pairs)
            bucket = samples.setdefault(key, {})
            with server("rtmcall") as srv:
                a = load("rtmcall", srv, pairs, args.duration, args.warmup)
            log(describe(f"run {run + 1} {pairs} pairs rtmcall closed loop", a))
            rate = a["ops_per_s"]
            jobs = [("raw_trio_closed", "trio", None), ("rtmcall_lean_closed", "rtmcall", None)]
            if rate:  # nothing to match when rtmcall carried nothing (see its errors)
                jobs.insert(0, ("raw_trio_same_load", "trio", rate))
            if args.asyncio and pairs == args.pairs[0]:
                jobs += [
                    ("asyncio_same_load", "asyncio", rate),
                    ("asyncio_closed", "asyncio", None),
                ]
            bucket.setdefault("rtmcall", []).append(a)
            for name, kind, r in jobs:
                driver = "rtmcall_lean" if name.startswith("rtmcall_lean") else kind
                with server(kind) as srv:
                    s = load(driver, srv, pairs, args.duration, args.warmup, rate=r)
                bucket.setdefault(name, []).append(s)
                log(describe(f"run {run + 1} {pairs} pairs {name}", s))


def latency(args: argparse.Namespace, rate: float, samples: dict) -> None:
    kinds = ["rtmcall", "trio"] + (["asyncio"] if args.asyncio else [])
    for run in range(args.runs):
        for kind in kinds:
            with server(kind) as srv:
                s = load(kind, srv, args.pairs[0], args.duration, args.warmup, rate=rate)
            samples.setdefault(kind, []).append(s)
            log(describe(f"run {run + 1} latency at {rate:g}/s {kind}", s))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 run, short windows (~1 min)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per sample")
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument("--pairs", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--latency-rate", type=float, default=None, help="default: R50 / 3")
    parser.add_argument("--idle", type=int, nargs=2, default=[1000, 5000], metavar=("N1", "N2"))
    parser.add_argument("--no-asyncio", dest="asyncio", action="store_false")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["throughput", "latency", "idle", "startup"]
    )
    parser.add_argument("--name", default="compare")
    parser.add_argument(
        "--server-flags",
        default="",
        metavar="FLAGS",
        help='extra flags for rtmcall\'s server process, e.g. "--metrics --call-log F"',
    )
    args = parser.parse_args()
    procs.SERVERS["rtmcall"] = [*procs.SERVERS["rtmcall"], *shlex.split(args.server_flags)]
    if args.quick:
        # About a minute: one run, 50 pairs only, fewer idle users, no asyncio relay.
        args.runs, args.pairs, args.idle, args.asyncio = 1, [50], [500, 1000], False
    args.duration = args.duration or (2.0 if args.quick else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    command = "python bench/compare.py " + " ".join(sys.argv[1:])
    result: dict = {"meta": {**machine(), "command": command.strip()}, "settings": vars(args)}
    log(f"{result['meta']['cpu']} × {result['meta']['nproc']}, Python {result['meta']['python']}")

    samples: dict = {}
    if "throughput" not in args.skip:
        throughput(args, samples.setdefault("throughput", {}))
    first = samples.get("throughput", {}).get(str(args.pairs[0]), {}).get("rtmcall", [])
    # A third of rtmcall's closed-loop rate (median over the runs): well below the
    # saturation of its load generator (the SDK costs more CPU per call than the server),
    # so p99 is the system's, not the load generator's queue.
    r50 = statistics.median(s["ops_per_s"] for s in first) if first else 150.0
    rate = args.latency_rate or max(10.0, round(r50 / 3, -1))
    result["settings"]["latency_rate"] = rate
    if "latency" not in args.skip:
        latency(args, rate, samples.setdefault("latency", {}))
    if "idle" not in args.skip:
        samples["memory"], samples["idle_cpu"] = idle_phase.idle(args, rate, log)
    if "startup" not in args.skip:
        samples["startup"] = {"help": help_time(10), "call": call_time(5)}
        log(f"startup: {samples['startup']}")
    result["samples"] = samples
    result["summary"] = report.summarize(samples, args)
    result["meta"]["total_s"] = round(time.perf_counter() - T0, 1)

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.date.today().isoformat()}-{args.name}"
    path = out_dir / f"{stem}.json"
    n = 2
    while path.exists():
        path, n = out_dir / f"{stem}-{n}.json", n + 1
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(report.markdown(result))
    log(f"wrote {path.relative_to(ROOT)}")
    return 0 if report.all_clean(samples) else 1


if __name__ == "__main__":
    sys.exit(main())
