"""The SQLite writer's commits cost as little as they can on the event loop's critical
path: one call into SQLite per batch (each call gives the GIL up and takes it back), and
no WAL checkpoint inside them (a thread of their own does it, and still starts the WAL
over, so it does not grow without bound)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from paraloom.protocols.events import RunStarted, SubtaskSkipped
from paraloom.store import RunStore, backend
from paraloom.store.backend import WalCheckpointer
from paraloom.store.schema import StoreError
from tests.store.conftest import query

RUN = "run_ck"


def commit_events(store: RunStore, count: int) -> None:
    """``count`` events, one commit each."""
    for i in range(count):
        store.record(SubtaskSkipped(run_id=RUN, round=1, subtask_id=f"s{i}", reason="x" * 200))
        store.flush()


def wal_frames(path: Path) -> int:
    """Frames in the WAL since it was last started over (read by a PASSIVE checkpoint)."""
    with sqlite3.connect(path, timeout=30) as conn:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


class _Counting:
    """A connection that counts the statements run on it."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw
        self.statements: list[str] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        self.statements.append(sql.split(None, 1)[0])
        return self.raw.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def test_a_batch_is_one_call_into_sqlite(tmp_path: Path) -> None:
    """No BEGIN/COMMIT/DELETE around the batch's INSERT: the statement is the
    transaction, and the view's triggers stage no row."""
    with RunStore(tmp_path / "runs.sqlite") as store:
        store.record(RunStarted(run_id=RUN, workflow="w"))
        store.flush()
        writer = store._get_writer()
        counting = _Counting(writer._conn.raw)
        writer._conn.raw = counting  # the writer thread waits for events: safe to swap
        for i in range(3):
            store.record(SubtaskSkipped(run_id=RUN, round=1, subtask_id=f"s{i}", reason="x"))
        store.flush()
        writer._conn.raw = counting.raw
        assert counting.statements == ["INSERT"] * len(counting.statements)
        assert 1 <= len(counting.statements) <= 3  # one per batch
    assert len(query(tmp_path / "runs.sqlite", "SELECT 1 FROM subtasks")) == 3


def test_a_failing_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    """The one statement is atomic: an event a trigger refuses rolls its batch back, and
    the writer then stores the others one by one."""
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        store.record(RunStarted(run_id=RUN, workflow="w"))
        store.flush()
        with sqlite3.connect(path) as conn:  # any insert into subtasks now fails
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON subtasks WHEN NEW.subtask_id = 'bad'"
                " BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        for sid in ("a", "bad", "b"):
            store.record(SubtaskSkipped(run_id=RUN, round=1, subtask_id=sid, reason="x"))
        with pytest.raises(StoreError, match="refused"):
            store.flush()
    rows = query(path, "SELECT subtask_id FROM subtasks ORDER BY subtask_id")
    assert rows == [("a",), ("b",)]
    logged = query(path, "SELECT type FROM events ORDER BY id")
    assert logged == [("run_started",), ("subtask_skipped",), ("subtask_skipped",)]


def test_the_writer_connection_never_checkpoints(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.sqlite") as store:
        store.record(RunStarted(run_id=RUN, workflow="w"))
        store.flush()
        conn = store._get_writer()._conn
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert conn.execute("PRAGMA cache_size").fetchone()[0] == -backend.WRITER_CACHE_KIB
        # any other connection keeps SQLite's auto-checkpoint
        with sqlite3.connect(tmp_path / "runs.sqlite") as other:
            assert other.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000


@pytest.mark.timeout(60)
def test_the_checkpoint_thread_copies_the_wal_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every few commits the thread checkpoints: the database file alone (no WAL) then
    holds the events, although the writer's own connection never checkpoints."""
    monkeypatch.setattr(backend, "CHECKPOINT_COMMITS", 5)
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        store.record(RunStarted(run_id=RUN, workflow="w"))
        commit_events(store, 20)
        checkpointer = store._get_writer()._checkpointer
        assert isinstance(checkpointer, WalCheckpointer)
        deadline = time.monotonic() + 30
        while checkpointer.checkpoints < 1:  # the thread runs when it gets the CPU
            assert time.monotonic() < deadline, "no checkpoint within 30 s"
            time.sleep(0.01)
        checkpointer.close()  # no pass running while the file is copied
        shutil.copy(path, tmp_path / "copy.sqlite")  # the database file without its WAL
        (stored,) = query(tmp_path / "copy.sqlite", "SELECT COUNT(*) FROM events")[0]
        assert stored >= 5


class _ReaderLeaves:
    """The checkpointer's connection, where a reader that pinned an old snapshot leaves
    right after the PASSIVE pass (as a writer busy during that pass leaves frames that
    pass could not copy back)."""

    def __init__(self, conn: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        self.conn, self.reader = conn, reader

    def execute(self, sql: str) -> sqlite3.Cursor:
        cursor = self.conn.execute(sql)
        if "PASSIVE" in sql:
            self.reader.execute("ROLLBACK")
        return cursor


def test_a_long_wal_is_started_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PASSIVE checkpoint that could not copy the whole WAL back leaves it to grow:
    the next commit appends to it. Past RESTART_FRAMES the pass restarts it, so the
    next commit writes from its start."""
    monkeypatch.setattr(backend, "CHECKPOINT_COMMITS", 10**9)  # no thread: one pass by hand
    monkeypatch.setattr(backend, "CHECKPOINT_EVENTS", 10**9)
    monkeypatch.setattr(backend, "RESTART_FRAMES", 20)
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        store.record(RunStarted(run_id=RUN, workflow="w"))
        commit_events(store, 30)
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM events").fetchone()  # pins this snapshot
        commit_events(store, 10)
        assert wal_frames(path) >= 40
        checkpointer = WalCheckpointer(path)
        conn = checkpointer.connect()
        try:
            checkpointer.checkpoint(cast(sqlite3.Connection, _ReaderLeaves(conn, reader)))
        finally:
            conn.close()
            reader.close()
        assert checkpointer.checkpoints == 1
        commit_events(store, 1)
        assert wal_frames(path) < 20  # started over, not appended to
    assert len(query(path, "SELECT 1 FROM events")) == 42
