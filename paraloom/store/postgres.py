"""The run store on PostgreSQL: the same tables, rules, writer and reader as SQLite, for
many processes on many hosts.

    store = RunStore("postgresql://user:pw@db.example/paraloom")   # or open_store(url)

Needs the ``postgres`` extra (``pip install "paraloom[postgres]"``: psycopg 3). What
differs from SQLite lives in :class:`PostgresBackend` and the dialect
(:mod:`paraloom.store.dialect`):

- the projection runs in one trigger function generated from the same rules;
- crashed runs are told by a lease (``lease_s``, default 15 s, or
  ``$PARALOOM_STORE_LEASE_S``) that the writer thread renews every ``lease_s / 3``:
  a run whose writer's lease expired reads ``crashed`` (see
  :mod:`paraloom.store.liveness`); a writer that finds its own lease expired (it was
  frozen or cut off longer than ``lease_s``) writes nothing more: see
  :mod:`paraloom.store.writer`;
- ``synchronous="NORMAL"`` (the default) commits with ``synchronous_commit = off``: a
  commit survives the *client* process being killed (the server has it) but a server
  crash may lose the last commits — always a suffix, so the store still holds a
  gap-free prefix; ``"FULL"`` waits for the server's WAL flush (``synchronous_commit =
  on``), as durable as the server's ``fsync`` makes it;
- a lost connection (a server restart, a failover, a network blip) is re-opened: the
  writer reconnects with backoff for up to ``reconnect_s`` (default 30 s, plus at most
  one ``connect_timeout_s``; 0: never) and re-sends the batch it was committing —
  without the events the server already has, so none is stored twice nor lost (see
  :mod:`paraloom.store.writer`); the lease is renewed on the new connection, and reads
  reconnect too. If the database stays unreachable past the window the writer gives up
  as it would without reconnecting: that batch and every later event are reported by
  ``flush()``, nothing after them is written (the store keeps a gap-free prefix) and
  the run reads ``crashed`` once its lease expired;
- the URL's password is never shown: :attr:`RunStore.location` and every error carry
  the URL without it, and it is registered with the redactor.
"""

from __future__ import annotations

import os
from typing import Any

from paraloom.runtime.redact import register_secret
from paraloom.store.backend import Backend, SessionHold
from paraloom.store.db import Db
from paraloom.store.dialect import POSTGRES
from paraloom.store.liveness import Liveness, NoLock, WriterSession, lease_seconds, session_liveness
from paraloom.store.schema import (
    SCHEMA_VERSION,
    StoreError,
    Synchronous,
    ensure_schema,
    redact_url,
    url_password,
)
from paraloom.store.store import RunStore

try:
    import psycopg
except ImportError:  # pragma: no cover - the extra is missing
    psycopg = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_RECONNECT_S",
    "PostgresBackend",
    "PostgresRunStore",
]

DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_RECONNECT_S = 30.0


class PostgresBackend(Backend):
    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        synchronous: Synchronous = "NORMAL",
        lease_s: float | None = None,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        reconnect_s: float = DEFAULT_RECONNECT_S,
    ) -> None:
        if psycopg is None:
            raise StoreError(
                'a postgresql:// run store needs psycopg: pip install "paraloom[postgres]"'
            )
        self.errors = (psycopg.Error,)
        self.transient = (
            psycopg.errors.DeadlockDetected,
            psycopg.errors.SerializationFailure,
        )
        self.url = url
        self.location = redact_url(url)
        self._password = url_password(url)
        if self._password:
            register_secret(self._password)
        try:
            self.lease_s = lease_seconds(lease_s)
            psycopg.conninfo.conninfo_to_dict(url)
        except (ValueError, psycopg.Error) as exc:
            raise StoreError(f"run store {self.location!r}: {self._scrub(str(exc))}") from None
        self.synchronous: Synchronous = synchronous
        self.connect_timeout_s = connect_timeout_s
        if not reconnect_s >= 0:
            raise StoreError(f"reconnect_s must be >= 0, got {reconnect_s}")
        self.reconnect_s = float(reconnect_s)

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def connect(self, *, create: bool = True) -> Db:
        assert psycopg is not None
        try:
            raw: Any = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout_s)),
                application_name="paraloom-store",
            )
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to run store {self.location!r}: {self._scrub(str(exc)).strip()}"
            ) from None
        db = Db(raw, POSTGRES, self.errors)
        try:
            if self.synchronous == "NORMAL":
                db.execute("SET synchronous_commit = off")
            if create:
                ensure_schema(db)
            else:
                self._check_schema(db)
        except psycopg.Error as exc:
            db.close()
            raise StoreError(
                f"{self.location!r} is not a usable run store: {self._scrub(str(exc)).strip()}"
            ) from None
        except StoreError:
            db.close()
            raise
        return db

    def _check_schema(self, db: Db) -> None:
        if db.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
            raise StoreError(f"no run store at {self.location!r}; nothing has been recorded there")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise StoreError(f"{self.location!r}: run store schema version {row} not supported")

    def hold_session(self, session: str) -> SessionHold:
        return NoLock()

    def liveness(self, writer: WriterSession) -> Liveness:
        return session_liveness(None, writer)


class PostgresRunStore(RunStore):
    """A :class:`~paraloom.store.RunStore` in a PostgreSQL database (see the module docs);
    ``RunStore(url)`` and ``open_store(url)`` return one for a ``postgresql://`` URL.
    ``busy_timeout_s`` is accepted for a uniform call and unused."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_s: float = 30.0,
        create: bool = True,
        redact: bool = False,
        lease_s: float | None = None,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        reconnect_s: float = DEFAULT_RECONNECT_S,
    ) -> None:
        if path is None:
            from paraloom.store.schema import default_store_location

            path = default_store_location()
        self._path = None
        self._open(
            PostgresBackend(
                str(path),
                synchronous=synchronous,
                lease_s=lease_s,
                connect_timeout_s=connect_timeout_s,
                reconnect_s=reconnect_s,
            ),
            create=create,
            redact=redact,
        )
