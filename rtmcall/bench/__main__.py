"""``python -m rtmcall.bench``: the same as ``rtmcall bench`` (before the CLI has it)."""

from __future__ import annotations

import argparse
import sys

from .command import bench_command
from .options import MODES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtmcall.bench", description=__doc__)
    parser.add_argument("--server", help="ws://… to load (default: start one)")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0, metavar="S")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--mode", choices=MODES, default="accept")
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--rate", type=float, default=None, help="offered calls/s")
    parser.add_argument("--warmup", type=float, default=0.0, metavar="S")
    parser.add_argument("--server-pid", type=int, default=None, help="report its CPU")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return bench_command(
        server=args.server,
        pairs=args.pairs,
        duration=args.duration,
        calls=args.calls,
        mode=args.mode,
        idle=args.idle,
        json=args.json,
        rate=args.rate,
        warmup=args.warmup,
        server_pid=args.server_pid,
    )


if __name__ == "__main__":
    sys.exit(main())
