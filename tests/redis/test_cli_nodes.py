"""`rtmcall server --redis` as an operator runs it: two node processes, users on both."""

from __future__ import annotations

import subprocess
import sys

import trio

from rtmcall.cli.cmd_health import _check as check_health
from rtmcall.client import ClientConfig
from rtmcall.engine import LocalInvitationState, RemoteInvitationState

from ..e2e.conftest import phone
from .redisproc import RedisProcess, free_port

RTMCALL = [sys.executable, "-m", "rtmcall.cli"]


def start_node(redis_url: str, name: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [*RTMCALL, "server", "--port", "0", "--redis", redis_url, "--node-id", name, "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("rtmcall server listening on "), line + proc.stderr.read()
    return proc, line.split()[-1]


async def test_two_server_processes_share_users(shared_redis: RedisProcess) -> None:
    nodes = [start_node(shared_redis.url, f"cli{i}") for i in range(2)]
    try:
        (_, url_a), (_, url_b) = nodes
        assert await check_health(url_a, 5, True, None) == 0
        config = ClientConfig(no_response_timeout=5, lifetime=10)
        with trio.fail_after(20):
            async with phone(url_a, "alice", config) as alice, phone(url_b, "bob", config) as bob:
                inv = await alice.client.call("bob", content="across nodes")
                await bob.wait("RemoteInvitationReceived", inv.id)
                await bob.client.accept(inv.id, response="hello from b")
                accepted = await alice.wait("LocalInvitationAccepted", inv.id)
                assert accepted.response == "hello from b"
                await bob.wait("RemoteInvitationAccepted", inv.id)
                assert inv.state is LocalInvitationState.ACCEPTED_BY_REMOTE
                assert bob.client.remote_invitations[inv.id].state is RemoteInvitationState.ACCEPTED
    finally:
        for proc, _ in nodes:
            proc.terminate()
            proc.wait(10)
    # SIGTERM stops a node cleanly.
    assert [proc.returncode for proc, _ in nodes] == [0, 0]


def test_unreachable_redis_is_one_clear_line() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = subprocess.run(
        [*RTMCALL, "server", "--port", "0", "--redis", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    err = done.stderr.strip().splitlines()
    assert err and f"cannot reach redis at {url}" in err[-1]
    assert "Traceback" not in done.stderr
