"""Shared fixtures for the CLI tests: an isolated config dir, and a real server subprocess.

Rules (after trio-websocket's test module): loopback only, port 0, a timeout on every wait,
and every subprocess killed in ``finally`` so a failing test cannot leave one behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RTMCALL = [sys.executable, "-m", "rtmcall.cli"]


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own remembered-login file, never the user's."""
    path = tmp_path / "config"
    monkeypatch.setenv("RTMCALL_CONFIG_DIR", str(path))
    for var in ("RTMCALL_SERVER", "RTMCALL_USER", "RTMCALL_TOKEN", "RTMCALL_SECRET"):
        monkeypatch.delenv(var, raising=False)
    return path


def cli_env(config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTMCALL_")}
    env.update(RTMCALL_CONFIG_DIR=str(config), PYTHONUNBUFFERED="1", **extra)
    return env


def kill(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=5)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``rtmcall server --port 0`` subprocess, shared by the session's tests (they
    use distinct user ids); its URL is read from its stdout."""
    proc = subprocess.Popen(
        [*RTMCALL, "server", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=cli_env(tmp_path_factory.mktemp("server-config")),
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server prints its URL first, flushed
        match = re.search(r"(wss?://\S+)", line)
        assert match, f"no URL in {line!r}"
        yield match.group(1)
    finally:
        kill(proc)
