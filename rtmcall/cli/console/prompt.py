"""The interactive softphone: a live invitation table above a line-editing prompt.

Design (why a thread): prompt_toolkit runs on asyncio, rtmcall on trio, and the two event
loops cannot share a thread. So prompt_toolkit gets a worker thread of its own
(``trio.to_thread.run_sync``) and runs a plain :class:`PromptSession` there, while the
client, the timers and the command dispatcher stay in trio. They meet at three points, each
thread-safe by construction:

* The table *is the prompt's message*: a callable that renders the latest snapshot of rows
  (an immutable tuple swapped in by the trio side) with Rich into ANSI text. prompt_toolkit
  owns the whole drawing — table, status line and input line — so an update can never
  garble what the user is typing; it just repaints. The trio side asks for a repaint with
  ``Application.invalidate()``, which prompt_toolkit documents as thread-safe, and
  ``refresh_interval`` repaints twice a second for the countdowns.
* Log lines (command results, errors, events) go through prompt_toolkit's
  :class:`StdoutProxy`, which prints them *above* the running prompt and redraws it.
* A finished command line goes to trio with ``trio.from_thread.run`` and the prompt thread
  waits for the command to be carried out, so output stays in order.

The alternatives were worse: ``patch_stdout`` plus Rich ``Live`` fight over the cursor, and
a full-screen Application would hide the terminal's scrollback, which users want for the log.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import trio
from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import StdoutProxy
from rich.console import Console
from rich.text import Text

from rtmcall.client.events import ConnectionStateChanged
from rtmcall.engine.events import InvitationEvent, RemoteInvitationReceived

from ..control.endpoint import start_control
from ..local_files import history_path
from ..runtime import OK, UNREACHABLE, CannotLogIn, LoginOptions, logged_in
from ..sinks import TextSink
from ..softphone import Softphone
from .table import Row, build_table

#: Lines the prompt itself takes besides the table rows: table frame and header, caption,
#: status, input line, and a little air so the prompt never pushes past the screen.
_CHROME_LINES = 9


def _terminal_size() -> os.terminal_size:
    # Ask the terminal itself: shutil.get_terminal_size() prefers $COLUMNS/$LINES, which a
    # shell exports once and never updates after a resize.
    for stream in (sys.__stdout__, sys.__stdin__):
        try:
            return os.get_terminal_size(stream.fileno())  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            continue
    return shutil.get_terminal_size()


def _color_system() -> str | None:
    return None if os.environ.get("NO_COLOR") else "standard"


class PromptUI:
    """The prompt_toolkit side. Every method except :meth:`run` is called from trio."""

    def __init__(self, prompt: str, history: History) -> None:
        self._prompt = prompt
        self._history = history
        self._rows: tuple[Row, ...] = ()
        self._status = ""
        self._version = 0
        self._cache: tuple[Any, str] = ((), "")
        self._session: PromptSession[str] | None = None
        self._stopping = False
        #: A command line is being carried out (no prompt runs); a Ctrl-C came meanwhile.
        self.busy = False
        self.interrupted = False
        self.proxy = StdoutProxy(raw=True, sleep_between_writes=0.05)
        self.log_console = Console(
            file=self.proxy, force_terminal=True, color_system=_color_system(), highlight=False
        )

    # --- trio side ----------------------------------------------------------------------

    @property
    def rows(self) -> tuple[Row, ...]:
        return self._rows

    def update(self, rows: Sequence[Row], status: str) -> None:
        self._rows = tuple(rows)  # one assignment: the prompt thread sees old or new, whole
        self._status = status
        self._version += 1
        self.invalidate()

    def invalidate(self) -> None:
        if self._session is not None:
            self._session.app.invalidate()

    def log(self, text: Text | str) -> None:
        stamp = Text(datetime.now().strftime("%H:%M:%S "), style="dim")
        line = text if isinstance(text, Text) else Text(text)
        # The proxy is no terminal Rich can measure: give it the width.
        self.log_console.print(stamp + line, width=_terminal_size().columns)

    def bell(self) -> None:
        self.proxy.write("\a")
        self.proxy.flush()

    def stop(self) -> None:
        """Make :meth:`run` return soon (the session ended under us)."""
        self._stopping = True
        session = self._session
        if session is not None and session.app.is_running and session.app.loop is not None:
            session.app.loop.call_soon_threadsafe(self._exit_app)

    # --- prompt thread ------------------------------------------------------------------

    def _exit_app(self) -> None:
        app = self._session.app if self._session else None
        if app is not None and app.is_running and not app.future.done():
            app.exit(exception=EOFError())

    def _check_stop(self) -> None:
        # pre_run: closes the race with a stop() that came while no prompt was running.
        if self._stopping:
            self._exit_app()

    def _message(self) -> ANSI:
        size = _terminal_size()
        # Cache the rendering: prompt_toolkit asks on every keystroke, the table changes only
        # with an event or when a countdown ticks (tenths of seconds are shown below 10 s).
        now = time.monotonic()
        key = (self._version, int(now * 10), size.columns, size.lines)
        if self._cache[0] != key:
            buf = io.StringIO()
            console = Console(
                file=buf,
                width=max(40, size.columns - 1),
                force_terminal=True,
                color_system=_color_system(),
                highlight=False,
            )
            max_rows = max(1, size.lines - _CHROME_LINES)
            console.print(build_table(self._rows, now, max_rows=max_rows, width=console.width))
            console.print(Text(self._status, style="dim"))
            self._cache = (key, buf.getvalue())
        return ANSI(self._cache[1] + self._prompt)

    def _key_bindings(self) -> KeyBindings:
        bindings = KeyBindings()

        @bindings.add("c-c")
        def _interrupt(event: KeyPressEvent) -> None:
            # Like a shell: Ctrl-C drops the half-typed line, it does not end the session.
            buffer = event.app.current_buffer
            if buffer.text:
                self.log(Text(f"{self._prompt}{buffer.text}^C", style="dim"))
                buffer.reset()
            else:
                self.log(Text("to quit, press Ctrl-D or type quit", style="dim"))

        return bindings

    def run(self, handle_line: Callable[[str], Awaitable[bool]]) -> str:
        """The prompt loop (in a worker thread). Returns why it ended: quit, eof, interrupt,
        stopped."""
        session: PromptSession[str] = PromptSession(
            history=self._history,
            erase_when_done=True,
            refresh_interval=0.5,
            key_bindings=self._key_bindings(),
        )
        self._session = session
        while not self._stopping:
            try:
                # Between prompts (a command runs) the terminal is cooked, so Ctrl-C is a
                # SIGINT for the trio side; at the prompt it is a key (_key_bindings).
                self.busy = False
                self.interrupted = False
                line = session.prompt(self._message, pre_run=self._check_stop)
                self.busy = True
            except KeyboardInterrupt:
                return "interrupt"
            except EOFError:
                return "stopped" if self._stopping else "eof"
            if line.strip():
                self.log(Text(f"{self._prompt}{line}", style="bold"))
            if not trio.from_thread.run(handle_line, line):
                return "quit"
        return "stopped"


class ConsoleSink(TextSink):
    """Readable lines into the log above the prompt, the table into the prompt."""

    hints = True

    def __init__(self, ui: PromptUI, opts: LoginOptions) -> None:
        super().__init__(write=ui.log, write_error=self._error)
        self.ui = ui
        self.opts = opts
        self.phone: Softphone | None = None
        self.connection = "connected"

    def status(self) -> str:
        client = self.phone.client if self.phone is not None else None
        dnd = " · dnd on" if client is not None and client.dnd else ""
        if client is not None and client.when_busy == "refuse":
            dnd += " · busy: refuse"
        url = client.url if client is not None else self.opts.url  # (the node in use)
        return f"{self.opts.user} @ {url} · {self.connection}{dnd} · type help"

    def _error(self, line: str) -> None:
        self.ui.log(Text(line, style="bold red"))

    def event(self, ev: object) -> None:
        if isinstance(ev, ConnectionStateChanged):
            self.connection = ev.state.name.lower()
        if isinstance(ev, RemoteInvitationReceived) and ev.invitation.reason != "busy":
            self.ui.bell()  # an incoming call must be impossible to miss
            self.ui.log(Text("☎  ", style="bold yellow") + Text(_describe(ev), style="bold"))
            return
        super().event(ev)

    def listing(self, infos: Any, rows: Sequence[Row]) -> None:
        width = _terminal_size().columns - 1
        table = build_table(rows, time.monotonic(), title="invitations", width=width)
        self.ui.log_console.print(table, width=width)

    def changed(self) -> None:
        if self.phone is not None:
            self.ui.update(self.phone.rows(), self.status())


def _describe(ev: InvitationEvent) -> str:
    from ..formats.text import invitation_event

    return invitation_event(ev, hints=True)


async def run_interactive(opts: LoginOptions, *, on_login: Callable[[], None] | None = None) -> int:
    """The interactive softphone until quit; returns the exit code."""
    try:
        # One history per user and server: bob's Up arrow never shows alice's lines.
        path = history_path(opts.user, opts.url)
        path.parent.mkdir(parents=True, exist_ok=True)
        history: History = FileHistory(str(path))
    except OSError:
        history = InMemoryHistory()
    ui = PromptUI(f"{opts.user}> ", history)
    sink = ConsoleSink(ui, opts)
    try:
        async with logged_in(opts) as client:
            if on_login is not None:
                on_login()
            phone = Softphone(client, sink, login_session=True)
            sink.phone = phone
            phone.on_end = ui.stop
            ui.update([], sink.status())
            ui.log(f"logged in to {client.url} as {opts.user}; type help for the commands")
            command = trio.CancelScope()
            quitting = False

            async def run_line(line: str) -> bool:
                nonlocal command
                # While a command runs (e.g. `wait`) the terminal is not in raw mode, so
                # Ctrl-C is a signal: it stops that command, and the prompt comes back.
                with trio.CancelScope() as command:
                    if ui.interrupted:  # Ctrl-C right after Enter, before we got here
                        command.cancel()
                    return await phone.run_line(line)
                if quitting:
                    return False
                ui.log(Text("interrupted", style="dim"))
                return True

            async def on_signals() -> None:
                nonlocal quitting
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        if signum == signal.SIGINT and ui.busy:
                            ui.interrupted = True
                        command.cancel()  # a finished command's scope: harmless
                        if signum == signal.SIGTERM:
                            quitting = True
                            ui.stop()

            async def pump() -> None:
                try:
                    await phone.pump()
                finally:  # if the event stream ever fails, do not leave the prompt hanging
                    ui.stop()

            async def recheck_waiting() -> None:
                # "waiting for dave" ends silently when dave logs in (his app may not ACK):
                # take a fresh snapshot while such a row is shown.
                while True:
                    await trio.sleep(0.5)
                    if any(row.waiting_for_peer for row in ui.rows):
                        sink.changed()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump)
                nursery.start_soon(on_signals)
                nursery.start_soon(recheck_waiting)
                control = await start_control(
                    nursery,
                    phone,
                    opts.user,
                    opts.url,
                    notice=lambda line: ui.log(Text(line, style="dim")),
                    warn=sink.error,
                )
                why = await trio.to_thread.run_sync(ui.run, run_line)
                pending = len(phone.pending_outgoing())
                if pending and phone.ended is None:
                    print(f"canceling {pending} outgoing call(s)…", flush=True)
                await phone.shutdown()
                if control is not None:
                    await control.aclose()
                nursery.cancel_scope.cancel()
            ui.proxy.close()
            if phone.ended is not None:
                print(f"rtmcall: {phone.ended}", file=sys.stderr, flush=True)
                return UNREACHABLE
            print(f"logged out ({why})", flush=True)
    except CannotLogIn as exc:
        ui.proxy.close()
        print(f"rtmcall: {exc.message}", file=sys.stderr, flush=True)
        return UNREACHABLE
    return OK
