"""``rtmcall server --workers N --redis URL`` as an operator runs it: N processes on one
port, a killed worker restarted, users spread over the workers and calling each other,
everything stopped together by SIGTERM."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import trio
from trio_websocket import open_websocket_url

from rtmcall.client import ClientConfig
from rtmcall.engine import LocalInvitationState
from rtmcall.server.redis.resp import RedisAddress, RedisConnection

from ..e2e.conftest import phone
from .redisproc import RedisProcess

RTMCALL = [sys.executable, "-m", "rtmcall.cli"]


@contextmanager
def supervisor(
    redis_url: str, workers: int = 2, *extra: str
) -> Iterator[tuple[subprocess.Popen, str]]:
    proc = subprocess.Popen(
        [*RTMCALL, "server", "--port", "0", "--redis", redis_url, "--workers", str(workers),
         "--node-id", "w", "--presence-ttl", "3", "-q", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith("rtmcall server listening on "), line + proc.stderr.read()
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            children = psutil.Process(proc.pid).children()  # (before: then they are init's)
            proc.kill()
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            proc.wait(10)


def worker_pids(proc: subprocess.Popen) -> list[int]:
    return sorted(c.pid for c in psutil.Process(proc.pid).children())


async def registrations(redis_url: str) -> dict[str, str]:
    """user -> node id, from the registrations in Redis."""
    async with RedisConnection(RedisAddress.from_url(redis_url)) as r:
        keys = await r.call("KEYS", "rtmcall:u:*")
        if not keys:
            return {}
        values = await r.call("MGET", *keys)
    return {
        k.decode().split(":", 2)[2]: v.decode().split("\t")[0]
        for k, v in zip(keys, values, strict=True)
        if v is not None
    }


async def live_nodes(redis_url: str) -> set[str]:
    """Node ids with a command connection to Redis now."""
    async with RedisConnection(RedisAddress.from_url(redis_url)) as r:
        listing = (await r.call("CLIENT", "LIST")).decode()
    names = {f.split("=", 1)[1] for line in listing.splitlines() for f in line.split(" ")
             if f.startswith("name=")}  # fmt: skip
    return {n.removeprefix("rtmcall-") for n in names if n.startswith("rtmcall-w-")} - {
        n.removeprefix("rtmcall-") for n in names if n.endswith("-r")
    }


async def test_workers_share_the_port_restart_and_stop_together(own_redis: RedisProcess) -> None:
    with supervisor(own_redis.url, 2) as (proc, url):
        first = worker_pids(proc)
        assert len(first) == 2
        # Connections are spread over both workers (the kernel balances SO_REUSEPORT).
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def user(name: str, ready: trio.Semaphore) -> None:
                async with open_websocket_url(url) as ws:
                    await ws.send_message(json.dumps({"t": "login", "user": name}))
                    assert json.loads(await ws.get_message())["t"] == "login_ok"
                    ready.release()
                    await done.wait()

            ready = trio.Semaphore(0)
            for i in range(16):
                nursery.start_soon(user, f"u{i}", ready)
            with trio.fail_after(15):
                for _ in range(16):
                    await ready.acquire()
            await trio.sleep(0.3)
            nodes = set((await registrations(own_redis.url)).values())
            assert nodes == {"w-0.1", "w-1.1"}
            done.set()

        config = ClientConfig(no_response_timeout=5, lifetime=10)
        with trio.fail_after(30):
            async with phone(url, "alice", config) as alice, phone(url, "bob", config) as bob:
                inv = await alice.client.call("bob", content="one port, two processes")
                await bob.wait("RemoteInvitationReceived", inv.id)
                await bob.client.accept(inv.id)
                await alice.wait("LocalInvitationAccepted", inv.id)
                assert inv.state is LocalInvitationState.ACCEPTED_BY_REMOTE

                # A killed worker is replaced; the port keeps answering meanwhile.
                where = await registrations(own_redis.url)
                victim = psutil.Process(first[0])
                victim.kill()
                with trio.fail_after(15):
                    while True:
                        pids = worker_pids(proc)
                        if len(pids) == 2 and first[0] not in pids:
                            break
                        await trio.sleep(0.2)
                # Its users reconnect (to any worker) and can be called again.
                assert {where["alice"], where["bob"]} <= {"w-0.1", "w-1.1"}
                with trio.fail_after(15):
                    while True:
                        live = await live_nodes(own_redis.url)
                        now = await registrations(own_redis.url)
                        if "w-0.2" in live or "w-1.2" in live:
                            if now.get("alice") in live and now.get("bob") in live:
                                break
                        await trio.sleep(0.2)
                inv2 = await alice.client.call("bob", content="after the restart")
                await bob.wait("RemoteInvitationReceived", inv2.id, within=15)
                await bob.client.accept(inv2.id)
                await alice.wait("LocalInvitationAccepted", inv2.id, within=15)

        children = [psutil.Process(p) for p in worker_pids(proc)]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, alive
        # Each stopped cleanly (the interpreter's shutdown did not abort: no core dumped).
        assert proc.stderr is not None
        assert "Fatal Python error" not in proc.stderr.read()


def test_workers_need_redis() -> None:
    done = subprocess.run(
        [*RTMCALL, "server", "--port", "0", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--workers needs --redis" in done.stderr
    assert "Traceback" not in done.stderr


def test_workers_serve_metrics_each_on_its_own_port(shared_redis: RedisProcess) -> None:
    import socket
    import time
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from .redisproc import free_port

    def two_free_ports() -> int:
        # Worker i serves its metrics on base + i: both must be free (free_port() alone
        # promises only the first).
        for _ in range(50):
            base = free_port()
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", base + 1))
                except OSError:
                    continue
            return base
        raise AssertionError("no two free ports in a row")

    base = two_free_ports()
    with supervisor(shared_redis.url, 2, "--metrics-port", str(base)):
        nodes = set()
        for port in (base, base + 1):
            for _ in range(50):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                        text = r.read().decode()
                    break
                except OSError:
                    time.sleep(0.2)  # the workers are still starting
            else:
                raise AssertionError(f"no metrics on port {port}")
            for family in text_string_to_metric_families(text):
                if family.name == "rtmcall_connections":
                    nodes.update(s.labels["node"] for s in family.samples)
        assert len(nodes) == 2  # each worker labels its own metrics with its node id


def test_workers_stop_when_their_supervisor_is_killed(own_redis: RedisProcess) -> None:
    """However the supervisor dies (here SIGKILL: no chance to stop them), its workers do
    not serve on as orphans: each sees its pipe from the supervisor close, and stops."""
    import time

    with supervisor(own_redis.url, 2) as (proc, _url):
        workers = [psutil.Process(pid) for pid in worker_pids(proc)]
        assert len(workers) == 2
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            alive = []
            for w in workers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    if w.status() != psutil.STATUS_ZOMBIE:
                        alive.append(w)
            if not alive:
                break
            time.sleep(0.1)
        assert not alive, f"workers still running: {[w.pid for w in alive]}"
