"""Subprocesses for the comparison harness: servers, idle users, load generators.

Every server prints ``URL <url> PID <pid>`` on its first stdout line and stops when its
stdin closes; every idle-user holder prints ``READY <ok> <failed>`` and stops the same
way. Nothing here is measured itself: CPU and memory are read from the server *process*
(``psutil``), so the harness's and the load generators' own costs never blur them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from rtmcall.server.config import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SERVERS = {
    "rtmcall": [PY, "-m", "rtmcall.bench.server_proc"],
    "trio": [PY, str(ROOT / "bench" / "raw_relay_trio.py")],
    "asyncio": [PY, str(ROOT / "bench" / "raw_relay_asyncio.py")],
}


@dataclass(frozen=True)
class Proc:
    url: str
    pid: int

    def cpu(self) -> float:
        t = psutil.Process(self.pid).cpu_times()
        return t.user + t.system

    def rss(self) -> int:
        return psutil.Process(self.pid).memory_info().rss


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line, or "" if none came within ``timeout`` (then kill it)."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        return proc.stdout.readline().strip()
    finally:
        timer.cancel()


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        try:
            proc.stdin.close()
        except OSError:
            pass
    for action in (None, proc.terminate, proc.kill):
        if action is not None:
            action()
        try:
            proc.wait(5)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def server(kind: str) -> Iterator[Proc]:
    """A fresh server of ``kind`` (rtmcall, trio, asyncio) for the block."""
    proc = subprocess.Popen(
        SERVERS[kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        line = _first_line(proc, 30).split()
        if len(line) != 4 or line[0] != "URL":
            raise RuntimeError(f"{kind} server did not start: {line}")
        yield Proc(line[1], int(line[3]))
    finally:
        _stop(proc)


@contextmanager
def idle_users(kind: str, url: str, count: int, prefix: str = "idle") -> Iterator[int]:
    """``count`` idle logged-in users of a server of ``kind``; yields how many logged in.

    rtmcall's speak its protocol through ``rtmcall.bench.idle --active``: log in, then
    heartbeat as an idle SDK client does (a standby WebSocket ping every 30 s, the first at a
    random point of the first interval so the steady state starts at once); the raw
    relays' send their name, then a WebSocket ping as often (the same heartbeat's cost).
    """
    if kind == "rtmcall":
        cmd = [PY, "-m", "rtmcall.bench.idle", url, "--count", str(count), "--prefix", prefix]
        cmd.append("--active")
    else:
        cmd = [PY, str(ROOT / "bench" / "lean_load.py"), url, "--idle", str(count)]
        cmd += ["--prefix", prefix, "--ping", f"{ServerConfig().standby_heartbeat:g}"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = _first_line(proc, 120).split()
        if len(line) != 3 or line[0] != "READY":
            raise RuntimeError(f"idle users did not log in: {line}")
        yield int(line[1])
    finally:
        _stop(proc)


def _run_json(cmd: list[str], timeout: float) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    start = done.stdout.find("{")
    if start < 0:
        raise RuntimeError(f"no output from {cmd}: {done.stderr[-2000:]}")
    return json.loads(done.stdout[start:])


def load(
    kind: str,
    srv: Proc,
    pairs: int,
    duration: float,
    warmup: float,
    rate: float | None = None,
) -> dict:
    """Run one load generator against ``srv``; returns a normalised sample.

    ``kind``: rtmcall (``rtmcall bench``, the SDK), rtmcall_lean (``lean_rtmcall.py``:
    rtmcall's frames from lean clients), or a raw relay's (``lean_load.py``)."""
    common = ["--pairs", str(pairs), "--duration", str(duration), "--warmup", str(warmup)]
    common += ["--server-pid", str(srv.pid)] + (["--rate", f"{rate:.1f}"] if rate else [])
    timeout = duration + warmup + 180
    # Other work on the machine skews every figure: keep the load average with the sample.
    load_before = os.getloadavg()[0]
    if kind == "rtmcall":
        cmd = [PY, "-m", "rtmcall.bench", "--server", srv.url, "--json", *common]
        data = _run_json(cmd, timeout)
        ops, per_s, cpu = data["handshakes"], data["handshakes_per_s"], data["server_cpu_s"]
        unexpected_kinds = data["unexpected"]
    else:
        script = "lean_rtmcall.py" if kind == "rtmcall_lean" else "lean_load.py"
        data = _run_json([PY, str(ROOT / "bench" / script), srv.url, *common], timeout)
        ops, per_s, cpu = data["ops"], data["ops_per_s"], data["server_cpu_s"]
        unexpected_kinds = {}
    unexpected = sum(unexpected_kinds.values())
    out = data["outcome"]
    return {
        "ops": ops,
        "ops_per_s": per_s,
        "cpu_us_per_op": cpu / ops * 1e6 if cpu is not None and ops else None,
        "p50_ms": out["p50"],
        "p90_ms": out["p90"],
        "p99_ms": out["p99"],
        "max_ms": out["max"],
        "ack_p99_ms": data["received_by_peer"]["p99"],
        "errors": sum(data["errors"].values()),
        "error_kinds": data["errors"],
        "unexpected": unexpected,
        "unexpected_kinds": unexpected_kinds,
        "rate": rate,
        "pairs": pairs,
        "loadavg": load_before,
    }
