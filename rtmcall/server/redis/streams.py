"""How a node reads its inbox and the presence stream: one blocking XREAD for both, up to
``read_count`` entries, each reply handled in the connection's reader task, which sends
the next XREAD at once (one wake-up per batch of entries).

Nothing is lost on a blip: the reader keeps the id of the last entry it handled and asks
for what comes after it, so entries written while its connection was down (a paused
Redis, a cut connection) are read when it is back, in order, once. Every entry carries
``{epoch}:{seq}`` (the sending process, a counter); an entry whose seq was seen from that
sender (written again after a failed flush) is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from ..hub import HubUnavailable
from .resp import REDIS_ERRORS, RedisConnection, ReplyError, bulk

log = logging.getLogger("rtmcall.server.redis")

#: How long one XREAD blocks in Redis (ms).
BLOCK_MS = 1000


class StreamReader:
    """Reads ``inbox`` and ``presence`` (stream names) from where they are when it starts,
    handing each record to ``on_inbox`` or ``on_presence``.

    Args:
      redis: the command connection (for the streams' tails at start).
      reader: a connection of its own, for the blocking XREAD.
      ok, failed: told of Redis answering (again) and of a failure.
      on_back: called when reading works again after a failure.
    """

    def __init__(
        self,
        redis: RedisConnection,
        reader: RedisConnection,
        *,
        inbox: str,
        presence: str,
        node_id: str,
        op_timeout: float,
        read_count: int,
        on_inbox: Callable[[bytes], None],
        on_presence: Callable[[bytes], None],
        on_back: Callable[[], None],
        ok: Callable[[], None],
        failed: Callable[[BaseException], None],
    ) -> None:
        self.redis = redis
        self.conn = reader
        self._inbox = inbox.encode()
        self._presence = presence.encode()
        self._node_id = node_id
        self._op_timeout = op_timeout
        self._on_inbox = on_inbox
        self._on_presence = on_presence
        self._on_back = on_back
        self._ok = ok
        self._failed = failed
        #: Reading works (the last XREAD was answered, or the first is under way).
        self.listening = False
        #: trio time since when the streams have been read without a failure.
        self.since = 0.0
        # XREAD's constant part, encoded once (only the two ids change).
        self._head = b"*10\r\n" + b"".join(
            bulk(x)
            for x in (b"XREAD", b"COUNT", b"%d" % read_count, b"BLOCK", b"%d" % BLOCK_MS,
                      b"STREAMS", self._inbox, self._presence)
        )  # fmt: skip
        #: The last id handled per stream, the last seq seen per (stream, sender epoch).
        self._last_id: dict[bytes, bytes] = {}
        self._seen: dict[tuple[bytes, bytes], int] = {}
        self._read_failed = trio.Event()
        self._read_error: BaseException | None = None
        #: Counters: XREAD replies, entries read, entries skipped as duplicates.
        self.reads = 0
        self.entries = 0
        self.duplicates = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read until cancelled, reconnecting by itself; started once the streams' tails
        are known (older entries are for older processes).

        Raises:
          HubUnavailable: the tails cannot be read at start.
        """
        streams = (self._inbox, self._presence)
        try:
            with trio.fail_after(self._op_timeout * 2):
                tails = await self.redis.pipeline(
                    [("XREVRANGE", s, "+", "-", "COUNT", 1) for s in streams]
                )
        except REDIS_ERRORS as exc:
            raise HubUnavailable(f"cannot read the node's inbox: {exc!r}") from exc
        for stream, tail in zip(streams, tails, strict=True):
            if isinstance(tail, ReplyError):
                raise HubUnavailable(f"cannot read the node's inbox: {tail}")
            self._last_id[stream] = tail[0][0] if tail else b"0-0"
        self.listening = True
        self.since = trio.current_time()
        task_status.started()
        reader = self.conn
        backoff = 0.05
        while True:
            # This task only waits for a failure. No timeout per read (a cancel scope
            # each costs): the hub's watchdog resets a connection that stays silent too
            # long, which fails the read.
            failed = self._read_failed = trio.Event()
            try:
                if not reader.connected:
                    with trio.fail_after(self._op_timeout):
                        await reader.connect()
                self._issue()
            except REDIS_ERRORS as exc:
                self._read_error = exc
                failed.set()
            await failed.wait()
            exc = self._read_error
            if self.listening:
                log.warning("node %s: reading the inbox failed: %r", self._node_id, exc)
            self.listening = False
            if exc is not None:
                self._failed(exc)
            reader.reset()  # a new connection; we go on from the last id handled
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def _issue(self) -> None:
        ids = bulk(self._last_id[self._inbox]) + bulk(self._last_id[self._presence])
        self.conn.send_encoded(self._head + ids, 1, self._on_read)

    def _on_read(self, result: Any) -> None:
        """An XREAD's reply (in the reader connection's task): handle it, read again."""
        reply = result if isinstance(result, BaseException) else result[0]
        if isinstance(reply, BaseException):
            self._read_error = reply
            self._read_failed.set()
            return
        try:
            if not self.listening:
                log.info("node %s: reading the inbox again", self._node_id)
                self._ok()  # (an idle node learns here that Redis is back)
                self.listening = True
                self.since = trio.current_time()
                self._on_back()
            self.reads += 1
            inbox = self._inbox
            for stream, entries in reply or ():
                for entry_id, fields in entries:
                    self.entries += 1
                    try:
                        self._on_entry(stream, fields, stream == inbox)
                    except Exception:  # noqa: BLE001 - one bad entry must not stop the reader
                        log.exception("node %s: bad stream entry %r", self._node_id, entry_id)
                    self._last_id[stream] = entry_id
        finally:
            try:
                self._issue()
            except REDIS_ERRORS as exc:
                self._read_error = exc
                self._read_failed.set()

    def _on_entry(self, stream: bytes, fields: list[bytes], inbox: bool) -> None:
        tag = body = b""
        for i in range(0, len(fields) - 1, 2):
            if fields[i] == b"f":
                tag = fields[i + 1]
            elif fields[i] == b"b":
                body = fields[i + 1]
        epoch, _, seq_b = tag.partition(b":")
        seq = int(seq_b) if seq_b else 0
        key = (stream, epoch)
        if seq <= self._seen.get(key, 0):
            self.duplicates += 1  # written again after a failed flush: handled already
            return
        self._seen[key] = seq
        handle = self._on_inbox if inbox else self._on_presence
        for record in body.split(b"\n"):
            handle(record)
