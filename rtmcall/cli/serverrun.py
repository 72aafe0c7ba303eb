"""Running ``rtmcall server``: logging, TLS, the optional Redis hub, and a clean stop."""

from __future__ import annotations

import logging
import signal
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

from .runtime import NOT_AS_ASKED, OK, USAGE


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
    log_level: str = "INFO"
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
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def _serve(opts: ServerOptions) -> int:
    from rtmcall.server import ServerConfig, serve

    config = ServerConfig(**opts.config)
    ctx = _tls(opts.cert, opts.key) if opts.cert and opts.key else None
    async with AsyncExitStack() as stack:
        hub = None
        if opts.redis:
            from rtmcall.server.redis_hub import open_redis_hub

            # Entered before (and so left after) the nursery: the hub runs its own tasks.
            hub = await stack.enter_async_context(
                open_redis_hub(opts.redis, node_id=opts.node_id, presence_ttl=opts.presence_ttl)
            )
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    serve,
                    opts.host,
                    opts.port,
                    secret=opts.secret,
                    hub=hub,
                    ssl_context=ctx,
                    config=config,
                    ops=opts.ops,
                )
            )
            # stdout gets exactly this line (scripts and tests read the URL from it).
            print(f"rtmcall server listening on {server.url}", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    logging.getLogger("rtmcall.server").info(
                        "%s: stopping", signal.Signals(signum).name
                    )
                    break
            await server.shutdown()
            nursery.cancel_scope.cancel()
    return OK


def run_server(opts: ServerOptions) -> int:
    """Serve until Ctrl-C/SIGTERM; the exit code. Errors are one line on stderr."""
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
    except (OSError, ssl.SSLError) as exc:
        print(f"rtmcall server: cannot serve on {opts.host}:{opts.port}: {exc}", file=sys.stderr)
        return NOT_AS_ASKED
    except Exception as exc:  # noqa: BLE001 - e.g. HubUnavailable: one line, no traceback
        print(f"rtmcall server: {exc}", file=sys.stderr, flush=True)
        return NOT_AS_ASKED
