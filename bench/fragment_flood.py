"""What a flood of WebSocket fragments costs the server, and everyone else on it (issue 13
item 14, RFC 6455 §10.4).

    .venv/bin/python bench/fragment_flood.py [--frames 1000000] [--mode empty|drip]

A fresh server process (``python -m rtmcall.bench.server_proc``). An attacker logs in,
opens a text message (FIN=0) and sends ``--frames`` continuation frames in writes of 1,000
frames: ``empty`` ones (no payload: RFC 6455 §10.4's attack), or ``drip`` ones (one byte
of a long JSON string each: a legal message sent slowly, which must be delivered while it
stays within the size limit). Meanwhile a victim, a process of its own (so that the
attacker's sending never delays its measurement), logs in and measures round trips of
application Pings (``{"t":"ping"}`` -> ServerPong), 50 a second.

Printed as one JSON object: frames sent before the server closed (and its close code),
the server's CPU seconds over the flood (``psutil`` on the server process), its RSS
growth, and the victim's round-trip median and 99th percentile before and during the
flood.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import trio
from procs import Proc, server

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A masked client frame (payload < 126 bytes)."""
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Raw:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    @classmethod
    async def login(cls, port: int, user: str) -> Raw:
        raw = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await raw.stream.send_all(UPGRADE)
        while b"\r\n\r\n" not in raw.buf:
            raw.buf += await raw.stream.receive_some()
        raw.buf = bytearray(bytes(raw.buf).partition(b"\r\n\r\n")[2])
        await raw.stream.send_all(frame(0x1, json.dumps({"t": "login", "user": user}).encode()))
        await raw.frame()
        return raw

    async def frame(self) -> tuple[int, bytes]:
        while True:
            if len(self.buf) >= 2:
                size, at = self.buf[1] & 0x7F, 2
                if size == 126:
                    size, at = int.from_bytes(self.buf[2:4], "big"), 4
                if len(self.buf) >= at + size:
                    first, payload = self.buf[0], bytes(self.buf[at : at + size])
                    del self.buf[: at + size]
                    return first, payload
            data = await self.stream.receive_some()
            if not data:
                raise EOFError
            self.buf += data


async def victim(port: int, seconds: float) -> None:
    """Ping for ``seconds``; print one line per round trip: ``<start> <seconds>``."""
    raw = await Raw.login(port, "victim")
    ping = frame(0x1, b'{"t":"ping"}')
    print("READY", flush=True)
    end = time.time() + seconds
    while time.time() < end:
        start, t = time.time(), time.perf_counter()
        await raw.stream.send_all(ping)
        while True:
            first, payload = await raw.frame()
            if b'"pong"' in payload:
                break
        print(f"{start} {time.perf_counter() - t}", flush=True)
        await trio.sleep(0.02)


async def attack(port: int, frames: int, mode: str) -> dict:
    """Send the flood; what the server did about it."""
    raw = await Raw.login(port, "attacker")
    if mode == "empty":
        await raw.stream.send_all(frame(0x1, b"", fin=False))
        chunk = b"".join(frame(0x0, b"", fin=False) for _ in range(1000))
    else:
        await raw.stream.send_all(frame(0x1, b'{"t": "ping", "pad": "', fin=False))
        chunk = b"".join(frame(0x0, b"x", fin=False) for _ in range(1000))
    sent = 0
    closed = trio.Event()
    code: int | None = None
    answer = ""

    async def read_close() -> None:
        nonlocal code, answer
        try:
            while True:
                first, payload = await raw.frame()
                if first & 0x0F == 0x8:
                    code = int.from_bytes(payload[:2], "big")
                    break
                answer = payload[:80].decode()
                if mode == "drip":
                    break
        except (EOFError, trio.BrokenResourceError):
            pass
        closed.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_close)
        try:
            while sent < frames and not closed.is_set():
                await raw.stream.send_all(chunk)
                sent += 1000
        except trio.BrokenResourceError:
            pass
        if mode == "drip" and not closed.is_set():
            # The drip ends its message: the server answers it (an Error: "pad" is no
            # field of a Ping), or closes if it was cut.
            await raw.stream.send_all(frame(0x0, b'"}'))
            sent += 1
        with trio.move_on_after(5):
            await closed.wait()
        nursery.cancel_scope.cancel()
    return {"frames_sent": sent, "close_code": code, "answer": answer}


def quantiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"n": len(values)}
    qs = statistics.quantiles(values, n=100)
    return {"n": len(values), "p50_ms": qs[49] * 1e3, "p99_ms": qs[98] * 1e3}


async def measure(srv: Proc, port: int, frames: int, mode: str) -> tuple[dict, list[float]]:
    """The attack's outcome, and [t0, t1, cpu0, cpu1, rss0, rss1] around it."""
    await trio.sleep(1.0)  # the victim's baseline
    cpu0, rss0, t0 = srv.cpu(), srv.rss(), time.time()
    outcome = await attack(port, frames, mode)
    return outcome, [t0, time.time(), cpu0, srv.cpu(), rss0, srv.rss()]


def run(frames: int, mode: str, seconds: float) -> dict:
    with server("rtmcall") as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        cmd = [sys.executable, __file__, "--victim", str(port), "--seconds", str(seconds)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "READY"
            outcome, (t0, t1, cpu0, cpu1, rss0, rss1) = trio.run(measure, srv, port, frames, mode)
            out, _ = proc.communicate()
    rtts = [(float(a), float(b)) for a, b in (line.split() for line in out.splitlines())]
    return {
        "mode": mode,
        **outcome,
        "flood_s": round(t1 - t0, 3),
        "server_cpu_s": round(cpu1 - cpu0, 3),
        "server_rss_growth_mb": round((rss1 - rss0) / 2**20, 2),
        "victim_before": quantiles([r for s, r in rtts if s < t0]),
        "victim_during": quantiles([r for s, r in rtts if t0 <= s <= t1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=["empty", "drip"], default="empty")
    parser.add_argument("--seconds", type=float, default=12.0, help="the victim's run")
    parser.add_argument("--victim", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.victim:
        trio.run(victim, args.victim, args.seconds)
    else:
        print(json.dumps(run(args.frames, args.mode, args.seconds), indent=2))


if __name__ == "__main__":
    main()
