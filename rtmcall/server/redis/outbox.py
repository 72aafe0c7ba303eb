"""What one node writes into Redis streams (``hub.py``): queued, batched, resent.

Records are queued per stream during a scheduler pass and written at its end (the
``PassEnd`` instrument of ``pass_end.py`` calls :meth:`Outbox.flush`) as one XADD per
stream, all in one ``send``, without waiting for the replies (they come to
:meth:`Outbox._written`, read lazily). What goes to a node reached by a link is taken out
first (``take_links``, the hub's).

Nothing is lost on a blip: an entry whose connection broke before its reply came (it may
have been applied) is sent again, before anything newer and with the same ``{epoch}:{seq}``
tag, so receivers skip what did arrive; the flusher task reconnects with a backoff. After
``hold`` seconds without Redis what is held is dropped (counted in ``dropped``) and
:meth:`Outbox.stalled` says so (sends answer FAILURE), so nothing waits forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from .resp import REDIS_ERRORS, RedisConnection, ReplyError, bulk

log = logging.getLogger("rtmcall.server.redis")


class Outbox:
    """The records one node has queued for Redis streams, and their writing.

    Args:
      redis: the connection for commands (pipelined).
      node_id, epoch: this node and its process (every entry is tagged with the epoch and
        a counter, so a resent entry is skipped by whoever read it already).
      inbox_len: about how many entries a stream keeps (``XADD MAXLEN ~``).
      hold: how long (s) records wait for an unreachable Redis before they are dropped.
      op_timeout: how long a reconnect may take.
      on_ok, on_failed: told of each Redis operation that succeeded / failed.
    """

    def __init__(
        self,
        redis: RedisConnection,
        *,
        node_id: str,
        epoch: str,
        inbox_len: int,
        hold: float,
        op_timeout: float,
        on_ok: Callable[[], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        self.redis = redis
        self.node_id = node_id
        self._epoch_b = epoch.encode()
        self.inbox_len = inbox_len
        self.hold = hold
        self.op_timeout = op_timeout
        self._on_ok = on_ok
        self._on_failed = on_failed
        #: Takes what goes over links out of :attr:`out` before a flush (the hub's).
        self.take_links: Callable[[], None] | None = None
        #: Whether :meth:`flush` runs at the end of every scheduler pass (the hub's
        #: instrument is installed); else the flusher task writes.
        self.at_pass_end = False
        #: Records queued per stream (insertion order).
        self.out: dict[str, list[bytes]] = {}
        #: trio time the oldest record in :attr:`out` was queued.
        self.out_since = 0.0
        #: Entries (stream, tag, body) whose write failed, to send again first.
        self.retry: list[tuple[str, bytes, bytes]] = []
        #: Entries written whose replies have not come yet.
        self.inflight = 0
        self._seq = 0
        #: The flusher while it waits for something to flush.
        self._flusher: trio.lowlevel.Task | None = None
        #: RESP of "XADD <stream> MAXLEN ~ <n> * f", per stream (the hot command).
        self._xadd_heads: dict[str, bytes] = {}
        #: trio time since when flushes fail (None: they don't).
        self._stalled_since: float | None = None
        #: Counters (metrics): records given up (after ``hold``, or refused by Redis);
        #: flushes (one write each) and entries written.
        self.dropped = 0
        self.flushes = 0
        self.entries_written = 0

    def queue(self, stream: str, record: bytes) -> None:
        """Queue one record: written at the end of this scheduler pass, with everything
        else queued in it."""
        records = self.out.get(stream)
        if records is None:
            if not self.out:
                self.out_since = trio.current_time()
            self.out[stream] = [record]
        else:
            records.append(record)
        if self.retry or not self.redis.connected or not self.at_pass_end:
            self.wake_flusher()

    def stalled(self) -> bool:
        """Writes have failed for longer than ``hold``."""
        since = self._stalled_since
        return since is not None and trio.current_time() - since > self.hold

    @property
    def empty(self) -> bool:
        """Nothing queued, to resend, or unanswered."""
        return not (self.out or self.retry or self.inflight)

    def wake_flusher(self) -> None:
        task = self._flusher
        if task is not None:
            self._flusher = None
            trio.lowlevel.reschedule(task)

    def _abort_flusher_wait(self, _: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
        self._flusher = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def flush_loop(self) -> None:
        """Connect and write again after a failure (the normal path is :meth:`flush`, at
        the end of every scheduler pass)."""
        backoff = 0.05
        redis = self.redis
        while True:
            if not self.retry and (redis.connected or not self.out):
                self._flusher = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._abort_flusher_wait)
            if self.retry:
                if self.stalled():
                    lost = sum(body.count(b"\n") + 1 for _, _, body in self.retry)
                    self.dropped += lost
                    log.error("node %s: redis unreachable for %g s, %d queued frames dropped",
                              self.node_id, self.hold, lost)  # fmt: skip
                    self.retry = []
                    continue
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 0.5)
            if not redis.connected:
                try:
                    with trio.fail_after(self.op_timeout):
                        await redis.connect()
                except REDIS_ERRORS as exc:
                    self._write_failed(exc)
                    # (what is queued stays queued: it is tried again after the backoff)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, 0.5)
                    continue
            if self.flush():
                backoff = 0.05

    def flush(self) -> bool:
        """Write what was queued (after what failed before, with the same seq: receivers
        skip what did arrive) as one XADD per stream, in one write, without waiting for
        the replies (they come to :meth:`_written`). Synchronous: no task switch."""
        if self.take_links is not None and self.out:
            self.take_links()
            if not self.out and not self.retry:
                return True
        redis = self.redis
        if not redis.connected:
            self.wake_flusher()
            return False
        entries, self.retry = self.retry, []
        for stream, records in self.out.items():
            self._seq += 1
            entries.append((stream, b"%s:%d" % (self._epoch_b, self._seq), b"\n".join(records)))
        self.out = {}
        if not entries:
            return True
        data = bytearray()
        heads = self._xadd_heads
        for stream, tag, body in entries:
            head = heads.get(stream)
            if head is None:
                head = heads[stream] = b"*10\r\n" + b"".join(
                    bulk(x)
                    for x in (b"XADD", stream.encode(), b"MAXLEN", b"~",
                              b"%d" % self.inbox_len, b"*", b"f")
                )  # fmt: skip
                if len(heads) > 10_000:
                    heads.clear()
            data += head
            data += b"$%d\r\n%s\r\n$1\r\nb\r\n$%d\r\n%s\r\n" % (len(tag), tag, len(body), body)
        self.inflight += len(entries)
        try:
            redis.send_encoded(
                data, len(entries), lambda result, e=entries: self._written(e, result)
            )
        except REDIS_ERRORS as exc:
            self._written(entries, exc)
            return False
        self.flushes += 1
        self.entries_written += len(entries)
        return True

    def _written(self, entries: list[tuple[str, bytes, bytes]], result: Any) -> None:
        """The replies of one flush (or the error that lost them)."""
        self.inflight -= len(entries)
        if isinstance(result, BaseException):
            # Sent again first (the connection broke: some may have been applied, and the
            # receivers skip those by seq).
            self.retry.extend(entries)
            self._write_failed(result)
            self.wake_flusher()
            return
        for reply in result:
            if isinstance(reply, ReplyError):
                self.dropped += 1
                log.error("node %s: redis refused a write: %s", self.node_id, reply)
        if self._stalled_since is not None:
            log.info("node %s: writing to redis again", self.node_id)
            self._stalled_since = None
        self._on_ok()

    def _write_failed(self, exc: BaseException) -> None:
        self._on_failed(exc)
        if self._stalled_since is None:
            self._stalled_since = trio.current_time()
            log.warning("node %s: cannot write to redis, holding: %r", self.node_id, exc)
