"""The scope ledger in a SQLite file: processes on one machine share it, every write
inside ``BEGIN IMMEDIATE`` (one writer at a time, others wait up to ``busy_timeout_s``).
Money is Decimal text; the logic is :class:`~paraloom.store.ledger_sql.SqlLedger`'s."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from paraloom.store.ledger_sql import Dialect, LedgerError, SqlLedger, Strategy

__all__ = ["SqliteLedger"]

SQLITE = Dialect(
    name="sqlite",
    money_type="TEXT",
    time_type="REAL",
    now="((julianday('now') - 2440587.5) * 86400.0)",
    lock_rows="",  # BEGIN IMMEDIATE has taken the write lock already
    placeholder="?",
    money_param=str,
    exact_sql_arithmetic=False,
)


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        cur = await anyio.to_thread.run_sync(self.conn.execute, sql, tuple(params))
        return cur.rowcount

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            return self.conn.execute(sql, tuple(params)).fetchall()

        return await anyio.to_thread.run_sync(run)


class SqliteLedger(SqlLedger):
    """Scopes in the SQLite file at ``path`` (created if missing)."""

    dialect = SQLITE

    def __init__(
        self,
        path: Path | str,
        *,
        strategy: Strategy = "locked",
        lease_s: float = 30.0,
        label: str = "",
        busy_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(strategy=strategy, lease_s=lease_s, label=label)
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"SqliteLedger({str(self.path)!r})"

    async def _connect(self) -> None:
        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error:
                conn.close()
                raise
            return conn

        try:
            self._conn = await anyio.to_thread.run_sync(connect)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger {str(self.path)!r}: {exc}") from exc

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTx]:
        conn = self._conn
        if conn is None:
            raise LedgerError("the ledger is not open (use it as 'async with')")
        async with self._lock:
            try:
                await anyio.to_thread.run_sync(conn.execute, "BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger {str(self.path)!r}: {exc}") from exc
            try:
                yield _SqliteTx(conn)
            except BaseException:
                with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                    await anyio.to_thread.run_sync(conn.execute, "ROLLBACK")
                raise
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(conn.execute, "COMMIT")
