"""`rtmcall server --redis` as an operator runs it: two node processes, users on both."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import trio

from rtmcall.cli.cmd.health import _check_all as check_health
from rtmcall.client import ClientConfig
from rtmcall.engine import LocalInvitationState, RemoteInvitationState
from rtmcall.server.redis.links import host_id
from rtmcall.server.redis.resp import RedisAddress, RedisConnection

from ..e2e.conftest import phone
from .redisproc import RedisProcess, free_port

RTMCALL = [sys.executable, "-m", "rtmcall.cli"]


def start_node(
    redis_url: str, name: str, *extra: str, quiet: bool = True
) -> tuple[subprocess.Popen, str]:
    """An ``rtmcall server --redis`` process and its URL (``quiet``: no INFO lines on
    stderr)."""
    if quiet:
        extra = ("-q", *extra)
    proc = subprocess.Popen(
        [
            *RTMCALL,
            "server",
            "--port",
            "0",
            "--redis",
            redis_url,
            "--node-id",
            name,
            *extra,
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("rtmcall server listening on "), line + proc.stderr.read()
    return proc, line.split()[-1]


@pytest.mark.parametrize("links", ["links", "no-links"])
async def test_two_server_processes_share_users(shared_redis: RedisProcess, links: str) -> None:
    port = free_port()
    extra = (
        [["--link-address", f"127.0.0.1:{port}"], []] if links == "links" else [["--no-links"]] * 2
    )
    nodes = [start_node(shared_redis.url, f"cli{i}-{links}", *extra[i]) for i in range(2)]
    try:
        (_, url_a), (_, url_b) = nodes
        assert await check_health([url_a], 5, True, None) == 0
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
        # With links, nothing went through Redis; without, everything did.
        async with RedisConnection(RedisAddress.from_url(shared_redis.url)) as admin:
            inboxes = [await admin.call("XLEN", f"rtmcall:in:cli{i}-{links}") for i in range(2)]
            node_a = await admin.call("GET", f"rtmcall:node:cli0-{links}")
            local_a = await admin.call("GET", f"rtmcall:nodelocal:cli0-{links}")
        if links == "links":
            assert inboxes == [0, 0]
            epoch, *where = node_a.split(b"\t")
            assert where == [b"127.0.0.1", b"%d" % port]  # where it was told to listen
            # ... and the host it listens on a local socket in (Linux).
            assert local_a == b"%s\t%s" % (epoch, (host_id() or "").encode())
        else:
            assert min(inboxes) >= 1 and node_a is None
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


def test_a_redis_password_is_never_printed(shared_redis: RedisProcess) -> None:
    """A wrong password (from RTMCALL_REDIS, off the command line) is one clear line that
    does not show it."""
    url = f"redis://u:s3cret@127.0.0.1:{shared_redis.port}/0"
    done = subprocess.run(
        [*RTMCALL, "server", "--port", "0"],
        env={**os.environ, "RTMCALL_REDIS": url},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 4, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert f"cannot reach redis at redis://u:***@127.0.0.1:{shared_redis.port}/0" in last, last
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr
    bad = subprocess.run(
        [*RTMCALL, "server", "--redis", "redis://u:s3cret@h:port"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 2 and "s3cret" not in bad.stderr, bad.stderr


def test_a_node_id_already_running_is_refused_and_a_dead_one_s_is_taken_over(
    shared_redis: RedisProcess,
) -> None:
    """One node id, one process: a second process is refused while the first runs. Once
    it died (SIGKILL: its node key stays behind), its name is free again, even with
    something else listening where its link port was."""
    port = free_port()
    first, _ = start_node(shared_redis.url, "twin", "--link-address", f"127.0.0.1:{port}")
    try:
        done = subprocess.run(
            [*RTMCALL, "server", "--port", "0", "--redis", shared_redis.url, "--node-id", "twin"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 4, done.stderr
        assert "node id 'twin' is in use" in done.stderr.splitlines()[-1], done.stderr
        assert "Traceback" not in done.stderr
    finally:
        first.kill()
        first.wait(10)
    with socket.socket() as squatter:  # (a new owner of that address: not the node)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        again, _ = start_node(shared_redis.url, "twin")
        again.terminate()
        assert again.wait(10) == 0


def test_a_link_port_in_use_or_malformed_is_one_clear_line(shared_redis: RedisProcess) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [*RTMCALL, "server", "--port", "0", "--redis", shared_redis.url,
             "--link-address", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert f"cannot listen for node links on 127.0.0.1:{port}" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [*RTMCALL, "server", "--redis", shared_redis.url, "--link-address", "127.0.0.1:http"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--link-address" in done.stderr and "the port must be a number" in done.stderr


def test_a_node_whose_port_is_in_use_or_whose_id_is_malformed_says_only_that(
    shared_redis: RedisProcess,
) -> None:
    """A port in use is found before Redis is reached: one line, exit 4 (not the node's
    "node links on ..." line first), alone or as --workers. A node id that cannot name
    Redis keys and clients, or would break the records nodes exchange: exit 2, naming
    --node-id (it was reported as a Redis problem)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for extra in ([], ["--workers", "2"]):
            done = subprocess.run(
                [*RTMCALL, "server", "--port", str(port), "--redis", shared_redis.url, *extra],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert done.returncode == 4, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and f"127.0.0.1:{port}: the port is in use" in lines[0], lines
    for bad in ("bad id", "x/y", "é", "a,b", "n=1", "-a", "x" * 49):
        done = subprocess.run(
            [*RTMCALL, "server", "--port", "0", "--redis", shared_redis.url, "--node-id", bad],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 2, (bad, done.stderr)
        assert "--node-id" in done.stderr and "redis" not in done.stderr.lower(), done.stderr
