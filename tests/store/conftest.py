"""Store test helpers: a second connection to read a store as another process would (the
``store_location`` fixture, over both backends, is in tests/conftest.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paraloom.store.schema import is_postgres_url


def query(location: str | Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (``?`` placeholders) read through a connection of its own."""
    if is_postgres_url(str(location)):
        import psycopg

        with psycopg.connect(str(location), autocommit=True) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), params).fetchall()]
    with sqlite3.connect(location, timeout=30) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
