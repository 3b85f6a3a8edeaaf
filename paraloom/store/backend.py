"""Where a run store keeps its tables: the small interface the store, its writer and its
reader share, and the SQLite implementation (PostgreSQL: :mod:`paraloom.store.postgres`).

A backend opens connections (:class:`~paraloom.store.db.Db`, schema in place), tells
the writer how to prove it is alive (a kernel lock, or a lease renewed by heartbeats:
see :mod:`paraloom.store.liveness`) and judges other writers' sessions. Everything else —
flattening, the projection rules, batching, durable waits, the reader's queries — is
the same code for every backend.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

from paraloom.store.apply import install_projection
from paraloom.store.db import Db
from paraloom.store.dialect import SQLITE, Dialect
from paraloom.store.liveness import Liveness, SessionLock, WriterSession, session_liveness
from paraloom.store.schema import StoreError, Synchronous, connect

__all__ = ["Backend", "SessionHold", "SqliteBackend"]


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

    def connect_writer(self) -> Db:
        """A connection whose inserts into ``incoming`` apply the projection rules."""
        db = self.connect()
        try:
            install_projection(db)
        except self.errors as exc:
            db.close()
            raise StoreError(f"cannot prepare the run store writer: {exc}") from exc
        return db


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

    def hold_session(self, session: str) -> SessionHold:
        return SessionLock(self.path, session)

    def liveness(self, writer: WriterSession) -> Liveness:
        return session_liveness(self.path, writer)
