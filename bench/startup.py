"""Start-up time of the command line: ``rtmcall --help`` and a one-shot ``rtmcall call``.

Wall time of the whole subprocess (interpreter start, imports, work, exit), median of N.
The CLI may not exist (yet): then the figure is None with the reason.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from procs import PY, ROOT, server

RTMCALL = Path(PY).parent / "rtmcall"


def _wall(cmd: list[str], env: dict[str, str], timeout: float = 30) -> tuple[float, int]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout, cwd=ROOT)
    return time.perf_counter() - t0, done.returncode


def _env(config_dir: str) -> dict[str, str]:
    # A private config dir: the CLI remembers users and servers; never touch the real one.
    return {**os.environ, "RTMCALL_CONFIG_DIR": config_dir}


def help_time(runs: int) -> dict:
    if not RTMCALL.exists():
        return {"median_ms": None, "why": f"{RTMCALL} not installed"}
    with tempfile.TemporaryDirectory() as cfg:
        env = _env(cfg)
        _wall([str(RTMCALL), "--help"], env)  # warm the page cache once
        walls = []
        for _ in range(runs):
            wall, rc = _wall([str(RTMCALL), "--help"], env)
            if rc != 0:
                return {"median_ms": None, "why": f"rtmcall --help exited {rc}"}
            walls.append(wall * 1000)
    return {"median_ms": statistics.median(walls), "runs_ms": walls}


def call_time(runs: int) -> dict:
    """``rtmcall call bob`` against a local server, bob auto-answering (``rtmcall answer``)."""
    if not RTMCALL.exists():
        return {"median_ms": None, "why": f"{RTMCALL} not installed"}
    with tempfile.TemporaryDirectory() as cfg, server("rtmcall") as srv:
        env = _env(cfg)
        answer = [str(RTMCALL), "answer", "--user", "bob", "--count", "0", "--server", srv.url]
        callee = subprocess.Popen(
            answer, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
        )
        try:
            call = [str(RTMCALL), "call", "bob", "--user", "alice", "--server", srv.url]
            # Until bob is logged in the call fails (exit 1): bounded retries, not timed.
            for _ in range(40):
                if _wall(call, env)[1] == 0:
                    break
                time.sleep(0.25)
            else:
                return {"median_ms": None, "why": "rtmcall call never succeeded"}
            walls = []
            for _ in range(runs):
                wall, rc = _wall(call, env)
                if rc != 0:
                    return {"median_ms": None, "why": f"rtmcall call exited {rc}"}
                walls.append(wall * 1000)
        finally:
            callee.terminate()
            try:
                callee.wait(5)
            except subprocess.TimeoutExpired:
                callee.kill()
    return {"median_ms": statistics.median(walls), "runs_ms": walls}
