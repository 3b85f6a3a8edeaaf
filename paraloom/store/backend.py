"""Where a run store keeps its tables: the small interface the store, its writer and its
reader share, and the SQLite implementation (PostgreSQL: :mod:`paraloom.store.postgres`).

A backend opens connections (:class:`~paraloom.store.db.Db`, schema in place), tells
the writer how to prove it is alive (a kernel lock, or a lease renewed by heartbeats:
see :mod:`paraloom.store.liveness`) and judges other writers' sessions. Everything else —
flattening, the projection rules, batching, durable waits, the reader's queries — is
the same code for every backend.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

from paraloom.store.apply import install_projection
from paraloom.store.db import Db
from paraloom.store.dialect import SQLITE, Dialect
from paraloom.store.liveness import Liveness, SessionLock, WriterSession, session_liveness
from paraloom.store.schema import StoreError, Synchronous, connect

__all__ = ["Backend", "Checkpointer", "SessionHold", "SqliteBackend", "WalCheckpointer"]


class SessionHold(Protocol):
    """What a writer session holds while it is open (``held``: a kernel lock)."""

    @property
    def held(self) -> bool: ...

    def release(self) -> None: ...


class Backend(ABC):
    dialect: Dialect
    errors: tuple[type[Exception], ...]
    """The driver's error base classes."""
    transient: tuple[type[Exception], ...] = ()
    """Errors after which a write transaction is simply tried again (deadlocks, …)."""
    lease_s: float | None = None
    """The writer's lease (None: liveness by kernel lock)."""
    location: str
    """Where the store is, for messages: a path, or a URL without its password."""
    reconnect_s: float | None = None
    """How long the writer keeps reconnecting after its connection was lost (None:
    never; a SQLite connection is never lost)."""

    @abstractmethod
    def connect(self, *, create: bool = True) -> Db:
        """A connection with the schema in place (blocking)."""

    @abstractmethod
    def hold_session(self, session: str) -> SessionHold: ...

    @abstractmethod
    def liveness(self, writer: WriterSession) -> Liveness: ...

    def checkpointer(self) -> Checkpointer | None:
        """What keeps the writer's commits free of housekeeping (SQLite: a thread that
        checkpoints the WAL), or None."""
        return None

    def connect_writer(self) -> Db:
        """A connection whose inserts into ``incoming`` apply the projection rules."""
        db = self.connect()
        try:
            install_projection(db)
        except self.errors as exc:
            db.close()
            raise StoreError(f"cannot prepare the run store writer: {exc}") from exc
        return db


class Checkpointer(Protocol):
    def committed(self, events: int) -> None:
        """Told by the writer thread after each commit (must be quick)."""

    def close(self) -> None: ...


CHECKPOINT_COMMITS = 100
CHECKPOINT_EVENTS = 2000
"""The writer wakes the checkpointer after this many commits or events (about 1,000
WAL pages either way, SQLite's own auto-checkpoint threshold, for a no-op chain)."""
WRITER_CACHE_KIB = 32 * 1024
"""The writer connection's page cache (an upper bound: it grows with use)."""
RESTART_FRAMES = 4096
"""WAL frames (pages: 16 MiB) past which the checkpointer starts the WAL over."""
RESTART_WAIT_S = 0.02
"""How long a ``RESTART`` checkpoint may wait for the write lock and for readers."""


class WalCheckpointer:
    """Checkpoints a SQLite WAL in a thread and a connection of its own, so that the
    writer's commits (almost) never do: SQLite's auto-checkpoint runs inside the
    ``COMMIT`` that crosses its threshold, copies the WAL back and syncs both files
    there (milliseconds, far more on a busy disk), holding up every attempt waiting for
    that commit. This thread's ``PASSIVE`` checkpoints take no lock the writer needs: it
    goes on appending to the WAL meanwhile. Since a WAL is only started over from the
    beginning once it was copied back in full, and a busy writer always has appended a
    little more, the thread then asks for a ``RESTART`` when the WAL holds
    :data:`RESTART_FRAMES` frames or more: that one does hold the writer off, for the
    few frames left and the syncs (never longer than ``RESTART_WAIT_S`` waiting for
    readers). The writer's connection has auto-checkpoints off
    (:meth:`SqliteBackend.connect_writer`); other connections (readers, other
    processes) keep theirs, and closing the last connection checkpoints as usual. Woken
    every :data:`CHECKPOINT_COMMITS` commits or :data:`CHECKPOINT_EVENTS` events, not
    on every commit (a thread wake-up each commit would compete for the GIL)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stop = False
        self._commits = self._events = 0
        self._thread: threading.Thread | None = None
        self.checkpoints = 0
        """How many checkpoints it ran (for tests and benchmarks)."""

    def committed(self, events: int) -> None:
        self._commits += 1
        self._events += events
        if self._commits < CHECKPOINT_COMMITS and self._events < CHECKPOINT_EVENTS:
            return
        self._commits = self._events = 0
        if self._stop:
            return
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="paraloom-store-checkpoint", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self._path, timeout=RESTART_WAIT_S, isolation_level=None, check_same_thread=False
        )

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One pass: copy the WAL back, and have it started over once it is long."""
        with contextlib.suppress(sqlite3.Error):  # busy: the next pass will do
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= RESTART_FRAMES:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            self.checkpoints += 1

    def _run(self) -> None:
        conn = self.connect()
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                self.checkpoint(conn)
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it is running, if any)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()


class SqliteBackend(Backend):
    dialect = SQLITE
    errors = (sqlite3.Error,)

    def __init__(self, path: Path, *, synchronous: Synchronous, busy_timeout_s: float) -> None:
        self.path = path
        self.location = str(path)
        self.synchronous: Synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s

    def connect(self, *, create: bool = True) -> Db:
        return connect(
            self.path,
            synchronous=self.synchronous,
            busy_timeout_s=self.busy_timeout_s,
            create=create,
        )

    def connect_writer(self) -> Db:
        db = super().connect_writer()
        db.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer's thread does it
        # The default 2 MiB page cache is smaller than what a 1,000-wide run writes:
        # its b-tree pages would be read back from the OS on every batch.
        db.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        return db

    def checkpointer(self) -> Checkpointer:
        return WalCheckpointer(self.path)

    def hold_session(self, session: str) -> SessionHold:
        return SessionLock(self.path, session)

    def liveness(self, writer: WriterSession) -> Liveness:
        return session_liveness(self.path, writer)
