"""Store fixtures: the store location, parametrized over the backends (SQLite file,
PostgreSQL database — a fresh database per test), and a second connection to read it
as another process would."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from paraloom.store.schema import is_postgres_url

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new database, dropped after the test."""
    from paraloom.testing.postgres import scratch_database

    with scratch_database(postgres_url) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's store lives: a SQLite file, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.sqlite")
    url: str = request.getfixturevalue("pg_database")
    return url


def query(location: str | Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (``?`` placeholders) read through a connection of its own."""
    if is_postgres_url(str(location)):
        import psycopg

        with psycopg.connect(str(location), autocommit=True) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), params).fetchall()]
    with sqlite3.connect(location, timeout=30) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
