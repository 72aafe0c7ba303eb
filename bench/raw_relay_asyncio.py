"""The same minimal relay as ``raw_relay_trio.py`` on asyncio ``websockets`` (+ uvloop when
installed): the stack a user might pick instead of trio.

``python bench/raw_relay_asyncio.py [--port 0] [--no-uvloop]`` prints ``URL ws://… PID n``
and runs until its stdin closes or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

users: dict[str, ServerConnection] = {}


async def handler(ws: ServerConnection) -> None:
    user = ""
    try:
        user = str(await ws.recv())
        users[user] = ws
        async for message in ws:
            to, _, body = str(message).partition("\n")
            peer = users.get(to)
            if peer is not None:
                try:
                    await peer.send(body)
                except ConnectionClosed:
                    pass
    except ConnectionClosed:
        pass
    finally:
        if users.get(user) is ws:
            del users[user]


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def done() -> None:
        if not stop.done():
            stop.set_result(None)

    def stdin_readable() -> None:
        # EOF on stdin: the harness is done with us (or gone).
        if not os.read(sys.stdin.fileno(), 4096):
            done()

    loop.add_signal_handler(signal.SIGTERM, done)
    loop.add_signal_handler(signal.SIGINT, done)

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    # compression=None: the trio relay does not compress either.
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=64 * 1024) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"URL ws://127.0.0.1:{bound} PID {os.getpid()}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if uvloop is not None and not args.no_uvloop:
        uvloop.run(main(args.port))
    else:
        asyncio.run(main(args.port))
