"""The bench's server process: ``python -m rtmcall.bench.server_proc [--port 0]``.

Runs rtmcall's real ``serve()`` with the default :class:`ServerConfig` except the limits a
load test must lift (below), prints ``URL <url> PID <pid>`` on one stdout line once it
listens, and stops cleanly on SIGTERM/SIGINT or when its stdin closes (so it never
outlives the bench that started it; ``--keep-running`` ignores stdin, for a server run
in the background by hand). It is a process of its own so that its CPU time
(``psutil.Process(pid).cpu_times()``) measures the server alone.

``--profile FILE`` runs the whole server under cProfile and writes FILE (pstats) on exit;
``--wakes FILE`` counts its wake-ups between two SIGUSR1s (:mod:`rtmcall.bench.wakes`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any

#: A closed-loop pair sends far more than Agora's 180 messages per 3 s per user, on
#: purpose; idle tests need more than 10,000 connections. Everything else stays default.
BENCH_CONFIG: dict[str, Any] = {
    "rate_messages": 1_000_000_000,
    "rate_messages_per": 1.0,
    "rate_logins": 1_000_000,
    "rate_logins_per": 1.0,
    "max_connections": 60_000,
}


async def _main(
    host: str,
    port: int,
    redis: str | None,
    watch_stdin: bool,
    ops: Any = None,
    links: bool = True,
) -> None:
    import trio

    from rtmcall.server import ServerConfig, serve

    config = ServerConfig(**BENCH_CONFIG)
    async with trio.open_nursery() as nursery:
        hub = None
        if redis:
            hub = await nursery.start(_redis_hub, redis, links)
        server = await nursery.start(
            lambda task_status: serve(
                host, port, hub=hub, config=config, ops=ops, task_status=task_status
            )
        )
        print(f"URL {server.url} PID {os.getpid()}", flush=True)
        if watch_stdin:
            nursery.start_soon(_watch_stdin, nursery.cancel_scope)
        try:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    break
        finally:
            _report_trouble(server.stats.snapshot())
        nursery.cancel_scope.cancel()


#: Counters that mean a bench did not measure what it meant to (cut or refused clients).
_TROUBLE = (
    "idle_timeouts",
    "login_timeouts",
    "slow_readers",
    "sessions_expired",
    "resumes",
    "kicks",
    "messages_unreachable",
    "rate_limited",
    "internal_errors",
    "connections_refused",
)


def _report_trouble(stats: dict[str, int]) -> None:
    trouble = {k: stats.get(k, 0) for k in _TROUBLE if stats.get(k, 0)}
    if trouble:
        print(f"rtmcall bench server: {trouble}", file=sys.stderr, flush=True)


async def _redis_hub(url: str, links: bool, task_status: Any) -> None:
    try:
        from rtmcall.server.redis import open_redis_hub
    except ImportError:  # (copied into an older tree: bench/wakes.py --before)
        from rtmcall.server.redis_hub import open_redis_hub  # type: ignore[no-redef]

    async with open_redis_hub(url, node_id=f"bench-{os.getpid()}", links=links) as hub:
        task_status.started(hub)
        import trio

        await trio.sleep_forever()


async def _watch_stdin(scope: Any) -> None:
    import trio

    # EOF on stdin means the parent is gone (or done with us): stop.
    await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
    scope.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rtmcall.bench.server_proc")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis", default=None, help="share users through this Redis URL")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile pstats file")
    parser.add_argument(
        "--no-links", action="store_true", help="with --redis: no node links (Redis streams)"
    )
    parser.add_argument(
        "--keep-running", action="store_true", help="ignore EOF on stdin (run in background)"
    )
    parser.add_argument(
        "--wakes", metavar="FILE", help="count wake-ups between two SIGUSR1s, into FILE"
    )
    parser.add_argument("--metrics", action="store_true", help="serve /metrics (issue 15)")
    parser.add_argument("--metrics-port", type=int, help="... on a port of its own")
    parser.add_argument("--call-log", metavar="FILE", help="write the call log to FILE")
    parser.add_argument("--webhook", metavar="URL", action="append", help="POST events to URL")
    args = parser.parse_args(argv)
    ops = None
    if args.metrics or args.metrics_port is not None or args.call_log or args.webhook:
        from rtmcall.server.ops import OpsOptions
        from rtmcall.server.webhooks import WebhookConfig

        hooks = WebhookConfig(tuple(args.webhook), b"bench") if args.webhook else None
        ops = OpsOptions(
            metrics=args.metrics,
            metrics_port=args.metrics_port,
            call_log=args.call_log,
            webhooks=hooks,
        )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # The bench serves loopback without a secret on purpose: skip that one warning.
    logging.getLogger("rtmcall.server").addFilter(lambda r: "no secret" not in r.getMessage())
    import trio

    import rtmcall.server  # noqa: F401 - imported before the collector freezes
    from rtmcall._gc import tune_for_long_running

    tune_for_long_running()  # as ``rtmcall server`` does
    instruments: list[trio.abc.Instrument] = []
    if args.wakes:
        from rtmcall.bench.wakes import WakeCounter

        counter = WakeCounter(args.wakes)
        counter.install()
        instruments.append(counter)
    run_args = (args.host, args.port, args.redis, not args.keep_running, ops, not args.no_links)
    if args.profile:
        import cProfile

        # CPU time, not wall time: on a shared machine, time spent descheduled would
        # otherwise be charged to whatever function happened to be running.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        try:
            trio.run(_main, *run_args, instruments=instruments)
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        trio.run(_main, *run_args, instruments=instruments)


if __name__ == "__main__":
    main()
