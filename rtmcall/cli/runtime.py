"""What every client command shares: building the client config, TLS, logging in with errors
turned into one line for the user, and turning Ctrl-C into a clean stop.
"""

from __future__ import annotations

import re
import signal
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import trio

from rtmcall.engine.codes import LoginError

#: Exit codes (SPEC §4), and ``rtmcall server``'s "cannot serve" (README's exit table):
#: the port is taken, the address or the TLS files are unusable, Redis is not there.
OK, NOT_AS_ASKED, USAGE, UNREACHABLE, CANNOT_SERVE = 0, 1, 2, 3, 4


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


_NOISE = re.compile(
    r"all attempts to connect to \S+ failed:?\s*|Error connecting to \([^)]*\):\s*", re.I
)
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def unreachable_message(url: str, problem: str) -> str:
    """``cannot reach URL: why; hint`` — the URL once, the reason in words, and for a
    refused connection how to start a server there."""
    words = _NOISE.sub("", problem).strip(" :") or "no answer"
    low = words.lower()
    hint = ""
    last = url.rsplit(",", 1)[-1].strip()  # (of several, the one tried last)
    if "refused" in low:
        words = "connection refused, no server is listening there"
        parts = urlsplit(last)
        if parts.hostname in _LOOPBACK:
            port = f" --port {parts.port}" if parts.port and parts.port != 8765 else ""
            hint = f'; start one with "rtmcall server{port}"'
        else:
            hint = '; is "rtmcall server" running there?'
    elif "name or service not known" in low or "nodename nor servname" in low:
        words = f"no such host {urlsplit(last).hostname!r}; check the URL"
    return f"cannot reach {url}: {words}{hint}"


#: What a refused login means, when the server gave no explanation of its own.
_LOGIN_WORDS = {
    LoginError.UNKNOWN: "the server refused the login",
    LoginError.REJECTED: "the server rejected the login",
    LoginError.INVALID_ARGUMENT: "the user id is not valid",
    LoginError.INVALID_TOKEN: "the token is not valid",
    LoginError.TOKEN_EXPIRED: "the token expired",
    LoginError.NOT_AUTHORIZED: "this user may not log in",
    LoginError.ALREADY_LOGGED_IN: "already logged in",
    LoginError.TIMEOUT: "the server did not answer the login in time",
    LoginError.TOO_OFTEN: "too many logins; wait a moment and try again",
}


def login_refused_message(url: str, user: str, exc: Any, *, token_given: bool = False) -> str:
    """``cannot log in to URL as USER: why (what to do) [CODE]`` (a LoginFailed in words)."""
    words = exc.message or _LOGIN_WORDS.get(exc.reason, "the server refused the login")
    hint = ""
    if exc.reason is LoginError.INVALID_TOKEN:
        hint = (
            "check the token; rtmcall token mints one"
            if token_given
            else "pass one with --token or RTMCALL_TOKEN; rtmcall token mints one"
        )
    elif exc.reason is LoginError.TOKEN_EXPIRED:
        hint = "mint a new one with rtmcall token"
    hint = f" ({hint})" if hint else ""
    return f"cannot log in to {url} as {user}: {words}{hint} [{exc.reason.name}]"


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
        raise CannotLogIn(unreachable_message(opts.url, exc.message)) from None
    except LoginFailed as exc:
        if entered:
            raise
        message = login_refused_message(opts.url, opts.user, exc, token_given=bool(opts.token))
        raise CannotLogIn(message, exc.reason) from None
    except OSError as exc:  # anything the client did not wrap: still one line, no traceback
        if entered:
            raise
        raise CannotLogIn(unreachable_message(opts.url, str(exc))) from None


async def stop_on_sigint(on_signal: Callable[[], None]) -> None:
    """Run until cancelled; call ``on_signal`` at each Ctrl-C (SIGINT) instead of raising
    KeyboardInterrupt, so the command can cancel its calls and log out first."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            on_signal()
