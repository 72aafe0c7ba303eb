"""A server node in its own process, so a test can SIGKILL it: ``python -m tests.redis.node``.

Prints its URL on the first line of stdout.
"""

from __future__ import annotations

import argparse
import sys

import trio

from rtmcall.server import ServerConfig, serve
from rtmcall.server.redis import open_redis_hub


async def main(args: argparse.Namespace) -> None:
    async with open_redis_hub(
        args.redis, node_id=args.node_id, presence_ttl=args.ttl, prefix=args.prefix
    ) as hub:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                lambda task_status: serve(
                    "127.0.0.1", 0, hub=hub, config=ServerConfig(), task_status=task_status
                )
            )
            print(server.url, flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--redis", required=True)
    p.add_argument("--node-id", required=True)
    p.add_argument("--ttl", type=float, default=2.0)
    p.add_argument("--prefix", default="rtmcall")
    trio.run(main, p.parse_args())
    sys.exit(0)
