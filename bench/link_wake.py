"""What a woken process pays to read one small message: TCP vs a Unix socket, trio vs
plain loops (issue 14: the cost of a message crossing from one node to another).

    .venv/bin/python bench/link_wake.py [--messages 3000] [--gap-ms 2] [--rounds 4]

A sender process writes one 200-byte message every ``--gap-ms`` (so the receiver sleeps
in between and is woken for each, as a node at a few hundred messages per second); the
receiver reads them, pinned to the same core as the sender (as the scale-out benchmark's
``--pin``). Printed: the receiver's CPU (user + system, ``psutil``) per message, medians
of ``--rounds`` alternating rounds, for

- ``trio-tcp`` / ``trio-unix``: a trio task in ``wait_readable`` + ``recv``, as a node's
  link reader (``rtmcall/server/links.py``) — over TCP on loopback and over a Unix socket;
- ``epoll-tcp``: the same with ``select.epoll`` and nothing else (no event loop);
- ``blocking-tcp``: a blocking ``recv`` loop (the floor of a Python process woken here).
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import psutil
import trio

KINDS = ("trio-tcp", "trio-unix", "epoll-tcp", "blocking-tcp")


def _listen(kind: str, path: str) -> socket.socket:
    if kind.endswith("unix"):
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        print(path, flush=True)
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        print(listener.getsockname()[1], flush=True)
    listener.listen()
    return listener


def receive(kind: str, path: str) -> None:
    conn, _ = _listen(kind, path).accept()
    if kind == "blocking-tcp":
        while conn.recv(65536):
            pass
        return
    conn.setblocking(False)
    if kind == "epoll-tcp":
        poll = select.epoll()
        poll.register(conn.fileno(), select.EPOLLIN)
        while True:
            poll.poll()
            try:
                if not conn.recv(65536):
                    return
            except BlockingIOError:
                pass

    async def read() -> None:
        while True:
            await trio.lowlevel.wait_readable(conn)
            try:
                if not conn.recv(65536):
                    return
            except BlockingIOError:
                pass

    trio.run(read)


def send(kind: str, where: str, messages: int, gap: float) -> None:
    if kind.endswith("unix"):
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(where)
    else:
        conn = socket.create_connection(("127.0.0.1", int(where)))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = b"x" * 200
    for _ in range(messages):
        conn.sendall(message)
        time.sleep(gap)
    conn.close()


def one(kind: str, args: argparse.Namespace, tmp: str) -> float:
    """The receiver's CPU per message, in µs."""
    me = [sys.executable, __file__]
    receiver = subprocess.Popen(
        [*me, "--role", "receive", "--kind", kind, "--where", os.path.join(tmp, "s")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    where = receiver.stdout.readline().strip()
    sender = subprocess.Popen(
        [*me, "--role", "send", "--kind", kind, "--where", where, "--messages",
         str(args.messages), "--gap-ms", str(args.gap_ms)]
    )  # fmt: skip
    watched = psutil.Process(receiver.pid)
    for pid in (receiver.pid, sender.pid):
        psutil.Process(pid).cpu_affinity([0])
    before = watched.cpu_times()
    sender.wait()
    after = watched.cpu_times()
    receiver.wait()
    if kind.endswith("unix"):
        os.unlink(os.path.join(tmp, "s"))
    used = after.user + after.system - before.user - before.system
    return used / args.messages * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--gap-ms", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--role", choices=["receive", "send"], help=argparse.SUPPRESS)
    p.add_argument("--kind", choices=KINDS, help=argparse.SUPPRESS)
    p.add_argument("--where", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "receive":
        receive(args.kind, args.where)
        return
    if args.role == "send":
        send(args.kind, args.where, args.messages, args.gap_ms / 1000)
        return
    results: dict[str, list[float]] = {k: [] for k in KINDS}
    with tempfile.TemporaryDirectory(prefix="rtmcall-link-wake-") as tmp:
        for r in range(args.rounds):
            for kind in KINDS if r % 2 == 0 else KINDS[::-1]:
                results[kind].append(one(kind, args, tmp))
                print(f"round {r + 1} {kind:13} {results[kind][-1]:6.1f} µs/message", flush=True)
    print()
    print("| receiver | CPU µs per message woken for (median) |")
    print("|---|---|")
    for kind, values in results.items():
        print(f"| {kind} | {statistics.median(values):.1f} |")


if __name__ == "__main__":
    main()
