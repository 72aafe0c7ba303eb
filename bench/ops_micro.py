"""The observer's own cost per call setup, in process (no sockets, no noise from them):
the four frames of an accepted handshake (invite, ack, accept, confirm) through
``InvitationObserver`` with the metrics sink, the call log (to /dev/null) or both,
against the bare loop. Deterministic enough to read beside ``ops_ab.py``'s ratio.

    python bench/ops_micro.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

from rtmcall.engine import frames as f
from rtmcall.server.calllog import CallLog
from rtmcall.server.metrics import ServerMetrics
from rtmcall.server.observer import InvitationObserver
from rtmcall.server.stats import Stats


def run(calls: int, sinks: list) -> float:
    clock = time.monotonic
    obs = InvitationObserver("n0", clock, time.time, sinks)
    ids = [f"inv{i}" for i in range(calls)]
    frames = [
        (f.Invite(id=i), f.Ack(id=i), f.Accept(id=i, response="ok"), f.Confirm(id=i)) for i in ids
    ]
    start = time.process_time()
    for invite, ack, accept, confirm in frames:
        obs.sent("alice", "s1", "bob", invite, 0)
        obs.sent("bob", "s2", "alice", ack, 0)
        obs.sent("bob", "s2", "alice", accept, 0)
        obs.sent("alice", "s1", "bob", confirm, 0)
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    server = SimpleNamespace(stats=Stats(), live=set(), observer=None, hub=None, stopping=False)
    variants = {
        "observer, no sink": lambda: [],
        "metrics": lambda: [ServerMetrics(server, "n0")],  # type: ignore[arg-type]
        "call log (/dev/null)": lambda: [CallLog("/dev/null")],
        "metrics + call log": lambda: [ServerMetrics(server, "n0"), CallLog("/dev/null")],  # type: ignore[arg-type]
    }
    for name, sinks in variants.items():
        best = min(run(args.calls, sinks()) for _ in range(3))
        print(f"{name:24s} {best:6.2f} µs per accepted handshake (best of 3)")


if __name__ == "__main__":
    main()
