"""How one node of a Redis deployment reaches each other node: over a direct link
(:mod:`.links`) when that node publishes one, else through its Redis inbox stream.

:class:`NodeLinks` is the part of :class:`~.hub.RedisHub` that does this. It listens
for links and publishes where (the node key, and a local key for nodes on this host),
decides once per node how to reach it (reading that node's key; what is sent meanwhile is
held, in order), takes what the hub's :class:`~.outbox.Outbox` queued for linked nodes out
of it at the end of each pass and sends it, and falls back to the inbox for a node whose
link cannot be made. Whether a node is *gone* is the hub's judgement (heartbeats on the
presence stream, a link port that refuses): it asks through ``is_dead`` and tells this
class to :meth:`forget` a node.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import trio

from ..hub import HubUnavailable
from .links import (
    ACK_INTERVAL,
    BATCH_BYTES,
    LinkAddress,
    LinkKey,
    LinkListener,
    PeerLink,
    advertised_host,
    answers_as,
    host_id,
    local_name,
)
from .outbox import Outbox
from .resp import REDIS_ERRORS, RedisConnection, ReplyError

log = logging.getLogger("rtmcall.server.redis")


class NodeLinks:
    """This node's links to the others, and the nodes reached through Redis instead.

    Args:
      redis: the hub's command connection (node keys are read and written on it).
      outbox: the hub's outbox; what it queues for another node's inbox stream is taken
        out by :meth:`send` when that node is reached by link.
      on_batch: called with each batch another node's link delivers here.
      is_dead: whether the hub took a node's process for gone (what is sent to it then
        is dropped and counted); is_gone: that, or its heartbeats stopped (a node whose
        key cannot be read gives up on it then).
      key_ttl_ms: the node key's TTL (renewed by the hub's refresh: :meth:`key_commands`).
      ok, failed: the hub's accounting of Redis operations.
      bind, advertise: where the link listener listens, and the host other nodes are
        told (default: the bound host, or this host's address when that is 0.0.0.0/::).
    """

    def __init__(
        self,
        redis: RedisConnection,
        outbox: Outbox,
        *,
        node_id: str,
        epoch: str,
        prefix: str,
        op_timeout: float,
        hold: float,
        key_ttl_ms: int,
        bind: tuple[str, int],
        advertise: str | None,
        on_batch: Callable[[bytes], None],
        is_dead: Callable[[str], bool],
        is_gone: Callable[[str], bool],
        ok: Callable[[], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        self.redis = redis
        self.outbox = outbox
        self.node_id = node_id
        self.epoch = epoch
        self.prefix = prefix
        self.op_timeout = op_timeout
        self.hold = hold
        self._bind = bind
        self._advertise = advertise
        self._on_batch = on_batch
        self._is_dead = is_dead
        self._is_gone = is_gone
        self._ok = ok
        self._failed = failed
        self._host_id = None if (found := host_id()) is None else found.encode()
        self._in_prefix = f"{prefix}:in:"
        self._key_name = f"{prefix}:links"
        #: The cluster's link key (read from Redis in :meth:`open`).
        self.key = LinkKey(b"", self._reread_key)
        self._nursery: trio.Nursery | None = None
        #: The listener, once :meth:`open` ran.
        self.listener: LinkListener | None = None
        #: The link to each node reached by one.
        self.peers: dict[str, PeerLink] = {}
        #: The nodes reached through their Redis inbox instead (decided once per node
        #: process: the hub forgets it when it hears a new process of that name).
        self.via_redis: set[str] = set()
        #: Records for nodes not decided yet (their node key is being read).
        self.unresolved: dict[str, list[bytes]] = {}
        self._resolved: trio.Event | None = None
        #: This node's node key and local key values (empty until :meth:`open`).
        self.node_value = b""
        self.local_value = b""
        #: Records given up: held for a node that died, or that could not be resolved.
        self.dropped = 0
        self._key_ttl_ms = key_ttl_ms

    # --- setting up ----------------------------------------------------------------

    async def open(self, nursery: trio.Nursery) -> None:
        """Listen for links and tell the other nodes where (the node key), before any
        user is registered here: whoever routes to a user of this node finds the key."""
        self._nursery = nursery
        try:
            with trio.fail_after(self.op_timeout * 2):
                await self.redis.call("SET", self._key_name, secrets.token_hex(32), "NX")
                value = await self._read_key()
        except REDIS_ERRORS as exc:
            raise HubUnavailable(f"cannot set up the node links: {exc!r}") from exc
        if value is None:
            raise HubUnavailable("cannot set up the node links: the cluster's key vanished")
        self.key.value = value
        await self._refuse_a_twin()
        listener = self.listener = LinkListener(
            node=self.node_id,
            epoch=self.epoch,
            key=self.key,
            on_batch=self._on_batch,
            handshake_timeout=self.op_timeout,
            # (well within the senders' patience: a link whose acks stop for
            # ``2 * op_timeout`` is taken for half-open)
            ack_interval=min(ACK_INTERVAL, self.op_timeout / 2),
        )
        host, port = self._bind
        # (An address given by hand may be a proxy or a NAT: nodes on this host use it too.)
        local = self._advertise is None and self._host_id is not None
        try:
            port = await nursery.start(partial(listener.run, host, port, local=local))
        except OSError as exc:
            raise HubUnavailable(f"cannot listen for node links on {host}:{port}: {exc}") from exc
        redis_at = (self.redis.address.host, self.redis.address.port)
        advertise = self._advertise or advertised_host(host, redis_at)
        self.node_value = b"%s\t%s\t%d" % (self.epoch.encode(), advertise.encode(), port)
        if listener.local is not None and self._host_id is not None:
            # Nodes in this network namespace of this host link over the local socket. (A
            # key of its own: nodes that predate it read the node key as before.)
            self.local_value = b"%s\t%s" % (self.epoch.encode(), self._host_id)
        try:
            with trio.fail_after(self.op_timeout * 2):
                for reply in await self.redis.pipeline(self.key_commands()):
                    if isinstance(reply, ReplyError):
                        raise reply
        except REDIS_ERRORS as exc:
            raise HubUnavailable(f"cannot set up the node links: {exc!r}") from exc
        log.info("node %s: node links on %s:%d%s", self.node_id, advertise, port,
                 " and a local socket" if listener.local else "")  # fmt: skip

    async def _refuse_a_twin(self) -> None:
        """Refuse to start as a node that is running already (one ``--node-id`` given to
        two processes would share one inbox, and their node keys would name each in
        turn): its node key names another process, which answers on its link listener as
        that process. A key left by a process that died is taken over, as a restart under
        the same name should be (whatever listens at its old address now)."""
        try:
            found = await self._node_link(self.node_id)
        except REDIS_ERRORS:
            return
        if found is None or found.epoch == self.epoch:
            return
        running = False
        with trio.move_on_after(self.op_timeout):
            running = await answers_as(found, node=self.node_id, epoch=self.epoch, key=self.key)
        if running:
            raise HubUnavailable(
                f"node id {self.node_id!r} is in use: a running node answers as it at"
                f" {found.host}:{found.port}; give each node its own --node-id"
            )

    def node_key(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    def local_key(self, node: str) -> str:
        return f"{self.prefix}:nodelocal:{node}"

    async def _read_key(self) -> bytes | None:
        value = await self.redis.call("GET", self._key_name)
        return None if value is None else value if isinstance(value, bytes) else str(value).encode()

    async def _reread_key(self) -> bytes | None:
        """The cluster's key in Redis now (None: Redis could not tell)."""
        try:
            with trio.fail_after(self.op_timeout):
                value = await self._read_key()
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return None
        self._ok()
        return value

    def key_commands(self) -> list[tuple[Any, ...]]:
        """(Re)write this node's node key and, if it has a local socket, its local key;
        and the cluster's link key if Redis has lost it (restarted empty): this node's,
        so that nodes started from now on link to the ones running."""
        ttl = self._key_ttl_ms
        commands: list[tuple[Any, ...]] = [
            ("SET", self.node_key(self.node_id), self.node_value, "PX", ttl),
            ("SET", self._key_name, self.key.value, "NX"),
        ]
        if self.local_value:
            commands.append(("SET", self.local_key(self.node_id), self.local_value, "PX", ttl))
        return commands

    # --- sending --------------------------------------------------------------------

    def send(self) -> None:
        """Take what is queued for nodes reached by link (or not decided yet) out of
        the outbox and send it; what goes through Redis stays."""
        out = self.outbox.out
        prefix = self._in_prefix
        for stream in [s for s in out if s.startswith(prefix)]:
            node = stream[len(prefix) :]
            if node in self.via_redis or node == self.node_id:
                continue
            records = out.pop(stream)
            if self._is_dead(node):
                self.dropped += len(records)  # (for sessions that died with it)
                continue
            peer = self.peers.get(node)
            if peer is None:
                held = self.unresolved.get(node)
                if held is None:
                    self.unresolved[node] = records
                    assert self._nursery is not None
                    self._nursery.start_soon(self._resolve, node)
                else:
                    held.extend(records)
            else:
                _send_to(peer, records)

    def fence(self) -> bytes:
        """What this node has sent each linked node so far, as ``node=epoch:seq`` joined
        by commas (only links with batches not acknowledged yet), after sending what is
        queued for them now. Put in an OFFLINE on the presence stream, it lets a receiver
        hold that OFFLINE back until the link has brought the user's last messages.
        (Records held for a node being decided are in no batch yet: wait for
        :meth:`resolved` first.)"""
        if self.listener is None:
            return b""  # (not open yet: nothing sent)
        self.send()
        return b",".join(
            b"%s=%s:%d" % (node.encode(), peer.to_epoch.encode(), peer.seq)
            for node, peer in self.peers.items()
            if peer.unacked
        )

    def received(self, epoch: bytes) -> int:
        """The last batch seq handled from the process ``epoch`` over a link (0: none)."""
        return 0 if self.listener is None else self.listener.seen.get(epoch, 0)

    def stalled(self, node: str) -> bool | None:
        """Whether the link to ``node`` holds more than it may; None: no link to it."""
        peer = self.peers.get(node)
        return None if peer is None else peer.stalled()

    def reach(self, node: str) -> None:
        """``node`` was heard from (the presence stream): decide how to reach it and
        make its link now, not with the first record for it. Its death then breaks a link
        that exists (found out at once: its port refuses), and the first record to it
        does not wait for its node key."""
        if (
            node in self.peers
            or node in self.unresolved
            or node in self.via_redis
            or node == self.node_id
            or self._nursery is None
            or self._is_dead(node)
        ):
            return
        self.unresolved[node] = []
        self._nursery.start_soon(self._resolve, node)

    # --- deciding how to reach a node ---------------------------------------------

    async def _node_link(self, node: str) -> LinkAddress | None:
        """Where ``node``'s link listener is, from its node key (``epoch host port``, more
        fields ignored) and its local key (``epoch host-id``: the same process listens on
        a local socket in that host's network namespace); None when it has no node key.
        Raises Redis errors."""
        with trio.fail_after(self.op_timeout):
            value, local = await self.redis.call("MGET", self.node_key(node), self.local_key(node))
        self._ok()
        parts = value.split(b"\t") if isinstance(value, bytes) else []
        if len(parts) < 3 or not parts[2].isdigit():
            return None
        epoch = parts[0].decode()
        here = (
            self._host_id is not None
            and isinstance(local, bytes)
            and local == b"%s\t%s" % (parts[0], self._host_id)
        )
        return LinkAddress(
            epoch, parts[1].decode(), int(parts[2]), local_name(epoch) if here else None
        )

    async def _relookup(self, node: str) -> LinkAddress | None | Literal[False]:
        """The node key now; False when Redis could not tell."""
        try:
            return await self._node_link(node)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return False

    def holding(self) -> bool:
        """Whether records wait for a node being decided."""
        return any(self.unresolved.values())

    async def resolved(self) -> None:
        """Wait until no records wait for a node being decided (they are sent)."""
        while self.holding():
            if self._resolved is None:
                self._resolved = trio.Event()
            await self._resolved.wait()

    async def _resolve(self, node: str) -> None:
        try:
            await self._decide(node)
        finally:
            if not self.holding() and self._resolved is not None:
                self._resolved.set()
                self._resolved = None

    async def _decide(self, node: str) -> None:
        """How to reach ``node``: its node key names its link listener (a link), or it
        has none (its Redis inbox). Decided once per node; held records go first."""
        since = trio.current_time()
        backoff = 0.05
        while True:
            try:
                found = await self._node_link(node)
                break
            except REDIS_ERRORS as exc:
                self._failed(exc)
                if trio.current_time() - since > self.hold or self._is_gone(node):
                    lost = self.unresolved.pop(node, [])
                    if lost:
                        self.dropped += len(lost)
                        log.error("node %s: cannot tell how to reach node %s, %d records"
                                  " dropped", self.node_id, node, len(lost))  # fmt: skip
                    return
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
        held = self.unresolved.pop(node, [])
        if self._is_dead(node):  # (found gone while its key was read)
            self.dropped += len(held)
            return
        if found is not None:
            assert self._nursery is not None
            peer = self.peers[node] = PeerLink(
                self._nursery,
                node=self.node_id,
                epoch=self.epoch,
                to_node=node,
                to_epoch=found.epoch,
                host=found.host,
                port=found.port,
                local=found.local,
                key=self.key,
                op_timeout=self.op_timeout,
                hold=self.hold,
                lookup=lambda: self._relookup(node),
            )
            if held:
                _send_to(peer, held)
            else:
                peer.open()
        else:
            self._reach_through_redis(node, held)

    def _reach_through_redis(self, node: str, held: list[bytes]) -> None:
        """From now on ``node`` is reached through its inbox; ``held`` goes first."""
        self.via_redis.add(node)
        if held:
            stream = f"{self._in_prefix}{node}"
            outbox = self.outbox
            outbox.out[stream] = held + outbox.out.get(stream, [])
            if outbox.retry or not self.redis.connected:
                outbox.wake_flusher()  # (else the end of this pass writes them)

    # --- tending (the hub's watchdog tick) -----------------------------------------

    def nodes(self) -> list[str]:
        """Every node this one has decided how to reach."""
        return [*self.peers, *self.via_redis]

    def tend(self, node: str) -> None:
        """The tick's look at a node the hub still takes for alive: a link never made
        goes through Redis from now on; a link that stalled or went quiet is checked."""
        peer = self.peers.get(node)
        if peer is None or self._link_unusable(node, peer):
            return
        peer.check()
        if peer.dropped:
            self.dropped += peer.dropped
            peer.dropped = 0

    def _link_unusable(self, node: str, peer: PeerLink) -> bool:
        """A link never made within ``2 * op_timeout`` of its first use (the address it
        publishes is not reachable from here, say): reach that node through its inbox
        from now on, with what the link held, in order (none of it went out)."""
        since = peer.down_since
        if peer.connects or since is None or trio.current_time() - since <= 2 * self.op_timeout:
            return False
        log.warning("node %s: cannot link to node %s at %s:%d; reaching it through Redis"
                    " (check its --link-address)", self.node_id, node, peer.host,
                    peer.port)  # fmt: skip
        held = peer.take_held()
        peer.close()
        del self.peers[node]
        self._reach_through_redis(node, held)
        return True

    def ack_due(self) -> None:
        if self.listener is not None:
            self.listener.ack_due()

    def busy(self) -> bool:
        """Something to tend soon: acks to send, batches waiting for theirs, a link down."""
        if self.listener is not None and self.listener.acks_due:
            return True
        return any(p.unacked or p.down_since is not None for p in self.peers.values())

    def pending(self) -> bool:
        """Records not sent yet, or sent over a link that is up and not acknowledged."""
        return self.holding() or any(p.unacked and p.up for p in self.peers.values())

    def forget(self, node: str) -> None:
        """Stop reaching ``node`` (dead): its link is closed and what it held is counted
        lost; a process of that name is asked again how to reach it."""
        self.via_redis.discard(node)
        peer = self.peers.pop(node, None)
        if peer is not None:
            self.dropped += sum(r for _, _, r in peer.unacked) + peer.dropped
            peer.close()

    def close(self) -> None:
        for peer in self.peers.values():
            peer.close()
        if self.listener is not None:
            self.listener.close_all()


def _send_to(peer: PeerLink, records: list[bytes]) -> None:
    """Send ``records`` over ``peer`` in as few batches of at most ``BATCH_BYTES`` as fit."""
    if len(records) == 1:
        peer.send(records[0], 1)
        return
    batch: list[bytes] = []
    size = 0
    for record in records:
        if batch and size + len(record) > BATCH_BYTES:
            peer.send(b"\n".join(batch), len(batch))
            batch, size = [], 0
        batch.append(record)
        size += len(record) + 1
    peer.send(b"\n".join(batch), len(batch))
