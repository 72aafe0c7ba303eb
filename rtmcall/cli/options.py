"""Option types shared by the commands, and resolving them: flag > environment variable >
remembered config > default. Imports only typer (this runs for ``rtmcall --help``)."""

from __future__ import annotations

from typing import Annotated

import typer

DEFAULT_SERVER = "ws://127.0.0.1:8765"

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        metavar="URL",
        envvar="RTMCALL_SERVER",
        help="Server URL, ws:// or wss://; several nodes comma-separated (the next is tried"
        f" when one does not answer). [default: the remembered one, else {DEFAULT_SERVER}]",
        show_default=False,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        metavar="TOKEN",
        envvar="RTMCALL_TOKEN",
        help="Login token, when the server has a secret (rtmcall token).",
    ),
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        metavar="USER",
        envvar="RTMCALL_USER",
        help="Log in as this user. [default: the user of the last rtmcall login]",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Write one JSON object per event, one per line.")
]
CaOpt = Annotated[
    str | None,
    typer.Option("--ca", metavar="FILE", help="Trust this CA certificate (PEM) for wss://."),
]
NoResponseOpt = Annotated[
    float | None,
    typer.Option(metavar="S", min=0.01, help="Seconds to wait for the callee's ACK. [default: 30]"),
]
ConfirmOpt = Annotated[
    float | None,
    typer.Option(
        metavar="S", min=0.01, help="Seconds to wait for the caller's confirm. [default: 5]"
    ),
]
LifetimeOpt = Annotated[
    float | None,
    typer.Option(
        metavar="S", min=0.01, max=86400, help="Seconds an invitation rings. [default: 60]"
    ),
]
ConnectTimeoutOpt = Annotated[
    float,
    typer.Option(metavar="S", min=0.1, help="Seconds to reach the server and log in."),
]


def usage_error(message: str, param: str | None = None) -> typer.BadParameter:
    """Exit 2 with click's usage message (the SPEC's usage error)."""
    return typer.BadParameter(message, param_hint=param)


def check_user(user: str, param: str) -> str:
    from rtmcall.engine.frames import user_id_problem

    problem = user_id_problem(user)
    if problem is not None:
        raise usage_error(problem, param)
    return user


def check_url(url: str, param: str = "--server") -> str:
    """One URL, or several comma-separated (nodes of one deployment)."""
    from rtmcall.client.websocket import split_urls

    try:
        split_urls(url)
    except ValueError as exc:
        raise usage_error(str(exc), param) from None
    return url


def resolve_server(flag: str | None) -> str:
    from . import config

    return check_url(flag or config.load().get("server") or DEFAULT_SERVER)


def resolve_user(flag: str | None) -> str:
    from . import config

    user = flag or config.load().get("user")
    if not user:
        raise usage_error(
            "no user: give --user ME, set RTMCALL_USER, or run rtmcall login ME once", "--user"
        )
    return check_user(user, "--user")


def run_trio(async_fn, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
    """Run a command's trio main; a Ctrl-C that slipped past its own handling exits 1."""
    import functools

    import trio

    try:
        return trio.run(functools.partial(async_fn, *args, **kwargs))
    except KeyboardInterrupt:
        return 1
