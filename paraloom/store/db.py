"""One connection of the store, whatever the database: the statements are written once
(``?`` placeholders, the common SQL of :mod:`paraloom.store.dialect`) and a :class:`Db`
runs them on a ``sqlite3`` or a ``psycopg`` connection (autocommit: transactions are
the explicit ``BEGIN … COMMIT`` of :meth:`Db.write` and :meth:`Db.read`)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

from paraloom.store.dialect import Dialect
from paraloom.store.pgtext import DecodingCursor

__all__ = ["Db"]


@functools.lru_cache(maxsize=256)
def _translate(dialect: Dialect, sql: str) -> str:
    return dialect.placeholders(sql)


class Db:
    """``raw``: a DB-API connection in autocommit mode; ``errors``: the driver's error
    base classes (what a failed statement raises)."""

    def __init__(self, raw: Any, dialect: Dialect, errors: tuple[type[Exception], ...]) -> None:
        self.raw = raw
        self.dialect = dialect
        self.errors = errors
        self._translate = dialect.postgres

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the driver's cursor (``fetchone``/``fetchall``,
        iterable)."""
        if self._translate:  # PostgreSQL: rows come back with NUL decoded (pgtext)
            return DecodingCursor(self.raw.execute(_translate(self.dialect, sql), params))
        return self.raw.execute(sql, params)

    @property
    def lost(self) -> bool:
        """Whether the connection is gone (closed, or broken by the server or the
        network: PostgreSQL only; a SQLite connection is never lost)."""
        if not self.dialect.postgres:
            return False
        return bool(self.raw.closed or self.raw.broken)

    @property
    def in_transaction(self) -> bool:
        if self.dialect.postgres:
            return bool(self.raw.info.transaction_status != 0)  # 0: IDLE
        return bool(self.raw.in_transaction)

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """A write transaction around the block (``BEGIN IMMEDIATE`` on SQLite: the
        write lock first), rolled back if the block raises."""
        with self._transaction(self.dialect.begin_write, commit=True):
            yield

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """One consistent snapshot for a multi-query read (always rolled back)."""
        with self._transaction(self.dialect.begin_read, commit=False):
            yield

    @contextlib.contextmanager
    def _transaction(self, begin: str, *, commit: bool) -> Iterator[None]:
        self.raw.execute(begin)
        try:
            yield
            if commit:
                self.raw.execute("COMMIT")
        finally:
            if self.in_transaction:
                with contextlib.suppress(*self.errors):
                    self.raw.execute("ROLLBACK")

    def write_batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run ``statements`` in one write transaction. On PostgreSQL ``BEGIN``, the
        statements and ``COMMIT`` go out in one pipeline: one network round trip per
        batch (an error rolls the whole batch back and is raised). On SQLite a single
        statement is its own transaction (autocommit: it takes the write lock, waiting
        as ``BEGIN IMMEDIATE`` would, and commits or rolls back as a whole): one call,
        not three."""
        if not self.dialect.postgres:
            if len(statements) == 1:
                sql, params = statements[0]
                self.execute(sql, params)
                return
            with self.write():
                for sql, params in statements:
                    self.execute(sql, params)
            return
        try:
            with self.raw.pipeline():
                self.raw.execute(self.dialect.begin_write)
                for sql, params in statements:
                    self.execute(sql, params)
                self.raw.execute("COMMIT")
        finally:
            if self.in_transaction:
                with contextlib.suppress(*self.errors):
                    self.raw.execute("ROLLBACK")

    def close(self) -> None:
        with contextlib.suppress(*self.errors):
            self.raw.close()
