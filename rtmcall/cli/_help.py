"""The top-level help, stored so that ``rtmcall --help`` can skip importing typer.

It is what the typer app prints; ``tests/cli/test_app.py`` fails when the two differ.
Regenerate with ``python -m rtmcall.cli._help`` after changing the app's help or commands.
"""

from __future__ import annotations

ROOT_HELP = """\
Usage: rtmcall [OPTIONS] COMMAND [ARGS]...

  Softphone and signaling server for Agora RTM-style call invitations.

  Start a server, then log in as two users in two terminals:
    rtmcall server
    rtmcall login alice        # then type: call bob --content hi
    rtmcall login bob          # then type: accept
  Or watch every outcome played at once: rtmcall demo

  Environment: RTMCALL_SERVER, RTMCALL_USER, RTMCALL_TOKEN, RTMCALL_SECRET,
  RTMCALL_CONFIG_DIR. Exit status: 0 success, 1 outcome not as asked, 2 usage
  error, 3 cannot reach or log in to the server, 4 the server cannot serve.

Options:
  --version   Show the version.
  -h, --help  Show this message and exit.

Commands:
  server    Run the signaling server.
  login     Log in: interactive softphone, or a command pipe.
  call      Call peers once; exit 0 only when accepted.
  answer    Wait for calls and accept or refuse them.
  history   Your past calls, newest first; --missed for missed ones.
  token     Mint a login token for a user.
  demo      Play every outcome with a server and users in one process.
  scenario  Play scenario files: multi-user flows with expectations.
  bench     Load a server with call setups; report rate and latency.
  health    Check a server node: exit 0 when healthy.
  top       Watch server nodes live: users, calls/s, outcomes.
"""


def render() -> str:
    """The help as the typer app prints it now (click wraps at 80 columns at most)."""
    from typer.testing import CliRunner

    from .typer_app import app

    return CliRunner().invoke(app, ["--help"], prog_name="rtmcall", terminal_width=80).output


if __name__ == "__main__":
    from pathlib import Path

    path = Path(__file__)
    source = path.read_text(encoding="utf-8")
    path.write_text(source.replace(ROOT_HELP, render()), encoding="utf-8")
