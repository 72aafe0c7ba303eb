"""What one wake-up of a sleeping trio process costs here, beside the work it wakes for.

    .venv/bin/python bench/wake_cost.py [--trips 3000] [--gap-ms 3] [--rounds 3]

A trio echo server (one byte back for each byte) in a process of its own, and a trio
client in another sending one byte at a time and waiting for it: the server's CPU per
round trip (user + system, ``psutil``), once back to back (the server never sleeps long)
and once with ``--gap-ms`` between round trips (it sleeps in ``epoll_wait`` each time
and is woken, as a node is at a few hundred messages per second). The difference is what
a wake-up itself costs. Alternating, medians of ``--rounds``.

Why it matters for scale-out (``bench/README.md``, "Scale-out"): a message between two
nodes wakes both, where one node is woken once; at 150 handshakes/s each wake-up carries
one message, so its fixed cost is paid twice.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import psutil
import trio


async def _echo(stream: trio.SocketStream) -> None:
    while data := await stream.receive_some(100):
        await stream.send_all(data)


async def _serve() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)
    await trio.serve_listeners(_echo, listeners)


async def _client(port: int, trips: int, gap: float) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    for _ in range(trips):
        await stream.send_all(b"x")
        await stream.receive_some(10)
        if gap:
            await trio.sleep(gap)
    await stream.aclose()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trips", type=int, default=3000)
    p.add_argument("--gap-ms", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--role", choices=["server", "client"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--gap", type=float, default=0.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.role == "server":
        trio.run(_serve)
        return
    if args.role == "client":
        trio.run(_client, args.port, args.trips, args.gap)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--role", "server"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        proc = psutil.Process(server.pid)
        cost: dict[str, list[float]] = {"back to back": [], "woken each time": []}
        for _ in range(args.rounds):
            for name, gap in (("back to back", 0.0), ("woken each time", args.gap_ms / 1000)):
                before = sum(proc.cpu_times()[:2])
                subprocess.run(
                    [sys.executable, __file__, "--role", "client", "--port", str(port),
                     "--trips", str(args.trips), "--gap", str(gap)],
                    check=True,
                )  # fmt: skip
                cost[name].append((sum(proc.cpu_times()[:2]) - before) / args.trips * 1e6)
                time.sleep(0.2)
    finally:
        server.kill()
        server.wait()
    med = {k: statistics.median(v) for k, v in cost.items()}
    for name, value in med.items():
        print(f"echo server CPU per round trip, {name}: {value:.0f} µs")
    print(f"a wake-up itself: {med['woken each time'] - med['back to back']:.0f} µs")


if __name__ == "__main__":
    main()
