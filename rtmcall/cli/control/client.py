"""The one-shot side of the control socket (SPEC §7, :mod:`.endpoint`): find the running
softphone of our user and server, and carry out ``rtmcall call``/``answer`` through it."""

from __future__ import annotations

import glob
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import trio

from rtmcall.client.events import ConnectionStateChanged
from rtmcall.engine.codes import (
    CallEndReason,
    ConnectionState,
    InvitationApiCallError,
    LocalInvitationState,
    RemoteInvitationState,
)
from rtmcall.engine.events import (
    ApiCallError,
    CallEnded,
    CallEvent,
    InvitationEvent,
    InvitationInfo,
)

from .. import commands as c
from ..local_files import control_dirs, private_dir_problem, readable, socket_name
from ..sinks import Sink
from .wire import (
    HELLO_TIMEOUT,
    VERSION,
    JsonObj,
    Lines,
    command_line,
    encode,
    event_from_json,
    info_from_json,
)


def _socket_problem(path: Path) -> str | None:
    try:
        st = os.lstat(path)
    except OSError:
        return "none"
    if not stat.S_ISSOCK(st.st_mode):
        return "not a socket"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return "another user's"
    return None


async def connect(user: str, url: str, what: str) -> tuple[trio.SocketStream, Lines] | None:
    """The running softphone of ``user`` on ``url``, connected and greeted; None when none
    runs (no socket, a stale one, one that is not ours).

    The socket named after ``user`` and ``url`` first; then ``user``'s other sockets, for a
    softphone given a server list that shares a URL with ``url`` (``ws://a,ws://b`` and
    ``ws://b``: nodes of one deployment), which answers only when they do.
    """
    if not hasattr(socket, "AF_UNIX"):
        return None
    for folder in control_dirs():
        if private_dir_problem(folder) is not None:
            continue
        exact = folder / socket_name(user, url)
        link = await _greet(exact, user, url, what, refusal_stops=True)
        if link is not None:
            return link
        for path in _others(folder, user, exact):
            link = await _greet(path, user, url, what, refusal_stops=False)
            if link is not None:
                return link
    return None


def _others(folder: Path, user: str, exact: Path) -> list[Path]:
    """``user``'s other control sockets in ``folder`` (and those of users whose names read
    alike, whose softphones refuse), the newest first."""
    found = []
    for path in folder.glob(f"{glob.escape(readable(user))}-*.sock"):
        try:
            found.append((path.lstat().st_mtime, path))
        except OSError:
            continue
    return [path for _, path in sorted(found, reverse=True) if path != exact]


async def _greet(
    path: Path, user: str, url: str, what: str, *, refusal_stops: bool
) -> tuple[trio.SocketStream, Lines] | None:
    """``path``'s softphone connected and greeted, or None (none there, or it refused us:
    then, with ``refusal_stops``, :class:`SoftphoneRefused`)."""
    if _socket_problem(path) is not None:
        return None
    try:
        with trio.fail_after(2):
            stream = await trio.open_unix_socket(str(path))
    except (OSError, trio.TooSlowError):
        return None  # stale: its softphone is gone
    lines = Lines(stream)
    hello = {"op": "hello", "version": VERSION, "user": user, "server": url}
    hello.update(pid=os.getpid(), what=what)
    answer = None
    try:
        with trio.move_on_after(HELLO_TIMEOUT):
            await stream.send_all(encode(hello))
            answer = await lines.next()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        answer = None
    if answer is not None and answer.get("op") == "hello" and answer.get("ok"):
        return stream, lines
    await stream.aclose()
    if refusal_stops and answer is not None and answer.get("op") == "hello":
        # A live softphone that will not take us (another rtmcall version): logging in
        # ourselves would kick it, so stop here and say why.
        raise SoftphoneRefused(str(answer.get("message") or "it refused the connection"))
    return None


class SoftphoneRefused(Exception):
    """A softphone of our user and server runs but refused the one-shot (why, in words)."""


def _accepted(info: InvitationInfo) -> bool:
    if info.direction == "out":
        return info.state == LocalInvitationState.ACCEPTED_BY_REMOTE
    return info.state == RemoteInvitationState.ACCEPTED


class RemoteCall:
    """A call of the one-shot's invitations in the softphone, as its events tell it."""

    def __init__(self) -> None:
        self.active = True
        self.reason: CallEndReason | None = None


class RemotePhone:
    """What a one-shot needs of a :class:`~.softphone.Softphone`, carried out by the
    running softphone over its control socket: ``execute``, ``pump``, ``infos``,
    ``calls``, ``pending_outgoing``, ``wait_change``, ``shutdown``, ``ended``,
    ``on_end``."""

    def __init__(self, stream: trio.SocketStream, lines: Lines, sink: Sink) -> None:
        self._stream = stream
        self._lines = lines
        self.sink = sink
        self._invs: dict[str, InvitationInfo] = {}
        #: The calls of those invitations (SPEC §6) that are ours (we made the invitation,
        #: or accepted it), by invitation id.
        self.calls: dict[str, RemoteCall] = {}
        self._mine: set[str] = set()
        self._changed = trio.Event()
        self._seq = 0
        self._waiting: dict[int, trio.Event] = {}
        self._send_lock = trio.Lock()
        self._closing = False
        self._lost = False
        self._watching = False
        self.ended: str | None = None
        self.on_end: Callable[[], None] = lambda: None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self) -> None:
        await self._changed.wait()

    def infos(self) -> list[InvitationInfo]:
        return list(self._invs.values())

    def pending_outgoing(self) -> list[InvitationInfo]:
        from ..softphone import _terminal

        return [i for i in self._invs.values() if i.direction == "out" and not _terminal(i)]

    async def _send(self, obj: JsonObj) -> None:
        async with self._send_lock:
            try:
                await self._stream.send_all(encode(obj))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._gone()

    async def execute(self, cmd: c.Command) -> bool:
        """Have the softphone carry out ``cmd``; False for ``quit``."""
        if isinstance(cmd, c.Quit):
            return False
        if self._lost:
            return True
        if isinstance(cmd, c.Accept) and cmd.id:
            self._mine.add(cmd.id)
        self._seq += 1
        done = self._waiting[self._seq] = trio.Event()
        # Shielded (and bounded): a Ctrl-C now must not lose the answer, or the call it
        # sent would ring on unseen; the one-shot cancels it right after.
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await self._send({"op": "run", "seq": self._seq, "line": command_line(cmd)})
            await done.wait()
        return True

    async def watch_incoming(self) -> None:
        """Ask for incoming invitations: those ringing now, then every new one."""
        self._watching = True
        await self._send({"op": "incoming"})

    async def pump(self) -> None:
        """Run until the softphone closes the connection: report what it sends."""
        async for obj in self._lines:
            self._dispatch(obj)
        self._gone()

    def _gone(self) -> None:
        if self._lost:
            return
        self._lost = True
        for done in self._waiting.values():
            done.set()
        if not self._closing and self.ended is None and self._still_needed():
            self.ended = "the softphone ended before the outcome"
            self.on_end()
        for call in self.calls.values():
            if call.active:  # (ended with the softphone, as with a lost session)
                call.active, call.reason = False, CallEndReason.SESSION_LOST
        self._notify()

    def _still_needed(self) -> bool:
        """Whether losing the softphone now loses an outcome (an invitation still live, a
        call of ours still on, or calls still awaited)."""
        from ..softphone import _terminal

        return (
            self._watching
            or any(not _terminal(i) for i in self._invs.values())
            or any(call.active for call in self.calls.values())
        )

    def _dispatch(self, obj: JsonObj) -> None:
        from ..softphone import _ABORT_WORDS

        op = obj.get("op")
        if op == "sent":
            info = info_from_json(obj["info"])
            self._invs[info.id] = info
            self._mine.add(info.id)
            self.sink.sent(info, peer_online=obj.get("peer_online"), within=obj.get("within"))
        elif op == "event":
            ev = event_from_json(obj["event"])
            if ev is None:
                return
            if isinstance(ev, InvitationEvent):
                info = self._invs[ev.invitation.id] = ev.invitation
                if info.id in self._mine and _accepted(info):
                    # The call is on from the accept (its CallStarted follows).
                    self.calls.setdefault(info.id, RemoteCall())
            elif isinstance(ev, CallEvent):
                call = self.calls.setdefault(ev.call.id, RemoteCall())
                if isinstance(ev, CallEnded):
                    call.active, call.reason = False, ev.reason
            self.sink.event(ev)
            if isinstance(ev, ConnectionStateChanged) and ev.state == ConnectionState.ABORTED:
                why = _ABORT_WORDS.get(ev.reason.name, "the session ended")
                self.ended = f"logged out: {why} ({ev.reason.name})"
                self.on_end()
        elif op == "api_error":
            info = None if obj.get("info") is None else info_from_json(obj["info"])
            exc = ApiCallError(InvitationApiCallError(obj["code"]), str(obj.get("message", "")))
            self.sink.api_error(exc, str(obj.get("command", "")), info, obj.get("peer"))
        elif op == "error":
            self.sink.error(str(obj.get("message", "")))
        elif op == "lines":
            self.sink.lines([str(line) for line in obj.get("lines", [])])
        elif op == "done":
            done = self._waiting.pop(obj.get("seq"), None)  # type: ignore[arg-type]
            if done is not None:
                done.set()
        elif op == "bye" and self._still_needed() and self.ended is None:
            self.ended = "the softphone quit before the outcome"
            self.on_end()
        self._notify()

    async def shutdown(self, settle_timeout: float = 3.0, logout_timeout: float = 3.0) -> None:
        """Cancel our pending outgoing calls, hang up our calls that are on (as the
        standalone one-shot's logout does), let them settle (bounded), and hang up the
        control connection. The softphone stays logged in."""
        from ..softphone import _terminal

        del logout_timeout  # nothing to log out of: the session is the softphone's
        if self.ended is None and not self._lost:
            for info in self.pending_outgoing():
                await self.execute(c.Cancel(info.id))
            on = [i for i, call in self.calls.items() if call.active]
            for inv_id in on:
                await self.execute(c.Hangup(inv_id))
            with trio.move_on_after(settle_timeout):
                while any(self.calls[i].active for i in on) and not self._lost:
                    await self.wait_change()

            accepting = RemoteInvitationState.ACCEPT_SENT_TO_LOCAL

            def unsettled() -> bool:
                return any(
                    not _terminal(i) and (i.direction == "out" or i.state == accepting)
                    for i in self._invs.values()
                )

            with trio.move_on_after(settle_timeout):
                while unsettled() and not self._lost:
                    await self.wait_change()
        self._closing = True
        await self._stream.aclose()
