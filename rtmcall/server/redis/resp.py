"""A lean Redis client on trio: one TCP connection, pipelined, RESP2.

Why not coredis on the hot path: measured here (``bench/redis_client.py``), a coredis
command costs ~200 µs of client CPU (argument validation, typing layers, anyio streams),
one of this client's ~40 µs, and a command written in a batch without waiting ~2 µs.
The hub needs a handful of commands (XADD, XREAD, GET, MGET, EVALSHA/EVAL, PEXPIRE,
PING), sent in batches, so it speaks RESP itself, as cheaply as trio allows:

* a plain TCP connection is a non-blocking socket used directly: a command is written by
  ``socket.send`` at once, without a task switch (only a write that does not fit in the
  kernel's buffer waits, in a writer task); one reader task waits for the socket to be
  readable and parses every reply that came;
* a caller waiting for its replies is parked and rescheduled by the reader (no Event); a
  caller that passes a callback (:meth:`RedisConnection.send`) is not parked at all: the
  reader calls it with the replies.
* ``rediss://`` (TLS) goes through ``trio.SSLStream`` instead (slower, same behaviour).

Commands from any number of tasks are written at once and their replies matched in order,
so concurrent callers share the round trip. A caller that gives up (cancelled) leaves its
slot behind; the reply is read and dropped when it comes, so the connection stays usable (a
paused Redis answers everything once it runs again). A broken connection fails every
waiting caller with :class:`ConnectionError`; the next command connects again.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import outcome
import trio

from ._sockio import drain

#: A reply element: bytes, int, None, a list of them, or a ReplyError.
Reply = Any
#: Called with the replies of a pipeline, or the error that lost them.
Callback = Callable[[list[Reply] | BaseException], None]


class ReplyError(Exception):
    """Redis answered ``-ERR ...`` to a command."""


#: What a Redis operation may fail with: the connection, a timeout, or Redis's refusal.
REDIS_ERRORS = (OSError, trio.TooSlowError, ConnectionError, ReplyError)


@dataclass(frozen=True)
class RedisAddress:
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """``redis://[user:password@]host[:port][/db]`` or ``rediss://`` (TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"not a redis:// or rediss:// URL: {redacted(url)!r}")
        path = parts.path.strip("/")
        try:
            db = int(path) if path else 0
            port = parts.port or 6379
        except ValueError:
            raise ValueError(f"bad Redis URL {redacted(url)!r}") from None
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            db=db,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "rediss",
        )


def redacted(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``: for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a malformed URL)"
    creds, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in creds:
        return url
    return parts._replace(netloc=f"{creds.split(':', 1)[0]}:***@{host}").geturl()


def bulk(value: bytes) -> bytes:
    """One RESP bulk string (to pre-encode the constant parts of hot commands)."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def encode_command(args: tuple[Any, ...] | list[Any], out: bytearray) -> None:
    """Append one command in RESP (an array of bulk strings) to ``out``."""
    out += b"*%d\r\n" % len(args)
    for arg in args:
        if isinstance(arg, bytes):
            b = arg
        elif isinstance(arg, str):
            b = arg.encode()
        elif isinstance(arg, int | float):
            b = str(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis")
        out += b"$%d\r\n%s\r\n" % (len(b), b)


class _Incomplete(Exception):
    pass


def parse_reply(buf: bytes | bytearray, pos: int) -> tuple[Reply, int]:
    """One reply starting at ``pos``: (value, position after it); raises _Incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # $ bulk
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        start = end + 2
        if len(buf) < start + n + 2:
            raise _Incomplete
        return bytes(buf[start : start + n]), start + n + 2
    if kind == 42:  # * array
        n = int(buf[pos + 1 : end])
        pos = end + 2
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = parse_reply(buf, pos)
            items.append(item)
        return items, pos
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 43:  # + simple string
        return bytes(buf[pos + 1 : end]), end + 2
    if kind == 45:  # - error
        return ReplyError(bytes(buf[pos + 1 : end]).decode("utf-8", "replace")), end + 2
    raise ConnectionError(f"unexpected reply from Redis: {bytes(buf[pos : pos + 16])!r}")


class _Slot:
    __slots__ = ("count", "replies", "task", "callback", "sent_at", "conn")

    def __init__(
        self,
        count: int,
        task: trio.lowlevel.Task | None,
        callback: Callback | None,
        conn: RedisConnection,
    ) -> None:
        self.count = count
        self.replies: list[Reply] = []
        self.task = task
        self.callback = callback
        self.sent_at = trio.current_time()
        self.conn = conn

    def finish(self, result: list[Reply] | BaseException) -> None:
        task = self.task
        if task is not None:
            self.task = None
            self.conn._waiting -= 1
            if isinstance(result, BaseException):
                trio.lowlevel.reschedule(task, outcome.Error(result))
            else:
                trio.lowlevel.reschedule(task, outcome.Value(result))
        elif self.callback is not None:
            try:
                self.callback(result)
            except Exception:  # noqa: BLE001 - the reader (and the other callers) go on
                logging.getLogger("rtmcall.server.redis").exception("redis reply callback")


class RedisConnection:
    """One pipelined connection (see the module doc). Use inside ``async with``.

    Args:
      address: where Redis is.
      name: ``CLIENT SETNAME`` at connect (shows in ``CLIENT LIST``; tests kill by it).
      connect_timeout: seconds for TCP connect + AUTH/SELECT/SETNAME.
      lazy: replies that only a callback waits for are read when convenient (the next
        :meth:`harvest`, or with a reply some task waits for) rather than at once: no
        wake-up per reply for write-and-forget traffic (the hub's XADDs).
    """

    def __init__(
        self,
        address: RedisAddress,
        *,
        name: str | None = None,
        connect_timeout: float = 2.0,
        lazy: bool = False,
    ) -> None:
        self.address = address
        self.name = name
        self.connect_timeout = connect_timeout
        self.lazy = lazy
        #: Slots a task is parked on (lazy mode: the reader reads only while some are).
        self._waiting = 0
        self._reader_parked: trio.lowlevel.Task | None = None
        #: The plain TCP socket (non-blocking), or the TLS stream; None while disconnected.
        self._sock: socket.socket | None = None
        self._stream: trio.SSLStream[trio.SocketStream] | None = None
        self._live: object | None = None  # whichever of the two is current
        self._wbuf = bytearray()
        self._rbuf = bytearray()
        self._writer_busy = False
        self._pending: deque[_Slot] = deque()
        self._connect_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._last_rx = 0.0
        #: Commands written, connections made (for metrics).
        self.commands_sent = 0
        self.connects = 0

    async def __aenter__(self) -> RedisConnection:
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()
        self._drop(ConnectionError("connection closed"))
        await self._nursery_cm.__aexit__(None, None, None)

    @property
    def connected(self) -> bool:
        return self._live is not None

    async def call(self, *args: Any) -> Reply:
        """One command; its reply. Raises ReplyError, ConnectionError/OSError."""
        (reply,) = await self.pipeline([args])
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def pipeline(self, commands: list[tuple[Any, ...]] | list[list[Any]]) -> list[Reply]:
        """Send ``commands`` in one write; their replies in order (a ReplyError in the list
        for a command Redis refused). Raises ConnectionError/OSError when the connection
        breaks before every reply came."""
        if not commands:
            return []
        if self._reader_parked is not None:
            # Lazy and nobody waited: a connection Redis closed meanwhile (CLIENT KILL,
            # its idle timeout) was not noticed; find out before writing to it.
            self._read_ready()
        if self._live is None:
            await self.connect()
        task = trio.lowlevel.current_task()
        slot = self._write(commands, task, None)

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            if slot.task is not None:
                slot.task = None  # the replies will be read and dropped
                self._waiting -= 1
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]

    def send(self, commands: list[tuple[Any, ...]], callback: Callback) -> None:
        """Write ``commands`` now and return; ``callback`` gets their replies (or the error
        that lost them) from the reader task. Raises ConnectionError when not connected
        (``await connect()`` first)."""
        out = bytearray()
        for args in commands:
            encode_command(args, out)
        self.send_encoded(out, len(commands), callback)

    def send_encoded(self, data: bytes | bytearray, count: int, callback: Callback) -> None:
        """:meth:`send` for ``count`` commands already in RESP (see :func:`bulk`)."""
        if self._live is None:
            raise ConnectionError("not connected to redis")
        self._write_encoded(data, count, None, callback)

    def harvest(self) -> None:
        """Read and hand out the replies that arrived (lazy mode), without waiting."""
        if self._pending:
            self._read_ready()

    def _read_ready(self) -> None:
        """Read what the socket holds without waiting; a close found here drops the
        connection (the next command connects again)."""
        sock = self._sock
        if sock is None:
            return
        try:
            while True:
                data = sock.recv(262144)
                if not data:
                    raise ConnectionError("redis closed the connection")
                self._received(data)
        except BlockingIOError:
            return
        except (OSError, ValueError) as exc:
            self._drop(exc if isinstance(exc, ConnectionError) else ConnectionError(repr(exc)))

    async def connect(self) -> None:
        """Connect (AUTH, SELECT, SETNAME) unless connected."""
        if self._live is not None:
            return
        async with self._connect_lock:
            if self._live is not None:
                return
            with trio.fail_after(self.connect_timeout):
                tcp = await trio.open_tcp_stream(self.address.host, self.address.port)
                try:
                    if self.address.tls:
                        ctx = ssl.create_default_context()
                        stream = trio.SSLStream(tcp, ctx, server_hostname=self.address.host)
                        await self._hello(stream)
                        self._stream, self._live = stream, stream
                    else:
                        await self._hello(tcp)
                        sock = socket.socket(fileno=tcp.socket.detach())
                        sock.setblocking(False)
                        self._sock, self._live = sock, sock
                except BaseException:
                    await trio.aclose_forcefully(tcp)
                    raise
            self.connects += 1
            self._last_rx = trio.current_time()
            self._wbuf.clear()
            self._rbuf.clear()
            self._writer_busy = False
            assert self._nursery is not None
            self._nursery.start_soon(self._reader, self._live)

    @property
    def waiting(self) -> bool:
        """Some command waits for its reply."""
        return bool(self._pending)

    def unanswered_for(self) -> float:
        """Seconds the oldest waiting command has waited with nothing read meanwhile (0
        when none waits): long means the connection is dead, not merely busy."""
        if not self._pending:
            return 0.0
        return trio.current_time() - max(self._last_rx, self._pending[0].sent_at)

    def reset(self) -> None:
        """Drop the connection (e.g. no answer for too long): waiting callers fail."""
        self._drop(ConnectionError("redis connection reset (no answer)"))

    # --- internals --------------------------------------------------------------------

    def _write(
        self,
        commands: list[tuple[Any, ...]] | list[list[Any]],
        task: trio.lowlevel.Task | None,
        callback: Callback | None,
    ) -> _Slot:
        out = bytearray()
        for args in commands:
            encode_command(args, out)
        return self._write_encoded(out, len(commands), task, callback)

    def _write_encoded(
        self,
        out: bytes | bytearray,
        count: int,
        task: trio.lowlevel.Task | None,
        callback: Callback | None,
    ) -> _Slot:
        slot = _Slot(count, task, callback, self)
        self._pending.append(slot)
        self.commands_sent += count
        if task is not None:
            self._waiting += 1
            parked = self._reader_parked
            if parked is not None:
                self._reader_parked = None
                trio.lowlevel.reschedule(parked)
        sock = self._sock
        if sock is not None and not self._wbuf:
            try:
                sent = sock.send(out)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                # Reported to the slot (and every other waiting one) after this returns.
                assert self._nursery is not None
                self._nursery.start_soon(self._fail_later, sock, exc)
                return slot
            if sent == len(out):
                return slot
            out = out[sent:]
        self._wbuf += out
        if not self._writer_busy:
            self._writer_busy = True
            assert self._nursery is not None and self._live is not None
            self._nursery.start_soon(self._writer, self._live)
        return slot

    async def _fail_later(self, live: object, exc: BaseException) -> None:
        self._drop(ConnectionError(f"redis write failed: {exc!r}"), live)

    async def _writer(self, live: object) -> None:
        """Send what did not fit in one ``send`` (or everything, over TLS)."""
        try:
            if isinstance(live, socket.socket):
                await drain(live, self._wbuf, lambda: self._live is live)
            elif isinstance(live, trio.SSLStream):
                while self._wbuf and self._live is live:
                    data = bytes(self._wbuf)
                    self._wbuf.clear()
                    await live.send_all(data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._drop(ConnectionError(f"redis write failed: {exc!r}"), live)
        finally:
            if self._live is live:
                self._writer_busy = False

    async def _hello(self, stream: trio.abc.Stream) -> None:
        """AUTH, SELECT, SETNAME before anything else, answered in line."""
        a = self.address
        commands: list[tuple[Any, ...]] = []
        if a.password is not None:
            auth = ("AUTH", a.username, a.password) if a.username else ("AUTH", a.password)
            commands.append(auth)
        if a.db:
            commands.append(("SELECT", a.db))
        if self.name:
            commands.append(("CLIENT", "SETNAME", self.name))
        if not commands:
            return
        out = bytearray()
        for args in commands:
            encode_command(args, out)
        await stream.send_all(out)
        buf = bytearray()
        pos = 0
        got = 0
        while got < len(commands):
            try:
                reply, pos = parse_reply(buf, pos)
            except (_Incomplete, IndexError):
                data = await stream.receive_some(4096)
                if not data:
                    raise ConnectionError("redis closed the connection at login") from None
                buf += data
                continue
            if isinstance(reply, ReplyError):
                raise ConnectionError(f"redis refused the connection: {reply}")
            got += 1

    async def _reader(self, live: object) -> None:
        sock = live if isinstance(live, socket.socket) else None
        stream = live if sock is None else None
        try:
            while True:
                if sock is not None:
                    if self.lazy and not self._waiting:
                        # Nobody is parked on a reply: leave them (harvest) until someone is.
                        self._reader_parked = trio.lowlevel.current_task()
                        await trio.lowlevel.wait_task_rescheduled(self._abort_park)
                        if self._live is not live:
                            return
                    await trio.lowlevel.wait_readable(sock)
                    if self._live is not live:
                        return
                    try:
                        data = sock.recv(262144)
                    except BlockingIOError:
                        continue
                else:
                    assert isinstance(stream, trio.SSLStream)
                    data = await stream.receive_some(262144)
                if not data:
                    raise ConnectionError("redis closed the connection")
                self._received(data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if not isinstance(exc, ConnectionError):
                exc = ConnectionError(repr(exc))
            self._drop(exc, live)
        except ValueError as exc:  # a bad number in a reply: not Redis
            self._drop(ConnectionError(f"bad reply from redis: {exc!r}"), live)
        finally:
            if self._reader_parked is trio.lowlevel.current_task():
                self._reader_parked = None

    def _abort_park(self, _: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        self._reader_parked = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _received(self, data: bytes) -> None:
        """Parse the replies in ``data`` (after what was left over) and hand them out."""
        self._last_rx = trio.current_time()
        buf = self._rbuf
        buf += data
        pending = self._pending
        pos = 0
        n = len(buf)
        try:
            while pos < n:
                try:
                    reply, pos2 = parse_reply(buf, pos)
                except (_Incomplete, IndexError):
                    break
                pos = pos2
                if not pending:
                    raise ConnectionError("a reply from redis that nobody asked for")
                slot = pending[0]
                slot.replies.append(reply)
                if len(slot.replies) == slot.count:
                    pending.popleft()
                    slot.finish(slot.replies)
        finally:
            if pos:
                del buf[:pos]

    def _drop(self, error: BaseException, live: object | None = None) -> None:
        if live is not None and self._live is not live:
            return
        old_sock, old_stream = self._sock, self._stream
        self._sock = self._stream = self._live = None
        self._wbuf.clear()
        self._rbuf.clear()
        self._writer_busy = False
        parked = self._reader_parked
        if parked is not None:
            self._reader_parked = None
            trio.lowlevel.reschedule(parked)
        while self._pending:
            self._pending.popleft().finish(error)
        if old_sock is not None:
            trio.lowlevel.notify_closing(old_sock)  # the reader/writer wake up and stop
            old_sock.close()
        if old_stream is not None and self._nursery is not None:
            self._nursery.start_soon(trio.aclose_forcefully, old_stream)
