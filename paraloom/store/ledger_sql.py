"""The scope ledger's logic, written once for every SQL backend (see
:mod:`paraloom.runtime.scopes` for what a scope is and the guarantee).

Three tables, created on first use: ``paraloom_scopes`` (key, limit, spent, reserved),
``paraloom_holds`` (one row per outstanding reservation: its holder, scopes, amount,
when) and ``paraloom_holders`` (one row per process holding: host, pid, a lease it
renews every ``lease_s / 3``). Money is exact: ``NUMERIC`` on PostgreSQL, Decimal text
on SQLite, never a float.

Two ways to take a reservation, chosen by ``strategy``:

* ``"conditional"`` (needs exact arithmetic in SQL, PostgreSQL): one statement,
  ``WITH locked AS (SELECT key … WHERE key IN (…) ORDER BY key FOR UPDATE) UPDATE …
  SET reserved = reserved + x … WHERE limit - spent - reserved >= x``; a row count short
  of the number of scopes rolls the whole transaction back.
* ``"locked"`` (every backend): the scopes' rows are read under a lock (``SELECT …
  ORDER BY key FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), checked in
  ``Decimal`` and written back.

Either way rows are locked in sorted key order, by reservations, settlements and the
reaper alike (scopes first, then the hold row), so no two transactions deadlock.
The backends only say how to connect, open a write transaction and spell the dialect.
"""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import anyio
from anyio.abc import TaskGroup

from paraloom.runtime.scopes import (
    ScopeState,
    UnknownScope,
    money,
    refused,
    validate_scope_key,
)
from paraloom.store.liveness import hostname

__all__ = ["Dialect", "HolderInfo", "LedgerError", "SqlLedger", "Strategy", "Tx", "pid_alive"]

Strategy = Literal["conditional", "locked"]
_SEP = "\n"  # scope keys are printable: never contain it


class Tx(Protocol):
    """One open write transaction."""

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run a statement; return its row count."""
        ...

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the SQL backends."""

    name: str
    money_type: str
    time_type: str
    now: str  # SQL expression: seconds since the epoch, on the database's clock
    lock_rows: str  # appended to a SELECT of rows about to be updated
    placeholder: str
    money_param: Callable[[Decimal], object]
    exact_sql_arithmetic: bool

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def schema(self) -> list[str]:
        m, t = self.money_type, self.time_type
        return [
            f"CREATE TABLE IF NOT EXISTS paraloom_scopes (key TEXT PRIMARY KEY, "
            f"limit_usd {m} NOT NULL, spent_usd {m} NOT NULL, reserved_usd {m} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS paraloom_holders (holder TEXT PRIMARY KEY, "
            f"host TEXT NOT NULL, pid INTEGER NOT NULL, label TEXT NOT NULL, "
            f"lease_until {t} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS paraloom_holds (hold TEXT PRIMARY KEY, "
            f"holder TEXT NOT NULL, scopes TEXT NOT NULL, amount {m} NOT NULL, "
            f"created {t} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS paraloom_holds_holder ON paraloom_holds (holder)",
        ]


@dataclass(frozen=True, slots=True)
class HolderInfo:
    holder: str
    host: str
    pid: int
    label: str
    expired: bool


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class LedgerError(Exception):
    """The ledger cannot be opened or used (its location, never a password, is named)."""


class _Refusal(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class SqlLedger(ABC):
    """A :class:`~paraloom.runtime.scopes.ScopeLedger` over SQL. Use it as an async
    context manager: it creates its tables, registers this process as a holder, reaps
    dead holders, and renews its lease until it exits."""

    dialect: Dialect

    def __init__(
        self,
        *,
        strategy: Strategy = "locked",
        lease_s: float = 30.0,
        label: str = "",
    ) -> None:
        if strategy == "conditional" and not self.dialect.exact_sql_arithmetic:
            raise ValueError(f"strategy 'conditional' needs exact SQL money ({self.dialect.name})")
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.strategy: Strategy = strategy
        self.lease_s = lease_s
        self.label = label
        self.holder = uuid.uuid4().hex
        self.host = hostname()
        self.pid = os.getpid()
        self._holds: dict[str, tuple[tuple[str, ...], Decimal]] = {}
        self._tg: TaskGroup | None = None
        self._stop = anyio.Event()

    # -- what a backend provides ------------------------------------------------------

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction: committed on a clean exit, rolled back on an error."""

    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _disconnect(self) -> None: ...

    async def _create_schema(self, tx: Tx) -> None:
        for statement in self.dialect.schema():
            await tx.execute(statement)

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._connect()
        try:
            async with self.transaction() as tx:
                await self._create_schema(tx)
            await self._renew()
            await self.reap()
            self._tg = await anyio.create_task_group().__aenter__()
            self._tg.start_soon(self._heartbeat)
        except BaseException:
            await self._disconnect()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg, self._tg = self._tg, None
        try:
            if tg is not None:  # let a renewal under way finish, not cancel it mid-query
                self._stop.set()
                await tg.__aexit__(None, None, None)
            with anyio.CancelScope(shield=True):
                if not self._holds:  # a holder with holds left stays, to be reaped
                    async with self.transaction() as tx:
                        q = self.dialect.sql("DELETE FROM paraloom_holders WHERE holder = ?")
                        await tx.execute(q, (self.holder,))
        finally:
            with anyio.CancelScope(shield=True):
                await self._disconnect()

    async def _renew(self) -> None:
        d = self.dialect
        async with self.transaction() as tx:
            n = await tx.execute(
                d.sql(f"UPDATE paraloom_holders SET lease_until = {d.now} + ? WHERE holder = ?"),
                (self.lease_s, self.holder),
            )
            if n == 0:
                await tx.execute(
                    d.sql(
                        "INSERT INTO paraloom_holders (holder, host, pid, label, lease_until) "
                        f"VALUES (?, ?, ?, ?, {d.now} + ?)"
                    ),
                    (self.holder, self.host, self.pid, self.label, self.lease_s),
                )

    async def _heartbeat(self) -> None:
        while True:
            with anyio.move_on_after(self.lease_s / 3):
                await self._stop.wait()
                return
            try:
                await self._renew()
            except Exception:  # a missed beat is retried; the lease covers two more
                continue

    # -- the ledger -------------------------------------------------------------------

    def _in(self, keys: Sequence[str]) -> str:
        return ", ".join(self.dialect.placeholder for _ in keys)

    def _conditional(self, assignments: str, keys: Sequence[str], condition: str = "") -> str:
        """One UPDATE of the scopes ``keys``, their rows locked in sorted key order first
        (a plain UPDATE locks in scan order, which two transactions may not share)."""
        return self.dialect.sql(
            f"WITH locked AS (SELECT key FROM paraloom_scopes WHERE key IN ({self._in(keys)}) "
            f"ORDER BY key{self.dialect.lock_rows}) "
            f"UPDATE paraloom_scopes AS s SET {assignments} FROM locked "
            f"WHERE s.key = locked.key{condition}"
        )

    async def _locked_rows(self, tx: Tx, keys: Sequence[str]) -> dict[str, list[Decimal]]:
        """The scopes' (limit, spent, reserved), their rows locked, in sorted key order."""
        rows = await tx.fetchall(
            "SELECT key, limit_usd, spent_usd, reserved_usd FROM paraloom_scopes "
            f"WHERE key IN ({self._in(keys)}) ORDER BY key{self.dialect.lock_rows}",
            tuple(keys),
        )
        return {r[0]: [money(r[1]), money(r[2]), money(r[3])] for r in rows}

    async def _write_rows(self, tx: Tx, state: dict[str, list[Decimal]]) -> None:
        m = self.dialect.money_param
        q = self.dialect.sql(
            "UPDATE paraloom_scopes SET spent_usd = ?, reserved_usd = ? WHERE key = ?"
        )
        for key in sorted(state):
            _, spent, reserved = state[key]
            await tx.execute(q, (m(spent), m(reserved), key))

    async def reserve(self, keys: Sequence[str], usd: Decimal) -> str:
        keys = sorted({validate_scope_key(k) for k in keys})
        if not keys:
            raise ValueError("a reservation needs at least one scope")
        hold = uuid.uuid4().hex
        for _ in range(2):
            try:
                with anyio.CancelScope(shield=True):  # a committed hold is always recorded
                    await self._take(keys, usd, hold)
                return hold
            except _Refusal as r:
                error = await self._refusal(keys, r.key, usd)
            if error is not None:
                raise error
            # every scope has room again (others settled since): one more try
        raise refused(keys[0], usd, Decimal(0))  # pragma: no cover - ever-changing ledger

    async def _take(self, keys: Sequence[str], usd: Decimal, hold: str) -> None:
        """Reserve ``usd`` in every scope of (sorted) ``keys`` and record the hold, in
        one transaction; :class:`_Refusal` (rolled back) when one has not enough."""
        d, m = self.dialect, self.dialect.money_param
        async with self.transaction() as tx:
            if self.strategy == "conditional":
                n = await tx.execute(
                    self._conditional(
                        "reserved_usd = s.reserved_usd + ?",
                        keys,
                        " AND s.limit_usd - s.spent_usd - s.reserved_usd >= ?",
                    ),
                    (*keys, m(usd), m(usd)),
                )
                if n != len(keys):
                    raise _Refusal(keys[0])
            else:
                state = await self._locked_rows(tx, keys)
                for key in keys:
                    row = state.get(key)
                    if row is None or row[0] - row[1] - row[2] < usd:
                        raise _Refusal(key)
                    row[2] += usd
                await self._write_rows(tx, state)
            await tx.execute(
                d.sql(
                    "INSERT INTO paraloom_holds (hold, holder, scopes, amount, created)"
                    f" VALUES (?, ?, ?, ?, {d.now})"
                ),
                (hold, self.holder, _SEP.join(keys), m(usd)),
            )
        self._holds[hold] = (tuple(keys), usd)

    async def _refusal(self, keys: Sequence[str], key: str, usd: Decimal) -> Exception | None:
        """Why a reservation was refused, read after the rollback; None if every scope
        has room by now."""
        states = {s.key: s for s in await self.show(keys)}
        missing = [k for k in keys if k not in states]
        if missing:
            return UnknownScope(missing)
        short = next((s for s in states.values() if s.remaining_usd < usd), None)
        return None if short is None else refused(short.key, usd, short.remaining_usd)

    async def settle(self, hold: str, usd: Decimal | None) -> bool:
        entry = self._holds.pop(hold, None)
        if entry is None:
            raise KeyError(f"unknown hold {hold!r}")
        keys, amount = entry
        closed = False
        with anyio.CancelScope(shield=True):
            closed = await self._close(hold, keys, amount, usd)
        return closed

    async def _close(
        self, hold: str, keys: Sequence[str], amount: Decimal, usd: Decimal | None
    ) -> bool:
        """Remove the hold; its scopes lose ``amount`` reserved and gain ``usd`` spent.
        False (nothing changed) if the hold was gone."""
        d, m = self.dialect, self.dialect.money_param
        spent = usd if usd is not None else Decimal(0)
        delete = d.sql("DELETE FROM paraloom_holds WHERE hold = ?")
        try:
            async with self.transaction() as tx:
                if self.strategy == "conditional":
                    await tx.execute(
                        self._conditional(
                            "reserved_usd = s.reserved_usd - ?, spent_usd = s.spent_usd + ?",
                            sorted(keys),
                        ),
                        (*sorted(keys), m(amount), m(spent)),
                    )
                    if await tx.execute(delete, (hold,)) != 1:
                        raise _Refusal(hold)
                else:
                    state = await self._locked_rows(tx, keys)
                    if await tx.execute(delete, (hold,)) != 1:
                        return False
                    for row in state.values():
                        row[1] += spent
                        row[2] -= amount
                    await self._write_rows(tx, state)
        except _Refusal:
            return False
        return True

    async def set_limit(self, key: str, usd: Decimal) -> None:
        validate_scope_key(key)
        if usd < 0:
            raise ValueError("a scope's limit must be >= 0")
        d, m = self.dialect, self.dialect.money_param
        async with self.transaction() as tx:
            q = d.sql("UPDATE paraloom_scopes SET limit_usd = ? WHERE key = ?")
            if await tx.execute(q, (m(usd), key)) == 0:
                await tx.execute(
                    d.sql(
                        "INSERT INTO paraloom_scopes (key, limit_usd, spent_usd, reserved_usd) "
                        "VALUES (?, ?, ?, ?)"
                    ),
                    (key, m(usd), m(Decimal(0)), m(Decimal(0))),
                )

    async def show(self, keys: Sequence[str] | None = None) -> list[ScopeState]:
        where, params = "", tuple(keys or ())
        if keys is not None:
            if not keys:
                return []
            where = f" WHERE key IN ({self._in(keys)})"
        async with self.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT key, limit_usd, spent_usd, reserved_usd FROM paraloom_scopes"
                f"{where} ORDER BY key",
                params,
            )
            held = await tx.fetchall("SELECT scopes FROM paraloom_holds")
        counts: dict[str, int] = {}
        for (scopes,) in held:
            for k in str(scopes).split(_SEP):
                counts[k] = counts.get(k, 0) + 1
        return [
            ScopeState(r[0], money(r[1]), money(r[2]), money(r[3]), counts.get(r[0], 0))
            for r in rows
        ]

    async def holders(self) -> list[HolderInfo]:
        async with self.transaction() as tx:
            rows = await tx.fetchall(
                f"SELECT holder, host, pid, label, lease_until < {self.dialect.now} "
                "FROM paraloom_holders ORDER BY holder"
            )
        return [HolderInfo(r[0], r[1], int(r[2]), r[3], bool(r[4])) for r in rows]

    def _dead(self, h: HolderInfo) -> bool:
        if h.holder == self.holder:
            return False
        return h.expired or (h.host == self.host and not pid_alive(h.pid))

    async def reap(self) -> int:
        closed = 0
        for h in await self.holders():
            if not self._dead(h):
                continue
            async with self.transaction() as tx:
                holds = await tx.fetchall(
                    self.dialect.sql(
                        "SELECT hold, scopes, amount FROM paraloom_holds WHERE holder = ?"
                    ),
                    (h.holder,),
                )
            for hold, scopes, amount in holds:
                # kept as spent at the worst case: the provider may have billed the call
                value = money(amount)
                if await self._close(hold, str(scopes).split(_SEP), value, value):
                    closed += 1
            async with self.transaction() as tx:
                q = (
                    "DELETE FROM paraloom_holders WHERE holder = ? AND NOT EXISTS "
                    "(SELECT 1 FROM paraloom_holds WHERE holder = ?)"
                )
                await tx.execute(self.dialect.sql(q), (h.holder, h.holder))
        return closed
