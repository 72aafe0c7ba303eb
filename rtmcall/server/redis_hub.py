"""A hub shared by several server nodes through Redis (or Valkey).

Same contract as :class:`~rtmcall.server.hub.MemoryHub` (see ``hub.py``); nothing above the
hub knows which one it talks to. What lives where:

* ``{prefix}:u:{user}`` — the user's registration, ``"{node}\\t{session}\\t{state}"``, with a
  TTL of ``presence_ttl`` seconds. Every node refreshes its own users' keys every
  ``presence_ttl / 3``; a node that dies stops refreshing and its users go OFFLINE on their
  own within the TTL.
* ``{prefix}:n:{node}`` — a node's inbox channel: ``D`` (deliver a frame to one of my
  sessions) and ``K`` (kick one of my sessions: the user logged in elsewhere).
* ``{prefix}:presence`` — every presence change, ``"{state}\\t{user}"``, for the nodes whose
  sessions watch that user.

Redis pub/sub is at-most-once: a frame published while the receiving node's subscription is
down is lost, and so is a presence change. Nothing waits on either forever:

* a lost peer message is an invitation frame whose sender is running a timer for the answer
  (no-ACK, lifetime, confirm, cancel windows in ``rtmcall/engine``); the timer ends the
  invitation on both sides, so no invitation waits forever;
* a lost presence change is caught by :meth:`RedisHub._poll_presence`, which re-reads the
  registration of every watched remote user every ``poll_interval`` and pushes differences.

When Redis is slow or gone, every operation gives up after ``op_timeout``: ``deliver``
answers FAILURE (the sender gets an explicit error, never silence), ``register`` raises
:class:`HubUnavailable` (the login is refused), and :meth:`health` reports the node
unhealthy until Redis answers again. The refresh loop then re-registers every local user and
the pub/sub listener re-subscribes.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis
import coredis.exceptions
import trio

from rtmcall._exc import first_leaf
from rtmcall.engine.codes import ConnectionChangeReason, PeerMessageError, PeerOnlineState
from rtmcall.engine.frames import Presence, encode

from .hub import Health, HubListener, HubUnavailable
from .session import Session

log = logging.getLogger("rtmcall.server.redis")

_OFFLINE = PeerOnlineState.OFFLINE
_REDIS_ERRORS = (coredis.exceptions.RedisError, OSError, trio.TooSlowError, ConnectionError)

# Set the registration only if it is absent or still ours (its value starts with our
# "node\tsession\t"); answer 0 when another session owns the user now.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if (not v) or string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
  return 1
end
return 0
"""
# Take the registration, whoever had it; answer the previous value (SET ... GET needs 6.2).
_TAKE = """
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return old
"""
# Delete the registration only if it is still ours.
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class RedisHub:
    """Presence and routing for one node of several, through Redis.

    Create it with :func:`open_redis_hub`, which runs its background tasks.

    Args:
      redis: a coredis client (bytes responses).
      node_id: this node's name, unique among the nodes; random by default.
      presence_ttl: registration TTL in seconds (at most 60).
      poll_interval: how often watched remote users' registrations are re-read.
      op_timeout: a Redis operation slower than this counts as a failure.
      prefix: key and channel prefix, to share a Redis between deployments.
    """

    def __init__(
        self,
        redis: coredis.Redis,
        *,
        node_id: str | None = None,
        presence_ttl: float = 30.0,
        poll_interval: float | None = None,
        op_timeout: float = 2.0,
        prefix: str = "rtmcall",
    ) -> None:
        if not 0 < presence_ttl <= 60:
            raise ValueError("presence_ttl must be more than 0 and at most 60 seconds")
        self.redis = redis
        self.node_id = node_id or secrets.token_hex(4)
        self.presence_ttl = presence_ttl
        self._ttl_ms = int(presence_ttl * 1000)
        self.poll_interval = poll_interval or presence_ttl / 3
        self.op_timeout = op_timeout
        self.prefix = prefix
        self._inbox = f"{prefix}:n:{self.node_id}"
        self._presence_channel = f"{prefix}:presence"
        #: Sessions on this node, by user.
        self._local: dict[str, Session] = {}
        #: user -> local sessions watching that user's presence.
        self._watchers: dict[str, set[Session]] = {}
        #: Last state pushed to local watchers, per watched user (absent: OFFLINE).
        self._known: dict[str, PeerOnlineState] = {}
        self._take = redis.register_script(_TAKE)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._redis_ok = True
        self._listening = False
        self._last_error = ""
        #: Frames and kicks received for sessions no longer here (lost, by design).
        self.dropped = 0
        #: Redis operations that succeeded / failed (for the metrics).
        self.ops = 0
        self.errors = 0
        #: Told of peer messages other nodes delivered here and of remote users going
        #: OFFLINE (the server's invitation observer, ``ops.Operations``), if set.
        self.listener: HubListener | None = None

    # --- Hub protocol ---------------------------------------------------------------

    async def register(self, session: Session) -> Session | None:
        previous = self._local.get(session.user)
        value = self._value(session)
        try:
            with trio.fail_after(self.op_timeout):
                old = await self._take(keys=[self._key(session.user)], args=[value, self._ttl_ms])
        except _REDIS_ERRORS as exc:
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
        if old is not None:
            node, sid, _ = self._parse(old)
            if node != self.node_id:
                # The older session lives on another node: ask that node to kick it.
                await self._publish(
                    f"{self.prefix}:n:{node}", b"K\t" + self._b(session.user) + b"\t" + sid
                )
            # The old session is gone, with its invitations: its peers must hear that
            # (OFFLINE) even though the user is back at once (ONLINE just after).
            await self._announce(session.user, _OFFLINE)
        await self._announce(session.user, session.online_state)
        return previous

    async def unregister(self, session: Session) -> None:
        self._drop_watches(session)
        if self._local.get(session.user) is not session:
            return
        del self._local[session.user]
        try:
            with trio.fail_after(self.op_timeout):
                released = await self._release(
                    keys=[self._key(session.user)], args=[self._prefix_of(session)]
                )
        except _REDIS_ERRORS as exc:
            # The key expires by itself within the TTL; pollers will see it go.
            self._failed(exc)
            return
        if released:
            await self._announce(session.user, _OFFLINE)
        # else: another session (on another node) owns the user now: it stays ONLINE.

    async def update(self, session: Session) -> None:
        if self._local.get(session.user) is not session:
            return
        await self._refresh(session)
        await self._announce(session.user, session.online_state)

    async def deliver(self, to: str, data: bytes) -> PeerMessageError:
        local = self._local.get(to)
        if local is not None:
            return local.push_message(data)
        try:
            with trio.fail_after(self.op_timeout):
                value = await self.redis.get(self._key(to))
                if value is None:
                    return PeerMessageError.PEER_UNREACHABLE
                node, sid, state = self._parse(value)
                if node == self.node_id:
                    return PeerMessageError.PEER_UNREACHABLE  # stale: not here any more
                receivers = await self.redis.publish(
                    f"{self.prefix}:n:{node}", b"D\t" + self._b(to) + b"\t" + sid + b"\t" + data
                )
        except _REDIS_ERRORS as exc:
            self._failed(exc)
            return PeerMessageError.FAILURE
        self._ok()
        if receivers == 0:
            return PeerMessageError.PEER_UNREACHABLE  # that node is gone; its key will expire
        if state == PeerOnlineState.UNREACHABLE:
            return PeerMessageError.CACHED_BY_SERVER
        return PeerMessageError.OK

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
                with trio.fail_after(self.op_timeout):
                    values = await self.redis.mget([self._key(u) for u in remote])
            except _REDIS_ERRORS as exc:
                self._failed(exc)
                raise HubUnavailable(f"presence store unavailable: {exc!r}") from exc
            self._ok()
            for user, value in zip(remote, values, strict=True):
                states[user] = int(self._parse(value)[2]) if value is not None else int(_OFFLINE)
        return {user: states[user] for user in users}

    async def subscribe(self, session: Session, users: list[str]) -> dict[str, int]:
        for user in users:
            session.subscriptions.add(user)
            self._watchers.setdefault(user, set()).add(session)
        states = await self.presence(users)
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
                await self.redis.ping()
        except _REDIS_ERRORS as exc:
            self._failed(exc)
        else:
            self._ok()
        ok = self._redis_ok and self._listening
        why = self._last_error or "not subscribed"
        detail = f"redis hub node {self.node_id}: " + (
            f"{len(self._local)} local sessions" if ok else f"unhealthy ({why})"
        )
        return Health(ok, detail)

    async def aclose(self) -> None:
        for session in list(self._local.values()):
            await self.unregister(session)

    # --- background tasks -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen to this node's inbox and the presence channel, refresh registrations and
        poll watched users, until cancelled. Reconnects by itself."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self._listen)
            nursery.start_soon(self._refresh_loop)
            nursery.start_soon(self._poll_loop)
            task_status.started()

    async def _listen(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        started = False
        backoff = 0.1
        while True:
            try:
                async with self.redis.pubsub(
                    channels=[self._inbox, self._presence_channel],
                    ignore_subscribe_messages=True,
                    max_idle_seconds=max(1.0, self.op_timeout),
                    subscription_timeout=self.op_timeout,
                ) as pubsub:
                    self._listening = True
                    backoff = 0.1
                    if not started:
                        started = True
                        task_status.started()
                    else:
                        log.info("node %s: re-subscribed to redis", self.node_id)
                        await self._poll_presence()
                    async for message in pubsub:
                        if message is None or message.get("type") != "message":
                            continue
                        self._on_message(message["channel"], message["data"])
            except _REDIS_ERRORS as exc:
                self._listening = False
                self._failed(exc)
                log.warning("node %s: redis subscription lost: %r", self.node_id, exc)
                if not started:
                    raise HubUnavailable(f"cannot subscribe to redis: {exc!r}") from exc
            self._listening = False
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _on_message(self, channel: bytes | str, data: bytes) -> None:
        channel = channel.decode() if isinstance(channel, bytes) else channel
        if channel == self._presence_channel:
            state_b, _, user_b = data.partition(b"\t")
            self._push_presence(user_b.decode(), PeerOnlineState(int(state_b)))
            return
        op, _, rest = data.partition(b"\t")
        user_b, _, rest = rest.partition(b"\t")
        session = self._local.get(user_b.decode())
        if op == b"D":
            sid, _, frame = rest.partition(b"\t")
            if session is not None and session.id.encode() == sid:
                session.push_message(frame)
                if self.listener is not None:
                    self.listener.remote_message(frame)
            else:
                self.dropped += 1  # the session moved or ended: the sender's timers recover
        elif op == b"K":
            if session is not None and session.id.encode() == rest:
                session.kick(
                    ConnectionChangeReason.REMOTE_LOGIN,
                    f"user {session.user!r} logged in on another node",
                )

    async def _refresh_loop(self) -> None:
        while True:
            await trio.sleep(self.presence_ttl / 3)
            for session in list(self._local.values()):
                if self._local.get(session.user) is session and not session.ended:
                    await self._refresh(session)

    async def _refresh(self, session: Session) -> None:
        """Renew (or re-create, after a Redis outage) the registration, unless another
        session took the user over meanwhile: then this one is kicked."""
        try:
            with trio.fail_after(self.op_timeout):
                ours = await self._claim(
                    keys=[self._key(session.user)],
                    args=[self._prefix_of(session), self._value(session), self._ttl_ms],
                )
        except _REDIS_ERRORS as exc:
            self._failed(exc)
            return
        self._ok()
        if not ours:
            session.kick(
                ConnectionChangeReason.REMOTE_LOGIN,
                f"user {session.user!r} logged in on another node",
            )

    async def _poll_loop(self) -> None:
        while True:
            await trio.sleep(self.poll_interval)
            await self._poll_presence()

    async def _poll_presence(self) -> None:
        """Re-read watched remote users: catches expired registrations (a dead node) and
        presence messages lost while the subscription was down."""
        users = [u for u in self._watchers if u not in self._local]
        if not users:
            return
        try:
            states = await self.presence(users)
        except HubUnavailable:
            return
        for user, state in states.items():
            self._push_presence(user, PeerOnlineState(state))

    # --- helpers --------------------------------------------------------------------

    async def _announce(self, user: str, state: PeerOnlineState) -> None:
        self._push_presence(user, state)
        await self._publish(self._presence_channel, b"%d\t%s" % (int(state), self._b(user)))

    def _push_presence(self, user: str, state: PeerOnlineState) -> None:
        watchers = self._watchers.get(user)
        if not watchers:
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

    async def _publish(self, channel: str, data: bytes) -> None:
        try:
            with trio.fail_after(self.op_timeout):
                await self.redis.publish(channel, data)
        except _REDIS_ERRORS as exc:
            self._failed(exc)

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

    def _prefix_of(self, session: Session) -> str:
        return f"{self.node_id}\t{session.id}\t"

    def _value(self, session: Session) -> str:
        return f"{self.node_id}\t{session.id}\t{int(session.online_state)}"

    @staticmethod
    def _parse(value: bytes | str) -> tuple[str, bytes, PeerOnlineState]:
        raw = value.encode() if isinstance(value, str) else value
        node, sid, state = raw.split(b"\t")
        return node.decode(), sid, PeerOnlineState(int(state))

    @staticmethod
    def _b(user: str) -> bytes:
        return user.encode()

    def _ok(self) -> None:
        self.ops += 1
        if not self._redis_ok:
            log.info("node %s: redis is back", self.node_id)
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
) -> AsyncIterator[RedisHub]:
    """Connect to Redis at ``url`` and run a :class:`RedisHub` until the block exits.

    Raises:
      HubUnavailable: Redis cannot be reached at start.
    """
    # Probe first, outside the client's own task group, so that an unreachable Redis comes
    # out as one plain HubUnavailable rather than an exception group.
    problem: str | None = None
    try:
        probe = coredis.Redis.from_url(url, decode_responses=False)
        with trio.fail_after(op_timeout * 2):
            async with probe:
                await probe.ping()
    except Exception as exc:  # noqa: BLE001 - any failure here means "cannot reach"
        problem = f"cannot reach redis at {url}: {first_leaf(exc)!r}"
    if problem is not None:
        raise HubUnavailable(problem)
    redis = coredis.Redis.from_url(url, decode_responses=False)
    async with redis:
        hub = RedisHub(
            redis,
            node_id=node_id,
            presence_ttl=presence_ttl,
            poll_interval=poll_interval,
            op_timeout=op_timeout,
            prefix=prefix,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            try:
                yield hub
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(op_timeout):
                    await hub.aclose()
                nursery.cancel_scope.cancel()
