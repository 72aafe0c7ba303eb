"""The typer app behind ``rtmcall``; its commands live in small modules of :mod:`.cmd`.

This module and the :mod:`.cmd` modules import only typer; trio, rich, prompt_toolkit and the
client are imported inside the commands, so a command pays only for what it uses. Typer's
rich help is off for the same reason (rendering help with rich costs ~150 ms).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer
from typer.core import TyperCommand

from .cmd import (
    bench as cmd_bench,
)
from .cmd import (
    demo as cmd_demo,
)
from .cmd import (
    health as cmd_health,
)
from .cmd import (
    history as cmd_history,
)
from .cmd import (
    login as cmd_login,
)
from .cmd import (
    scenario as cmd_scenario,
)
from .cmd import (
    server as cmd_server,
)
from .cmd import (
    top as cmd_top,
)

#: The metavar of an option that names none, by its value's type.
_METAVARS: dict[Any, str] = {str: "TEXT", int: "N", float: "NUMBER", Path: "FILE"}


def _value_type(annotation: Any) -> Any:
    """``str`` for ``str | None``, ``list[str]``, …"""
    for _ in range(3):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if get_origin(annotation) is None or not args:
            break
        annotation = args[0]
    return annotation


def _range_words(low: float | None, high: float | None) -> str | None:
    if low is None and high is None:
        return None
    if high is None:
        return f"at least {low:g}"
    if low is None:
        return f"at most {high:g}"
    return f"{low:g} to {high:g}"


class PlainHelpCommand(TyperCommand):
    """A command whose help reads like click's: ``rtmcall call [OPTIONS] PEER...`` and
    ``PEER...  Who to call.``, ``--content TEXT``. Typer 0.2x's own help prints
    ``{PEER}...``, ``PEER <list[str]>``, ``--content <str>`` and ``--port <int range>``; an
    option that names no metavar gets one from its type here, so a new option cannot bring
    those back either."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name != "option" or param.metavar is not None:
                continue
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                continue
            descriptor = getattr(param, "type_descriptor", None)
            value = _value_type(getattr(descriptor, "annotation", str))
            param.metavar = _METAVARS.get(value, "VALUE")
        for param in self.params:
            # "[at least 0.01]" rather than typer's "[x>=0.01]" (the hook is typer's own;
            # should it be renamed, the help falls back to typer's words).
            if hasattr(param, "_get_number_range_help_str"):
                low, high = getattr(param, "min", None), getattr(param, "max", None)
                param._get_number_range_help_str = lambda lo=low, hi=high: _range_words(lo, hi)  # type: ignore[attr-defined]

    @staticmethod
    def _argument_name(param: Any) -> str:
        name = param.metavar or (param.name or "").upper()
        return f"{name}..." if param.nargs != 1 else name

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = self._argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((self._argument_name(param), record[1]))
            elif param.param_type_name == "option":
                opts.append(record)
        for title, records in (("Arguments", args), ("Options", opts)):
            if records:
                with formatter.section(title):
                    _write_dl_unbroken(formatter, records)


#: Stands in for "-" while click wraps help text, so that ``--secret-file`` is never cut
#: at its hyphen (textwrap breaks on hyphens); one character wide like the hyphen.
_NB_HYPHEN = "\u2011"


def _write_dl_unbroken(formatter: Any, records: list[tuple[str, str]]) -> None:
    start = len(formatter.buffer)
    formatter.write_dl([(term, text.replace("-", _NB_HYPHEN)) for term, text in records])
    formatter.buffer[start:] = [
        piece.replace(_NB_HYPHEN, "-") for piece in formatter.buffer[start:]
    ]


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
        "3 cannot reach or log in to the server, 4 the server cannot serve."
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


app.command("server", cls=PlainHelpCommand, short_help="Run the signaling server.")(
    cmd_server.server
)
app.command(
    "login", cls=PlainHelpCommand, short_help="Log in: interactive softphone, or a command pipe."
)(cmd_login.login)
app.command("call", cls=PlainHelpCommand, short_help="Call peers once; exit 0 only when accepted.")(
    cmd_login.call
)
app.command("answer", cls=PlainHelpCommand, short_help="Wait for calls and accept or refuse them.")(
    cmd_login.answer
)
app.command(
    "history",
    cls=PlainHelpCommand,
    short_help="Your past calls, newest first; --missed for missed ones.",
)(cmd_history.history)
app.command("token", cls=PlainHelpCommand, short_help="Mint a login token for a user.")(
    cmd_server.token
)
app.command(
    "demo",
    cls=PlainHelpCommand,
    short_help="Play every outcome with a server and users in one process.",
)(cmd_demo.demo)
app.command(
    "scenario",
    cls=PlainHelpCommand,
    short_help="Play scenario files: multi-user flows with expectations.",
)(cmd_scenario.scenario)
app.command(
    "bench",
    cls=PlainHelpCommand,
    short_help="Load a server with call setups; report rate and latency.",
)(cmd_bench.bench)
app.command("health", cls=PlainHelpCommand, short_help="Check a server node: exit 0 when healthy.")(
    cmd_health.health
)
app.command(
    "top", cls=PlainHelpCommand, short_help="Watch server nodes live: users, calls/s, outcomes."
)(cmd_top.top)
