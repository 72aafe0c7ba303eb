"""``rtmcall login``, ``rtmcall call``, ``rtmcall answer``: the commands that log in as a user.
Only argument handling lives here; the work is imported when a command runs."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..options import (
    CaOpt,
    ConfirmOpt,
    ConnectTimeoutOpt,
    JsonOpt,
    LifetimeOpt,
    NoResponseOpt,
    ServerOpt,
    TokenOpt,
    UserOpt,
    check_user,
    resolve_server,
    resolve_user,
    run_trio,
    usage_error,
)

WhenBusyOpt = Annotated[
    str,
    typer.Option(
        "--when-busy",
        metavar="ring|refuse",
        help="A call that comes while another rings or a call is on: ring, or refuse it "
        "at once as busy.",
    ),
]
HangupAfterOpt = Annotated[
    float | None,
    typer.Option(
        "--hangup-after",
        metavar="S",
        min=0,
        help="Hold each accepted call S seconds, then hang up (exit 0 only if it was held).",
    ),
]


def _when_busy(value: str) -> str:
    if value not in ("ring", "refuse"):
        raise usage_error(f"is ring or refuse, not {value!r}", "--when-busy")
    return value


def login(
    user: Annotated[str, typer.Argument(metavar="USER", help="Your user id.", show_default=False)],
    server: ServerOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
    no_response_timeout: NoResponseOpt = None,
    confirm_timeout: ConfirmOpt = None,
    lifetime: LifetimeOpt = None,
    ca: CaOpt = None,
    connect_timeout: ConnectTimeoutOpt = 5.0,
    when_busy: WhenBusyOpt = "ring",
) -> None:
    """Log in as USER: an interactive softphone on a terminal, a command pipe otherwise.

    On a terminal you get a live table of invitations above a prompt. Commands:
    call PEER… [--content T] [--channel C] [--lifetime S], cancel [ID],
    accept [ID] [--response T], refuse [ID] [--response T] [--reason busy|declined],
    hangup [ID], dnd on|off, history [--missed] [--peer P] [--limit N], list,
    online PEER…, wait [ID] [--incoming] [--timeout S], sleep S, help, quit.
    IDs may be shortened to a unique prefix; without one, the newest invitation is meant.

    When stdin is not a terminal (or with --json), the same commands are read one per
    line and every event is written as a line (JSON with --json). At the end of input your
    pending outgoing invitations are canceled and the session logs out. Exit status: 0 when
    every line did what it said, 1 when any line failed (not a command, refused, a wait
    that timed out), 3 when the server cannot be reached or ends the session.

    The user and server are remembered for later rtmcall call / answer.

    \b
    Examples:
      rtmcall login alice
      rtmcall login bob --server ws://10.0.0.5:8765
      printf 'call bob --content hi\\nwait\\n' | rtmcall login alice --json
    """
    from ..runtime import LoginOptions

    check_user(user, "USER")
    url = resolve_server(server)
    opts = LoginOptions(
        url=url,
        user=user,
        token=token,
        ca=ca,
        no_response_timeout=no_response_timeout,
        confirm_timeout=confirm_timeout,
        lifetime=lifetime,
        connect_timeout=connect_timeout,
        when_busy=_when_busy(when_busy),
    )

    def remember() -> None:
        from .. import config

        config.remember(user=user, server=url)

    if sys.stdin.isatty() and sys.stdout.isatty() and not json_output:
        from ..console.prompt import run_interactive

        code = run_trio(run_interactive, opts, on_login=remember)
    else:
        from ..pipe import run_pipe

        code = run_trio(run_pipe, opts, as_json=json_output, on_login=remember)
    raise typer.Exit(code)


def call(
    peers: Annotated[
        list[str],
        typer.Argument(
            metavar="PEER", help="Who to call (one or more user ids).", show_default=False
        ),
    ],
    user: UserOpt = None,
    content: Annotated[str, typer.Option(help="Text sent with the invitation.")] = "",
    channel: Annotated[str, typer.Option(metavar="ID", help="Channel id for the call.")] = "",
    lifetime: LifetimeOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
    no_response_timeout: NoResponseOpt = None,
    confirm_timeout: ConfirmOpt = None,
    ca: CaOpt = None,
    connect_timeout: ConnectTimeoutOpt = 5.0,
    hangup_after: HangupAfterOpt = None,
) -> None:
    """Call PEER (or several at once), wait for the outcome, and exit with it.

    Exit status: 0 when every peer accepted; 1 when any refused, canceled or failed (or
    you pressed Ctrl-C, which cancels the calls); 2 usage error; 3 server unreachable or
    login refused.

    \b
    Examples:
      rtmcall call bob --content "lunch?"
      rtmcall call bob carol --user alice --channel room1 --lifetime 20
      rtmcall call bob --json && echo "bob answered"
    """
    from rtmcall.engine.frames import MAX_CHANNEL_BYTES, MAX_CONTENT_BYTES

    from ..oneshot.run import run_call
    from ..runtime import LoginOptions

    for peer in peers:
        check_user(peer, "PEER")
    me = resolve_user(user)
    if me in peers:
        raise usage_error(f"{me} cannot call themself", "PEER")
    if len(content.encode()) > MAX_CONTENT_BYTES:
        raise usage_error("is longer than 8 KB of UTF-8", "--content")
    if len(channel.encode()) > MAX_CHANNEL_BYTES:
        raise usage_error("is longer than 64 bytes of UTF-8", "--channel")
    opts = LoginOptions(
        url=resolve_server(server),
        user=me,
        token=token,
        ca=ca,
        no_response_timeout=no_response_timeout,
        confirm_timeout=confirm_timeout,
        connect_timeout=connect_timeout,
        give_up_after=30.0,
    )
    code = run_trio(
        run_call,
        opts,
        peers,
        content=content,
        channel=channel,
        lifetime=lifetime,
        as_json=json_output,
        hangup_after=hangup_after,
    )
    raise typer.Exit(code)


def answer(
    user: UserOpt = None,
    accept: Annotated[
        bool, typer.Option("--accept/--refuse", help="Accept (default) or refuse each call.")
    ] = True,
    response: Annotated[str, typer.Option(help="Text sent back with the answer.")] = "",
    count: Annotated[
        int, typer.Option(min=0, help="Answer this many calls, then exit (0: keep going).")
    ] = 1,
    delay: Annotated[
        float, typer.Option(metavar="S", min=0, help="Let each call ring S seconds first.")
    ] = 0.0,
    timeout: Annotated[
        float | None,
        typer.Option(metavar="S", min=0, help="Give up (exit 1) after S seconds."),
    ] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    json_output: JsonOpt = False,
    confirm_timeout: ConfirmOpt = None,
    ca: CaOpt = None,
    connect_timeout: ConnectTimeoutOpt = 5.0,
    when_busy: WhenBusyOpt = "ring",
    hangup_after: HangupAfterOpt = None,
) -> None:
    """Wait for incoming calls and answer them: a softphone's auto-answer.

    Exit status: 0 when COUNT calls were answered and each ended as asked (accepted, or
    refused); 1 otherwise (a caller canceled first, the accept was not confirmed, the
    timeout passed, Ctrl-C); 3 server unreachable or login refused.

    \b
    Examples:
      rtmcall answer --user bob
      rtmcall answer --refuse --response busy --count 3
      rtmcall answer --user bob --count 0 --json      # answer forever
    """
    from ..oneshot.run import run_answer
    from ..runtime import LoginOptions

    opts = LoginOptions(
        url=resolve_server(server),
        user=resolve_user(user),
        token=token,
        ca=ca,
        confirm_timeout=confirm_timeout,
        connect_timeout=connect_timeout,
        give_up_after=30.0,
        when_busy=_when_busy(when_busy),
    )
    code = run_trio(
        run_answer,
        opts,
        accept=accept,
        response=response,
        count=count,
        delay=delay,
        give_up_after=timeout,
        as_json=json_output,
        hangup_after=hangup_after,
    )
    raise typer.Exit(code)
