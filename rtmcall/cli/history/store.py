"""The call history (SPEC §6): every invitation and call the softphone sees, in SQLite.

One file per OS user, ``calls.sqlite3`` in the config directory (``RTMCALL_CONFIG_DIR``, else
the platform's, e.g. ``~/.config/rtmcall``), with a ``user`` column: ``rtmcall history
--user U`` shows one rtmcall user's. Several rtmcall processes may write at once: the file
is in WAL mode (readers never block the writer), every write is one short ``BEGIN
IMMEDIATE`` transaction, SQLite waits up to ``busy_timeout`` (3 s) for the write lock, and
a "database is locked" that still comes is retried twice more after a pause (so a file
locked for good is given up on within about 10 s, with one warning).

Writes never run on the trio event loop: :class:`HistoryRecorder` queues rows and one task
hands them, in batches, to a worker thread (``trio.to_thread.run_sync``), so a slow disk never
stalls the prompt. A file that cannot be opened or written (corrupt, locked for too long,
read-only, made by a newer rtmcall) costs one warning line; the softphone goes on without
history.

Schema (version 1; ``schema_version`` holds the version, :data:`MIGRATIONS` the steps from
each version to the next, applied in one transaction at open):

* ``calls``: one row per (user, invitation id, direction) — ``caller``, ``callee``, ``peer``,
  ``content``, ``channel_id``, ``response``, ``reason`` (refuse reason ``busy``/``declined``,
  or the call's CallEnded reason), ``state``/``state_code`` (the Agora end state),
  ``error``/``error_code``, ``sent_at``, ``rang_at``, ``answered_at``, ``ended_at`` (Unix
  times, local clock), ``duration`` (the call's, seconds), ``missed`` (0/1: an incoming
  invitation that ended without our accept or refuse).
* ``meta``: key/value (``last_seen:USER``: when USER's last login session ended, for the
  missed-call line at login).
"""

from __future__ import annotations

import math
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from rtmcall.engine.codes import RemoteInvitationError
from rtmcall.engine.events import (
    CallEnded,
    InvitationEvent,
    InvitationInfo,
    LocalInvitationAccepted,
    LocalInvitationReceivedByPeer,
    LocalInvitationRefused,
    RemoteInvitationAccepted,
    RemoteInvitationCanceled,
    RemoteInvitationFailure,
    RemoteInvitationReceived,
    RemoteInvitationRefused,
)

FILE_NAME = "calls.sqlite3"
SCHEMA_VERSION = 1

#: version -> the statements that take a database from version - 1 to it.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE calls (
            user TEXT NOT NULL,
            id TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('out', 'in')),
            caller TEXT NOT NULL DEFAULT '',
            callee TEXT NOT NULL DEFAULT '',
            peer TEXT NOT NULL DEFAULT '',
            content TEXT NOT NULL DEFAULT '',
            channel_id TEXT NOT NULL DEFAULT '',
            response TEXT NOT NULL DEFAULT '',
            reason TEXT,
            state TEXT,
            state_code INTEGER,
            error TEXT,
            error_code INTEGER,
            sent_at REAL,
            rang_at REAL,
            answered_at REAL,
            ended_at REAL,
            duration REAL,
            missed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (user, id, direction)
        )""",
        "CREATE INDEX calls_by_time ON calls (user, sent_at DESC)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
}

#: Columns an upsert may set (every other name is refused: the SQL is built from these).
_COLUMNS = (
    "caller",
    "callee",
    "peer",
    "content",
    "channel_id",
    "response",
    "reason",
    "state",
    "state_code",
    "error",
    "error_code",
    "sent_at",
    "rang_at",
    "answered_at",
    "ended_at",
    "duration",
    "missed",
)
#: Columns of a listing, in order (``--json`` keys).
LISTED = (
    "id",
    "user",
    "direction",
    "caller",
    "callee",
    "peer",
    "content",
    "channel_id",
    "response",
    "reason",
    "state",
    "state_code",
    "error",
    "error_code",
    "missed",
    "sent_at",
    "rang_at",
    "answered_at",
    "ended_at",
    "duration",
)
_TIMES = ("sent_at", "rang_at", "answered_at", "ended_at")


class HistoryError(Exception):
    """The history file cannot be used; the message is one line for the user."""


def history_path() -> Path:
    from .. import config

    return config.config_dir() / FILE_NAME


@dataclass(frozen=True, slots=True)
class Upsert:
    """Set ``fields`` on the row (user, id, direction), creating it if need be."""

    user: str
    id: str
    direction: str
    fields: dict[str, Any] = field(default_factory=dict)


def _is_locked(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class HistoryStore:
    """The SQLite file (synchronous: call it from a worker thread).

    Args:
      path: the file; its folder is created.
      busy_timeout: seconds SQLite waits for another process's write lock.
      retries: how often a "database is locked" that still comes is tried again.
    """

    def __init__(self, path: Path, *, busy_timeout: float = 3.0, retries: int = 2) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.retries = retries
        self._db: sqlite3.Connection | None = None

    # --- opening, the schema ------------------------------------------------------------

    def open(self) -> HistoryStore:
        """Open (creating and migrating) the file. Raises :class:`HistoryError`."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # autocommit; transactions are explicit
                check_same_thread=False,  # one writer task, but any worker thread
            )
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open the call history {self.path}: {exc}") from None
        self._db = db
        try:
            self._retry(self._setup)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise HistoryError(f"cannot use the call history {self.path}: {exc}") from None
        return self

    def _setup(self) -> None:
        db = self._db
        assert db is not None
        db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.DatabaseError(f"journal mode {mode}, not wal")
        db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a crash loses no commit
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] or 0
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"it was made by a newer rtmcall (schema {version}, this one knows "
                    f"{SCHEMA_VERSION})"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (step,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def version(self) -> int:
        row = self._conn().execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise HistoryError("the call history is not open")
        return self._db

    def _retry(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; on "database is locked" (beyond busy_timeout) try again a few times."""
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc) or attempt == self.retries:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    # --- writing ------------------------------------------------------------------------

    def write(self, ops: Sequence[Upsert]) -> None:
        """Apply ``ops`` in one transaction. Raises :class:`HistoryError`."""
        if not ops:
            return
        db = self._conn()

        def transaction() -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                for op in ops:
                    _upsert(db, op)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        try:
            self._retry(transaction)
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot write the call history {self.path}: {exc}") from None

    def set_meta(self, key: str, value: str) -> None:
        db = self._conn()
        try:
            self._retry(
                lambda: db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            )
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot write the call history {self.path}: {exc}") from None

    def get_meta(self, key: str) -> str | None:
        row = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0][0] if row else None

    # --- reading ------------------------------------------------------------------------

    def _read(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        db = self._conn()
        try:
            return self._retry(lambda: db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise HistoryError(f"cannot read the call history {self.path}: {exc}") from None

    def query(
        self,
        *,
        user: str | None = None,
        missed: bool = False,
        peer: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows as dicts (keys :data:`LISTED`), newest first."""
        where, args = [], []
        if user is not None:
            where.append("user = ?")
            args.append(user)
        if peer is not None:
            where.append("peer = ?")
            args.append(peer)
        if missed:
            where.append("missed = 1")
        sql = f"SELECT {', '.join(LISTED)} FROM calls"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY coalesce(sent_at, rang_at, ended_at) DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        rows = self._read(sql, args)
        return [dict(zip(LISTED, row, strict=True)) for row in rows]

    def missed_since(self, user: str, since: float) -> list[str]:
        """The callers of ``user``'s calls missed after ``since`` (one entry per call)."""
        rows = self._read(
            "SELECT peer FROM calls WHERE user = ? AND missed = 1 AND ended_at > ? "
            "ORDER BY ended_at",
            (user, since),
        )
        return [r[0] for r in rows]


def _upsert(db: sqlite3.Connection, op: Upsert) -> None:
    cols = [c for c in op.fields if c in _COLUMNS]
    names = ["user", "id", "direction", *cols]
    values = [op.user, op.id, op.direction, *(op.fields[c] for c in cols)]
    placeholders = ", ".join("?" * len(names))
    # Timestamps are set once (the first event that knows them); the rest follow the latest.
    sets = ", ".join(
        f"{c} = coalesce({c}, excluded.{c})" if c in _TIMES else f"{c} = excluded.{c}" for c in cols
    )
    sql = f"INSERT INTO calls ({', '.join(names)}) VALUES ({placeholders})"
    sql += (
        f" ON CONFLICT (user, id, direction) DO UPDATE SET {sets}"
        if sets
        else " ON CONFLICT DO NOTHING"
    )
    db.execute(sql, values)


# --- events -> rows -----------------------------------------------------------------------


def _snapshot(info: InvitationInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "caller": info.caller,
        "callee": info.callee,
        "peer": info.peer,
        "content": info.content,
        "channel_id": info.channel_id,
        "response": info.response,
        "state": info.state.name,
        "state_code": int(info.state),
    }
    if info.error:
        out["error"] = info.error.name
        out["error_code"] = int(info.error)
    if info.reason:
        out["reason"] = info.reason
    return out


def row_for_sent(user: str, info: InvitationInfo, now: float) -> Upsert:
    """``call`` sent a new invitation."""
    return Upsert(user, info.id, "out", {**_snapshot(info), "sent_at": now})


def row_for_event(user: str, ev: object, now: float) -> Upsert | None:
    """The row change an event makes, or None for events the history does not keep."""
    if isinstance(ev, CallEnded):
        call = ev.call
        return Upsert(
            user,
            call.id,
            call.direction,
            {
                "caller": call.caller,
                "callee": call.callee,
                "peer": call.peer,
                "reason": ev.reason.name,
                "ended_at": now,
                "duration": round(ev.duration, 3),
            },
        )
    if not isinstance(ev, InvitationEvent):
        return None
    info = ev.invitation
    fields = _snapshot(info)
    match ev:
        case RemoteInvitationReceived():
            fields.update(sent_at=now, rang_at=now)
        case LocalInvitationReceivedByPeer():
            fields["rang_at"] = now
        case LocalInvitationAccepted() | RemoteInvitationAccepted():
            fields["answered_at"] = now
        case LocalInvitationRefused() | RemoteInvitationRefused():
            fields.update(answered_at=now, ended_at=now, reason=info.reason or "declined")
        case RemoteInvitationCanceled():
            fields.update(ended_at=now, missed=1)
        case RemoteInvitationFailure(error=error):
            fields.update(ended_at=now, missed=int(error != RemoteInvitationError.ACCEPT_FAILURE))
            fields.update(error=error.name, error_code=int(error))
        case _:  # the caller's canceled and failures
            fields["ended_at"] = now
            error = getattr(ev, "error", None)
            if error is not None:
                fields.update(error=error.name, error_code=int(error))
    return Upsert(user, info.id, info.direction, fields)


# --- the recorder (trio) ------------------------------------------------------------------


class HistoryRecorder:
    """Queues history rows and writes them off the event loop. See the module docstring.

    Args:
      user: our user id (the rows' ``user``).
      warn: shows one warning line (called at most once per problem kind).
      path: the file (default: :func:`history_path`).
      login_session: this is a ``login`` session: at start say how many calls were missed
        since the last one (``on_missed``), and at the end note when it ended.
      on_missed: gets the callers of the missed calls (only called when there are some).
    """

    def __init__(
        self,
        user: str,
        warn: Callable[[str], None],
        *,
        path: Path | None = None,
        login_session: bool = False,
        on_missed: Callable[[list[str]], None] | None = None,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 3.0,
    ) -> None:
        self.user = user
        self.path = path or history_path()
        self.login_session = login_session
        self._warn = warn
        self._on_missed = on_missed
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._send, self._recv = trio.open_memory_channel[Upsert](math.inf)
        self.store: HistoryStore | None = None
        #: False once the file failed: rows are dropped from then on.
        self.enabled = True
        self._opened = trio.Event()
        self._pending = 0
        self._idle = trio.Event()
        self._idle.set()
        self.written = 0

    # --- from the softphone (synchronous, never blocks) ---------------------------------

    def sent(self, info: InvitationInfo) -> None:
        self._queue(row_for_sent(self.user, info, self._clock()))

    def event(self, ev: object) -> None:
        op = row_for_event(self.user, ev, self._clock())
        if op is not None:
            self._queue(op)

    def _queue(self, op: Upsert) -> None:
        if not self.enabled:
            return
        self._pending += 1
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        self._send.send_nowait(op)

    # --- the writer task ----------------------------------------------------------------

    def _fail(self, exc: HistoryError) -> None:
        if self.enabled:
            self.enabled = False
            self._warn(f"warning: {exc}; going on without call history")

    def _open(self) -> tuple[HistoryStore, list[str] | None]:
        store = HistoryStore(self.path, busy_timeout=self._busy_timeout).open()
        missed = None
        if self.login_session:
            key = f"last_seen:{self.user}"
            since = float(store.get_meta(key) or 0.0)
            missed = store.missed_since(self.user, since)
            store.set_meta(key, repr(self._clock()))
        return store, missed

    async def run(self) -> None:
        """Open the file, then write queued rows as they come, until cancelled."""
        try:
            # abandon_on_cancel: a file locked for long must not hold up the exit.
            self.store, missed = await trio.to_thread.run_sync(self._open, abandon_on_cancel=True)
        except HistoryError as exc:
            self._fail(exc)
        else:
            if missed and self._on_missed is not None:
                self._on_missed(missed)
        finally:
            self._opened.set()
        while True:
            batch = [await self._recv.receive()]
            while True:
                try:
                    batch.append(self._recv.receive_nowait())
                except trio.WouldBlock:
                    break
            if self.enabled and self.store is not None:
                try:
                    await trio.to_thread.run_sync(self.store.write, batch, abandon_on_cancel=True)
                    self.written += len(batch)
                except HistoryError as exc:
                    self._fail(exc)
            self._pending -= len(batch)
            if self._pending == 0:
                self._idle.set()

    async def flush(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (a bound, not a deadline)
        """Wait (at most ``timeout``) until every queued row is written."""
        with trio.move_on_after(timeout):
            await self._opened.wait()
            await self._idle.wait()

    async def close(self, timeout: float = 3.0) -> None:  # noqa: ASYNC109
        """Flush, note the end of a login session, close the file: each step at most
        ``timeout`` (a file locked by another process never holds up the exit long)."""
        await self.flush(timeout)
        store = self.store
        if store is None or not self._idle.is_set():
            return  # never opened, or a write still waits for a lock: leave it be
        self.store = None

        def finish() -> None:
            try:
                if self.login_session and self.enabled:
                    store.set_meta(f"last_seen:{self.user}", repr(self._clock()))
            except HistoryError:
                pass
            finally:
                store.close()

        with trio.move_on_after(timeout):
            await trio.to_thread.run_sync(finish, abandon_on_cancel=True)

    async def query(self, **kw: Any) -> list[dict[str, Any]]:
        """Rows of this file (see :meth:`HistoryStore.query`), read in a worker thread.

        Raises:
          HistoryError: the file cannot be read.
        """
        await self.flush()

        def read() -> list[dict[str, Any]]:
            store = HistoryStore(self.path).open()
            try:
                return store.query(**kw)
            finally:
                store.close()

        return await trio.to_thread.run_sync(read)


def warn_to_stderr(line: str) -> None:
    print(f"rtmcall: {line}", file=sys.stderr, flush=True)


# --- showing it ---------------------------------------------------------------------------


def iso(ts: float | None) -> str | None:
    """A Unix time as local ISO 8601 with its offset (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row for ``--json``: times in ISO 8601, ``missed`` a boolean."""
    out = dict(row)
    for key in _TIMES:
        out[key] = iso(row[key])
    out["missed"] = bool(row["missed"])
    return out


def outcome_words(row: dict[str, Any]) -> str:
    """How it ended, in words: ``call 01:23, peer hung up``, ``missed: canceled``, …"""
    from rtmcall.engine.codes import CallEndReason

    from ..formats.calls import clock, end_short

    state, error, reason = row["state"] or "", row["error"], row["reason"]
    if row["duration"] is not None and reason in CallEndReason.__members__:
        return f"call {clock(row['duration'])}, {end_short(CallEndReason[reason])}"
    if state in ("ACCEPTED", "ACCEPTED_BY_REMOTE"):
        return "in call" if row["ended_at"] is None else "accepted"
    if row["missed"]:
        what = "canceled" if state == "CANCELED" else (error or state).lower().replace("_", " ")
        return f"missed: {what}"
    if state in ("REFUSED", "REFUSED_BY_REMOTE"):
        return f"refused: {reason or 'declined'}"
    if state == "FAILURE":
        return f"failed: {(error or '').lower().replace('_', ' ')}"
    return state.lower().replace("_", " ") if state else "?"


def text_line(row: dict[str, Any]) -> str:
    """One readable line per row (the interactive ``history`` command, pipe mode)."""
    ts = row["sent_at"] or row["rang_at"] or row["ended_at"]
    when = datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "?"
    arrow = "→ out" if row["direction"] == "out" else "← in "
    content = f"  {row['content']!r}" if row["content"] else ""
    return f"{when}  {arrow}  {row['peer']}  {outcome_words(row)}{content}  [{row['id'][:6]}]"
