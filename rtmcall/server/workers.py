"""``rtmcall server --workers N --redis URL``: N node processes on one port, supervised.

Each worker is a full node (its own Redis hub and node id) listening on the same address
with ``SO_REUSEPORT``, so the kernel spreads new connections over the workers (Linux hashes
each connection to one listening socket). Users on different workers reach each other
through Redis like users on different hosts; a client that reconnects lands on any worker
and resumes there (the hub hands its session over).

The supervisor (this module, no trio server of its own):

* picks the port (``--port 0``: a free one, held with a bound, non-listening
  ``SO_REUSEPORT`` socket so no other program takes it while the workers start), starts
  the workers and prints one line, ``rtmcall server listening on URL``, once every worker
  listens;
* restarts a worker that dies (after 1 s, up to 30 s when it keeps dying at once); its
  users reconnect to the other workers — their sessions were in the dead process, so they
  log in afresh (a killed node cannot hand a session over);
* on Ctrl-C or SIGTERM sends every worker SIGTERM (each says Bye to its clients) and waits
  for all of them, SIGKILL after the grace; exit code 0.

Where the platform has no ``SO_REUSEPORT`` (Windows) ``--workers`` above 1 is refused with
a clear error: run one node per port behind a load balancer instead. macOS and the BSDs
have the option but do not balance between processes the way Linux does (FreeBSD needs
``SO_REUSEPORT_LB``): the workers start, but one of them may get most connections.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    import ssl

    from rtmcall.cli.serverrun import ServerOptions

log = logging.getLogger("rtmcall.server.workers")

HAVE_REUSEPORT = hasattr(socket, "SO_REUSEPORT")
#: Restart delay after a worker died, doubled while it keeps dying within a minute.
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0


def listen_options(sock: Any, family: int, reuse_port: bool) -> None:
    """What a listening socket gets before bind, as trio's own listeners (SO_REUSEADDR,
    IPv6 only on an IPv6 socket), and SO_REUSEPORT to share the port (``reuse_port``)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


async def open_reuseport_listeners(
    host: str | None, port: int, ssl_context: ssl.SSLContext | None = None
) -> list[trio.abc.Listener[trio.abc.Stream]]:
    """Like ``trio.open_tcp_listeners`` (and the SSL variant), with ``SO_REUSEPORT`` set
    before bind so that several processes share the port."""
    if not HAVE_REUSEPORT:
        raise OSError(errno.ENOPROTOOPT, "SO_REUSEPORT is not available on this platform")
    addresses = await trio.socket.getaddrinfo(
        host, port, type=trio.socket.SOCK_STREAM, flags=trio.socket.AI_PASSIVE
    )
    listeners: list[trio.abc.Listener[trio.abc.Stream]] = []
    try:
        for family, type_, proto, _, sockaddr in addresses:
            sock = trio.socket.socket(family, type_, proto)
            try:
                listen_options(sock, family, reuse_port=True)
                await sock.bind(sockaddr)
                sock.listen(socket.SOMAXCONN)
            except BaseException:
                sock.close()
                raise
            tcp = trio.SocketListener(sock)
            if ssl_context is None:
                listeners.append(tcp)
            else:
                listeners.append(trio.SSLListener(tcp, ssl_context, https_compatible=True))
    except BaseException:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
        raise
    return listeners


def _reserve_port(host: str) -> tuple[socket.socket, int]:
    """A free port, held by a bound (not listening) SO_REUSEPORT socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock, sock.getsockname()[1]


def _options_json(opts: ServerOptions, port: int, node_id: str, index: int = 0) -> bytes:
    data = asdict(opts)
    data.update(port=port, node_id=node_id, reuse_port=True)
    if opts.link_address:
        # Each worker listens for node links on a port of its own: a given PORT is the
        # first worker's, PORT + i the i-th's (0: any free port for each).
        from rtmcall.server.redis.links import split_address

        host, base = split_address(opts.link_address, opts.host)
        if base:
            data["link_address"] = (
                f"[{host}]:{base + index}" if ":" in host else f"{host}:{base + index}"
            )
    for name in ("cert", "key"):
        if data[name] is not None:
            data[name] = str(data[name])
    data["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in opts.config.items()}
    ops = data.get("ops")
    if ops is not None:
        # Each worker is a node of its own: its node id labels its metrics, and a
        # --metrics-port P is P + the worker's index (the shared port cannot be scraped
        # per worker: the kernel picks who answers).
        ops["node"] = None
        if ops.get("metrics_port"):
            ops["metrics_port"] += index
        if ops.get("webhooks"):
            ops["webhooks"]["secret"] = ops["webhooks"]["secret"].hex()
            ops["webhooks"]["urls"] = list(ops["webhooks"]["urls"])
    return json.dumps(data).encode() + b"\n"


def _ops_from_json(ops: dict[str, Any] | None) -> Any:
    """The worker's side of :func:`_options_json`: OpsOptions again."""
    if ops is None:
        return None
    from .observer import ObserverWindows
    from .ops import OpsOptions
    from .webhooks import WebhookConfig

    hooks = ops.pop("webhooks", None)
    if hooks is not None:
        hooks = WebhookConfig(
            **{**hooks, "urls": tuple(hooks["urls"]), "secret": bytes.fromhex(hooks["secret"])}
        )
    windows = ObserverWindows(**ops.pop("windows", {}))
    return OpsOptions(**ops, webhooks=hooks, windows=windows)


class _Worker:
    def __init__(self, index: int, base: str) -> None:
        self.index = index
        self.base = base
        self.incarnation = 0
        self.proc: trio.Process | None = None
        self.url = ""

    @property
    def node_id(self) -> str:
        # A new id per incarnation: the other nodes see the dead one go quiet instead of
        # taking the new process for the owner of the dead one's sessions.
        return f"{self.base}-{self.index}.{self.incarnation}"


async def _start(worker: _Worker, opts: ServerOptions, port: int) -> int | None:
    """Start the worker and wait until it listens: None, or its exit code if it died."""
    worker.incarnation += 1
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "rtmcall.server.workers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    worker.proc = proc
    assert proc.stdin is not None and proc.stdout is not None
    # The options (with the secret) go through a pipe: not on a command line. The pipe
    # stays open: when the supervisor is gone, however it died, the worker reads its end
    # and stops (``_stop_with_the_supervisor``) instead of serving on, orphaned.
    await proc.stdin.send_all(_options_json(opts, port, worker.node_id, worker.index))
    line = b""
    while not line.endswith(b"\n"):
        chunk = await proc.stdout.receive_some(4096)
        if not chunk:
            return await proc.wait()
        line += chunk
    worker.url = line.decode().split()[-1]
    return None


async def _drain(proc: trio.Process) -> None:
    """Keep reading the worker's stdout (nothing more is expected; it must not block)."""
    assert proc.stdout is not None
    try:
        while await proc.stdout.receive_some(4096):
            pass
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass


async def _supervise(worker: _Worker, opts: ServerOptions, port: int, stopping: trio.Event) -> None:
    delay = RESTART_DELAY
    while not stopping.is_set():
        proc = worker.proc
        assert proc is not None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, proc)
            started = trio.current_time()
            code = await proc.wait()
            nursery.cancel_scope.cancel()
        if stopping.is_set():
            return
        delay = RESTART_DELAY if trio.current_time() - started > 60 else delay
        log.warning("worker %s exited (%s); restarting in %g s", worker.node_id, code, delay)
        await trio.sleep(delay)
        delay = min(delay * 2, RESTART_DELAY_MAX)
        while not stopping.is_set():
            code2 = await _start(worker, opts, port)
            if code2 is None:
                log.info("worker %s is back on %s", worker.node_id, worker.url)
                break
            log.warning("worker %s did not start (%s); again in %g s", worker.node_id,
                        code2, delay)  # fmt: skip
            await trio.sleep(delay)
            delay = min(delay * 2, RESTART_DELAY_MAX)


async def _stop_all(workers: list[_Worker], grace: float) -> None:
    for w in workers:
        if w.proc is not None and w.proc.returncode is None:
            w.proc.send_signal(signal.SIGTERM)
    with trio.move_on_after(2 * grace + 5):  # (the clients' grace, then the webhooks')
        for w in workers:
            if w.proc is not None:
                await w.proc.wait()
    for w in workers:
        if w.proc is not None and w.proc.returncode is None:
            w.proc.kill()
            await w.proc.wait()


async def _run(opts: ServerOptions, count: int) -> int:
    import secrets

    from rtmcall.cli.runtime import NOT_AS_ASKED, OK

    held: socket.socket | None = None
    port = opts.port
    if port == 0:
        held, port = _reserve_port(opts.host)
    base = opts.node_id or secrets.token_hex(3)
    workers = [_Worker(i, base) for i in range(count)]
    stopping = trio.Event()
    grace = float(opts.config.get("shutdown_grace", 2.0))
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            for w in workers:
                code = await _start(w, opts, port)
                if code is not None:
                    # A worker that cannot start (bad address, Redis unreachable) said why
                    # on stderr; the others are stopped and that is the exit code.
                    await _stop_all(workers, grace)
                    return code or NOT_AS_ASKED
            url = workers[0].url
            print(f"rtmcall server listening on {url}", flush=True)
            log.info("%d workers on %s: %s", count, url, ", ".join(w.node_id for w in workers))
            async with trio.open_nursery() as nursery:
                for w in workers:
                    nursery.start_soon(_supervise, w, opts, port, stopping)
                async for signum in signals:
                    log.info("%s: stopping %d workers", signal.Signals(signum).name, count)
                    break
                stopping.set()
                await _stop_all(workers, grace)
                nursery.cancel_scope.cancel()
    finally:
        if held is not None:
            held.close()
    return OK


def run_workers(opts: ServerOptions, count: int) -> int:
    """Run ``count`` workers until Ctrl-C/SIGTERM; the exit code."""
    from rtmcall.cli.runtime import USAGE
    from rtmcall.cli.serverrun import _setup_logging

    _setup_logging(opts.log_level)
    if not opts.redis:
        print("rtmcall server: --workers needs --redis (the workers share users through it)",
              file=sys.stderr)  # fmt: skip
        return USAGE
    if not HAVE_REUSEPORT:
        print("rtmcall server: --workers needs SO_REUSEPORT, which this platform lacks; run "
              "one node per port behind a load balancer instead", file=sys.stderr)  # fmt: skip
        return USAGE
    try:
        return trio.run(_run, opts, count)
    except KeyboardInterrupt:
        return 0


def _worker_main() -> int:
    """A worker: read its options from stdin and run one node on the shared port."""
    from rtmcall.cli.serverrun import ServerOptions, run_server

    data: dict[str, Any] = json.loads(sys.stdin.buffer.readline())
    threading.Thread(target=_stop_with_the_supervisor, daemon=True).start()
    for name in ("cert", "key"):
        if data[name] is not None:
            data[name] = Path(data[name])
    config = data.pop("config")
    if "allowed_origins" in config:
        config["allowed_origins"] = tuple(config["allowed_origins"])
    # (Ctrl-C in a terminal reaches the whole process group: every worker stops itself
    # as on SIGTERM, and the supervisor does not restart them.)
    ops = _ops_from_json(data.pop("ops", None))
    return run_server(ServerOptions(**data, config=config, ops=ops))


def _stop_with_the_supervisor() -> None:
    """(A thread of the worker.) The supervisor holds our stdin open while it lives: at
    EOF it is gone, and we stop as on SIGTERM (clients are told, then the process ends).
    (It reads the descriptor itself: a read of ``sys.stdin`` would hold the buffer's lock
    while the process exits, which makes the interpreter's shutdown abort.)"""
    while os.read(sys.stdin.fileno(), 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(_worker_main())
