"""One user, many terminals (SPEC §7): a running softphone's local control endpoint.

A softphone (interactive or pipe mode) listens on a Unix socket named after its user and
server (:mod:`..local_files`), in a directory only its OS user may enter (mode 0700; the
socket itself 0600; on Linux the peer's uid is checked too). ``rtmcall call`` and
``rtmcall answer`` for the same user and server find it and work *through* it instead of
logging in again, which would kick the softphone off the server (REMOTE_LOGIN).

The protocol is JSON lines, one object per line, each with an ``op``:

* one-shot → softphone: ``hello`` (``version``, ``user``, ``server``, ``pid``, ``what``)
  first; then ``run`` (``seq``, ``line``: a line of the command language of
  :mod:`..commands`, carried out by the softphone as if typed) and ``incoming`` (send me the
  incoming invitations: those ringing now, then every new one).
* softphone → one-shot: ``hello`` (``ok``, and ``message`` when not), then what the
  softphone's sink is told about this client's commands and invitations — ``sent``,
  ``event`` (an invitation event of an invitation this client made or asked for, the
  events of its call, and every connection state change), ``api_error``, ``error``,
  ``lines`` — ``done`` (``seq``) when a ``run`` was carried out, and ``bye`` when the
  softphone quits.

The one-shot side (:class:`.client.RemotePhone`) keeps a mirror of its invitations
from those messages and renders them with its own sink, so its lines and exit codes are
those of the standalone command by construction (:mod:`.wire` has the format).
The softphone side (:class:`ControlServer`, here) tees its sink (:class:`ControlSink`): the
invitations appear in its own table and log as well.

A socket file left behind by a softphone that was killed is *stale*: connecting to it
fails. The one-shot then logs in by itself; the next softphone replaces the file.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import trio

from rtmcall.client.events import ConnectionStateChanged
from rtmcall.engine.codes import RemoteInvitationState
from rtmcall.engine.events import (
    ApiCallError,
    CallEvent,
    InvitationEvent,
    InvitationInfo,
    RemoteInvitationReceived,
)

from .. import commands as c
from ..local_files import (
    MAX_SOCKET_PATH,
    control_dirs,
    make_private_dir,
    servers_overlap,
    socket_name,
)
from ..sinks import Sink
from .wire import HELLO_TIMEOUT, MAX_QUEUED, VERSION, JsonObj, Lines, encode, event_json, info_json


class ControlUnavailable(Exception):
    """No control endpoint could be set up (why, in words)."""


#: The control client whose command the current task carries out (None: the softphone's
#: own user). trio gives each task its own context, so concurrent commands never mix.
_CURRENT: ContextVar[_Client | None] = ContextVar("rtmcall_control_client", default=None)


class _Client:
    """One connected one-shot, as the softphone sees it."""

    def __init__(self, stream: trio.SocketStream, what: str) -> None:
        self.stream = stream
        self.what = what
        self._send, self._queue = trio.open_memory_channel[bytes](MAX_QUEUED)
        #: Invitations this client made (``call``) or took (``incoming``).
        self.own: set[str] = set()
        #: Of those, the ones whose call is this client's: made, or accepted by it (not
        #: those the softphone's user answered meanwhile).
        self.calls: set[str] = set()
        self.incoming = False

    def put(self, obj: JsonObj) -> None:
        try:
            self._send.send_nowait(encode(obj))
        except trio.WouldBlock:  # it stopped reading: let it go rather than grow forever
            self._send.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def finish(self) -> None:
        self._send.close()

    async def write_all(self) -> None:
        try:
            async with self._queue:
                async for data in self._queue:
                    await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def wants(self, ev: object) -> bool:
        if isinstance(ev, ConnectionStateChanged):
            return True
        if isinstance(ev, CallEvent):
            return ev.call.id in self.calls
        if not isinstance(ev, InvitationEvent):
            return False
        inv_id = ev.invitation.id
        if self.incoming and isinstance(ev, RemoteInvitationReceived):
            self.own.add(inv_id)
        return inv_id in self.own


class ControlSink:
    """The softphone's sink, teed: everything still goes to the softphone's own sink
    (``primary``); what a control client's command causes, and the events of its
    invitations, go to that client too. Errors of a client's command go only to it: they
    are its to report (and its exit code), not the softphone's."""

    def __init__(self, primary: Sink, notice: Callable[[str], None] | None) -> None:
        self.primary = primary
        #: The softphone's own log line for what a control client did (None: no log).
        self.log = notice
        self.clients: set[_Client] = set()

    def notice(self, message: str) -> None:
        self.primary.notice(message)

    def __getattr__(self, name: str) -> Any:
        # Sink methods added later reach the softphone's own sink unchanged.
        return getattr(self.primary, name)

    def event(self, ev: object) -> None:
        self.primary.event(ev)
        if not self.clients:
            return
        obj = event_json(ev)
        if obj is None:
            return
        for client in list(self.clients):
            if client.wants(ev):
                client.put({"op": "event", "event": obj})

    def sent(
        self, info: InvitationInfo, peer_online: bool | None = None, within: float | None = None
    ) -> None:
        self.primary.sent(info, peer_online=peer_online, within=within)
        client = _CURRENT.get()
        if client is not None:
            client.own.add(info.id)
            client.calls.add(info.id)
            obj = {"op": "sent", "info": info_json(info), "peer_online": peer_online}
            client.put({**obj, "within": within})

    def api_error(
        self, exc: ApiCallError, command: str, info: InvitationInfo | None, peer: str | None
    ) -> None:
        client = _CURRENT.get()
        if client is None:
            self.primary.api_error(exc, command, info, peer)
            return
        if self.log is not None:
            self.log(f"rtmcall {client.what}: {command} refused [{exc.code.name}]")
        client.put(
            {
                "op": "api_error",
                "code": int(exc.code),
                "message": exc.message,
                "command": command,
                "info": None if info is None else info_json(info),
                "peer": peer,
            }
        )

    def error(self, message: str) -> None:
        client = _CURRENT.get()
        if client is None:
            self.primary.error(message)
            return
        if self.log is not None:
            self.log(f"rtmcall {client.what}: {message}")
        client.put({"op": "error", "message": message})

    def lines(self, lines: Sequence[str]) -> None:
        client = _CURRENT.get()
        if client is None:
            self.primary.lines(lines)
        else:
            client.put({"op": "lines", "lines": list(lines)})

    def listing(self, infos: Sequence[InvitationInfo], rows: Sequence[Any]) -> None:
        self.primary.listing(infos, rows)

    def online(self, states: Any) -> None:
        self.primary.online(states)

    def changed(self) -> None:
        self.primary.changed()


def _note_accept(client: _Client, line: str) -> None:
    """A client's ``accept ID`` (or a prefix of it) makes that call the client's."""
    try:
        cmd = c.parse(line)
    except c.CommandError:
        return
    if isinstance(cmd, c.Accept) and cmd.id:
        client.calls.update(i for i in client.own if i.startswith(cmd.id))


def _peer_uid(sock: Any) -> int | None:
    """The connecting process's uid (Linux SO_PEERCRED), or None where unknown."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


async def _probe(path: Path) -> bool:
    """Whether a softphone answers on ``path`` (False: a stale file, or none)."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with trio.move_on_after(1.0):
            await sock.connect(str(path))
            return True
        return False
    except OSError:
        return False
    finally:
        sock.close()


class ControlServer:
    """The softphone's control endpoint. Build it with :func:`start_control`."""

    def __init__(self, phone: Any, user: str, url: str, notice: Callable[[str], None] | None):
        self.phone = phone
        self.user = user
        self.url = url
        self.notice = notice
        self.path: Path | None = None
        #: What was at the path before: "none", "stale" (replaced) or "live" (the softphone
        #: our login just kicked off: replaced too).
        self.found = "none"
        self._sock: Any = None
        self._ino: int | None = None
        self._clients: set[_Client] = set()
        self._left = trio.Event()  # set whenever a client leaves
        self._handlers = trio.CancelScope()
        self._accepting = trio.CancelScope()
        self.tee: ControlSink | None = None

    async def bind(self) -> None:
        problems = []
        for folder in control_dirs():
            problem = make_private_dir(folder)
            path = folder / socket_name(self.user, self.url)
            if problem is None and len(os.fsencode(path)) > MAX_SOCKET_PATH:
                problem = f"{path} is too long for a Unix socket"
            if problem is not None:
                problems.append(problem)
                continue
            try:
                await self._bind_at(path)
            except OSError as exc:
                problems.append(f"{path}: {exc.strerror or exc}")
                continue
            return
        raise ControlUnavailable("; ".join(problems) or "no directory for it")

    async def _bind_at(self, path: Path) -> None:
        if _lexists(path):
            self.found = "live" if await _probe(path) else "stale"
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o177)  # born 0600: never a moment with looser bits
            try:
                await sock.bind(str(tmp))
            finally:
                os.umask(old)
            os.chmod(tmp, 0o600)
            sock.listen(16)
            os.replace(tmp, path)  # atomic: a one-shot finds the old socket or ours
        except BaseException:
            sock.close()
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._sock = sock
        self.path = path
        self._ino = os.stat(path).st_ino

    def remove(self) -> None:
        """Remove our socket file (not one a later softphone put in its place)."""
        if self.path is None or self._ino is None:
            return
        try:
            if os.stat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        except OSError:
            pass
        self._ino = None

    async def serve(self) -> None:
        """Accept clients until cancelled; the socket file goes when it ends."""
        try:
            with self._handlers:
                async with trio.open_nursery() as nursery:
                    with self._accepting:
                        while True:
                            conn, _ = await self._sock.accept()
                            nursery.start_soon(self._handle, trio.SocketStream(conn))
                    self._sock.close()  # nobody new: a one-shot now logs in by itself
        finally:
            self._sock.close()
            self.remove()

    async def aclose(self, drain: float = 1.0) -> None:
        """Stop accepting, tell the clients we quit, let them have the last lines
        (at most ``drain`` seconds), and remove the socket file."""
        self._accepting.cancel()
        self.remove()
        for client in list(self._clients):
            client.put({"op": "bye", "message": "the softphone quit"})
            client.finish()
        with trio.move_on_after(drain):
            while self._clients:
                self._left = trio.Event()
                await self._left.wait()
        self._handlers.cancel()

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            await self._handle_client(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # it went away mid-line: nothing of ours breaks with it

    async def _handle_client(self, stream: trio.SocketStream) -> None:
        async with stream:
            uid = _peer_uid(stream.socket)
            if uid is not None and hasattr(os, "getuid") and uid != os.getuid():
                return  # the socket's mode keeps others out; this is a second lock
            lines = Lines(stream)
            hello = None
            with trio.move_on_after(HELLO_TIMEOUT):
                hello = await lines.next()
            problem = self._hello_problem(hello)
            if problem is not None:
                with trio.move_on_after(1):
                    await stream.send_all(encode({"op": "hello", "ok": False, "message": problem}))
                return
            assert hello is not None
            client = _Client(stream, str(hello.get("what") or "client"))
            client.put({"op": "hello", "ok": True, "user": self.user, "server": self.url})
            self._clients.add(client)
            assert self.tee is not None
            self.tee.clients.add(client)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client.write_all)
                    await self._serve_client(client, lines)
                    client.finish()
            finally:
                self.tee.clients.discard(client)
                await self._abandoned(client)
                self._clients.discard(client)
                self._left.set()

    def _hello_problem(self, hello: JsonObj | None) -> str | None:
        if hello is None or hello.get("op") != "hello":
            return "expected a hello line"
        if hello.get("version") != VERSION:
            return f"protocol version {hello.get('version')!r}, this softphone speaks {VERSION}"
        server = hello.get("server")
        if (
            hello.get("user") != self.user
            or not isinstance(server, str)
            or not servers_overlap(server, self.url)
        ):
            return f"this softphone is {self.user} on {self.url}"
        return None

    async def _serve_client(self, client: _Client, lines: Lines) -> None:
        async for obj in lines:
            op = obj.get("op")
            if op == "run" and isinstance(obj.get("line"), str):
                token = _CURRENT.set(client)
                try:
                    if self.notice is not None:
                        self.notice(f"rtmcall {client.what} (another terminal): {obj['line']}")
                    _note_accept(client, obj["line"])
                    await self.phone.run_line(obj["line"])
                except Exception as exc:  # noqa: BLE001 - one bad line must not end the softphone
                    client.put({"op": "error", "message": f"{obj['line']}: {exc}"})
                finally:
                    _CURRENT.reset(token)
                client.put({"op": "done", "seq": obj.get("seq")})
            elif op == "incoming":
                client.incoming = True
                if self.notice is not None:
                    self.notice(f"rtmcall {client.what} (another terminal) answers calls here")
                for info in self.phone.infos():
                    if info.direction == "in" and info.state == (
                        RemoteInvitationState.INVITATION_RECEIVED
                    ):
                        client.own.add(info.id)
                        ev = event_json(RemoteInvitationReceived(info))
                        client.put({"op": "event", "event": ev})
            else:
                client.put({"op": "error", "message": f"unknown control line {op!r}"})

    async def _abandoned(self, client: _Client) -> None:
        """A client that went away (killed) leaves no call of its ringing, nor on (as
        its own logout would have hung it up)."""
        from ..softphone import _terminal

        sdk = self.phone.client
        for info in self.phone.infos():
            if info.id not in client.own:
                continue
            call = sdk.calls.get(info.id) if info.id in client.calls else None
            ringing = info.direction == "out" and not _terminal(info)
            if ringing or (call is not None and call.active):
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    try:
                        if ringing:
                            await sdk.cancel(info.id)
                        else:
                            await sdk.hangup(info.id)
                    except Exception:  # noqa: BLE001 - it ended meanwhile; nothing to do
                        pass


async def start_control(
    nursery: trio.Nursery,
    phone: Any,
    user: str,
    url: str,
    *,
    notice: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> ControlServer | None:
    """Serve ``phone``'s control endpoint in ``nursery``; None (after ``warn``) when it
    cannot be set up — the softphone works on without it."""
    server = ControlServer(phone, user, url, notice)
    try:
        if not hasattr(socket, "AF_UNIX"):
            raise ControlUnavailable("this platform has no Unix sockets")
        await server.bind()
    except ControlUnavailable as exc:
        if warn is not None:
            warn(
                f"rtmcall: no control socket ({exc}); rtmcall call/answer as {user} will log "
                "in by themselves and end this session"
            )
        return None
    server.tee = ControlSink(phone.sink, notice)
    phone.sink = server.tee
    nursery.start_soon(server.serve)
    return server
