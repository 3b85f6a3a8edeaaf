"""SQLite WAL checkpoints run off the writer's commits (a thread of their own), and the
WAL is still started over, so it does not grow without bound."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import cast

import pytest

from paraloom.protocols.events import RunStarted, SubtaskSkipped
from paraloom.store import RunStore, backend
from paraloom.store.backend import WalCheckpointer
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
