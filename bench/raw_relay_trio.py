"""The baseline: a minimal WebSocket relay on trio-websocket — the limit of rtmcall's stack.

No validation, no state beyond ``user → connection``. A connection's first message is its
user name; every later message is ``<to>\\n<body>`` and ``<body>`` is forwarded to ``<to>``
(dropped if ``<to>`` is not connected), written directly from the sender's reader task.

``python bench/raw_relay_trio.py [--port 0]`` prints ``URL ws://… PID n`` and runs until
its stdin closes or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

users: dict[str, object] = {}


async def handler(request: WebSocketRequest) -> None:
    ws = await request.accept()
    user = ""
    try:
        user = str(await ws.get_message())
        users[user] = ws
        while True:
            to, _, body = (await ws.get_message()).partition("\n")
            peer = users.get(to)
            if peer is not None:
                try:
                    await peer.send_message(body)
                except ConnectionClosed:
                    pass
    except ConnectionClosed:
        pass
    finally:
        if users.get(user) is ws:
            del users[user]


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", port, None)
        print(f"URL ws://127.0.0.1:{server.port} PID {os.getpid()}", flush=True)

        async def stdin_eof() -> None:
            await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
            nursery.cancel_scope.cancel()

        nursery.start_soon(stdin_eof)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    trio.run(main, parser.parse_args().port)
