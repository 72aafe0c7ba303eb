"""Running ``rtmcall server``: logging, TLS, the optional Redis hub, and a clean stop.

Exit codes: 0 after a clean stop (Ctrl-C, SIGTERM), 2 for a usage error (a public address
without a secret), and 4, "cannot serve", for everything that keeps the server from
serving or stops it: the port is in use, the address is not this machine's or needs
privileges, the TLS certificate or key cannot be read or used, Redis cannot be reached.
Never 1: that one means "the outcome was not what was asked" (a refused call, say), which
a script running a server must not confuse with a server that is not there.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import ssl
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from rtmcall._exc import first_leaf
from rtmcall._gc import tune_for_long_running

from .runtime import CANNOT_SERVE, OK, USAGE


class CannotServe(Exception):
    """The server cannot start (or go on): one line for the user, exit CANNOT_SERVE."""


@dataclass(frozen=True)
class ServerOptions:
    host: str
    port: int
    secret: str | None = None
    cert: Path | None = None
    key: Path | None = None
    redis: str | None = None
    node_id: str | None = None
    presence_ttl: float = 30.0
    #: Node links (``links.py``) with --redis, and where they listen (HOST[:PORT]).
    links: bool = True
    link_address: str | None = None
    log_level: str = "INFO"
    #: Share the port with other processes (SO_REUSEPORT): set for ``--workers`` workers.
    reuse_port: bool = False
    #: rtmcall.server.ops.OpsOptions (metrics, call log, webhooks), or None.
    ops: Any = None
    #: ServerConfig fields by name.
    config: dict[str, Any] = field(default_factory=dict)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    )
    root = logging.getLogger("rtmcall")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _tls(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    for path, what in ((cert, "certificate"), (key, "key")):
        try:
            path.read_bytes()
        except OSError as exc:
            raise CannotServe(f"cannot read the TLS {what} {path}: {exc.strerror}") from None
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise CannotServe(
            f"cannot use the TLS certificate {cert} with the key {key}: both must be PEM"
            f" files and the key must be the certificate's ({exc})"
        ) from None
    return ctx


def _bind_problem(exc: OSError, host: str, port: int) -> str:
    """What a failed listen means, in the user's words."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot serve on {where}: {host!r} is not a known host name or address"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot serve on {where}: the port is in use (another rtmcall server?); "
            "stop it, or pick another with --port (--port 0 picks a free one)"
        )
    if exc.errno == errno.EACCES:
        return f"cannot serve on {where}: not allowed (ports below 1024 need privileges)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot serve on {where}: {host} is not an address of this machine"
    return f"cannot serve on {where}: {exc.strerror or exc}"


def _cannot_bind(host: str, port: int, reuse_port: bool) -> OSError | None:
    """Why ``host:port`` cannot be listened on now (bound and released at once), or None:
    said before Redis is reached, so that a port in use is the only line printed."""
    from rtmcall.server.workers import listen_options

    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)  # fmt: skip
    except OSError as exc:
        return exc
    for family, kind, proto, _, address in found:
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            if exc.errno == errno.EAFNOSUPPORT:
                continue  # (no IPv6 here: the listeners skip that family too)
            return exc
        try:
            listen_options(sock, family, reuse_port)
            sock.bind(address)
        except OSError as exc:
            return exc
        finally:
            sock.close()
    return None


async def _serve(opts: ServerOptions) -> int:
    from rtmcall.server import ServerConfig, serve

    config = ServerConfig(**opts.config)
    ctx = _tls(opts.cert, opts.key) if opts.cert and opts.key else None
    async with AsyncExitStack() as stack:
        hub = None
        if opts.redis:
            problem = _cannot_bind(opts.host, opts.port, opts.reuse_port) if opts.port else None
            if problem is not None:
                raise CannotServe(_bind_problem(problem, opts.host, opts.port))
            from rtmcall.server.redis import open_redis_hub
            from rtmcall.server.redis.links import split_address

            link_host, link_port = split_address(opts.link_address or opts.host, opts.host)
            # Entered before (and so left after) the nursery: the hub runs its own tasks.
            hub = await stack.enter_async_context(
                open_redis_hub(
                    opts.redis,
                    node_id=opts.node_id,
                    presence_ttl=opts.presence_ttl,
                    links=opts.links,
                    link_host=link_host,
                    link_port=link_port,
                )
            )
        async with trio.open_nursery() as nursery:
            try:
                server = await nursery.start(
                    partial(
                        serve,
                        opts.host,
                        opts.port,
                        secret=opts.secret,
                        hub=hub,
                        ssl_context=ctx,
                        config=config,
                        reuse_port=opts.reuse_port,
                        ops=opts.ops,
                    )
                )
            except OSError as exc:
                raise CannotServe(_bind_problem(exc, opts.host, opts.port)) from None
            # Signals are caught before the URL is printed: a script that stops the
            # server as soon as it read the line gets a clean stop, not a kill.
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                # stdout gets exactly this line (scripts and tests read the URL from it).
                print(f"rtmcall server listening on {server.url}", flush=True)
                async for signum in signals:
                    logging.getLogger("rtmcall.server").info(
                        "%s: stopping", signal.Signals(signum).name
                    )
                    break
            await server.shutdown()
            nursery.cancel_scope.cancel()
    return OK


def run_server(opts: ServerOptions) -> int:
    """Serve until Ctrl-C/SIGTERM; the exit code (see the module's docstring). Errors are
    one line on stderr."""
    _setup_logging(opts.log_level)
    try:
        try:
            import rtmcall.server  # noqa: F401 - imported before the collector freezes

            tune_for_long_running()
            return trio.run(_serve, opts)
        except BaseExceptionGroup as group:
            raise first_leaf(group) from None
    except KeyboardInterrupt:
        return OK
    except ValueError as exc:  # e.g. a public --host without a secret
        print(f"rtmcall server: {exc}", file=sys.stderr, flush=True)
        return USAGE
    except CannotServe as exc:
        print(f"rtmcall server: {exc}", file=sys.stderr, flush=True)
        return CANNOT_SERVE
    except OSError as exc:
        print(f"rtmcall server: {_bind_problem(exc, opts.host, opts.port)}", file=sys.stderr)
        return CANNOT_SERVE
    except Exception as exc:  # noqa: BLE001 - e.g. HubUnavailable: one line, no traceback
        print(f"rtmcall server: cannot serve: {exc}", file=sys.stderr, flush=True)
        return CANNOT_SERVE
