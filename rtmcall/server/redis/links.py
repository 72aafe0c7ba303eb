"""Node-to-node links: what one node sends another goes over TCP, not through Redis.

Through Redis, every record a node sends another costs Redis an XADD, waking the blocked
XREAD of the receiver and the next XREAD (two commands and four socket wake-ups in Redis
per batch), and both nodes the RESP around them. A link is one TCP connection from the
sending node to the receiving one, carrying the same records (``D``eliver, ``F``orward,
``K``ick, ``H``and over, ``S``tate: see :mod:`.hub`) in the same order.

Wire format, after the opening exchange (one line each way)::

    connector: RTMLINK1 <node> <epoch> <to-epoch> <hmac>\\n
    listener:  OK <last seq seen from <epoch>>\\n      (or "NO <reason>\\n", then close;
               "NO epoch <node> <epoch>": that node is another process now)
    connector: batches, each  seq (u64) | length (u32) | records joined by "\\n"
    listener:  acks, each  seq (u64): every batch up to seq was handled

``hmac`` is HMAC-SHA256 over ``"<node> <epoch> <to-epoch>"`` with the cluster's secret
(kept in Redis: who can read Redis is inside the cluster anyway); ``to-epoch`` names the
receiving *process* (a node id reused by a new process is another epoch, and the
connector learns the new one from the NO answer).

Nothing is lost when a link breaks: the sender keeps every batch until it is acknowledged
(acks are sent lazily, every :data:`ACK_INTERVAL` or every :data:`ACK_EVERY` batches), and
when it is connected again it sends what the listener has not seen, oldest first; the
listener skips batches whose seq it has seen from that sender process (``OK <last>`` lets
the sender drop those at once). So every record arrives once, in order. A link down for
longer than ``hold`` seconds drops what it holds (counted) and the hub answers FAILURE
for that node until the link is back, as it does for Redis. A link whose acks stop for
``2 * op_timeout`` while batches wait is taken for dead (a half-open TCP connection) and
made again.

Sockets are plain non-blocking sockets driven with trio's ``wait_readable`` /
``wait_writable`` (as :mod:`.resp` does): a batch is written with one ``send`` at the end
of the scheduler pass that queued it, without a task switch.

Nodes on one host (``--workers``, or several servers on one machine) link over a local
socket instead of TCP: a listener also listens on a Linux abstract Unix socket named after
its process (:func:`local_name`) and says so in Redis, with the network namespace it is in
(:func:`host_id`: abstract sockets, like 127.0.0.1, are per namespace). A node that reads
the same id tries that socket first and falls back to TCP when it cannot connect there.
Same wire, same opening exchange; the kernel's work per batch is smaller (no TCP segments
and acks on loopback). A node given an address to advertise by hand (``link_advertise``:
a proxy, a NAT) offers no local socket.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import struct
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal, NamedTuple

import trio

from ._sockio import drain

log = logging.getLogger("rtmcall.server.redis.links")

_HEAD = struct.Struct("!QI")
_ACK = struct.Struct("!Q")
#: The listener acknowledges about this often while batches come (s; each ack wakes the
#: sender, and a sender holds what is not acknowledged)...
ACK_INTERVAL = 0.5
#: ... and at once after this many batches unacknowledged.
ACK_EVERY = 256
#: A batch larger than this is refused (a sender splits long queues into several).
MAX_BATCH = 16 * 1024 * 1024
#: A sender puts at most about this many bytes of records in one batch.
BATCH_BYTES = 256 * 1024
_HELLO_MAX = 512
#: The cluster's key is read from Redis again at most this often (s), when a link meets
#: another key (:class:`LinkKey`).
KEY_REREAD_GAP = 0.5
_ERRORS = (OSError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError)


def _refused(exc: BaseException) -> bool:
    """A connect refused (nothing listens there), as opposed to a timeout or an
    unreachable network; trio's connect reports each address tried in ``__cause__``."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    tried = getattr(exc.__cause__, "exceptions", ())
    return bool(tried) and all(isinstance(e, ConnectionRefusedError) for e in tried)


class LinkAddress(NamedTuple):
    """Where a node's link listener is, from its node key."""

    epoch: str
    host: str
    port: int
    #: The abstract socket to try first (same host and network namespace), or None.
    local: str | None = None


def local_name(epoch: str) -> str:
    """The abstract Unix socket (Linux) the link listener of process ``epoch`` listens on."""
    return f"\0rtmcall-link/{epoch}"


def host_id() -> str | None:
    """This host's boot and network namespace (who shares it can reach our abstract
    sockets), or None where there are no abstract sockets."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        netns = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return None
    return f"{boot}/{netns}" if boot else None


def mac(secret: bytes, node: str, epoch: str, to_epoch: str) -> str:
    return hmac.new(secret, f"{node} {epoch} {to_epoch}".encode(), hashlib.sha256).hexdigest()


def hello(secret: bytes, node: str, epoch: str, to_epoch: str) -> bytes:
    """The connector's opening line (see the module doc)."""
    return f"RTMLINK1 {node} {epoch} {to_epoch} {mac(secret, node, epoch, to_epoch)}\n".encode()


class LinkKey:
    """The cluster's key (``{prefix}:links`` in Redis) as this node knows it.

    A Redis restarted without persistence has lost it: the nodes running write theirs back
    (``SET NX``, with their registrations), and a node started meanwhile may have made a
    new one. So whoever meets the other key (refused for ``bad key``, or refusing a link
    for it) reads Redis again (``reread``, at most every :data:`KEY_REREAD_GAP` s) and
    takes the key found there; the one before is still accepted, so that links keep
    opening while the other nodes catch up.
    """

    def __init__(
        self, value: bytes, reread: Callable[[], Awaitable[bytes | None]] | None = None
    ) -> None:
        self.value = value
        #: The key taken before this one (still accepted from connectors).
        self.before: bytes | None = None
        self._reread = reread
        self._reread_at = -float("inf")

    def take(self, value: bytes | None) -> bool:
        """Use ``value`` from now on (read from Redis); whether it is another key."""
        if not value or value == self.value:
            return False
        self.before, self.value = self.value, value
        log.warning("the cluster's link key changed in Redis (restarted empty?): taken")
        return True

    async def fresh(self) -> bool:
        """Read the key in Redis again (not twice within :data:`KEY_REREAD_GAP` s):
        whether it changed."""
        now = trio.current_time()
        if self._reread is None or now - self._reread_at < KEY_REREAD_GAP:
            return False
        self._reread_at = now
        return self.take(await self._reread())

    def accepts(self, their_mac: str, node: str, epoch: str, to_epoch: str) -> bool:
        return any(
            hmac.compare_digest(their_mac, mac(key, node, epoch, to_epoch))
            for key in (self.value, self.before)
            if key
        )


class LinkRefused(ConnectionError):
    """The listener said NO (``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _read_line(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    """One line (without the newline) and what came after it."""
    buf = b""
    while b"\n" not in buf:
        data = await stream.receive_some(_HELLO_MAX)
        if not data:
            raise ConnectionError("the link closed during the opening exchange")
        buf += data
        if len(buf) > _HELLO_MAX and b"\n" not in buf:
            raise ConnectionError("the link's opening line is too long")
    line, _, rest = buf.partition(b"\n")
    return line, rest


async def answers_as(found: LinkAddress, *, node: str, epoch: str, key: LinkKey) -> bool:
    """Whether the process ``found`` names (its epoch) is running and reachable: its link
    listener (the local socket first, if it has one here, else TCP) answers the opening
    exchange as that process. Another process at that address (``NO epoch ...``), a
    refusal or garbage: no. (Silence waits: bound it with a timeout.)"""
    line_out = hello(key.value, node, epoch, found.epoch)
    for local in ([found.local] if found.local else []) + [None]:
        try:
            if local is not None:
                stream = await trio.open_unix_socket(local)
            else:
                stream = await trio.open_tcp_stream(found.host, found.port)
        except OSError:
            continue
        try:
            await stream.send_all(line_out)
            line, _ = await _read_line(stream)
        except (*_ERRORS, ConnectionError):
            continue
        finally:
            await trio.aclose_forcefully(stream)
        return line.split(maxsplit=1)[:1] == [b"OK"]
    return False


def _raw(stream: trio.SocketStream) -> socket.socket:
    """The stream's socket, as a plain non-blocking socket (the stream is given up)."""
    sock = socket.socket(fileno=stream.socket.detach())
    sock.setblocking(False)
    return sock


class _Incoming:
    """One accepted link: its socket, its sender process, what it was last told."""

    __slots__ = ("sock", "epoch", "acked", "acked_at", "unacked")

    def __init__(self, sock: socket.socket, epoch: bytes, acked: int) -> None:
        self.sock = sock
        self.epoch = epoch
        self.acked = acked
        #: trio time of the last ack sent (or of the opening exchange).
        self.acked_at = trio.current_time()
        self.unacked = 0


class LinkListener:
    """Accepts links from other nodes and hands each new batch to ``on_batch``.

    ``on_batch(records)`` gets the batch's body (records joined by ``\\n``), once per
    sender process and seq, in the order sent.
    """

    def __init__(
        self,
        *,
        node: str,
        epoch: str,
        key: LinkKey,
        on_batch: Callable[[bytes], None],
        handshake_timeout: float = 2.0,
        ack_interval: float = ACK_INTERVAL,
    ) -> None:
        self.node = node
        self.epoch = epoch
        self.key = key
        self.on_batch = on_batch
        self.handshake_timeout = handshake_timeout
        self.ack_interval = ack_interval
        #: Last seq handled, per sender process (its epoch).
        self.seen: dict[bytes, int] = {}
        self._due: set[_Incoming] = set()
        self._open: set[_Incoming] = set()
        self.port = 0
        #: The abstract socket it listens on too (:func:`local_name`), if any.
        self.local: str | None = None
        #: Counters (metrics, tests): batches handled, skipped as seen, links refused,
        #: acks sent.
        self.batches = 0
        self.duplicates = 0
        self.refused = 0
        self.acks = 0

    async def run(
        self,
        host: str,
        port: int = 0,
        *,
        local: bool = False,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` (and, with ``local``, on :func:`local_name` where the
        platform has abstract sockets); ``task_status`` gets the TCP port."""
        listeners: list[trio.SocketListener] = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        if local:
            name = local_name(self.epoch)
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                raw.bind(name)  # (abstract: no file, nothing blocks)
                raw.listen(socket.SOMAXCONN)
            except OSError as exc:
                raw.close()
                log.info("node %s: no local socket for node links: %r", self.node, exc)
            else:
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(raw)))
                self.local = name
        task_status.started(self.port)
        try:
            await trio.serve_listeners(self._serve, listeners)
        finally:
            for conn in list(self._open):
                self._close(conn)

    @property
    def acks_due(self) -> bool:
        """Some link has batches handled and not acknowledged yet."""
        return bool(self._due)

    def ack_due(self) -> None:
        """Acknowledge what was handled since the last ack on each link last acknowledged
        ``ack_interval`` ago or more (the hub's tick calls this)."""
        since = trio.current_time() - self.ack_interval
        for conn in list(self._due):
            if conn.acked_at <= since:
                self._ack(conn)

    def close_all(self) -> None:
        for conn in list(self._open):
            self._close(conn)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            with trio.fail_after(self.handshake_timeout):
                line, rest = await _read_line(stream)
                parts = line.split()
                if len(parts) != 5 or parts[0] != b"RTMLINK1":
                    raise LinkRefused("not a link")
                node, epoch, to_epoch, their_mac = (p.decode(errors="replace") for p in parts[1:])
                key = self.key
                if not key.accepts(their_mac, node, epoch, to_epoch) and not (
                    await key.fresh() and key.accepts(their_mac, node, epoch, to_epoch)
                ):
                    raise LinkRefused("bad key")
                if to_epoch != self.epoch:
                    raise LinkRefused(f"epoch {self.node} {self.epoch}")
                last = self.seen.get(parts[2], 0)
                await stream.send_all(b"OK %d\n" % last)
        except LinkRefused as exc:
            self.refused += 1
            log.info("refused a link from %s: %s", _peer(stream), exc.reason)
            with trio.move_on_after(0.5):
                try:
                    await stream.send_all(b"NO %s\n" % exc.reason.encode())
                except _ERRORS:
                    pass
            await trio.aclose_forcefully(stream)
            return
        except (*_ERRORS, ConnectionError, UnicodeError) as exc:
            log.info("a link from %s failed to open: %r", _peer(stream), exc)
            await trio.aclose_forcefully(stream)
            return
        conn = _Incoming(_raw(stream), parts[2], last)
        self._open.add(conn)
        try:
            await self._read(conn, bytearray(rest))
        finally:
            self._close(conn)

    async def _read(self, conn: _Incoming, buf: bytearray) -> None:
        sock = conn.sock
        seen = self.seen
        epoch = conn.epoch
        while True:
            pos = 0
            n = len(buf)
            while n - pos >= _HEAD.size:
                seq, size = _HEAD.unpack_from(buf, pos)
                if size > MAX_BATCH:
                    log.warning("a link sent a batch of %d bytes: closing it", size)
                    return
                end = pos + _HEAD.size + size
                if end > n:
                    break
                if seq <= seen.get(epoch, 0):
                    self.duplicates += 1
                else:
                    seen[epoch] = seq
                    self.batches += 1
                    try:
                        self.on_batch(bytes(buf[pos + _HEAD.size : end]))
                    except Exception:  # noqa: BLE001 - one bad batch must not stop the link
                        log.exception("a bad batch on a link (seq %d)", seq)
                    conn.unacked += 1
                pos = end
            if pos:
                del buf[:pos]
                if conn.unacked >= ACK_EVERY:
                    self._ack(conn)
                elif conn.unacked:
                    self._due.add(conn)
            try:
                await trio.lowlevel.wait_readable(sock)
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                return
            if not data:
                return
            buf += data

    def _ack(self, conn: _Incoming) -> None:
        self._due.discard(conn)
        last = self.seen.get(conn.epoch, 0)
        if last == conn.acked:
            conn.unacked = 0
            return
        try:
            sent = conn.sock.send(_ACK.pack(last))
        except (BlockingIOError, OSError):
            sent = 0
        if sent == _ACK.size:
            conn.acked = last
            conn.acked_at = trio.current_time()
            conn.unacked = 0
            self.acks += 1
        elif sent:
            self._close(conn)  # half an ack would garble the rest: the sender reconnects
        # (no write at all: tried again at the next tick)

    def _close(self, conn: _Incoming) -> None:
        self._due.discard(conn)
        self._open.discard(conn)
        if conn.sock.fileno() >= 0:
            trio.lowlevel.notify_closing(conn.sock)
            conn.sock.close()


def _peer(stream: trio.SocketStream) -> str:
    if stream.socket.family == socket.AF_UNIX:
        return "a local socket"
    try:
        host, port = stream.socket.getpeername()[:2]
    except (OSError, ValueError):
        return "?"
    return f"{host}:{port}"


class PeerLink:
    """The link from this node to one other node (its process ``to_epoch``).

    :meth:`send` is synchronous (the hub calls it at the end of a scheduler pass): it
    numbers the batch, keeps it until acknowledged and writes it at once if connected;
    otherwise a task connects (and reconnects, with a backoff) in ``nursery``.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        node: str,
        epoch: str,
        to_node: str,
        to_epoch: str,
        host: str,
        port: int,
        key: LinkKey,
        op_timeout: float,
        hold: float,
        local: str | None = None,
        lookup: Callable[[], Awaitable[LinkAddress | None | Literal[False]]] | None = None,
    ) -> None:
        self._nursery = nursery
        #: Reads again where the node is (None: no node key; False: Redis could not
        #: tell), after failed connects: a node restarted under the same name listens
        #: elsewhere.
        self._lookup = lookup
        self.node, self.epoch = node, epoch
        self.to_node, self.to_epoch = to_node, to_epoch
        self.host, self.port = host, port
        #: The abstract socket tried before TCP (the node is on this host), if any.
        self.local = local
        self._local_warned = False
        #: The last connect found nobody listening on that local socket: in this host's
        #: network namespace no process of that epoch listens, so it is gone (a refusal
        #: over TCP alone may be a wrong address, until a link was made there once).
        self._local_refused = False
        self.key = key
        self.op_timeout = op_timeout
        self.hold = hold
        self.seq = 0
        #: (seq, encoded batch, records in it), oldest first, until acknowledged.
        self.unacked: deque[tuple[int, bytes, int]] = deque()
        self._sock: socket.socket | None = None
        self._wbuf = bytearray()
        #: The socket the writer task is draining ``_wbuf`` into, if it runs.
        self._writer_sock: socket.socket | None = None
        self._connecting = False
        self._closed = False
        #: trio time since when something waits for the link to be (made) up again;
        #: None while it is up, or down with nothing to send (it is made on demand).
        self.down_since: float | None = None
        #: trio time of the last ack that moved, or when the queue stopped being empty.
        self._progress = trio.current_time()
        self._warned = False
        #: trio time since when that node's process is known to be gone: a connect to
        #: where it was linked before was refused, and its node key names no other process
        #: (a node that is killed, or stopped). None while it may be alive.
        self.gone_since: float | None = None
        #: Counters: batches sent (each once), sent again after a reconnect, records
        #: dropped after ``hold``, connections made.
        self.batches = 0
        self.resent = 0
        self.dropped = 0
        self.connects = 0

    @property
    def up(self) -> bool:
        return self._sock is not None

    @property
    def family(self) -> int | None:
        """The socket family of the link now up (AF_UNIX: a local socket), or None."""
        return None if self._sock is None else self._sock.family

    def stalled(self) -> bool:
        """Down for longer than ``hold``: sends to that node fail rather than wait."""
        since = self.down_since
        return since is not None and trio.current_time() - since > self.hold

    def send(self, body: bytes, records: int) -> None:
        if self._closed:
            self.dropped += records
            return
        self.seq += 1
        frame = _HEAD.pack(self.seq, len(body)) + body
        if not self.unacked:
            self._progress = trio.current_time()
        self.unacked.append((self.seq, frame, records))
        self.batches += 1
        if self._sock is not None:
            self._write(frame)
            return
        self._wait_for_link()

    def open(self) -> None:
        """Make the link now, with nothing to send yet (a node heard from: when it dies,
        the broken link finds it out at once)."""
        if self._closed or self._sock is not None:
            return
        self._wait_for_link()

    def _wait_for_link(self) -> None:
        """Something waits for the link (since now, unless it already did): connect."""
        if self.down_since is None:
            self.down_since = trio.current_time()
        if not self._connecting:
            self._start_connecting()

    def check(self) -> None:
        """The hub's tick: drop what waited past ``hold``; reset a link whose acks
        stopped (half-open); connect if something waits and nobody is connecting."""
        now = trio.current_time()
        if self.unacked and self.stalled():
            lost = sum(r for _, _, r in self.unacked)
            self.dropped += lost
            self.unacked.clear()
            log.error("node %s: link to node %s down for %g s, %d queued records dropped",
                      self.node, self.to_node, self.hold, lost)  # fmt: skip
        if self._sock is not None and self.unacked and now - self._progress > 2 * self.op_timeout:
            self._broken(ConnectionError(f"no ack for {2 * self.op_timeout:g} s"))
        if self.down_since is not None and self._sock is None and not self._connecting:
            self._start_connecting()

    def take_held(self) -> list[bytes]:
        """The records of every batch not acknowledged, oldest first (forgotten here)."""
        held = [r for _, frame, _ in self.unacked for r in frame[_HEAD.size :].split(b"\n")]
        self.unacked.clear()
        return held

    def close(self) -> None:
        self._closed = True
        self.down_since = None
        self._drop_socket()

    # --- internals --------------------------------------------------------------------

    def _write(self, data: bytes | bytearray) -> None:
        sock = self._sock
        assert sock is not None
        if self._wbuf:
            self._wbuf += data
            return
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._broken(exc)
            return
        if sent < len(data):
            self._wbuf += data[sent:]
            if self._writer_sock is not sock:
                self._writer_sock = sock
                self._nursery.start_soon(self._writer, sock)

    async def _writer(self, sock: socket.socket) -> None:
        try:
            await drain(sock, self._wbuf, lambda: self._sock is sock)
        except (OSError, ValueError, trio.ClosedResourceError) as exc:
            if self._sock is sock:
                self._broken(exc)
        finally:
            if self._writer_sock is sock:
                self._writer_sock = None

    async def _reader(self, sock: socket.socket) -> None:
        buf = bytearray()
        try:
            while self._sock is sock:
                await trio.lowlevel.wait_readable(sock)
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError("the other node closed the link")
                buf += data
                whole = len(buf) - len(buf) % _ACK.size
                if whole:
                    (last,) = _ACK.unpack_from(buf, whole - _ACK.size)
                    del buf[:whole]
                    self._acked(last)
        except (OSError, ValueError, trio.ClosedResourceError) as exc:
            if self._sock is sock:
                self._broken(exc)

    def _acked(self, last: int) -> None:
        unacked = self.unacked
        moved = False
        while unacked and unacked[0][0] <= last:
            unacked.popleft()
            moved = True
        if moved:
            self._progress = trio.current_time()

    def _start_connecting(self) -> None:
        self._connecting = True
        self._nursery.start_soon(self._connect_loop)

    async def _connect_loop(self) -> None:
        backoff = 0.05
        try:
            while not self._closed and self.down_since is not None:
                try:
                    await self._connect()
                    return
                except LinkRefused as exc:
                    words = exc.reason.split()
                    if len(words) == 3 and words[0] == "epoch" and words[1] == self.to_node:
                        # Another process has the node's name now: talk to that one (its
                        # local socket, if the last one had one, is named after it).
                        self.to_epoch, self.gone_since = words[2], None
                        if self.local is not None:
                            self.local = local_name(self.to_epoch)
                        continue
                    if exc.reason == "bad key" and await self.key.fresh():
                        continue  # (Redis restarted empty: the cluster's key is another)
                    self._note_failure(exc)
                except _ERRORS as exc:
                    self._note_failure(exc)
                    known = self.connects or self._local_refused
                    if _refused(exc) and known and self.gone_since is None:
                        # Nobody listens where that process did: it is gone, unless its
                        # name has a new process now.
                        found = await self._lookup() if self._lookup is not None else None
                        if found and found.epoch != self.to_epoch:
                            self._moved(found)
                            continue
                        if found is not False:  # (False: Redis could not tell; later)
                            self.gone_since = trio.current_time()
                            log.warning("node %s: node %s is gone (its link port refuses)",
                                        self.node, self.to_node)  # fmt: skip
                except (ConnectionError, ValueError) as exc:
                    self._note_failure(exc)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                if self._lookup is not None and backoff >= 0.4:
                    found = await self._lookup()
                    if found and found.epoch != self.to_epoch:
                        self._moved(found)
        finally:
            self._connecting = False

    def _moved(self, found: LinkAddress) -> None:
        """The node's name has a new process (epoch), listening there."""
        self.to_epoch, self.host, self.port, self.local = found
        self.gone_since = None

    def _note_failure(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning("node %s: cannot link to node %s at %s:%d: %r", self.node,
                        self.to_node, self.host, self.port, exc)  # fmt: skip

    async def _open(self) -> trio.SocketStream:
        """A connection to the node: its local socket if it has one here, else TCP (the
        TCP attempt's errors are the ones raised: a refusal there means gone)."""
        self._local_refused = False
        if self.local is not None:
            try:
                stream = await trio.open_unix_socket(self.local)
            except OSError as exc:
                # (Another network namespace after all, or that process is gone.)
                self._local_refused = isinstance(exc, ConnectionRefusedError)
                self._note_local_failure(exc)
            else:
                try:
                    stream.socket.getpeername()  # (a full backlog "connects" unconnected)
                    return stream
                except OSError as exc:
                    await trio.aclose_forcefully(stream)
                    self._note_local_failure(exc)
        return await trio.open_tcp_stream(self.host, self.port)

    def _note_local_failure(self, exc: BaseException) -> None:
        if not self._local_warned:
            self._local_warned = True
            log.info("node %s: cannot link to node %s over its local socket, trying TCP: %r",
                     self.node, self.to_node, exc)  # fmt: skip

    async def _connect(self) -> None:
        with trio.fail_after(self.op_timeout):
            stream = await self._open()
            try:
                line_out = hello(self.key.value, self.node, self.epoch, self.to_epoch)
                await stream.send_all(line_out)
                line, rest = await _read_line(stream)
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
        parts = line.split(maxsplit=1)
        if not parts or parts[0] != b"OK" or len(parts) != 2:
            await trio.aclose_forcefully(stream)
            reason = parts[1].decode(errors="replace") if len(parts) == 2 else line.decode()
            raise LinkRefused(reason)
        last = int(parts[1])
        if self._closed or rest:
            await trio.aclose_forcefully(stream)
            if rest:
                raise ConnectionError("the other node sent more than its answer")
            return
        sock = _raw(stream)
        self._acked(last)
        self._sock = sock
        self.connects += 1
        how = "a local socket" if sock.family == socket.AF_UNIX else f"{self.host}:{self.port}"
        if self._warned or self.connects > 1:
            log.info("node %s: linked to node %s again (%s)", self.node, self.to_node, how)
        else:
            log.debug("node %s: linked to node %s (%s)", self.node, self.to_node, how)
        self._warned = False
        self.down_since = self.gone_since = None
        self._progress = trio.current_time()
        self._nursery.start_soon(self._reader, sock)
        if self.unacked:
            self.resent += len(self.unacked)
            self._write(b"".join(frame for _, frame, _ in self.unacked))

    def _broken(self, exc: BaseException) -> None:
        if self._sock is None:
            return
        # (An idle link the other node closed: it stopped, or restarted; no loss.)
        level = logging.WARNING if self.unacked else logging.INFO
        log.log(level, "node %s: link to node %s broke: %r", self.node, self.to_node, exc)
        self._drop_socket()
        if not self._closed:
            # Made again at once, idle or not: a node that died is found out now (its port
            # refuses), not by the next message sent to it.
            self.down_since = trio.current_time()
            if not self._connecting:
                self._start_connecting()

    def _drop_socket(self) -> None:
        sock, self._sock = self._sock, None
        self._wbuf.clear()
        self._writer_sock = None
        if sock is not None and sock.fileno() >= 0:
            trio.lowlevel.notify_closing(sock)
            sock.close()


def advertised_host(bind: str, toward: tuple[str, int] | None = None) -> str:
    """The address other nodes use to reach a link listener bound to ``bind``: ``bind``
    itself, or for a wildcard (0.0.0.0, ::) the address this host reaches ``toward``
    from (Redis: the other nodes reach it too), else the host name's address."""
    if bind not in ("", "0.0.0.0", "::"):
        return bind
    if toward is not None:
        family = socket.AF_INET6 if bind == "::" else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(toward)  # (UDP: nothing is sent, the route is chosen)
                return probe.getsockname()[0]
        except OSError:
            pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def split_address(value: str, default_host: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); port 0 when absent.

    Raises:
      ValueError: a port that is not a number from 0 to 65535.
    """
    host, port = value, ""
    if value.startswith("["):
        inside, _, after = value[1:].partition("]")
        host, port = inside, after.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    if port and (not port.isdigit() or int(port) > 65535):
        raise ValueError(f"{value!r}: the port must be a number from 0 to 65535")
    return host or default_host, int(port or 0)
