"""What idle users cost the server: CPU per second and per heartbeat, optionally profiled.

    python bench/profile_idle.py [--users 5000] [--seconds 20] [--profile FILE]

Runs rtmcall's real ``serve()`` in this process (the bench's config, the collector tuned
as ``rtmcall server`` does) and ``--users`` idle SDK-like users in a subprocess
(``rtmcall.bench.idle --active``: a standby WebSocket ping every 30 s each). Once they
are logged in and settled, it reads this process's CPU time over ``--seconds`` (the
users' own process is not counted) and the server's ping counters; with ``--profile``
it runs cProfile (on CPU time) over that window only, so logins do not blur it, and
prints the top functions. Used for bench/README.md item 11; for A/B comparisons of
server changes run it alternately on each version.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import time

import trio

from rtmcall._gc import tune_for_long_running
from rtmcall.bench.server_proc import BENCH_CONFIG
from rtmcall.server import ServerConfig, serve

#: Time for the logins' after-effects (pending frees, first pings) to pass.
SETTLE = 3.0


async def measure(users: int, seconds: float, profile: str | None) -> None:
    async with trio.open_nursery() as nursery:
        config = ServerConfig(**BENCH_CONFIG)
        server = await nursery.start(
            lambda task_status: serve("127.0.0.1", 0, config=config, task_status=task_status)
        )
        cmd = [sys.executable, "-m", "rtmcall.bench.idle", server.url, "--count", str(users)]
        holder = await trio.lowlevel.open_process(
            [*cmd, "--active"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            assert holder.stdout is not None
            ready = b""
            while not ready.endswith(b"\n"):  # "READY <ok> <failed>"
                chunk = await holder.stdout.receive_some()
                if not chunk:
                    raise RuntimeError("the idle users' process ended before logging in")
                ready += chunk
            print(ready.decode().strip(), file=sys.stderr)
            await trio.sleep(SETTLE)
            pings0 = server.stats.ws_pings + server.stats.pings
            profiler = cProfile.Profile(time.process_time) if profile else None
            cpu0 = time.process_time()
            if profiler:
                profiler.enable()
            await trio.sleep(seconds)
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile)
            cpu = time.process_time() - cpu0
            pings = server.stats.ws_pings + server.stats.pings - pings0
        finally:
            if holder.stdin is not None:
                await holder.stdin.aclose()  # EOF: the users log out and the process ends
            await holder.wait()
        nursery.cancel_scope.cancel()
    print(
        f"{users} idle users: {cpu / seconds * 1000:.1f} ms/s of server CPU, "
        f"{pings / seconds:.0f} heartbeats/s, {cpu / max(pings, 1) * 1e6:.0f} µs each"
        + (" (profiled: slower)" if profile else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the window into FILE")
    args = parser.parse_args()
    import rtmcall.server  # noqa: F401 - imported before the collector freezes

    tune_for_long_running()
    trio.run(measure, args.users, args.seconds, args.profile)
    if args.profile:
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
