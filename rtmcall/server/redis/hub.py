"""A hub shared by several server nodes through Redis (or Valkey).

Same contract as :class:`~rtmcall.server.hub.MemoryHub` (see ``hub.py``); nothing above the
hub knows which one it talks to. What lives where:

* ``{prefix}:u:{user}`` — the user's registration, ``"{node}\\t{session}\\t{state}"``, with a
  TTL of ``presence_ttl`` seconds. Every node refreshes its own users' keys every
  ``presence_ttl / 3`` (one pipeline for all of them); a node that dies stops refreshing
  and its users go OFFLINE on their own within the TTL.
* ``{prefix}:in:{node}`` — a node's **inbox**, a Redis Stream (bounded: ``MAXLEN ~
  inbox_len``): deliver a frame to one of my sessions, kick one, hand one over to another
  node, a handed-over session's state.
* ``{prefix}:ps`` — the **presence stream**: every registration change, with the node and
  session the user is on now, and every node's heartbeat (each entry ends with the
  writer's epoch), and a node found gone (``X``: its link port refused). Every node reads
  it, so each keeps a directory of where every user is (``_where``) and which nodes are
  alive.

Routing a peer message to another node costs no Redis round trip of its own: the node
looks the receiver up in its directory (a GET only on a miss, or when that node has not
been heard from for a TTL), answers the sender at once and queues the frame. Before trio
next sleeps (:mod:`.pass_end`, an instrument's ``before_io_wait``) whatever the wake-up
queued goes out as one batch per receiving node — over that node's link (:mod:`.links`;
:mod:`.node_links` decides which nodes have one), or as one XADD to its inbox stream, in
one ``send`` — without a task switch and without waiting for the replies (they are read
lazily, by the watchdog's tick or with the next reply a task waits for). Each node reads
its inbox and the presence stream with one blocking XREAD (up to ``read_count`` entries);
its reply is handled in the connection's reader task, which sends the next XREAD at once. A
wake-up costs more than a Redis command on a small machine, so the design counts wake-ups:
one per batch of received entries, none per sent one (``bench/README.md``, "Scale-out").

Counters for metrics: ``flushes``, ``entries_written``, ``reads``, ``entries_read``,
``duplicates``, ``dropped``, ``handovers_in``/``handovers_out`` here, ``commands_sent`` and
``connects`` on each :class:`~.resp.RedisConnection`.

Nothing is lost on a blip:

* **Reading** (:mod:`.streams`): from the id of the last entry handled, so entries
  written while the connection was down (a paused Redis, a cut connection) are read when
  it is back, in order, once.
* **Writing** (:mod:`.outbox`): a flush whose connection broke before its replies came (it
  may have been applied) is sent again, before anything newer, until Redis takes it; the
  watchdog resets a connection that leaves a command unanswered for ``2 * op_timeout``.
  Every entry carries ``{epoch}:{seq}`` (the sending process, a counter), and a receiver
  skips entries whose seq it has seen from that sender, so a resent entry is not delivered
  twice.
* After ``hold`` seconds without Redis, the queue is dropped (counted in ``dropped``) and
  sends answer FAILURE until Redis is back, so nothing waits forever.

What a Redis *restart* without persistence loses (see README): entries not yet read, the
registrations (re-created by the next refresh, within ``presence_ttl / 3``) and the
streams' history; sessions themselves live in the nodes and survive.

Resume on any node: a Login with ``resume=<session>`` that reaches a node that does not
hold the session calls :meth:`RedisHub.adopt`, which asks the node holding it (from the
registration) to hand it over: that node ends its copy without telling anyone it went
offline, sends the state (:mod:`.handover`) into the new node's inbox and forwards frames
that still arrive for the session there. A session whose node died is lost (a fresh login).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import trio

from rtmcall.engine.codes import ConnectionChangeReason, PeerMessageError, PeerOnlineState
from rtmcall.engine.frames import Presence, encode

from ..config import ServerConfig
from ..hub import Health, HubListener, HubUnavailable
from ..session import Session
from . import handover
from .links import PeerLink
from .node_links import NodeLinks
from .outbox import Outbox
from .pass_end import Ticker, installed
from .resp import REDIS_ERRORS, RedisAddress, RedisConnection, ReplyError, redacted
from .scripts import CLAIM, RELEASE, TAKE, Script
from .streams import BLOCK_MS, StreamReader

log = logging.getLogger("rtmcall.server.redis")

_OFFLINE = PeerOnlineState.OFFLINE
_ONLINE = PeerOnlineState.ONLINE
_UNREACHABLE_STATE = PeerOnlineState.UNREACHABLE
_OK = PeerMessageError.OK
_CACHED = PeerMessageError.CACHED_BY_SERVER
_PEER_UNREACHABLE = PeerMessageError.PEER_UNREACHABLE
_FAILURE = PeerMessageError.FAILURE
#: Where the writer's epoch is in an entry of the presence stream, by kind (a heartbeat
#: ``N node epoch``, a registration ``P node user state node session epoch``, a node's
#: answer to an ``X`` about itself: ``A node epoch``, "alive").
_EPOCH_AT = {b"N": 2, b"P": 6, b"A": 2}
#: The watchdog's tick (s) while something is to be tended, and while nothing is (both at
#: most half the op timeout: acks come well within a sender's patience).
_TICK = 0.1
_IDLE_TICK = 1.0
#: Redis back after a failure: the registrations are written again at once, but at most
#: this often (s) while it comes and goes.
_EARLY_REFRESH_GAP = 1.0


@dataclass(slots=True)
class _Where:
    """Where a user is, as this node last heard."""

    node: str
    sid: bytes
    state: PeerOnlineState


@dataclass(slots=True)
class _Fenced:
    """An OFFLINE from other nodes held back until each one's link has brought the batch
    named (``waits``: sender epoch, seq; the user's last messages), or until ``until``
    (trio time)."""

    origins: set[str]
    waits: list[tuple[bytes, int]]
    until: float


class _Handover:
    __slots__ = ("event", "session", "observed")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.session: Session | None = None
        self.observed: list[dict[str, Any]] = []


class RedisHub:
    """Presence and routing for one node of several, through Redis.

    Create it with :func:`open_redis_hub`, which runs its background tasks.

    Args:
      redis: the connection for commands (pipelined).
      reader: a second connection, for the blocking XREAD of the inbox.
      node_id: this node's name, unique among the nodes; random by default.
      presence_ttl: registration TTL in seconds (at most 60).
      poll_interval: how often watched remote users' registrations are re-read.
      op_timeout: a Redis operation slower than this counts as a failure.
      prefix: key prefix, to share a Redis between deployments.
      inbox_len: about how many entries a node's inbox keeps (MAXLEN ~).
      hold: how long (s) queued frames wait for an unreachable Redis before they are
        dropped and sends answer FAILURE.
      read_count: most stream entries read at once.
      links: send what goes to another node over a direct TCP link to it
        (:mod:`.links`) rather than through its Redis inbox, when that node has one.
      link_host, link_port: where this node's link listener listens (port 0: any free
        port); other nodes are told ``link_advertise`` (default: ``link_host``, or this
        host's address when that is 0.0.0.0 or ::) and the port.
      link_eagerly: link to every node heard from on the presence stream at once, rather
        than with the first record for it (a dead node's broken link is found out then).
    """

    def __init__(
        self,
        redis: RedisConnection,
        reader: RedisConnection,
        *,
        node_id: str | None = None,
        presence_ttl: float = 30.0,
        poll_interval: float | None = None,
        op_timeout: float = 2.0,
        prefix: str = "rtmcall",
        inbox_len: int = 10_000,
        hold: float = 10.0,
        read_count: int = 512,
        links: bool = True,
        link_host: str = "127.0.0.1",
        link_port: int = 0,
        link_advertise: str | None = None,
        link_eagerly: bool = True,
    ) -> None:
        if not 0 < presence_ttl <= 60:
            raise ValueError("presence_ttl must be more than 0 and at most 60 seconds")
        self.redis = redis
        self.node_id = node_id or secrets.token_hex(4)
        self._node_b = self.node_id.encode()
        #: This process: entries it writes carry it, with a counter (duplicates skipped).
        self.epoch = secrets.token_hex(6)
        self._epoch_b = self.epoch.encode()
        #: (Entries of the presence stream end with the writer's epoch: a node found gone
        #: is known back when a process with another epoch writes.)
        self._heartbeat = b"N\t%s\t%s" % (self._node_b, self._epoch_b)
        self.presence_ttl = presence_ttl
        self._ttl_ms = int(presence_ttl * 1000)
        self.poll_interval = poll_interval or presence_ttl / 3
        self.op_timeout = op_timeout
        self.prefix = prefix
        self.inbox_len = inbox_len
        self.hold = hold
        self.read_count = read_count
        self._inbox = f"{prefix}:in:{self.node_id}"
        self._in_prefix = f"{prefix}:in:"
        self.links = links
        self._link_eagerly = link_eagerly
        self._presence_stream = f"{prefix}:ps"
        #: Sessions on this node, by user.
        self._local: dict[str, Session] = {}
        #: user -> local sessions watching that user's presence.
        self._watchers: dict[str, set[Session]] = {}
        #: Last state pushed to local watchers, per watched user (absent: OFFLINE).
        self._known: dict[str, PeerOnlineState] = {}
        #: The directory: where each remote user is, from the presence stream.
        self._where: dict[str, _Where] = {}
        #: node -> trio time its last entry on the presence stream was read.
        self._heard: dict[str, float] = {}
        #: node -> the epoch of its process found gone (its link port refused, or another
        #: node said so on the presence stream): its users are OFFLINE here until a
        #: process of that name with another epoch is heard from.
        self._dead: dict[str, tuple[str, float]] = {}
        #: node -> the epoch of its process that last wrote on the presence stream.
        self._epochs: dict[str, str] = {}
        #: Session id -> (node it was handed over to, until when frames are forwarded).
        self._moved: dict[bytes, tuple[str, float]] = {}
        #: Users being subscribed to (first watcher, lookup in flight) -> state heard
        #: meanwhile.
        self._settling: dict[str, PeerOnlineState | None] = {}
        #: Users whose OFFLINE came through the presence stream ahead of their last
        #: messages, still on the way over a link (see :meth:`_on_presence`).
        self._fenced: dict[str, _Fenced] = {}
        #: Presence words waiting for nodes being decided (see :meth:`_announce`).
        self._announcing: list[tuple[bytes, bool]] = []
        #: Handovers this node is waiting for, by request id.
        self._handovers: dict[bytes, _Handover] = {}
        #: Sessions handed over here whose registration this node has not taken yet
        #: (it still names the old node: a refresh meanwhile must not take that for a
        #: login elsewhere).
        self._adopting: set[Session] = set()
        #: Users whose login here is taking the registration (one at a time per user,
        #: so that the later of two concurrent logins kicks the earlier, as Redis saw them).
        self._registering: dict[str, trio.Lock] = {}
        #: Session id -> when: a kick (``K``) that came from another node before this
        #: node's login of that session had taken the registration (the other login came
        #: after it in Redis): that login is kicked as soon as it has.
        self._kicked_early: dict[bytes, float] = {}
        self._config: ServerConfig | None = None
        #: What this node writes into Redis streams (queued, batched, resent).
        self._outbox = Outbox(
            redis,
            node_id=self.node_id,
            epoch=self.epoch,
            inbox_len=inbox_len,
            hold=hold,
            op_timeout=op_timeout,
            on_ok=self._ok,
            on_failed=self._failed,
        )
        #: How other nodes are reached: by link, or through their inbox (None: always
        #: through the inbox, ``links=False``).
        self._links: NodeLinks | None = None
        if links:
            self._links = NodeLinks(
                redis,
                self._outbox,
                node_id=self.node_id,
                epoch=self.epoch,
                prefix=prefix,
                op_timeout=op_timeout,
                hold=hold,
                key_ttl_ms=self._ttl_ms * 3,
                bind=(link_host, link_port),
                advertise=link_advertise,
                on_batch=self._on_link_batch,
                is_dead=self._dead.__contains__,
                is_gone=self._gone,
                ok=self._ok,
                failed=self._failed,
            )
            self._outbox.take_links = self._links.send
        #: Reads this node's inbox and the presence stream (:mod:`.streams`).
        self._streams = StreamReader(
            redis,
            reader,
            inbox=self._inbox,
            presence=self._presence_stream,
            node_id=self.node_id,
            op_timeout=op_timeout,
            read_count=read_count,
            on_inbox=self._on_inbox,
            on_presence=self._on_presence,
            on_back=self._read_again,
            ok=self._ok,
            failed=self._failed,
        )
        #: The watchdog's tick (it may ride on another wake-up: :mod:`.pass_end`).
        self._ticker = Ticker()
        self._take = Script(TAKE)
        self._claim = Script(CLAIM)
        self._release = Script(RELEASE)
        self._redis_ok = True
        #: Set when Redis answers again after a failure: the registrations (gone if it
        #: restarted empty), the node key and a heartbeat are written at once.
        self._refresh_soon = trio.Event()
        self._last_error = ""
        self._nursery: trio.Nursery | None = None
        #: Counters (metrics): frames and kicks received for sessions no longer here, and
        #: records for nodes that died (``dropped`` adds the outbox's: given up after
        #: ``hold``); records received over links; handovers. (``flushes`` and
        #: ``entries_written`` are the outbox's; ``reads`` and ``duplicates`` the
        #: stream reader's.)
        self._dropped = 0
        self._link_records = 0
        self.handovers_out = 0
        self.handovers_in = 0
        #: Redis operations that succeeded / failed (for the metrics).
        self.ops = 0
        self.errors = 0
        #: Told of peer messages other nodes delivered here and of remote users going
        #: OFFLINE (the server's invitation observer, ``ops.Operations``), if set.
        self.listener: HubListener | None = None

    @property
    def dropped(self) -> int:
        """Frames given up: for sessions no longer here, for a node that died, and what
        waited for Redis longer than ``hold`` (the outbox's)."""
        links = 0 if self._links is None else self._links.dropped
        return self._dropped + self._outbox.dropped + links

    @property
    def link_peers(self) -> list[PeerLink]:
        """The links to other nodes (for the metrics)."""
        return [] if self._links is None else list(self._links.peers.values())

    @property
    def reads(self) -> int:
        """XREAD replies handled."""
        return self._streams.reads

    @property
    def entries_read(self) -> int:
        """Stream entries read, and records received over links."""
        return self._streams.entries + self._link_records

    @property
    def duplicates(self) -> int:
        """Stream entries skipped: written again after a failed flush."""
        return self._streams.duplicates

    @property
    def ticks(self) -> int:
        """The watchdog's ticks."""
        return self._ticker.ticks

    @property
    def ticks_early(self) -> int:
        """The watchdog's ticks that ran early, with another wake-up."""
        return self._ticker.early

    @property
    def flushes(self) -> int:
        return self._outbox.flushes

    @property
    def entries_written(self) -> int:
        return self._outbox.entries_written

    # --- Hub protocol ---------------------------------------------------------------

    async def register(self, session: Session) -> Session | None:
        user = session.user
        lock = self._registering.get(user)
        if lock is None:
            lock = self._registering[user] = trio.Lock()
        try:
            async with lock:
                return await self._register(session)
        finally:
            if not lock.locked() and self._registering.get(user) is lock:
                del self._registering[user]

    async def _register(self, session: Session) -> Session | None:
        previous = self._local.get(session.user)
        try:
            with trio.fail_after(self.op_timeout):
                old = await self._take(
                    self.redis, [self._key(session.user)], [self._value(session), self._ttl_ms]
                )
        except REDIS_ERRORS as exc:
            self._failed(exc)
            raise HubUnavailable(f"presence store unavailable: {exc!r}") from exc
        self._ok()
        self._local[session.user] = session
        if previous is not None and previous is not session:
            previous.kick(
                ConnectionChangeReason.REMOTE_LOGIN,
                f"user {session.user!r} logged in from another connection",
            )
        else:
            previous = None
        if self._kicked_early and self._kicked_early.pop(session.id.encode(), None):
            session.kick(
                ConnectionChangeReason.REMOTE_LOGIN,
                f"user {session.user!r} logged in on another node",
            )
        # The user is here now, not where the directory said; and what this node followed
        # of their invitations on the node of the session this login kicks was ended (and
        # logged) there at the kick.
        self._where.pop(session.user, None)
        if old is not None and self.listener is not None:
            self.listener.user_left(session.user)
        user_b = session.user.encode()
        if old is not None:
            node, sid, _ = self._parse(old)
            if node != self.node_id:
                # The older session lives on another node: ask that node to kick it.
                self._queue(self._inbox_of(node), b"K\t%s\t%s" % (user_b, sid))
            # The old session is gone, with its invitations: its peers must hear that
            # (OFFLINE) even though the user is back at once (ONLINE just after).
            self._announce(session.user, _OFFLINE, sid)
        if not session.ended:  # (kicked early: the other node's login is the user's)
            self._announce(session.user, session.online_state, session.id.encode())
        return previous

    async def unregister(self, session: Session) -> None:
        self._drop_watches(session)
        if self._local.get(session.user) is not session:
            return
        del self._local[session.user]
        try:
            with trio.fail_after(self.op_timeout):
                released = await self._release(
                    self.redis, [self._key(session.user)], [self._prefix_of(session)]
                )
        except REDIS_ERRORS as exc:
            # The key expires by itself within the TTL; pollers will see it go.
            self._failed(exc)
            self._announce(session.user, _OFFLINE, session.id.encode())
            return
        if released:
            self._announce(session.user, _OFFLINE, session.id.encode())
        # else: another session (on another node) owns the user now: it stays ONLINE.

    async def update(self, session: Session) -> None:
        if self._local.get(session.user) is not session:
            return
        await self._refresh([session])
        if self._local.get(session.user) is session:
            self._announce(session.user, session.online_state, session.id.encode())

    async def deliver(self, to: str, data: bytes) -> PeerMessageError:
        local = self._local.get(to)
        if local is not None:
            return local.push_message(data)
        where = self._where.get(to)
        if where is None or not self._alive(where.node):
            known = where
            try:
                where = await self._lookup(to)
            except REDIS_ERRORS as exc:
                self._failed(exc)
                if known is None:
                    return _FAILURE
                # Not heard from that node lately, but neither from Redis: a blip, most
                # likely; the frame waits for Redis like any other.
                where = known
            if where is None:
                return _PEER_UNREACHABLE
        if where.node == self.node_id:
            return _PEER_UNREACHABLE  # stale: not here any more
        if self._gone(where.node):
            return _PEER_UNREACHABLE  # that node died; its registrations will expire
        stalled = None if self._links is None else self._links.stalled(where.node)
        if self._outbox.stalled() if stalled is None else stalled:
            return _FAILURE
        self._queue(self._inbox_of(where.node), b"D\t%s\t%s\t%s" % (to.encode(), where.sid, data))
        return _CACHED if where.state == _UNREACHABLE_STATE else _OK

    async def presence(self, users: list[str]) -> dict[str, int]:
        states: dict[str, int] = {}
        remote = []
        for user in users:
            session = self._local.get(user)
            if session is not None:
                states[user] = int(session.online_state)
            else:
                remote.append(user)
        if remote:
            try:
                found = await self._lookup_many(remote)
            except REDIS_ERRORS as exc:
                self._failed(exc)
                raise HubUnavailable(f"presence store unavailable: {exc!r}") from exc
            for user, where in zip(remote, found, strict=True):
                states[user] = int(where.state) if where is not None else int(_OFFLINE)
        return {user: states[user] for user in users}

    async def subscribe(self, session: Session, users: list[str]) -> dict[str, int]:
        # Users nobody here watched yet: a change heard during the lookup is not pushed
        # (the answer says it instead), so the subscriber never gets the state twice.
        fresh = [u for u in users if u not in self._watchers and u not in self._settling]
        for user in users:
            session.subscriptions.add(user)
            self._watchers.setdefault(user, set()).add(session)
        for user in fresh:
            self._settling[user] = None
        try:
            states = await self.presence(users)
        finally:
            heard = {u: self._settling.pop(u, None) for u in fresh}
        for user, state in heard.items():
            if state is not None:
                states[user] = int(state)
        for user, state in states.items():
            if user not in self._known and state != _OFFLINE:
                self._known[user] = PeerOnlineState(state)
        return states

    async def unsubscribe(self, session: Session, users: list[str]) -> None:
        for user in users:
            session.subscriptions.discard(user)
            self._unwatch(session, user)

    async def health(self) -> Health:
        try:
            with trio.fail_after(self.op_timeout):
                await self.redis.call("PING")
        except REDIS_ERRORS as exc:
            self._failed(exc)
        else:
            self._ok()
        ok = self._redis_ok and self._streams.listening and not self._outbox.stalled()
        why = self._last_error or "not reading its inbox"
        detail = f"redis hub node {self.node_id}: " + (
            f"{len(self._local)} local sessions" if ok else f"unhealthy ({why})"
        )
        return Health(ok, detail)

    async def adopt(self, user: str, session_id: str, config: ServerConfig) -> Session | None:
        """Resume on any node: take over session ``session_id`` of ``user`` from the node
        that holds it. The session (detached, registered here) or None when no node has
        it (expired, ended, its node dead or not answering within ``op_timeout``)."""
        self._config = config
        try:
            where = await self._lookup(user)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return None
        sid = session_id.encode()
        if where is None or where.sid != sid or where.node == self.node_id:
            return None
        if self._gone(where.node):
            return None  # (the session died with it)
        request = secrets.token_hex(6).encode()
        slot = self._handovers[request] = _Handover()
        self._queue(
            self._inbox_of(where.node),
            b"H\t%s\t%s\t%s\t%s" % (user.encode(), sid, self._node_b, request),
        )
        taken = False
        try:
            with trio.move_on_after(self.op_timeout):
                await slot.event.wait()
            del self._handovers[request]
            session = slot.session
            if session is None:
                return None
            try:
                with trio.fail_after(self.op_timeout):
                    await self._take(
                        self.redis, [self._key(user)], [self._value(session), self._ttl_ms]
                    )
            except REDIS_ERRORS as exc:
                self._failed(exc)
                return None
            taken = True
        finally:
            # (Cancelled from outside, or the registration not taken: not ours after all.)
            self._handovers.pop(request, None)
            session = slot.session
            if session is not None:
                self._adopting.discard(session)
                if not taken and self._local.get(user) is session:
                    del self._local[user]
        self.handovers_in += 1
        users = list(session.subscriptions)
        for watched in users:
            self._watchers.setdefault(watched, set()).add(session)
        try:
            states = await self.presence(users) if users else {}
        except HubUnavailable:
            states = {}
        for watched, state in states.items():
            if watched not in self._known and state != _OFFLINE:
                self._known[watched] = PeerOnlineState(state)
        log.info("node %s: session %s of %r handed over from node %s", self.node_id,
                 session_id[:8], user, where.node)  # fmt: skip
        return session

    async def aclose(self) -> None:
        """Release every local registration (one pipeline) and tell the others the users
        went OFFLINE, then write what is queued."""
        sessions = list(self._local.values())
        for session in sessions:
            self._drop_watches(session)
        self._local.clear()
        commands: list[tuple[Any, ...]] = [
            self._release.command([self._key(s.user)], [self._prefix_of(s)]) for s in sessions
        ]
        links = self._links
        if links is not None and links.node_value:
            commands.append(("DEL", links.node_key(self.node_id), links.local_key(self.node_id)))
        replies: list[Any] = []
        try:
            with trio.fail_after(self.op_timeout):
                replies = await self.redis.pipeline(commands)
                if any(isinstance(r, ReplyError) for r in replies):
                    await self.redis.call("SCRIPT", "LOAD", self._release.text)
                    replies = await self.redis.pipeline(commands)
        except REDIS_ERRORS as exc:
            self._failed(exc)  # the keys expire by themselves within the TTL
        for session, released in zip(sessions, replies, strict=False):
            if released == 1:
                self._announce(session.user, _OFFLINE, session.id.encode())
        await self.drain()
        if links is not None:
            links.close()

    async def drain(self) -> None:
        """Wait until everything queued was written (or ``op_timeout`` passed)."""
        with trio.move_on_after(self.op_timeout):
            while (
                self._announcing
                or not self._outbox.empty
                or (self._links is not None and self._links.pending())
            ):
                self._outbox.wake_flusher()
                await trio.sleep(0.005)

    # --- background tasks -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read this node's inbox and the presence stream, flush what is queued, refresh
        registrations and poll watched users, until cancelled. Reconnects by itself."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self._links is not None:
                await self._links.open(nursery)
            await nursery.start(self._streams.run)
            nursery.start_soon(self._outbox.flush_loop)
            # (What a wake-up queued is written before trio next sleeps.)
            await nursery.start(installed, self._outbox, self._ticker, self.node_id)
            nursery.start_soon(self._watchdog)
            nursery.start_soon(self._refresh_loop)
            nursery.start_soon(self._poll_loop)
            task_status.started()

    def _read_again(self) -> None:
        """Reading works again after a failure: watched users are read again (what
        changed meanwhile)."""
        if self._nursery is not None:
            self._nursery.start_soon(self._poll_presence)

    def _on_inbox(self, record: bytes) -> None:
        op, _, rest = record.partition(b"\t")
        if op == b"D" or op == b"F":
            user_b, sid, frame = rest.split(b"\t", 2)
            session = self._local.get(user_b.decode())
            if session is not None and session.id.encode() == sid:
                session.push_message(frame)
                if self.listener is not None:
                    self.listener.remote_message(frame, session)
                return
            moved = self._moved.get(sid)
            if moved is not None:
                self._queue(self._inbox_of(moved[0]), b"F\t" + rest)
            elif op == b"F":
                # Forwarded for a session that is not here: its hand-over came after
                # this node had given up waiting (the user logged in afresh), or the user
                # logged in again since. Its frames went with it, as on one node; never
                # into another session, behind what that one was sent since.
                self._dropped += 1
            elif session is not None and not session.ended:
                session.push_message(frame)  # the user logged in here again meanwhile
                if self.listener is not None:
                    self.listener.remote_message(frame, session)
            else:
                assert self._nursery is not None
                self._nursery.start_soon(self._forward, user_b, frame)
        elif op == b"K":
            user_b, _, sid = rest.partition(b"\t")
            session = self._local.get(user_b.decode())
            if session is not None and session.id.encode() == sid:
                session.kick(
                    ConnectionChangeReason.REMOTE_LOGIN,
                    f"user {session.user!r} logged in on another node",
                )
            elif user_b.decode() in self._registering:
                # (its login here has not taken the registration yet: kicked when it has)
                now = trio.current_time()
                early = self._kicked_early
                for old_sid in [k for k, at in early.items() if at < now - 10 * self.op_timeout]:
                    del early[old_sid]
                early[sid] = now
        elif op == b"H":
            user_b, sid, node_b, request = rest.split(b"\t")
            self._hand_over(user_b.decode(), sid, node_b.decode(), request)
        elif op == b"S":
            request, _, state = rest.partition(b"\t")
            self._take_over(request, state)

    async def _forward(self, user_b: bytes, frame: bytes) -> None:
        """A frame for a session that is not here (the sender's directory was stale): send
        it to where the user is now, once (as F, never forwarded again)."""
        try:
            where = await self._lookup(user_b.decode())
        except REDIS_ERRORS:
            where = None
        if where is None or where.node == self.node_id:
            self._dropped += 1  # the session ended: the sender's timers recover
            return
        self._queue(self._inbox_of(where.node), b"F\t%s\t%s\t%s" % (user_b, where.sid, frame))

    def _hand_over(self, user: str, sid: bytes, node: str, request: bytes) -> None:
        """Another node resumes ``sid``: send it the state, end ours quietly."""
        session = self._local.get(user)
        reply = self._inbox_of(node)
        if session is None or session.id.encode() != sid or session.ended:
            self._queue(reply, b"S\t%s\t" % request)
            return
        observed = self.listener.session_moved(session, node) if self.listener else None
        self._queue(reply, b"S\t%s\t%s" % (request, handover.snapshot(session, observed)))
        self.handovers_out += 1
        window = self._config.resume_window if self._config else 10.0
        self._moved[sid] = (node, trio.current_time() + max(window, self.presence_ttl) + 5)
        # Ended without a word to its watchers (it lives on) nor a release (the new node
        # takes the registration).
        del self._local[user]
        self._drop_watches(session)
        session.ended = True
        session.end_reason = f"resumed on node {node}"
        if session.link is not None:
            link = session.link
            session.link = None
            link.cut("superseded")
        elif session.reaper is not None:
            session.reaper.cancel()
        log.info("node %s: session %s of %r handed over to node %s", self.node_id,
                 session.id[:8], user, node)  # fmt: skip

    def _take_over(self, request: bytes, state: bytes) -> None:
        slot = self._handovers.get(request)
        if slot is None or not state:
            if slot is not None:
                slot.event.set()
            return
        config = self._config or ServerConfig()
        session, slot.observed = handover.restore(state, config)
        previous = self._local.get(session.user)
        if previous is not None and previous is not session:
            previous.kick(
                ConnectionChangeReason.REMOTE_LOGIN,
                f"user {session.user!r} resumed another session",
            )
        # At once, so that frames forwarded behind the state find it (and its caller's
        # invitations are observed here from now on: the forwarded answers among them).
        self._local[session.user] = session
        self._adopting.add(session)
        if self.listener is not None:
            self.listener.session_adopted(session, slot.observed)
        slot.session = session
        slot.event.set()

    def _on_presence(self, record: bytes) -> None:
        parts = record.split(b"\t")
        op = parts[0]
        origin = parts[1].decode()
        self._heard[origin] = trio.current_time()
        at = _EPOCH_AT.get(op)
        epoch = parts[at].decode() if at is not None and len(parts) > at else None
        if epoch is not None:
            if origin != self.node_id and self._epochs.get(origin) != epoch:
                self._new_process(origin, op)
            self._epochs[origin] = epoch
        if origin in self._dead:
            if op == b"P" and epoch == self._dead[origin][0]:
                return  # a late registration of the process that went
            self._maybe_back(origin, epoch, op)
        if self._link_eagerly and self._links is not None and origin not in self._dead:
            self._links.reach(origin)
        if op == b"X" and len(parts) == 4:
            node, gone = parts[2].decode(), parts[3].decode()
            if node == self.node_id:
                if gone == self.epoch:
                    # Taken for gone, alive: say so (our link port refused someone).
                    self._queue(self._presence_stream, b"A\t%s\t%s" % (self._node_b, self._epoch_b))
                return
            # Another node found that node's process gone (its link port refused); not
            # if our link to it is up, or we know of a newer process of it.
            peer = self._peer(node)
            known = {self._epochs.get(node, gone), peer.to_epoch if peer is not None else gone}
            if node not in self._dead and known == {gone} and not (peer is not None and peer.up):
                self._node_gone(node, gone)
            return
        if op != b"P" or origin == self.node_id:
            return  # a heartbeat, or our own (pushed to our watchers when announced)
        user = parts[2].decode()
        state = PeerOnlineState(int(parts[3]))
        node, sid = parts[4].decode(), parts[5]
        if state == _OFFLINE:
            where = self._where.get(user)
            if where is not None and (not sid or where.sid == sid):
                del self._where[user]
            if self.listener is not None:
                self.listener.user_left(user)
            if len(parts) > 7 and self._hold_back(user, origin, parts[6], parts[7]):
                return
        else:
            self._where[user] = _Where(node, sid, state)
            if node in self._dead:
                return  # (said OFFLINE when it went; told again once it is back)
        self._push_presence(user, state)

    def _new_process(self, node: str, op: bytes) -> None:
        """An entry of a process of ``node`` not heard before (started, or restarted)."""
        if op == b"N":
            # Its first heartbeat: ours now, so that it knows of this node at once, not at
            # our next heartbeat (one for all the new ones heard in this wake-up).
            queued = self._outbox.out.get(self._presence_stream)
            if queued is None or self._heartbeat not in queued:
                self._queue(self._presence_stream, self._heartbeat)
        if self._links is not None:
            # How to reach it is decided again (a node restarted with links where the
            # last process had none); what went to the old one's inbox went with it.
            self._links.via_redis.discard(node)

    def _hold_back(self, user: str, origin: str, epoch: bytes, fence: bytes) -> bool:
        """An OFFLINE from ``origin`` that names (in ``fence``, ``node=epoch:seq,...``)
        the last batch it had sent us over its link: if that batch has not been handled
        here yet, the user's last messages (a hang-up, a refusal) are still on the way;
        watchers hear the OFFLINE after them, as on one node (or after ``op_timeout``)."""
        if self._links is None or user not in self._watchers:
            return False
        mine = b"%s=%s:" % (self._node_b, self._epoch_b)
        for item in fence.split(b","):
            if not item.startswith(mine) or not (seq_b := item[len(mine) :]).isdigit():
                continue
            seq = int(seq_b)
            if seq <= self._links.received(epoch):
                return False  # (the batch came already)
            until = trio.current_time() + self.op_timeout
            held = self._fenced.get(user)
            if held is None:
                self._fenced[user] = _Fenced({origin}, [(epoch, seq)], until)
            else:  # (held already: told once both have come)
                held.origins.add(origin)
                held.waits.append((epoch, seq))
                held.until = until
            return True
        return False

    def _release_fenced(self, origin: str | None = None) -> None:
        """Tell the OFFLINEs held back whose batch came, or whose wait is over (all of
        ``origin``'s: that node is gone)."""
        now = trio.current_time()
        links = self._links
        for user, held in list(self._fenced.items()):
            if (
                origin in held.origins
                or now >= held.until
                or links is None
                or all(links.received(epoch) >= seq for epoch, seq in held.waits)
            ):
                self._push_fenced(user)

    def _push_fenced(self, user: str) -> None:
        if self._fenced.pop(user, None) is not None:
            self._tell_presence(user, _OFFLINE)

    def _node_gone(self, node: str, epoch: str) -> None:
        """``node``'s process ``epoch`` is gone: what was held for it is lost, sends to
        its users answer PEER_UNREACHABLE, and local watchers of its users are told they
        are OFFLINE now (their registrations in Redis expire within the TTL)."""
        self._dead[node] = (epoch, trio.current_time())
        self._forget_node(node)
        if self._fenced:
            self._release_fenced(node)
        users = [user for user, where in self._where.items() if where.node == node]
        if self.listener is not None:
            self.listener.node_gone(node, users)  # (before their OFFLINE: that is a logout)
        for user in users:
            del self._where[user]
            self._push_presence(user, _OFFLINE)

    def _forget_node(self, node: str) -> None:
        """Stop reaching ``node`` (dead): its link is closed and what it held is counted
        lost; a process of that name is asked again how to reach it."""
        if self._links is not None:
            self._links.forget(node)

    def _peer(self, node: str) -> PeerLink | None:
        return None if self._links is None else self._links.peers.get(node)

    def _maybe_back(self, node: str, epoch: str | None, op: bytes) -> None:
        """An entry of a node taken for gone: written by a process with another epoch (a
        restart under that name), or its "alive" answer to the ``X`` about it, it is back;
        a late entry of the old one changes nothing. (An entry without an epoch counts
        only well after the node went.)"""
        dead_epoch, since = self._dead[node]
        if op == b"A":
            back = True
        elif epoch is not None:
            back = epoch != dead_epoch
        else:
            back = op != b"X" and trio.current_time() - since > 2
        if not back:
            return
        del self._dead[node]
        log.info("node %s: node %s is back (a new process)", self.node_id, node)
        for user, where in list(self._where.items()):
            if where.node == node:
                self._push_presence(user, where.state)

    def _refused_for_good(self, node: str, peer: PeerLink) -> bool:
        """The link's process is gone, and no newer process of that name was heard."""
        if peer.gone_since is None:
            return False
        return self._epochs.get(node, peer.to_epoch) == peer.to_epoch

    # --- links (node_links.py) ------------------------------------------------------

    def _on_link_batch(self, body: bytes) -> None:
        for record in body.split(b"\n"):
            self._link_records += 1
            try:
                self._on_inbox(record)
            except Exception:  # noqa: BLE001 - one bad record must not stop the link
                log.exception("node %s: bad record on a link %r", self.node_id, record[:80])
        if self._fenced:
            self._release_fenced()

    def _tend_links(self) -> None:
        """The watchdog's tick: acks due, links that stalled or went quiet, links to
        nodes that died (forgotten: a new process of that name is asked again)."""
        links = self._links
        if links is None:
            return
        links.ack_due()
        for node in links.nodes():
            peer = links.peers.get(node)
            if peer is not None and peer.gone_since is not None:
                if not self._refused_for_good(node, peer):
                    # A new process has the name (heard meanwhile): the link goes on
                    # trying, and finds it through the node key.
                    peer.gone_since = None
                    continue
                self._node_gone(node, peer.to_epoch)
                self._queue(self._presence_stream, b"X\t%s\t%s\t%s" % (
                    self._node_b, node.encode(), peer.to_epoch.encode()))  # fmt: skip
                continue
            if self._gone(node):
                self._forget_node(node)
                continue
            links.tend(node)

    async def _watchdog(self) -> None:
        """Reset a connection that has left a command unanswered too long: dead, not
        slow (a paused Redis that runs again within the limit answers everything)."""
        limit = 2 * self.op_timeout
        busy, idle = min(_TICK, self.op_timeout / 2), min(_IDLE_TICK, self.op_timeout / 2)
        while True:
            interval = busy if self._tending() else idle
            await self._ticker.wait(interval)
            self.redis.harvest()  # the XADDs' replies (read lazily: no wake-up for each)
            self._tend_links()
            if self._fenced:
                self._release_fenced()
            if self.redis.unanswered_for() > limit:
                log.warning("node %s: no answer from redis for %g s, reconnecting",
                            self.node_id, limit)  # fmt: skip
                self.redis.reset()
            if self._streams.conn.unanswered_for() > limit + BLOCK_MS / 1000:
                self._streams.conn.reset()

    def _tending(self) -> bool:
        """Something for the watchdog to tend soon: replies to read, acks to send, batches
        waiting for theirs, a link down. (An idle node ticks rarely: each wake-up of a
        sleeping process costs ~0.4 ms of CPU here.)"""
        if self.redis.waiting or self._outbox.out or self._outbox.retry or self._fenced:
            return True
        return self._links is not None and self._links.busy()

    async def _refresh_loop(self) -> None:
        last = trio.current_time()
        while True:
            with trio.move_on_at(last + self.presence_ttl / 3):
                await self._refresh_soon.wait()
                # Early (Redis is back): at most one a second, however often it flaps.
                await trio.sleep_until(last + _EARLY_REFRESH_GAP)
            self._refresh_soon = trio.Event()
            now = last = trio.current_time()
            self._moved = {s: m for s, m in self._moved.items() if m[1] > now}
            self._queue(self._presence_stream, self._heartbeat)
            sessions = [s for s in self._local.values() if not s.ended]
            extra: list[tuple[Any, ...]] = [("PEXPIRE", self._inbox, self._ttl_ms * 20)]
            if self._links is not None and self._links.node_value:
                extra += self._links.key_commands()
            await self._refresh(sessions, extra=extra)

    async def _refresh(
        self, sessions: list[Session], extra: list[tuple[Any, ...]] | None = None
    ) -> None:
        """Renew (or re-create, after a Redis outage) the registrations in one pipeline,
        unless another session took the user over meanwhile: then that one is kicked."""
        commands = [
            self._claim.command(
                [self._key(s.user)], [self._prefix_of(s), self._value(s), self._ttl_ms]
            )
            for s in sessions
        ]
        commands += extra or []
        if not commands:
            return
        # (A session handed over here meanwhile: its claim fails until this node took the
        # registration; as the claims were sent, whatever the order the replies wake us.)
        adopting = [s in self._adopting for s in sessions]
        try:
            with trio.fail_after(self.op_timeout):
                replies = await self.redis.pipeline(commands)
                if any(isinstance(r, ReplyError) and str(r).startswith("NOSCRIPT")
                       for r in replies):  # fmt: skip
                    await self.redis.call("SCRIPT", "LOAD", self._claim.text)
                    replies = await self.redis.pipeline(commands)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return
        self._ok()
        for session, ours, moving in zip(sessions, replies, adopting, strict=False):
            if ours == 0 and not moving and self._local.get(session.user) is session:
                session.kick(
                    ConnectionChangeReason.REMOTE_LOGIN,
                    f"user {session.user!r} logged in on another node",
                )

    async def _poll_loop(self) -> None:
        while True:
            await trio.sleep(self.poll_interval)
            await self._poll_presence()

    async def _poll_presence(self) -> None:
        """Re-read watched remote users: catches expired registrations (a dead node)."""
        users = [u for u in self._watchers if u not in self._local]
        if not users:
            return
        before = {u: self._where.get(u) for u in users}
        try:
            states = await self.presence(users)
        except HubUnavailable:
            return
        for user, state in states.items():
            if user in self._local or user in self._fenced:
                continue  # (a held-back OFFLINE is told after the user's last messages)
            was = before.get(user)
            if state == _OFFLINE and was is not None and not self._gone(was.node):
                # Released by a node that is up: its word on the presence stream comes
                # after the user's last messages; the next poll tells it if it does not.
                continue
            self._push_presence(user, PeerOnlineState(state))

    # --- helpers --------------------------------------------------------------------

    def _queue(self, stream: str, record: bytes) -> None:
        """Queue one record: written at the end of this scheduler pass (:mod:`.pass_end`),
        with everything else queued in it."""
        self._outbox.queue(stream, record)

    def _gone(self, node: str) -> bool:
        """Dead: two of ``node``'s heartbeats missed while ours came back through the
        stream (so our reading works: during a blip, nobody is judged); or found gone at
        once: its link port refuses, and its node key names no other process."""
        if node in self._dead:
            return True
        peer = self._peer(node)
        if peer is not None and self._refused_for_good(node, peer):
            return True
        me = self._heard.get(self.node_id)
        if me is None or not self._streams.listening:
            return False
        heard = max(self._heard.get(node, self._streams.since), self._streams.since)
        return me - heard > self.presence_ttl * 0.7

    def _alive(self, node: str) -> bool:
        heard = self._heard.get(node)
        return heard is not None and trio.current_time() - heard <= self.presence_ttl

    async def _lookup(self, user: str) -> _Where | None:
        """Read the user's registration (and note it in the directory)."""
        return (await self._lookup_many([user]))[0]

    async def _lookup_many(self, users: list[str]) -> list[_Where | None]:
        with trio.fail_after(self.op_timeout):
            if len(users) == 1:
                values = [await self.redis.call("GET", self._key(users[0]))]
            else:
                values = await self.redis.call("MGET", *[self._key(u) for u in users])
        self._ok()
        out: list[_Where | None] = []
        for user, value in zip(users, values, strict=True):
            if value is None:
                self._where.pop(user, None)
                out.append(None)
            else:
                node, sid, state = self._parse(value)
                if self._gone(node):
                    out.append(None)  # (its registration has not expired yet)
                    continue
                where = _Where(node, sid, state)
                if node != self.node_id:
                    self._where[user] = where
                out.append(where)
        return out

    def _announce(self, user: str, state: PeerOnlineState, sid: bytes) -> None:
        self._push_presence(user, state)
        node = b"" if state == _OFFLINE else self._node_b
        record = b"P\t%s\t%s\t%d\t%s\t%s\t%s" % (
            self._node_b,
            user.encode(),
            int(state),
            node,
            sid,
            self._epoch_b,
        )
        offline = state == _OFFLINE
        links = self._links
        if (
            links is not None
            and self._nursery is not None
            and (self._announcing or (offline and links.holding()))
        ):
            # Some of the user's last messages wait for a link being made: the word
            # waits for them (and what is announced after it, behind it).
            self._announcing.append((record, offline))
            if len(self._announcing) == 1:
                try:
                    self._nursery.start_soon(self._announce_when_resolved)
                except RuntimeError:  # (the hub has stopped: no one to wait for)
                    self._announcing.pop()
                    self._queue_announcement(record, offline)
            return
        self._queue_announcement(record, offline)

    def _queue_announcement(self, record: bytes, offline: bool) -> None:
        if offline and self._links is not None:
            # The user's last messages go over links, this through Redis: say which
            # batches they are in, so that no node tells the OFFLINE before them.
            fence = self._links.fence()
            if fence:
                record += b"\t" + fence
        self._queue(self._presence_stream, record)

    async def _announce_when_resolved(self) -> None:
        assert self._links is not None
        with trio.move_on_after(2 * self.op_timeout):  # (a node is decided by then)
            await self._links.resolved()
        waiting, self._announcing = self._announcing, []
        for record, offline in waiting:
            self._queue_announcement(record, offline)

    def _push_presence(self, user: str, state: PeerOnlineState) -> None:
        if self._fenced:
            self._push_fenced(user)  # (what was held back for the user comes first)
        self._tell_presence(user, state)

    def _tell_presence(self, user: str, state: PeerOnlineState) -> None:
        watchers = self._watchers.get(user)
        if not watchers:
            return
        if user in self._settling:
            self._settling[user] = state  # being subscribed: the answer tells it
            return
        if self._known.get(user, _OFFLINE) == state:
            return
        if state == _OFFLINE:
            self._known.pop(user, None)
            if self.listener is not None:
                self.listener.peer_offline(user)
        else:
            self._known[user] = state
        data = encode(Presence(states={user: int(state)}))
        for watcher in list(watchers):
            watcher.push(data)

    def _drop_watches(self, session: Session) -> None:
        for user in list(session.subscriptions):
            self._unwatch(session, user)
        session.subscriptions.clear()

    def _unwatch(self, session: Session, user: str) -> None:
        watchers = self._watchers.get(user)
        if watchers is not None:
            watchers.discard(session)
            if not watchers:
                del self._watchers[user]
                self._known.pop(user, None)

    def _key(self, user: str) -> str:
        return f"{self.prefix}:u:{user}"

    def _inbox_of(self, node: str) -> str:
        return f"{self.prefix}:in:{node}"

    def _prefix_of(self, session: Session) -> str:
        return f"{self.node_id}\t{session.id}\t"

    def _value(self, session: Session) -> str:
        return f"{self.node_id}\t{session.id}\t{int(session.online_state)}"

    @staticmethod
    def _parse(value: bytes | str) -> tuple[str, bytes, PeerOnlineState]:
        raw = value.encode() if isinstance(value, str) else value
        node, sid, state = raw.split(b"\t")
        return node.decode(), sid, PeerOnlineState(int(state))

    def _ok(self) -> None:
        self.ops += 1
        if not self._redis_ok:
            log.info("node %s: redis is back", self.node_id)
            self._refresh_soon.set()
        self._redis_ok = True
        self._last_error = ""

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self._redis_ok:
            log.warning("node %s: redis unavailable: %r", self.node_id, exc)
        self._redis_ok = False
        self._last_error = repr(exc)


@asynccontextmanager
async def open_redis_hub(
    url: str,
    *,
    node_id: str | None = None,
    presence_ttl: float = 30.0,
    poll_interval: float | None = None,
    op_timeout: float = 2.0,
    prefix: str = "rtmcall",
    hold: float = 10.0,
    links: bool = True,
    link_host: str = "127.0.0.1",
    link_port: int = 0,
    link_advertise: str | None = None,
    link_eagerly: bool = True,
) -> AsyncIterator[RedisHub]:
    """Connect to Redis at ``url`` and run a :class:`RedisHub` until the block exits.

    Raises:
      HubUnavailable: Redis cannot be reached at start.
      ValueError: ``url`` is not a Redis URL.
    """
    address = RedisAddress.from_url(url)
    node_id = node_id or secrets.token_hex(4)
    problem: str | None = None
    async with (
        RedisConnection(
            address, name=f"rtmcall-{node_id}", connect_timeout=op_timeout, lazy=True
        ) as cmd,
        RedisConnection(address, name=f"rtmcall-{node_id}-r", connect_timeout=op_timeout) as rd,
    ):
        try:
            with trio.fail_after(op_timeout * 2):
                await cmd.call("PING")
        except (*REDIS_ERRORS, msgspec.DecodeError) as exc:
            problem = f"cannot reach redis at {redacted(url)}: {exc!r}"
        if problem is not None:
            raise HubUnavailable(problem)
        hub = RedisHub(
            cmd,
            rd,
            node_id=node_id,
            presence_ttl=presence_ttl,
            poll_interval=poll_interval,
            op_timeout=op_timeout,
            prefix=prefix,
            hold=hold,
            links=links,
            link_host=link_host,
            link_port=link_port,
            link_advertise=link_advertise,
            link_eagerly=link_eagerly,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            # Tell the other nodes we are here (their directories route to us).
            hub._queue(hub._presence_stream, hub._heartbeat)
            try:
                yield hub
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(op_timeout):
                    await hub.aclose()
                nursery.cancel_scope.cancel()
