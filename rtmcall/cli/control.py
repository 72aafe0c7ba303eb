"""One user, many terminals (SPEC §7): a running softphone's local control endpoint.

A softphone (interactive or pipe mode) listens on a Unix socket named after its user and
server (:mod:`.local_files`), in a directory only its OS user may enter (mode 0700; the
socket itself 0600; on Linux the peer's uid is checked too). ``rtmcall call`` and
``rtmcall answer`` for the same user and server find it and work *through* it instead of
logging in again, which would kick the softphone off the server (REMOTE_LOGIN).

The protocol is JSON lines, one object per line, each with an ``op``:

* one-shot → softphone: ``hello`` (``version``, ``user``, ``server``, ``pid``, ``what``)
  first; then ``run`` (``seq``, ``line``: a line of the command language of
  :mod:`.commands`, carried out by the softphone as if typed) and ``incoming`` (send me the
  incoming invitations: those ringing now, then every new one).
* softphone → one-shot: ``hello`` (``ok``, and ``message`` when not), then what the
  softphone's sink is told about this client's commands and invitations — ``sent``,
  ``event`` (an invitation event of an invitation this client made or asked for, and every
  connection state change), ``api_error``, ``error``, ``lines`` — ``done`` (``seq``) when a
  ``run`` was carried out, and ``bye`` when the softphone quits.

The one-shot side (:class:`RemotePhone`) keeps a mirror of its invitations from those
messages and renders them with its own sink, so its lines and exit codes are those of the
standalone command by construction. The softphone side (:class:`ControlServer`) tees its
sink (:class:`ControlSink`): the invitations appear in its own table and log as well.

A socket file left behind by a softphone that was killed is *stale*: connecting to it
fails. The one-shot then logs in by itself; the next softphone replaces the file.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import struct
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from dataclasses import fields
from enum import IntEnum
from pathlib import Path
from typing import Any

import trio

from rtmcall.client.events import ConnectionStateChanged
from rtmcall.engine.codes import (
    ConnectionChangeReason,
    ConnectionState,
    InvitationApiCallError,
    LocalInvitationError,
    LocalInvitationState,
    RemoteInvitationError,
    RemoteInvitationState,
)
from rtmcall.engine.events import (
    ApiCallError,
    InvitationEvent,
    InvitationInfo,
    LocalInvitationInfo,
    RemoteInvitationInfo,
    RemoteInvitationReceived,
)

from . import commands as c
from .local_files import (
    MAX_SOCKET_PATH,
    control_dirs,
    make_private_dir,
    private_dir_problem,
    socket_name,
)
from .sinks import Sink

VERSION = 1
#: A line longer than this ends the connection (a call line is at most ~9 KB).
MAX_LINE = 256 * 1024
#: Lines queued for a client that does not read; beyond, it is disconnected.
MAX_QUEUED = 10_000
_HELLO_TIMEOUT = 5.0

JsonObj = dict[str, Any]


class ControlUnavailable(Exception):
    """No control endpoint could be set up (why, in words)."""


# --- the wire: invitations and events as JSON -----------------------------------------


def info_json(info: InvitationInfo) -> JsonObj:
    return {
        "direction": info.direction,
        "id": info.id,
        "caller": info.caller,
        "callee": info.callee,
        "content": info.content,
        "channel_id": info.channel_id,
        "response": info.response,
        "state": int(info.state),
        "error": int(info.error),
        "lifetime": info.lifetime,
    }


def info_from_json(obj: JsonObj) -> InvitationInfo:
    common = {k: str(obj[k]) for k in ("id", "caller", "callee", "content", "channel_id")}
    common["response"] = str(obj.get("response", ""))
    lifetime = obj.get("lifetime")
    life = float(lifetime) if isinstance(lifetime, int | float) else None
    if obj["direction"] == "out":
        return LocalInvitationInfo(
            **common,
            state=LocalInvitationState(obj["state"]),
            error=LocalInvitationError(obj["error"]),
            lifetime=life,
        )
    return RemoteInvitationInfo(
        **common,
        state=RemoteInvitationState(obj["state"]),
        error=RemoteInvitationError(obj["error"]),
        lifetime=life,
    )


def _event_classes() -> dict[str, type[InvitationEvent]]:
    found: dict[str, type[InvitationEvent]] = {}
    todo: list[type[InvitationEvent]] = [InvitationEvent]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            found[sub.__name__] = sub
            todo.append(sub)
    return found


def event_json(ev: object) -> JsonObj | None:
    """An event the one-shot can rebuild, or None for one it has no use for."""
    if isinstance(ev, InvitationEvent):
        obj: JsonObj = {"name": ev.name, "invitation": info_json(ev.invitation)}
        for field in fields(ev):  # type: ignore[arg-type]
            if field.name != "invitation":
                value = getattr(ev, field.name)
                obj[field.name] = int(value) if isinstance(value, IntEnum) else value
        return obj
    if isinstance(ev, ConnectionStateChanged):
        return {"name": ev.name, "state": int(ev.state), "reason": int(ev.reason)}
    return None


def event_from_json(obj: JsonObj) -> object | None:
    """The event again; None for one this version does not know (a newer softphone)."""
    name = obj.get("name")
    if name == "ConnectionStateChanged":
        return ConnectionStateChanged(
            ConnectionState(obj["state"]), ConnectionChangeReason(obj["reason"])
        )
    cls = _event_classes().get(str(name))
    if cls is None:
        return None
    info = info_from_json(obj["invitation"])
    kwargs: dict[str, Any] = {"invitation": info}
    for field in fields(cls):  # type: ignore[arg-type]
        if field.name == "invitation" or field.name not in obj:
            continue
        value = obj[field.name]
        if field.name == "error":
            errors = LocalInvitationError if info.direction == "out" else RemoteInvitationError
            value = errors(value)
        kwargs[field.name] = value
    try:
        return cls(**kwargs)
    except TypeError:
        return None


def command_line(cmd: c.Command) -> str:
    """A command as a line of the command language (what :func:`commands.parse` reads)."""
    words: list[str]
    match cmd:
        case c.Call(peers=peers, content=content, channel=channel, lifetime=lifetime):
            words = ["call"]
            if content:
                words += ["--content", content]
            if channel:
                words += ["--channel", channel]
            if lifetime is not None:
                words += ["--lifetime", repr(lifetime)]
            words += _positional(peers)
        case c.Cancel(id=inv_id):
            words = ["cancel", *_positional([inv_id] if inv_id else [])]
        case c.Accept(id=inv_id, response=response) | c.Refuse(id=inv_id, response=response):
            words = ["accept" if isinstance(cmd, c.Accept) else "refuse"]
            if response:
                words += ["--response", response]
            words += _positional([inv_id] if inv_id else [])
        case _:
            raise ValueError(f"not sent over the control socket: {cmd!r}")
    return shlex.join(words)


def _positional(words: Sequence[str]) -> list[str]:
    # "--" only when needed: a peer named "--x" must not read as an option.
    return ["--", *words] if any(w.startswith("-") for w in words) else list(words)


class _Lines:
    """JSON objects, one per line, from a stream; ends at EOF (or a broken stream)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buf = b""

    async def next(self) -> JsonObj | None:
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_LINE:
                return None
            try:
                chunk = await self._stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            obj = json.loads(line)
        except ValueError:
            return {"op": "invalid"}
        return obj if isinstance(obj, dict) else {"op": "invalid"}

    def __aiter__(self) -> AsyncIterator[JsonObj]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[JsonObj]:
        while (obj := await self.next()) is not None:
            yield obj


def _encode(obj: JsonObj) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


# --- the softphone side ---------------------------------------------------------------

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
        self.incoming = False

    def put(self, obj: JsonObj) -> None:
        try:
            self._send.send_nowait(_encode(obj))
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
        self.notice = notice
        self.clients: set[_Client] = set()

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
            obj = {"op": "sent", "info": info_json(info), "peer_online": peer_online}
            client.put({**obj, "within": within})

    def api_error(
        self, exc: ApiCallError, command: str, info: InvitationInfo | None, peer: str | None
    ) -> None:
        client = _CURRENT.get()
        if client is None:
            self.primary.api_error(exc, command, info, peer)
            return
        if self.notice is not None:
            self.notice(f"rtmcall {client.what}: {command} refused [{exc.code.name}]")
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
        if self.notice is not None:
            self.notice(f"rtmcall {client.what}: {message}")
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
            lines = _Lines(stream)
            hello = None
            with trio.move_on_after(_HELLO_TIMEOUT):
                hello = await lines.next()
            problem = self._hello_problem(hello)
            if problem is not None:
                with trio.move_on_after(1):
                    await stream.send_all(_encode({"op": "hello", "ok": False, "message": problem}))
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
        if hello.get("user") != self.user or hello.get("server") != self.url:
            return f"this softphone is {self.user} on {self.url}"
        return None

    async def _serve_client(self, client: _Client, lines: _Lines) -> None:
        async for obj in lines:
            op = obj.get("op")
            if op == "run" and isinstance(obj.get("line"), str):
                token = _CURRENT.set(client)
                try:
                    if self.notice is not None:
                        self.notice(f"rtmcall {client.what} (another terminal): {obj['line']}")
                    await self.phone.run_line(obj["line"])
                except Exception as exc:  # noqa: BLE001 - one bad line must not end the softphone
                    client.put({"op": "error", "message": f"{obj['line']}: {exc}"})
                finally:
                    _CURRENT.reset(token)
                client.put({"op": "done", "seq": obj.get("seq")})
            elif op == "incoming":
                client.incoming = True
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
        """A client that went away (killed) leaves no call of its ringing on."""
        from .softphone import _terminal

        for info in self.phone.infos():
            if info.id in client.own and info.direction == "out" and not _terminal(info):
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    try:
                        await self.phone.client.cancel(info.id)
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


# --- the one-shot side ----------------------------------------------------------------


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


async def connect(user: str, url: str, what: str) -> tuple[trio.SocketStream, _Lines] | None:
    """The running softphone of ``user`` on ``url``, connected and greeted; None when none
    runs (no socket, a stale one, one that is not ours)."""
    for folder in control_dirs():
        path = folder / socket_name(user, url)
        if private_dir_problem(folder) is not None or _socket_problem(path) is not None:
            continue
        try:
            with trio.fail_after(2):
                stream = await trio.open_unix_socket(str(path))
        except (OSError, trio.TooSlowError):
            continue  # stale: its softphone is gone
        lines = _Lines(stream)
        hello = {"op": "hello", "version": VERSION, "user": user, "server": url}
        hello.update(pid=os.getpid(), what=what)
        answer = None
        try:
            with trio.move_on_after(_HELLO_TIMEOUT):
                await stream.send_all(_encode(hello))
                answer = await lines.next()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            answer = None
        if answer is not None and answer.get("op") == "hello" and answer.get("ok"):
            return stream, lines
        if answer is not None and answer.get("message"):
            print(f"rtmcall: the softphone said: {answer['message']}", file=sys.stderr)
        await stream.aclose()
    return None


class RemotePhone:
    """What a one-shot needs of a :class:`~.softphone.Softphone`, carried out by the
    running softphone over its control socket: ``execute``, ``pump``, ``infos``,
    ``pending_outgoing``, ``wait_change``, ``shutdown``, ``ended``, ``on_end``."""

    def __init__(self, stream: trio.SocketStream, lines: _Lines, sink: Sink) -> None:
        self._stream = stream
        self._lines = lines
        self.sink = sink
        self._invs: dict[str, InvitationInfo] = {}
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
        from .softphone import _terminal

        return [i for i in self._invs.values() if i.direction == "out" and not _terminal(i)]

    async def _send(self, obj: JsonObj) -> None:
        async with self._send_lock:
            try:
                await self._stream.send_all(_encode(obj))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._gone()

    async def execute(self, cmd: c.Command) -> bool:
        """Have the softphone carry out ``cmd``; False for ``quit``."""
        if isinstance(cmd, c.Quit):
            return False
        if self._lost:
            return True
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
        self._notify()

    def _still_needed(self) -> bool:
        """Whether losing the softphone now loses an outcome (an invitation still live, or
        calls still awaited)."""
        from .softphone import _terminal

        return self._watching or any(not _terminal(i) for i in self._invs.values())

    def _dispatch(self, obj: JsonObj) -> None:
        from .softphone import _ABORT_WORDS

        op = obj.get("op")
        if op == "sent":
            info = info_from_json(obj["info"])
            self._invs[info.id] = info
            self.sink.sent(info, peer_online=obj.get("peer_online"), within=obj.get("within"))
        elif op == "event":
            ev = event_from_json(obj["event"])
            if ev is None:
                return
            if isinstance(ev, InvitationEvent):
                self._invs[ev.invitation.id] = ev.invitation
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
        """Cancel our pending outgoing calls, let them settle (bounded), and hang up the
        control connection. The softphone stays logged in."""
        from .softphone import _terminal

        del logout_timeout  # nothing to log out of: the session is the softphone's
        if self.ended is None and not self._lost:
            for info in self.pending_outgoing():
                await self.execute(c.Cancel(info.id))

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
