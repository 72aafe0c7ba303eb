"""One WebSocket to the server: the URL(s), the TCP/TLS/WebSocket handshake within a
timeout, and every way that can fail as one :class:`~.errors.ConnectFailed` with the reason
in words. :class:`~.transport.Transport` opens one per connection of its session."""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NoReturn

import trio
from trio_websocket import (
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from rtmcall.engine import frames as f

from .errors import ConnectFailed


def split_list(value: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the items of a comma-separated list, unchecked."""
    return [item.strip() for item in value.split(",") if item.strip()]


def split_urls(url: str) -> list[str]:
    """``ws://a:8765,ws://b:8765`` -> each URL (several nodes of one deployment).

    Raises:
      ValueError: no URL at all, or one that is not a ws:// or wss:// URL (see
        :func:`parse_url`).
    """
    urls = split_list(url)
    if not urls:
        raise ValueError(f"no server URL in {url!r}")
    for one in urls:
        parse_url(one)
    return urls


def parse_url(url: str) -> tuple[str, int, str, bool]:
    """``ws://host:port/path`` → (host, port, resource, secure). Without a port, the
    scheme's default (80 for ws://, 443 for wss://).

    Raises:
      ValueError: not ws:// or wss://, no host, or a port that is not 1-65535 (port 0
        means "any free port" to a listener, and cannot be dialled).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    secure = parts.scheme == "wss"
    try:
        given = parts.port
    except ValueError as exc:  # ("Port out of range 0-65535", not a number)
        raise ValueError(f"{exc} in URL {url!r}") from None
    if given == 0:
        raise ValueError(f"port 0 cannot be connected to (give a port of 1-65535) in URL {url!r}")
    port = given if given is not None else (443 if secure else 80)
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return parts.hostname, port, resource, secure


def _tls_problem(exc: BaseException) -> str | None:
    """The TLS failure behind ``exc`` in words, or None if it is not one."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate verify failed: {cause.verify_message or cause.reason}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake failed: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    return None


def _os_problem(exc: BaseException) -> str:
    """An OSError in words; trio hides the real reasons in the cause ("all attempts to
    connect failed" ← [ConnectionRefusedError, ...])."""
    causes = getattr(exc.__cause__, "exceptions", ())
    reasons = sorted({c.strerror for c in causes if isinstance(c, OSError) and c.strerror})
    if reasons:
        return f"{exc}: {', '.join(reasons)}"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def collapse(group: BaseExceptionGroup) -> BaseException:
    """The one exception in a nursery's group (ignoring Cancelled beside it), else the group.

    Our nurseries hold one "real" task at a time; callers should see ``ConnectFailed``, not
    ``ExceptionGroup([ConnectFailed])``.
    """
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for sub in exc.exceptions:
                walk(sub)
        else:
            leaves.append(exc)

    walk(group)
    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    if not real and leaves:
        return leaves[0]
    return group


def reraise_collapsed(group: BaseExceptionGroup) -> NoReturn:
    exc = collapse(group)
    if exc is group:
        raise group
    raise exc from None


async def _handshake(
    nursery: trio.Nursery, url: str, ssl_context: ssl.SSLContext | None, connect_timeout: float
) -> WebSocketConnection:
    timeout = connect_timeout
    host, port, resource, secure = parse_url(url)
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = None
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
            if secure:
                # Do the TLS handshake ourselves: inside trio-websocket a failed handshake
                # only ends its reader task quietly, and the caller waits until its timeout.
                stream = trio.SSLStream(
                    stream,
                    ssl_context or ssl.create_default_context(),
                    server_hostname=host,
                    https_compatible=True,
                )
                await stream.do_handshake()
            host_header = host if port in (80, 443) else f"{host}:{port}"
            return await wrap_client_stream(
                nursery, stream, host_header, resource, max_message_size=f.MAX_FRAME_BYTES
            )
    except trio.TooSlowError:
        what = "no answer" if stream is None else "no WebSocket handshake"
        raise ConnectFailed(url, f"{what} within {timeout:g} s") from None
    except (trio.BrokenResourceError, OSError) as exc:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        problem = _tls_problem(exc) or _os_problem(exc)
        raise ConnectFailed(url, problem) from None
    except BaseException:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise


@asynccontextmanager
async def open_connection(
    url: str, ssl_context: ssl.SSLContext | None, connect_timeout: float
) -> AsyncIterator[WebSocketConnection]:
    """One WebSocket to ``url``, closed (abruptly) on exit.

    Raises:
      ConnectFailed: refused, unresolvable, TLS failure (the message says "certificate"
        for an untrusted certificate), HTTP rejection, or no handshake within ``connect_timeout``.
    """
    try:
        async with trio.open_nursery() as nursery:
            ws = await _handshake(nursery, url, ssl_context, connect_timeout)
            try:
                yield ws
            finally:
                nursery.cancel_scope.cancel()
                await trio.aclose_forcefully(ws)
    except BaseExceptionGroup as group:
        exc = collapse(group)
        if isinstance(exc, ConnectionRejected):
            raise ConnectFailed(
                url, f"server rejected the WebSocket: HTTP {exc.status_code}"
            ) from None
        if isinstance(exc, HandshakeError):
            raise ConnectFailed(url, f"WebSocket handshake failed: {exc!r}") from None
        reraise_collapsed(group)
