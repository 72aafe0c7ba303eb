"""The call history's SQLite file (SPEC §6): schema and migrations, concurrent writers in
separate processes (nothing lost, no "database is locked"), a locked or corrupt file, and
the recorder writing off the event loop."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import trio

from rtmcall.cli.history.store import (
    SCHEMA_VERSION,
    HistoryError,
    HistoryRecorder,
    HistoryStore,
    Upsert,
)
from rtmcall.engine.codes import (
    CallEndReason,
    RemoteInvitationError,
    RemoteInvitationState,
)
from rtmcall.engine.events import (
    CallEnded,
    CallInfo,
    RemoteInvitationFailure,
    RemoteInvitationInfo,
    RemoteInvitationReceived,
)

from .conftest import REPO

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from rtmcall.cli.history.store import HistoryStore, Upsert

    path, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    store = HistoryStore(path).open()
    for i in range(n):
        # One transaction per row, as a softphone writes them: the most lock contention.
        store.write([Upsert(who, f"{who}-{i}", "out", {
            "caller": who, "callee": "peer", "peer": "peer", "sent_at": float(i),
            "state": "SENT_TO_REMOTE", "state_code": 1,
        })])
        store.write([Upsert(who, f"{who}-{i}", "out", {"rang_at": float(i) + 0.5})])
    store.close()
    print("done", n)
    """
)


def test_two_processes_write_hundreds_of_rows_at_once(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    n = 300
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), who, str(n)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("alice", "bob")
    ]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == f"done {n}"
    store = HistoryStore(path).open()
    for who in ("alice", "bob"):
        rows = store.query(user=who)
        assert len(rows) == n
        assert all(r["rang_at"] == r["sent_at"] + 0.5 for r in rows)
        assert rows[0]["id"] == f"{who}-{n - 1}"  # newest first
    store.close()


def test_a_new_file_gets_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "sub" / "calls.sqlite3").open()
    assert store.version() == SCHEMA_VERSION
    store.close()
    db = sqlite3.connect(tmp_path / "sub" / "calls.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schema_version", "calls", "meta"} <= tables
    db.close()
    # Opening again migrates nothing and keeps the rows.
    store = HistoryStore(tmp_path / "sub" / "calls.sqlite3").open()
    store.write([Upsert("a", "x", "in", {"caller": "b", "callee": "a", "peer": "b"})])
    store.close()
    store = HistoryStore(tmp_path / "sub" / "calls.sqlite3").open()
    assert [r["id"] for r in store.query()] == ["x"]
    store.close()


def test_a_file_of_a_newer_rtmcall_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    HistoryStore(path).open().close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(HistoryError, match="newer rtmcall"):
        HistoryStore(path).open()
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION + 1
    db.close()


def test_a_corrupt_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(HistoryError) as exc:
        HistoryStore(path).open()
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_a_file_locked_for_too_long_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    store = HistoryStore(path, busy_timeout=0.05, retries=2).open()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        start = time.monotonic()
        with pytest.raises(HistoryError, match="locked"):
            store.write([Upsert("a", "x", "out", {"caller": "a", "callee": "b", "peer": "b"})])
        assert time.monotonic() - start < 5
    finally:
        other.execute("ROLLBACK")
        other.close()
    # Once the lock is gone, writing works again.
    store.write([Upsert("a", "x", "out", {"caller": "a", "callee": "b", "peer": "b"})])
    store.close()


def test_a_lock_held_briefly_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    store = HistoryStore(path, busy_timeout=0.05, retries=8).open()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    store.write([Upsert("a", "x", "out", {"caller": "a", "callee": "b", "peer": "b"})])
    assert len(store.query()) == 1
    store.close()
    other.close()


def _remote(inv_id: str, state: RemoteInvitationState, **kw: object) -> RemoteInvitationInfo:
    return RemoteInvitationInfo(
        id=inv_id, caller="alice", callee="bob", content="hi", channel_id="", response="",
        state=state, error=kw.pop("error", RemoteInvitationError.OK), lifetime=None,
    )  # fmt: skip


async def test_the_recorder_writes_in_a_worker_thread_and_counts_missed(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite3"
    warnings: list[str] = []
    missed: list[list[str]] = []
    now = [1000.0]
    rec = HistoryRecorder(
        "bob", warnings.append, path=path, login_session=True, on_missed=missed.append,
        clock=lambda: now[0],
    )  # fmt: skip
    main = threading.get_ident()
    threads: set[int] = set()
    real_write = HistoryStore.write

    def spy(self: HistoryStore, ops: list[Upsert]) -> None:
        threads.add(threading.get_ident())
        real_write(self, ops)

    HistoryStore.write = spy  # type: ignore[method-assign]
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rec.run)
            rec.event(
                RemoteInvitationReceived(_remote("m1", RemoteInvitationState.INVITATION_RECEIVED))
            )
            now[0] = 1005.0
            failed = _remote("m1", RemoteInvitationState.FAILURE)
            rec.event(RemoteInvitationFailure(failed, RemoteInvitationError.INVITATION_EXPIRE))
            call = CallInfo(id="c1", caller="alice", callee="bob", direction="in")
            rec.event(CallEnded(call, CallEndReason.HANGUP_REMOTE, 12.5))
            await rec.close()
            nursery.cancel_scope.cancel()
    finally:
        HistoryStore.write = real_write  # type: ignore[method-assign]
    assert threads and main not in threads
    assert warnings == [] and missed == []  # nothing was missed before this session
    store = HistoryStore(path).open()
    rows = {r["id"]: r for r in store.query(user="bob")}
    assert rows["m1"]["missed"] == 1 and rows["m1"]["error"] == "INVITATION_EXPIRE"
    assert (rows["m1"]["rang_at"], rows["m1"]["ended_at"]) == (1000.0, 1005.0)
    assert (rows["c1"]["reason"], rows["c1"]["duration"]) == ("HANGUP_REMOTE", 12.5)
    # The session ended at 1005: a call missed after that is announced at the next login.
    store.write([Upsert("bob", "m2", "in", {
        "caller": "carol", "callee": "bob", "peer": "carol", "ended_at": 2000.0, "missed": 1,
    })])  # fmt: skip
    store.close()
    rec2 = HistoryRecorder(
        "bob", warnings.append, path=path, login_session=True, on_missed=missed.append
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rec2.run)
        await rec2.close()
        nursery.cancel_scope.cancel()
    assert missed == [["carol"]]


async def test_the_recorder_warns_once_and_drops_rows_when_the_file_is_bad(
    tmp_path: Path,
) -> None:
    path = tmp_path / "calls.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    warnings: list[str] = []
    rec = HistoryRecorder("bob", warnings.append, path=path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(rec.run)
        for i in range(5):
            rec.event(
                RemoteInvitationReceived(
                    _remote(f"x{i}", RemoteInvitationState.INVITATION_RECEIVED)
                )
            )
        await rec.close()
        nursery.cancel_scope.cancel()
    assert len(warnings) == 1 and "going on without call history" in warnings[0]
    assert not rec.enabled


async def test_a_file_locked_for_good_is_one_warning_and_no_wait_at_the_end(
    tmp_path: Path,
) -> None:
    path = tmp_path / "calls.sqlite3"
    HistoryStore(path).open().close()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")  # another process sits on the write lock
    warnings: list[str] = []
    try:
        rec = HistoryRecorder("bob", warnings.append, path=path, busy_timeout=0.1)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rec.run)
                rec.event(
                    RemoteInvitationReceived(
                        _remote("x", RemoteInvitationState.INVITATION_RECEIVED)
                    )
                )
                await rec.close()  # waits for the open to give up, not much longer
                assert not rec.enabled
                nursery.cancel_scope.cancel()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(warnings) == 1 and "locked" in warnings[0]
