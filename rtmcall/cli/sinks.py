"""Where the softphone's output goes: JSON lines, readable lines, or the interactive console.

The :class:`~rtmcall.cli.softphone.Softphone` reports everything through the :class:`Sink`
methods, so the same command dispatcher drives every mode and only the presentation differs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TextIO

from rtmcall.client.events import (
    ConnectionStateChanged,
    MessageFromPeer,
    PeersOnlineStatusChanged,
    TokenPrivilegeWillExpire,
)
from rtmcall.engine.codes import PeerOnlineState
from rtmcall.engine.events import (
    ApiCallError,
    CallEnded,
    CallStarted,
    InvitationEvent,
    InvitationInfo,
    LocalInvitationRefused,
    RemoteInvitationReceived,
    RemoteInvitationRefused,
)

from .formats import calls as callfmt
from .formats import jsonl as jsonfmt
from .formats import text as textfmt
from .formats.rows import Row


class Sink(Protocol):
    def event(self, ev: object) -> None:
        """A client event arrived (invitation, connection, presence, message, token)."""

    def sent(
        self, info: InvitationInfo, peer_online: bool | None = None, within: float | None = None
    ) -> None:
        """``call`` sent a new invitation; ``peer_online`` says whether the callee was
        online (None: unknown), ``within`` is the no-ACK window in seconds."""

    def api_error(
        self, exc: ApiCallError, command: str, info: InvitationInfo | None, peer: str | None
    ) -> None:
        """The engine refused a command; nothing changed."""

    def error(self, message: str) -> None:
        """Anything else that went wrong, in one line."""

    def lines(self, lines: Sequence[str]) -> None:
        """Informational text (help)."""

    def notice(self, message: str) -> None:
        """What a command is doing meanwhile (waiting for the connection), in one line."""

    def listing(self, infos: Sequence[InvitationInfo], rows: Sequence[Row]) -> None:
        """The answer to ``list``."""

    def online(self, states: Mapping[str, PeerOnlineState]) -> None:
        """The answer to ``online``."""

    def changed(self) -> None:
        """Some invitation changed: redraw live views."""


def _write_to(stream: TextIO | None) -> Callable[[str], None]:
    def write(line: str) -> None:
        out = stream or sys.stdout
        try:
            out.write(line + "\n")
            out.flush()  # scripts read us line by line: never sit on a buffered line
        except BrokenPipeError:
            # The reader went away (`rtmcall login a --json | head -1`): drop output from
            # now on, the session still ends cleanly. Pointing the descriptor at /dev/null
            # is the recipe of Python's docs, so the final flush at exit cannot fail either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)

    return write


class JsonSink:
    """One JSON object per line, flushed at once (pipe mode with ``--json``)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._write = _write_to(stream)

    def emit(self, obj: jsonfmt.JsonObject) -> None:
        self._write(jsonfmt.dumps(obj))

    def event(self, ev: object) -> None:
        match ev:
            case InvitationEvent():
                self.emit(jsonfmt.invitation_event(ev))
            case ConnectionStateChanged(state=state, reason=reason):
                self.emit(jsonfmt.connection_state(state, reason))
            case PeersOnlineStatusChanged(states=states):
                self.emit(jsonfmt.peers_online(states, "PeersOnlineStatusChanged"))
            case MessageFromPeer(peer=peer, text=text):
                self.emit(jsonfmt.message_from_peer(peer, text))
            case TokenPrivilegeWillExpire(seconds=seconds):
                self.emit(jsonfmt.token_will_expire(seconds))
            case CallEnded():
                self.emit(callfmt.call_ended_json(ev))
            case CallStarted():
                self.emit(callfmt.call_started_json(ev))
            case callfmt.MissedCalls():
                self.emit(callfmt.missed_json(ev))

    def sent(
        self, info: InvitationInfo, peer_online: bool | None = None, within: float | None = None
    ) -> None:
        self.emit(jsonfmt.local_invitation_sent(info, peer_online))

    def api_error(
        self, exc: ApiCallError, command: str, info: InvitationInfo | None, peer: str | None
    ) -> None:
        self.emit(
            jsonfmt.api_call_error(exc.code, exc.message, command=command, info=info, peer=peer)
        )

    def error(self, message: str) -> None:
        self.emit(jsonfmt.error(message))

    def lines(self, lines: Sequence[str]) -> None:
        self.emit({"event": "Help", "lines": list(lines)})

    def notice(self, message: str) -> None:
        self.emit({"event": "Notice", "message": message})

    def listing(self, infos: Sequence[InvitationInfo], rows: Sequence[Row]) -> None:
        for info in infos:
            self.emit(jsonfmt.invitation("Invitation", info))

    def online(self, states: Mapping[str, PeerOnlineState]) -> None:
        self.emit(jsonfmt.peers_online(states))

    def history_rows(self, rows: Sequence[Mapping[str, object]]) -> None:
        """The answer to ``history``: one ``HistoryEntry`` per call, newest first."""
        from .history.store import as_json

        for row in rows:
            self.emit({"event": "HistoryEntry", **as_json(dict(row))})

    def changed(self) -> None:
        pass


class TextSink:
    """Readable lines (pipe mode without ``--json``, one-shot commands). ``write`` takes one
    line without its newline; errors go through ``write_error`` (stderr by default)."""

    #: Whether lines say what to type next (only at the interactive prompt).
    hints = False

    def __init__(
        self,
        write: Callable[[str], None] | None = None,
        write_error: Callable[[str], None] | None = None,
    ) -> None:
        self.write = write or _write_to(None)
        self.write_error = write_error or _write_to(sys.stderr)

    def event(self, ev: object) -> None:
        match ev:
            case InvitationEvent():
                busy = ev.invitation.reason == "busy"
                if busy and isinstance(ev, RemoteInvitationReceived):
                    return  # refused at once as busy (SPEC §6): the next line says so
                line = textfmt.invitation_event(ev)
                if busy and isinstance(ev, LocalInvitationRefused | RemoteInvitationRefused):
                    line += " (busy)"
                self.write(line)
            case ConnectionStateChanged(state=state, reason=reason):
                self.write(textfmt.connection_state(state, reason))
            case PeersOnlineStatusChanged(states=states):
                self.write(textfmt.peers_online(states))
            case MessageFromPeer(peer=peer, text=text):
                self.write(f"message from {peer}: {text}")
            case TokenPrivilegeWillExpire(seconds=seconds):
                self.write(f"the login token expires in {seconds:.0f} s")
            case CallEnded():
                self.write(callfmt.call_ended_text(ev))
            case CallStarted():
                self.write(callfmt.call_started_text(ev, hints=self.hints))
            case callfmt.MissedCalls():
                self.write(callfmt.missed_text(ev, hints=self.hints))

    def sent(
        self, info: InvitationInfo, peer_online: bool | None = None, within: float | None = None
    ) -> None:
        self.write(textfmt.local_invitation_sent(info, peer_online, within))

    def api_error(
        self, exc: ApiCallError, command: str, info: InvitationInfo | None, peer: str | None
    ) -> None:
        self.write_error(textfmt.api_call_error(exc, command, info, peer))

    def error(self, message: str) -> None:
        self.write_error(message)

    def lines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.write(line)

    def notice(self, message: str) -> None:
        self.write(message)

    def listing(self, infos: Sequence[InvitationInfo], rows: Sequence[Row]) -> None:
        if not infos:
            self.write("no invitations")
        calls = {r.id: r for r in rows if r.call_since is not None or r.call_reason is not None}
        now = time.monotonic()  # the rows' time base
        for info in infos:
            call = calls.get(info.id)
            self.write(
                textfmt.invitation_line(info)
                + (f" ({info.reason})" if info.reason else "")
                + (f"  ({callfmt.row_state(call, now)[0]})" if call is not None else "")
            )

    def online(self, states: Mapping[str, PeerOnlineState]) -> None:
        self.write(textfmt.peers_online(states))

    def changed(self) -> None:
        pass
