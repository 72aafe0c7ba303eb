"""The typer app behind ``rtmcall``; its commands live in small ``cmd_*`` modules.

This module and the ``cmd_*`` modules import only typer; trio, rich, prompt_toolkit and the
client are imported inside the commands, so a command pays only for what it uses. Typer's
rich help is off for the same reason (rendering help with rich costs ~150 ms).
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import cmd_bench, cmd_demo, cmd_health, cmd_login, cmd_server, cmd_top

app = typer.Typer(
    name="rtmcall",
    help=(
        "Softphone and signaling server for Agora RTM-style call invitations.\n\n"
        "\b\n"
        "Start a server, then log in as two users in two terminals:\n"
        "  rtmcall server\n"
        "  rtmcall login alice        # then type: call bob --content hi\n"
        "  rtmcall login bob          # then type: accept\n"
        "Or watch every outcome played at once: rtmcall demo\n\n"
        "Environment: RTMCALL_SERVER, RTMCALL_USER, RTMCALL_TOKEN, RTMCALL_SECRET, "
        "RTMCALL_CONFIG_DIR. Exit status: 0 success, 1 outcome not as asked, 2 usage error, "
        "3 cannot reach or log in to the server."
    ),
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from rtmcall import __version__

        typer.echo(f"rtmcall {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    pass


app.command("server", short_help="Run the signaling server.")(cmd_server.server)
app.command("login", short_help="Log in: interactive softphone, or a command pipe.")(
    cmd_login.login
)
app.command("call", short_help="Call peers once; exit 0 only when accepted.")(cmd_login.call)
app.command("answer", short_help="Wait for calls and accept or refuse them.")(cmd_login.answer)
app.command("token", short_help="Mint a login token for a user.")(cmd_server.token)
app.command("demo", short_help="Play every outcome with a server and users in one process.")(
    cmd_demo.demo
)
app.command("bench", short_help="Load a server with call setups; report rate and latency.")(
    cmd_bench.bench
)
app.command("health", short_help="Check a server node: exit 0 when healthy.")(cmd_health.health)
app.command("top", short_help="Watch server nodes live: users, calls/s, outcomes.")(cmd_top.top)
