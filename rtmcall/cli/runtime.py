"""What every client command shares: building the client config, TLS, logging in with errors
turned into one line for the user, and turning Ctrl-C into a clean stop.
"""

from __future__ import annotations

import signal
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from rtmcall.engine.codes import LoginError

#: Exit codes (SPEC §4).
OK, NOT_AS_ASKED, USAGE, UNREACHABLE = 0, 1, 2, 3


class CannotLogIn(Exception):
    """The server could not be reached or refused the login: one line naming the URL.

    Attributes:
      reason: Agora's LoginError for a refused login (UNKNOWN when the server was not
        reached at all).
    """

    def __init__(self, message: str, reason: LoginError = LoginError.UNKNOWN) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LoginOptions:
    """Everything needed to log in, already resolved from flags, environment and config."""

    url: str
    user: str
    token: str | None = None
    ca: str | None = None
    no_response_timeout: float | None = None
    confirm_timeout: float | None = None
    lifetime: float | None = None
    connect_timeout: float = 5.0
    #: Stop reconnecting after this long without the server (None: keep trying).
    give_up_after: float | None = None
    #: SPEC §6: ``ring`` or ``refuse`` (busy) an invitation that comes while another rings
    #: or a call is on.
    when_busy: str = "ring"


def client_config(opts: LoginOptions) -> Any:
    from rtmcall.client import ClientConfig

    values: dict[str, Any] = {"connect_timeout": opts.connect_timeout}
    if opts.no_response_timeout is not None:
        values["no_response_timeout"] = opts.no_response_timeout
    if opts.confirm_timeout is not None:
        values["confirm_timeout"] = opts.confirm_timeout
    if opts.lifetime is not None:
        values["lifetime"] = opts.lifetime
    if opts.give_up_after is not None:
        values["give_up_after"] = opts.give_up_after
    values["when_busy"] = opts.when_busy
    return ClientConfig(**values)


def ssl_context(url: str, ca: str | None) -> ssl.SSLContext | None:
    """A TLS context for wss:// (trusting ``ca`` besides the system's when given)."""
    if not url.startswith("wss://"):
        return None
    ctx = ssl.create_default_context()
    if ca:
        try:
            ctx.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise CannotLogIn(f"cannot use the CA file {ca}: {exc}") from None
    return ctx


@asynccontextmanager
async def logged_in(opts: LoginOptions) -> AsyncIterator[Any]:
    """Connect and log in; the client inside. Raises :class:`CannotLogIn` instead of the
    client's ConnectFailed/LoginFailed so every command reports it the same way."""
    from rtmcall.client import connect
    from rtmcall.client.errors import ConnectFailed, LoginFailed

    ctx = ssl_context(opts.url, opts.ca)
    entered = False
    try:
        async with connect(
            opts.url, opts.user, token=opts.token, config=client_config(opts), ssl_context=ctx
        ) as client:
            entered = True
            yield client
    except ConnectFailed as exc:
        if entered:
            raise
        raise CannotLogIn(f"cannot reach {opts.url}: {exc.message}") from None
    except LoginFailed as exc:
        if entered:
            raise
        detail = f": {exc.message}" if exc.message else ""
        raise CannotLogIn(
            f"cannot log in to {opts.url} as {opts.user!r}, {exc.reason.name}{detail}",
            exc.reason,
        ) from None
    except OSError as exc:  # anything the client did not wrap: still one line, no traceback
        if entered:
            raise
        raise CannotLogIn(f"cannot reach {opts.url}: {exc}") from None


async def stop_on_sigint(on_signal: Callable[[], None]) -> None:
    """Run until cancelled; call ``on_signal`` at each Ctrl-C (SIGINT) instead of raising
    KeyboardInterrupt, so the command can cancel its calls and log out first."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            on_signal()
