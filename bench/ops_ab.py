"""What metrics (and the call log, and webhooks) cost the server per call setup: A/B.

A = ``rtmcall.bench.server_proc`` as is; B = the same with ``--metrics`` (and whatever
else ``--b-flags`` adds, e.g. ``--call-log /tmp/calls.jsonl``). A fresh server process per
sample, alternating A B A B; the load is ``lean_rtmcall.py`` (rtmcall's real frames from
lean clients: the server's cost without the SDK's) paced at ``--rate`` handshakes/s, and
the server's own CPU is read from its process. Prints every sample and the ratio of the
medians (B ÷ A); ``--json FILE`` keeps them.

    python bench/ops_ab.py --rounds 5 --rate 300 --pairs 50 --duration 4
    python bench/ops_ab.py --b-flags "--metrics --call-log /tmp/calls.jsonl"
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from procs import PY, ROOT, Proc, _first_line, _stop, load  # noqa: E402


@contextmanager
def rtmcall_server(flags: list[str]) -> Iterator[Proc]:
    proc = subprocess.Popen(
        [PY, "-m", "rtmcall.bench.server_proc", *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        line = _first_line(proc, 30).split()
        if len(line) != 4 or line[0] != "URL":
            raise RuntimeError(f"server did not start: {line}")
        yield Proc(line[1], int(line[3]))
    finally:
        _stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--rate", type=float, default=300.0, help="0: closed loop")
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--b-flags", default="--metrics")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument(
        "--kept",
        action="store_true",
        help="start A and B once and load each in turn (A B B A ...): no process-start "
        "variance between samples (each sample logs in fresh users)",
    )
    args = parser.parse_args()
    variants = {"A": [], "B": shlex.split(args.b_flags)}
    samples: dict[str, list[dict]] = {"A": [], "B": []}
    with ExitStack() as stack:
        kept = (
            {k: stack.enter_context(rtmcall_server(v)) for k, v in variants.items()}
            if args.kept
            else {}
        )
        for i in range(args.rounds):
            for name in ("A", "B") if i % 2 == 0 else ("B", "A"):
                with ExitStack() as one:
                    srv = kept.get(name) or one.enter_context(rtmcall_server(variants[name]))
                    s = load("rtmcall_lean", srv, args.pairs, args.duration, args.warmup, args.rate)
                samples[name].append(s)
                report(i, name, s)
    med = {k: statistics.median(x["cpu_us_per_op"] for x in v) for k, v in samples.items()}
    print(
        f"median server CPU per handshake: A {med['A']:.0f} µs, B ({args.b_flags}) "
        f"{med['B']:.0f} µs, B/A = {med['B'] / med['A']:.3f}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "samples": samples, "median_us": med}, indent=1)
        )


def report(i: int, name: str, s: dict) -> None:
    print(
        f"round {i + 1} {name}: {s['cpu_us_per_op']:.0f} µs/op at {s['ops_per_s']:.0f}/s, "
        f"p99 {s['p99_ms']:.1f} ms, errors {s['errors']}, unexpected {s['unexpected']}, "
        f"load {s['loadavg']:.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
