"""The run store's SQLite schema and connection settings.

One file holds many runs. Tables (all keyed by ``run_id``):

- ``runs``: one row per run (workflow, input task, source file, status, output, cost);
  nested workflow runs name their ``parent_run_id``.
- ``rounds``: one row per planner round (the plan or the final answer, the feedback).
- ``subtasks``: the latest state of each subtask (status, result, executions, reuse).
- ``attempts``: every action invocation (one per attempt; agents' tool calls too).
- ``llm_calls``: every LLM call (model, tokens, cost, latency, the routing decision).
- ``events``: the raw event log, in emission order per writer session.
- ``approvals``: every approval request and its decision (who, when, reason, edited
  arguments); ``outcome`` is NULL while it is pending.
- ``sessions``: one row per writer session (host, pid, whether it holds its liveness
  lock, its lease's expiry, when it closed): how a reader tells a crashed run from a
  running one (see :mod:`paraloom.store.liveness`).

Money is stored as decimal strings (exact), JSON as text, times as ``time.time()``.
The same DDL serves PostgreSQL (:mod:`paraloom.store.dialect` adapts the types).
SQLite connections use WAL (readers never block the writer, several processes may share
the file) and a busy timeout; every write happens inside ``BEGIN IMMEDIATE … COMMIT``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from paraloom.store.db import Db
from paraloom.store.dialect import SQLITE

__all__ = [
    "DEFAULT_STORE_PATH",
    "SCHEMA_VERSION",
    "STORE_ENV",
    "StoreError",
    "Synchronous",
    "connect",
    "default_store_location",
    "default_store_path",
    "ensure_schema",
    "immediate",
    "is_postgres_url",
    "redact_url",
    "url_password",
]

SCHEMA_VERSION = 1
STORE_ENV = "PARALOOM_STORE"
DEFAULT_STORE_PATH = Path(".paraloom") / "runs.sqlite"

Synchronous = Literal["NORMAL", "FULL"]


class StoreError(RuntimeError):
    """The run store cannot be opened, read or written."""


_DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    task_json TEXT,
    source TEXT,
    metadata_json TEXT,
    parent_run_id TEXT,
    parent_call_id TEXT,
    budget_usd TEXT,
    output_json TEXT,
    error TEXT,
    cost_usd TEXT,
    score REAL,
    sessions INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    ended_at REAL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_run_id);
CREATE TABLE IF NOT EXISTS rounds (
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    call_id TEXT,
    planner TEXT,
    plan_json TEXT,
    has_final INTEGER NOT NULL DEFAULT 0,
    final_output_json TEXT,
    error TEXT,
    replayed INTEGER NOT NULL DEFAULT 0,
    feedback_json TEXT,
    started_at REAL,
    planned_at REAL,
    finished_at REAL,
    PRIMARY KEY (run_id, round)
);
CREATE TABLE IF NOT EXISTS plan_calls (
    call_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    outcome TEXT
);
CREATE TABLE IF NOT EXISTS subtasks (
    run_id TEXT NOT NULL,
    subtask_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    action TEXT NOT NULL,
    kind TEXT,
    depends_on_json TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    result_json TEXT,
    cost_usd TEXT,
    executions INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    reused INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (run_id, subtask_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    call_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    subtask_id TEXT,
    parent_call_id TEXT,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    arguments_json TEXT,
    status TEXT NOT NULL,
    result_json TEXT,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS attempts_run ON attempts (run_id);
CREATE TABLE IF NOT EXISTS llm_calls (
    llm_call_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    parent_call_id TEXT,
    round INTEGER,
    subtask_id TEXT,
    model TEXT NOT NULL,
    provider TEXT,
    step_kind TEXT,
    routing_json TEXT,
    reserved_usd TEXT,
    messages_json TEXT,
    response_model TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd TEXT,
    finish_reason TEXT,
    latency_s REAL,
    error TEXT,
    budget_left_usd TEXT,
    output_json TEXT,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS llm_calls_run ON llm_calls (run_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    emit_seq INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    type TEXT NOT NULL,
    ts REAL NOT NULL,
    data_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, id);
CREATE TABLE IF NOT EXISTS approvals (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    subtask_id TEXT,
    round INTEGER,
    call_id TEXT,
    action TEXT,
    arguments_json TEXT,
    projection_json TEXT,
    requested_at REAL,
    outcome TEXT,
    decided_by TEXT,
    reason TEXT,
    edited_json TEXT,
    decided_at REAL,
    waited_s REAL,
    offline INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS sessions (
    session TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    locked INTEGER NOT NULL,
    started_at REAL NOT NULL,
    closed_at REAL
);
"""


def default_store_location() -> str:
    """``$PARALOOM_STORE`` if set (a file path or a ``postgresql://`` URL), else
    ``.paraloom/runs.sqlite`` under the current dir."""
    env = os.environ.get(STORE_ENV, "").strip()
    return env or str(DEFAULT_STORE_PATH)


def default_store_path() -> Path:
    """``$PARALOOM_STORE`` if set, else ``.paraloom/runs.sqlite`` under the current dir, as
    a SQLite path (a ``postgresql://`` URL is not a path: use
    :func:`default_store_location`)."""
    return Path(default_store_location())


def is_postgres_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names a PostgreSQL database (else it is a SQLite file)."""
    return isinstance(location, str) and location.lower().startswith(
        ("postgresql://", "postgres://")
    )


def url_password(url: str) -> str | None:
    """The password in a PostgreSQL ``url`` (user part or ``password=`` parameter), if
    any: what to register with the redactor (psycopg's own parsing when installed)."""
    try:
        import psycopg.conninfo

        password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    except Exception:  # not installed, or not a URL psycopg parses
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
    return str(password) if password else None


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter)
    replaced by ``***``: fit to print."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.partition("://")[0] + "://***"
    if password:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if "password" in parts.query.lower():
        query = "&".join(
            f"{k}=***" if k.strip().lower() == "password" else f"{k}={v}" if sep else k
            for k, sep, v in (pair.partition("=") for pair in parts.query.split("&"))
        )
        parts = parts._replace(query=query)
    return urlunsplit(parts)


def connect(
    path: Path,
    *,
    synchronous: Synchronous = "NORMAL",
    busy_timeout_s: float = 30.0,
    create: bool = True,
) -> Db:
    """Open ``path`` in WAL mode with the schema in place (blocking: call it off the
    event loop). ``create=False`` refuses to create a missing file."""
    if not create and not path.exists():
        raise StoreError(f"run store {str(path)!r} does not exist")
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open run store {str(path)!r}: {exc}") from exc
    db = Db(conn, SQLITE, (sqlite3.Error,))
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        _retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"), busy_timeout_s)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA temp_store = MEMORY")
        if conn.execute("""SELECT json_extract('{"a":[1]}', '$.a')""").fetchone()[0] != "[1]":
            raise StoreError("SQLite's JSON functions do not behave as expected")
        _retry_busy(lambda: ensure_schema(db), busy_timeout_s)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{str(path)!r} is not a usable run store: {exc}") from exc
    except StoreError:
        conn.close()
        raise
    return db


@contextlib.contextmanager
def immediate(db: Db) -> Iterator[None]:
    """A write transaction around the block (see :meth:`Db.write`)."""
    with db.write():
        yield


# Columns added after schema version 1 shipped: created on stores that lack them
# (additive, so version 1 stores stay readable by older paraloom).
_ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("runs", "warnings_json", "TEXT"),
    ("llm_calls", "cached_input_tokens", "INTEGER"),
    ("llm_calls", "reasoning_tokens", "INTEGER"),
    ("llm_calls", "cache_write_tokens", "INTEGER"),
    ("llm_calls", "abandoned", "INTEGER NOT NULL DEFAULT 0"),
    ("llm_calls", "usage_anomaly", "TEXT"),
    ("sessions", "expires_at", "REAL"),
)

_SCHEMA_LOCK = 0x70A7A1003
"""PostgreSQL advisory lock key: one process at a time sets the schema up."""


def _add_columns(db: Db) -> None:
    for table, column, kind in _ADDED_COLUMNS:
        if db.dialect.postgres:
            db.execute(
                f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {db.dialect.ddl(kind)}"
            )
            continue
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def ensure_schema(db: Db) -> None:
    """Create the tables (idempotent; PostgreSQL: one process at a time)."""
    with db.write():
        if db.dialect.postgres:
            db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
        for statement in db.dialect.ddl(_DDL).split(";"):
            if statement.strip():
                db.execute(statement)
        _add_columns(db)
        for statement in db.dialect.extra_ddl():
            db.execute(statement)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif row[0] != str(SCHEMA_VERSION):
            raise StoreError(
                f"run store schema version {row[0]} is not supported (expected {SCHEMA_VERSION})"
            )


def _retry_busy(fn: Callable[[], object], timeout_s: float) -> None:
    """Run ``fn`` again while SQLite reports the file busy (schema set-up only)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            fn()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise StoreError(f"run store busy for {timeout_s}s: {exc}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
