"""Client CPU per Redis command: coredis vs rtmcall's own RESP client (``resp.py``).

    .venv/bin/pip install -e '.[bench]'    # coredis: not a dependency of rtmcall itself
    .venv/bin/python bench/redis_client.py [--count 3000]

Starts its own ``redis-server`` (no persistence) and times, in this process (CPU time, user +
system), sequential round trips of the commands the hub sends: an XADD of a 100-byte
entry and a GET, each ``--count`` times, with coredis and with
:class:`rtmcall.server.redis.resp.RedisConnection`; then the hub's batched form (one write of 16
XADDs, replies not awaited: ``send_encoded``) per command. Alternates the clients twice.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import coredis
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_out import redis_server  # noqa: E402

from rtmcall.server.redis.resp import RedisAddress, RedisConnection, encode_command  # noqa: E402

ENTRY = b"x" * 100


async def with_coredis(url: str, count: int) -> dict[str, float]:
    r = coredis.Redis.from_url(url, decode_responses=False)
    out = {}
    async with r:
        await r.ping()
        t = time.process_time()
        for _ in range(count):
            await r.xadd("bench:s", {b"b": ENTRY})
        out["xadd"] = (time.process_time() - t) / count * 1e6
        t = time.process_time()
        for _ in range(count):
            await r.get("bench:k")
        out["get"] = (time.process_time() - t) / count * 1e6
    return out


async def with_resp(url: str, count: int) -> dict[str, float]:
    out = {}
    async with RedisConnection(RedisAddress.from_url(url)) as r:
        await r.call("PING")
        t = time.process_time()
        for _ in range(count):
            await r.call("XADD", "bench:s", "MAXLEN", "~", 10000, "*", "b", ENTRY)
        out["xadd"] = (time.process_time() - t) / count * 1e6
        t = time.process_time()
        for _ in range(count):
            await r.call("GET", "bench:k")
        out["get"] = (time.process_time() - t) / count * 1e6
        batch = bytearray()
        for _ in range(16):
            encode_command(("XADD", "bench:s", "MAXLEN", "~", 10000, "*", "b", ENTRY), batch)
        done = trio.Event()
        left = [count // 16]
        t = time.process_time()

        def replied(_: object) -> None:
            left[0] -= 1
            if left[0] == 0:
                done.set()

        for _ in range(count // 16):
            r.send_encoded(batch, 16, replied)
            await trio.lowlevel.checkpoint()
        await done.wait()
        out["xadd_batched_16"] = (time.process_time() - t) / (count // 16 * 16) * 1e6
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=3000)
    args = p.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"coredis": [], "resp": []}
    with redis_server() as (url, _):
        for _ in range(2):
            runs["coredis"].append(trio.run(with_coredis, url, args.count))
            runs["resp"].append(trio.run(with_resp, url, args.count))
    print("| client | XADD µs CPU | GET µs CPU | XADD in batches of 16, µs each |")
    print("|---|---|---|---|")
    for name, samples in runs.items():
        med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        batched = f"{med['xadd_batched_16']:.0f}" if "xadd_batched_16" in med else "—"
        print(f"| {name} | {med['xadd']:.0f} | {med['get']:.0f} | {batched} |")


if __name__ == "__main__":
    main()
