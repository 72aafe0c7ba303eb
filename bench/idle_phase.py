"""Idle users: memory per idle logged-in connection, and CPU per handshake beside them.

Logging thousands of users in is the slow part (seconds per thousand on a small machine),
so each server is filled once: N1 users (RSS), then up to N2 (RSS). Then a second server
with 100 idle users starts beside the full one and the load runs against each in turn,
A B B A …, at least ``CPU_PAIRS`` times each (see ``_compare``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from procs import Proc, idle_users, load, server

#: Let a server settle (allocator, pending frees) before reading its RSS.
SETTLE = 1.0

Log = Callable[[str], None]


def _kib(rss: int, rss0: int, users: int) -> float:
    return (rss - rss0) / max(users, 1) / 1024


def _idle_cpu_per_s(srv: Proc, seconds: float = 2.0) -> float:
    c0 = srv.cpu()
    time.sleep(seconds)
    return (srv.cpu() - c0) / seconds


def _loaded(srv: Proc, args: argparse.Namespace, rate: float, users: int) -> dict:
    """The idle users' own CPU (heartbeats), then the load at ``rate`` beside them."""
    idle_per_s = _idle_cpu_per_s(srv)
    s = load("rtmcall", srv, args.pairs[0], args.duration, args.warmup, rate=rate)
    s["idle_users"] = users
    s["idle_ms_per_s"] = idle_per_s * 1000
    if s["cpu_us_per_op"] and s["ops_per_s"]:
        s["cpu_us_per_op_net"] = s["cpu_us_per_op"] - idle_per_s * 1e6 / s["ops_per_s"]
    return s


def _describe(n: int, s: dict) -> str:
    cpu = s["cpu_us_per_op"]
    return (
        f"{n} idle ({s['idle_ms_per_s']:.0f} ms/s alone): "
        f"{'?' if cpu is None else f'{cpu:,.0f}'} µs/handshake at {s['ops_per_s']:.0f}/s, "
        f"p99 {s['p99_ms'] or 0:.1f} ms, {s['errors']} errors, {s['unexpected']} unexpected"
    )


#: Load samples per server in the idle comparison (at least; ``--runs`` if more): single
#: samples of CPU per handshake spread by ±20 % on a shared 2-core machine.
CPU_PAIRS = 5


def _compare(many: Proc, many_users: int, args: argparse.Namespace, rate: float, log: Log) -> dict:
    """CPU per handshake beside ``many_users`` (on ``many``) and beside 100 idle users (on a
    second server started beside it): both servers stay up and samples alternate A B B A
    …, so that both see the same machine (the other server's idle users and their
    heartbeats run during every sample of both; only each server's own CPU is read)."""
    cpu: dict = {"100": [], str(args.idle[1]): []}
    with server("rtmcall") as few, idle_users("rtmcall", few.url, 100, "idleC") as few_users:
        time.sleep(SETTLE)
        sides = [("100", few, few_users), (str(args.idle[1]), many, many_users)]
        for i in range(args.runs if args.quick else max(args.runs, CPU_PAIRS)):
            for key, srv, users in sides if i % 2 == 0 else sides[::-1]:
                s = _loaded(srv, args, rate, users)
                cpu[key].append(s)
                log(_describe(users, s))
    return cpu


def idle(args: argparse.Namespace, rate: float, log: Log) -> tuple[dict, dict]:
    """Returns (memory, idle_cpu): KiB per connection by kind and user count, and the
    CPU-per-handshake samples with 100 and with ``args.idle[1]`` idle users."""
    n1, n2 = args.idle
    memory: dict = {"rtmcall": {}, "trio": {}}
    cpu: dict = {}
    for kind in ("rtmcall", "trio"):
        with server(kind) as srv:
            time.sleep(0.5)
            rss0 = srv.rss()
            with idle_users(kind, srv.url, n1, "idleA") as ok1:
                time.sleep(SETTLE)
                rss1 = srv.rss()
                with idle_users(kind, srv.url, n2 - n1, "idleB") as ok2:
                    time.sleep(SETTLE)
                    rss2 = srv.rss()
                    memory[kind][str(n1)] = {"kib_per_conn": _kib(rss1, rss0, ok1), "users": ok1}
                    memory[kind][str(n2)] = {
                        "kib_per_conn": _kib(rss2, rss0, ok1 + ok2),
                        "users": ok1 + ok2,
                    }
                    log(
                        f"memory {kind}: {memory[kind][str(n1)]['kib_per_conn']:.1f} KiB per "
                        f"connection at {ok1}, {memory[kind][str(n2)]['kib_per_conn']:.1f} at "
                        f"{ok1 + ok2}"
                    )
                    if kind != "rtmcall":
                        # The same heartbeats on the raw relay: the stack's own cost.
                        memory[kind][str(n2)]["idle_ms_per_s"] = _idle_cpu_per_s(srv) * 1000
                    else:
                        cpu = _compare(srv, ok1 + ok2, args, rate, log)
    return memory, cpu
