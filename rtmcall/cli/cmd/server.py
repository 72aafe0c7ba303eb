"""``rtmcall server`` and ``rtmcall token``: argument handling only (see :mod:`..serverrun`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..options import check_user, usage_error

SecretOpt = Annotated[
    str | None,
    typer.Option(
        metavar="SECRET",
        envvar="RTMCALL_SECRET",
        help="HS256 secret; logins then need a token. Safer: --secret-file FILE.",
        show_default=False,
    ),
]
SecretFileOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="Read the HS256 secret from FILE (a trailing newline is ignored).",
        show_default=False,
    ),
]


#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash output, 256 bits.
MIN_SECRET_BYTES = 32


def _warn_if_weak(key: str) -> None:
    """A secret shorter than 32 bytes works, but is guessable: say so on stderr."""
    size = len(key.encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        typer.echo(
            f"rtmcall: warning: the secret is {size} bytes; HS256 needs at least "
            f"{MIN_SECRET_BYTES} (RFC 7518 §3.2) or tokens can be forged. Make one with: "
            "python3 -c 'import secrets; print(secrets.token_hex(32))' > server.key",
            err=True,
        )


def _secret(secret: str | None, secret_file: Path | None) -> str | None:
    if secret_file is not None:
        try:
            text = secret_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise usage_error(
                f"cannot read {secret_file}: {exc.strerror}", "--secret-file"
            ) from None
        if not text:
            raise usage_error(f"{secret_file} is empty", "--secret-file")
        return text
    return secret or None


def server(
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option(metavar="PORT", min=0, max=65535, help="Port; 0 picks a free one.")
    ] = 8765,
    secret: SecretOpt = None,
    secret_file: SecretFileOpt = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="Allow a non-loopback --host without a secret.", show_default=False
        ),
    ] = False,
    cert: Annotated[
        Path | None, typer.Option(metavar="FILE", help="TLS certificate (PEM): serve wss://.")
    ] = None,
    key: Annotated[Path | None, typer.Option(metavar="FILE", help="TLS private key (PEM).")] = None,
    redis: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            envvar="RTMCALL_REDIS",
            help="Share users with other nodes through Redis (a password in it is never "
            "printed; give it in RTMCALL_REDIS to keep it off the command line).",
        ),
    ] = None,
    node_id: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="This node's name with --redis: letters, digits, '.', '_', '-', up to 48."
            " [default: random]",
        ),
    ] = None,
    presence_ttl: Annotated[
        float,
        typer.Option(
            metavar="S",
            min=1,
            max=60,
            help="With --redis: presence entries expire after S unless refreshed.",
        ),
    ] = 30.0,
    links: Annotated[
        bool,
        typer.Option(
            "--links/--no-links",
            help="With --redis: send what goes to another node straight to it over a node "
            "link (TCP), not through Redis.",
        ),
    ] = True,
    link_address: Annotated[
        str | None,
        typer.Option(
            metavar="HOST[:PORT]",
            help="With --redis: where this node listens for node links, and what it tells "
            "the others. [default: --host, any free port]",
        ),
    ] = None,
    allowed_origin: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ORIGIN",
            help="Let browser pages from ORIGIN connect (repeatable; * for any).",
        ),
    ] = None,
    max_connections: Annotated[int, typer.Option(min=1, help="Most open connections.")] = 10_000,
    max_frame_bytes: Annotated[
        int, typer.Option(min=1024, help="Largest WebSocket message (bytes).")
    ] = 64 * 1024,
    login_timeout: Annotated[
        float, typer.Option(metavar="S", min=0.1, help="A connection must log in within S.")
    ] = 10.0,
    idle_timeout: Annotated[
        float,
        typer.Option(metavar="S", min=0.1, help="Close a busy connection silent for S."),
    ] = 10.0,
    heartbeat: Annotated[
        float,
        typer.Option(metavar="S", min=0.1, help="Busy clients send a ping at least every S."),
    ] = 3.0,
    standby_timeout: Annotated[
        float,
        typer.Option(metavar="S", min=0.1, help="Close a connection in standby silent for S."),
    ] = 90.0,
    standby_heartbeat: Annotated[
        float,
        typer.Option(metavar="S", min=0.1, help="Clients in standby ping at least every S."),
    ] = 30.0,
    resume_window: Annotated[
        float, typer.Option(metavar="S", min=0, help="Keep a dropped session S for a resume.")
    ] = 10.0,
    rate_messages: Annotated[
        int, typer.Option(metavar="N", min=1, help="Most peer messages a user sends per window.")
    ] = 180,
    rate_messages_per: Annotated[
        float,
        typer.Option(metavar="S", min=0.001, help="That window (for --rate-messages), seconds."),
    ] = 3.0,
    rate_logins: Annotated[
        int, typer.Option(metavar="N", min=1, help="Most logins of one user id per window.")
    ] = 2,
    rate_logins_per: Annotated[
        float,
        typer.Option(metavar="S", min=0.001, help="That window (for --rate-logins), seconds."),
    ] = 1.0,
    max_subscriptions: Annotated[
        int, typer.Option(min=0, help="Most peers one session may watch.")
    ] = 1024,
    shutdown_grace: Annotated[
        float, typer.Option(metavar="S", min=0, help="Time clients get to close on Ctrl-C.")
    ] = 2.0,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=256,
            help="With --redis: run N node processes on the port (SO_REUSEPORT), supervised.",
        ),
    ] = 1,
    metrics: Annotated[
        bool, typer.Option("--metrics", help="Serve Prometheus metrics at /metrics on --port.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Serve /metrics on this port instead (0: a free one)."),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option(help="Address for --metrics-port. [default: --host]", show_default=False),
    ] = None,
    call_log: Annotated[
        str | None,
        typer.Option(
            metavar="FILE|-",
            help="Append one JSON line per ended invitation to FILE (- for stdout).",
        ),
    ] = None,
    call_log_max_mb: Annotated[
        float, typer.Option(metavar="MB", min=0, help="Rotate the call log at MB (0: never).")
    ] = 100.0,
    call_log_backups: Annotated[
        int, typer.Option(min=0, help="Rotated call logs kept (FILE.1 ... FILE.N).")
    ] = 5,
    webhook: Annotated[
        list[str] | None,
        typer.Option(metavar="URL", help="POST signed JSON events to URL (repeatable)."),
    ] = None,
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="HMAC-SHA256 key for the webhooks' signature (or RTMCALL_WEBHOOK_SECRET).",
            show_default=False,
        ),
    ] = None,
    webhook_queue: Annotated[
        int, typer.Option(min=1, help="Webhook events queued per URL; more are dropped.")
    ] = 10_000,
    webhook_attempts: Annotated[
        int, typer.Option(min=1, max=20, help="Delivery attempts per webhook event.")
    ] = 5,
    webhook_timeout: Annotated[
        float, typer.Option(metavar="S", min=0.1, help="Each webhook attempt's time limit.")
    ] = 5.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log warnings only.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug lines.")] = False,
) -> None:
    """Run the signaling server and print the URL it listens on.

    Logs logins, kicks and errors on stderr. Ctrl-C (or SIGTERM) stops it cleanly: clients
    are told and reconnect when it is back (exit 0). Without a secret it only serves the
    loopback address unless --insecure is given. When it cannot serve (the port is in
    use, TLS files unusable, Redis unreachable) it says why in one line and exits 4.

    \b
    Examples:
      rtmcall server
      rtmcall server --port 0                      # a free port; the URL is printed
      rtmcall server --host 0.0.0.0 --secret-file /etc/rtmcall.key --cert c.pem --key k.pem
      rtmcall server --redis redis://localhost:6379 --node-id a
      rtmcall server --redis redis://localhost:6379 --workers 4   # every core of the host
      rtmcall server --metrics --call-log calls.jsonl \\
          --webhook https://app.example/rtm --webhook-secret-file hook.key
    """
    from ..serverrun import ServerOptions, run_server

    if (cert is None) != (key is None):
        raise usage_error("give both --cert and --key for wss://", "--cert/--key")
    the_secret = _secret(secret, secret_file)
    if the_secret:
        _warn_if_weak(the_secret)
    if not the_secret and not insecure:
        from rtmcall.server.serve import _is_loopback

        if not _is_loopback(host):
            # Checked here too, to say it with the command's own flags.
            raise usage_error(
                f"refusing to serve {host} without a secret: anyone could log in as anyone."
                " Give --secret-file FILE (or RTMCALL_SECRET), or add --insecure to serve anyway",
                "--host",
            )
    ops = _ops(
        metrics=metrics,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        call_log=call_log,
        call_log_max_mb=call_log_max_mb,
        call_log_backups=call_log_backups,
        webhooks=webhook or [],
        webhook_secret_file=webhook_secret_file,
        webhook_queue=webhook_queue,
        webhook_attempts=webhook_attempts,
        webhook_timeout=webhook_timeout,
        node_id=node_id,
        tls=cert is not None,
    )
    options = ServerOptions(
        host=host,
        port=port,
        secret=the_secret,
        cert=cert,
        key=key,
        redis=redis,
        node_id=_node_id(node_id),
        presence_ttl=presence_ttl,
        links=links,
        link_address=_link_address(link_address),
        log_level="WARNING" if quiet else ("DEBUG" if verbose else "INFO"),
        ops=ops,
        config={
            "insecure": insecure,
            "allowed_origins": tuple(allowed_origin or ()),
            "max_connections": max_connections,
            "max_frame_bytes": max_frame_bytes,
            "login_timeout": login_timeout,
            "idle_timeout": idle_timeout,
            "heartbeat": heartbeat,
            "standby_timeout": standby_timeout,
            "standby_heartbeat": standby_heartbeat,
            "resume_window": resume_window,
            "rate_messages": rate_messages,
            "rate_messages_per": rate_messages_per,
            "rate_logins": rate_logins,
            "rate_logins_per": rate_logins_per,
            "max_subscriptions": max_subscriptions,
            "shutdown_grace": shutdown_grace,
        },
    )
    if workers > 1:
        from rtmcall.server.workers import run_workers

        raise typer.Exit(run_workers(options, workers))
    raise typer.Exit(run_server(options))


def _node_id(value: str | None) -> str | None:
    """``--node-id`` checked: it names Redis keys and clients, and goes into the records
    nodes exchange (tab-, comma- and space-separated)."""
    import re

    if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,47}", value):
        raise usage_error(
            f"{value!r}: a node id is 1 to 48 letters, digits, '.', '_' or '-' (not first)",
            "--node-id",
        )
    return value


def _link_address(value: str | None) -> str | None:
    """``--link-address`` checked: HOST, HOST:PORT or [IPv6]:PORT."""
    if value is None:
        return None
    from rtmcall.server.redis.links import split_address

    try:
        split_address(value, "")
    except ValueError as exc:
        raise usage_error(str(exc), "--link-address") from None
    return value


def _startup_error(message: str, param: str) -> typer.Exit:
    """One line on stderr, exit 2 (the usage code): for the operating options."""
    import sys

    print(f"rtmcall server: {param}: {message}", file=sys.stderr, flush=True)
    return typer.Exit(2)


def _ops(
    *,
    metrics: bool,
    metrics_port: int | None,
    metrics_host: str | None,
    call_log: str | None,
    call_log_max_mb: float,
    call_log_backups: int,
    webhooks: list[str],
    webhook_secret_file: Path | None,
    webhook_queue: int,
    webhook_attempts: int,
    webhook_timeout: float,
    node_id: str | None,
    tls: bool,
) -> Any:
    """The server's OpsOptions, or None when nothing is on; usage errors for bad input."""
    if metrics and metrics_port is None and tls:
        raise _startup_error(
            "metrics on a wss:// server need a port of their own: add --metrics-port",
            "--metrics",
        )
    if metrics_host is not None and metrics_port is None:
        raise _startup_error("--metrics-host goes with --metrics-port", "--metrics-host")
    webhook_config = None
    if webhooks:
        import os

        from rtmcall.server.webhooks import WebhookConfig, check_url

        for url in webhooks:
            problem = check_url(url)
            if problem is not None:
                raise _startup_error(problem, "--webhook")
        if webhook_secret_file is not None:
            try:
                secret = webhook_secret_file.read_bytes().rstrip(b"\r\n")
            except OSError as exc:
                raise _startup_error(
                    f"cannot read {webhook_secret_file}: {exc.strerror}", "--webhook-secret-file"
                ) from None
            if not secret:
                raise _startup_error(f"{webhook_secret_file} is empty", "--webhook-secret-file")
        else:
            secret = os.environ.get("RTMCALL_WEBHOOK_SECRET", "").encode()
            if not secret:
                raise _startup_error(
                    "webhooks are signed: give --webhook-secret-file (or RTMCALL_WEBHOOK_SECRET)",
                    "--webhook-secret-file",
                )
        webhook_config = WebhookConfig(
            urls=tuple(webhooks),
            secret=secret,
            queue_size=webhook_queue,
            attempts=webhook_attempts,
            timeout=webhook_timeout,
        )
    elif webhook_secret_file is not None:
        raise _startup_error("goes with --webhook URL", "--webhook-secret-file")
    from rtmcall.server.ops import OpsOptions

    ops = OpsOptions(
        metrics=metrics,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        call_log=call_log,
        call_log_max_bytes=int(call_log_max_mb * 1024 * 1024),
        call_log_backups=call_log_backups,
        webhooks=webhook_config,
        node=node_id,
    )
    return ops if ops.enabled else None


def token(
    user: Annotated[str, typer.Argument(metavar="USER", help="The user id the token is for.")],
    secret: SecretOpt = None,
    secret_file: SecretFileOpt = None,
    ttl: Annotated[
        float, typer.Option(metavar="S", min=1, max=86400, help="Lifetime in seconds (≤ 24 h).")
    ] = 3600.0,
) -> None:
    """Mint a login token (JWT, HS256) for USER with the server's secret.

    \b
    Examples:
      rtmcall token alice --secret-file server.key
      RTMCALL_SECRET=s3cret rtmcall token bob --ttl 600
      rtmcall login alice --token "$(rtmcall token alice --secret-file server.key)"
    """
    check_user(user, "USER")
    key = _secret(secret, secret_file)
    if not key:
        raise usage_error("give --secret, --secret-file or RTMCALL_SECRET", "--secret")
    _warn_if_weak(key)
    from rtmcall.server.tokens import mint_token

    typer.echo(mint_token(key, user, ttl))
