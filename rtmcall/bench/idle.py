"""Idle logged-in users: they log in and keep their session alive, nothing more.

Two kinds, the same on the wire as far as the server can tell:

* SDK users (:func:`hold_sdk_idle`): full :class:`rtmcall.client.RtmClient` sessions.
* lean users (:func:`hold_lean_idle`): one raw WebSocket each that sends ``Login`` and
  then only answers the server's pings (the server pings a client in standby after 45 s
  of silence): the least traffic a server accepts from a live session, so thousands
  of them measure the server's own per-connection cost, and one process can hold them.
  ``active=True`` also sends a standby WebSocket ping every ``standby_heartbeat`` seconds
  (LoginOk's), as an idle SDK client does.

``python -m rtmcall.bench.idle URL --count N`` holds lean users in a process of its own;
it prints ``READY <logged in> <failed>`` once all logins are done and exits when its
stdin closes.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from functools import partial

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from rtmcall.engine import frames as f

#: Concurrent logins in flight: enough to log thousands in within seconds without a
#: thundering herd on the listen backlog.
LOGIN_CONCURRENCY = 64


async def _lean_user(
    url: str,
    user: str,
    limiter: trio.CapacityLimiter,
    on_login: Callable[[bool], None],
    active: bool,
) -> None:
    logged_in = False
    try:
        async with AsyncExitStack() as stack:
            async with limiter:
                ws = await stack.enter_async_context(
                    open_websocket_url(url, max_message_size=f.MAX_FRAME_BYTES)
                )
                await ws.send_message(f.encode(f.Login(user=user)).decode())
                while True:
                    frame = f.decode_server_frame(await ws.get_message())
                    if isinstance(frame, f.LoginOk):
                        break
                    if isinstance(frame, f.LoginFail | f.Error):
                        raise ConnectionError(f"login refused: {frame}")
            logged_in = True
            on_login(True)
            await _keep_alive(ws, frame.standby_heartbeat if active else math.inf)
    except (OSError, ConnectionClosed, HandshakeError, ConnectionError, f.FrameError):
        if not logged_in:
            on_login(False)


async def _keep_alive(ws: WebSocketConnection, heartbeat: float) -> None:
    """Ping every ``heartbeat`` s (inf: never), answer the server's pings, ignore the rest.

    The first Ping comes at a random point of the first interval, so that thousands of
    users logged in within seconds ping evenly spread over the interval at once, as
    users who logged in over hours would (a measurement need not wait for it)."""
    pong = f.encode(f.Pong()).decode()
    pings = 0
    next_ping = trio.current_time() + (
        random.uniform(0, heartbeat) if heartbeat < math.inf else heartbeat
    )
    while True:
        with trio.move_on_at(next_ping):
            data = await ws.get_message()
            if isinstance(f.decode_server_frame(data), f.ServerPing):
                await ws.send_message(pong)
            continue
        pings += 1
        await ws.ping(b"%s %d" % (f.STANDBY_PING, pings))  # what the SDK sends in standby
        next_ping += heartbeat


async def hold_lean_idle(
    url: str,
    count: int,
    prefix: str,
    *,
    active: bool = False,
    task_status: trio.TaskStatus[tuple[int, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Log in ``count`` lean idle users (``{prefix}{i}``) and hold them until cancelled.

    Reports ``(logged_in, failed)`` through ``task_status`` once every login is done.
    ``active``: also send the SDK's heartbeat pings (see the module docstring).
    """
    done = trio.Event()
    tally = [0, 0]

    def on_login(ok: bool) -> None:
        tally[0 if ok else 1] += 1
        if tally[0] + tally[1] >= count:
            done.set()

    limiter = trio.CapacityLimiter(LOGIN_CONCURRENCY)
    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(_lean_user, url, f"{prefix}{i}", limiter, on_login, active)
        if count == 0:
            done.set()
        await done.wait()
        task_status.started((tally[0], tally[1]))
        await trio.sleep_forever()


async def _main(url: str, count: int, prefix: str, active: bool) -> None:
    async with trio.open_nursery() as nursery:
        ok, failed = await nursery.start(partial(hold_lean_idle, url, count, prefix, active=active))
        print(f"READY {ok} {failed}", flush=True)
        # EOF on stdin: the parent is done with us (or gone).
        await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    import resource

    parser = argparse.ArgumentParser(prog="python -m rtmcall.bench.idle")
    parser.add_argument("url")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", default="idle")
    parser.add_argument("--active", action="store_true", help="ping as an idle SDK client does")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.count + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    trio.run(_main, args.url, args.count, args.prefix, args.active)


if __name__ == "__main__":
    main()
