"""Start the bench's server as a subprocess (``python -m rtmcall.bench.server_proc``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio


@dataclass(frozen=True, slots=True)
class ServerProcess:
    url: str
    pid: int


def parse_ready_line(line: str) -> ServerProcess:
    """``URL ws://… PID 123`` → ServerProcess. Raises ValueError on anything else."""
    parts = line.split()
    if len(parts) != 4 or parts[0] != "URL" or parts[2] != "PID":
        raise ValueError(f"unexpected line from the server process: {line!r}")
    return ServerProcess(parts[1], int(parts[3]))


async def _read_line(stream: trio.abc.ReceiveStream, limit: int = 4096) -> str:
    data = b""
    while b"\n" not in data and len(data) < limit:
        chunk = await stream.receive_some(limit)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace")


@asynccontextmanager
async def embedded_server(
    args: Sequence[str] = (), *, start_timeout: float = 30.0
) -> AsyncIterator[ServerProcess]:
    """Run a server subprocess for the block; yields its URL and pid.

    Raises:
      RuntimeError: it did not print its URL within ``start_timeout`` (its stderr says why).

    Resource handling: on exit its stdin is closed (it stops by itself), then it is
    terminated after 5 s and killed after 5 more.
    """
    cmd = [sys.executable, "-m", "rtmcall.bench.server_proc", "--port", "0", *args]
    proc = await trio.lowlevel.open_process(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = ""
        with trio.move_on_after(start_timeout):
            line = await _read_line(proc.stdout)
        try:
            server = parse_ready_line(line)
        except ValueError:
            raise RuntimeError(f"the bench server did not start: {cmd}") from None
        yield server
    finally:
        with trio.CancelScope(shield=True):
            await proc.stdin.aclose()
            with trio.move_on_after(5):
                await proc.wait()
            if proc.returncode is None:
                proc.terminate()
                with trio.move_on_after(5):
                    await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await proc.stdout.aclose()
