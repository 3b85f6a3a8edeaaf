"""The scope ledger in PostgreSQL (psycopg 3, async, a small connection pool): any
number of processes on any number of machines share it. Money is ``NUMERIC``; the
logic is :class:`~paraloom.store.ledger_sql.SqlLedger`'s, in either strategy.

Needs the ``postgres`` extra: ``pip install "paraloom[postgres]"``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from paraloom.runtime.redact import register_secret
from paraloom.store.ledger_sql import Dialect, LedgerError, SqlLedger, Strategy, Tx
from paraloom.store.schema import redact_url, url_password

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresLedger", "scrub_passwords"]


def _decimal(value: Decimal) -> Decimal:
    return value


POSTGRES = Dialect(
    name="postgres",
    money_type="NUMERIC",
    time_type="DOUBLE PRECISION",
    now="extract(epoch from clock_timestamp())::double precision",
    lock_rows=" FOR UPDATE",
    placeholder="%s",
    money_param=_decimal,
    exact_sql_arithmetic=True,
)
# two processes creating the tables at once would race on the catalog
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(7252733771300519)"


_USERINFO = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_DSN_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def scrub_passwords(text: str) -> str:
    """Passwords in anything URL- or DSN-shaped inside ``text`` replaced by ``***``."""
    return _DSN_PASSWORD.sub(r"\1***", _USERINFO.sub(r"\1***@", text))


class _PgTx:
    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        cur = await self.conn.execute(sql, tuple(params), prepare=True)
        return cur.rowcount

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        cur = await self.conn.execute(sql, tuple(params), prepare=True)
        return list(await cur.fetchall())


class PostgresLedger(SqlLedger):
    """Scopes in the PostgreSQL database at ``url`` (``postgresql://…``)."""

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        strategy: Strategy = "locked",
        lease_s: float = 30.0,
        label: str = "",
        max_connections: int = 4,
    ) -> None:
        super().__init__(strategy=strategy, lease_s=lease_s, label=label)
        self.url = url
        self.max_connections = max_connections
        self._pool: AsyncConnectionPool[Any] | None = None

    def __repr__(self) -> str:
        return f"PostgresLedger({redact_url(self.url)!r})"

    async def _connect(self) -> None:
        try:
            import psycopg
            from psycopg_pool import AsyncConnectionPool
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise ImportError(
                'the PostgreSQL ledger needs psycopg: pip install "paraloom[postgres]"'
            ) from exc
        where = redact_url(self.url)
        password = url_password(self.url)
        if password:  # the one redactor scrubs it everywhere too
            register_secret(password)
        try:  # one connection first: a wrong URL fails now, not after the pool's retries
            first = await psycopg.AsyncConnection.connect(self.url, connect_timeout=10)
            await first.close()
        except Exception as exc:
            raise LedgerError(f"cannot open the ledger {where}: {_reason(exc)}") from None
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.max_connections,
            kwargs={"autocommit": True},
            open=False,
            timeout=30,
        )
        try:
            await pool.open(wait=True, timeout=30)
        except Exception as exc:
            await pool.close()
            raise LedgerError(f"cannot open the ledger {where}: {_reason(exc)}") from None
        self._pool = pool

    async def _disconnect(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _create_schema(self, tx: Tx) -> None:
        await tx.execute(_SCHEMA_LOCK)
        await super()._create_schema(tx)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PgTx]:
        pool = self._pool
        if pool is None:
            raise LedgerError("the ledger is not open (use it as 'async with')")
        async with pool.connection() as conn, conn.transaction():
            yield _PgTx(conn)


def _reason(exc: BaseException) -> str:
    """The error's first line, any password in it masked."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return scrub_passwords(text)
