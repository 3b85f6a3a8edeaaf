from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from paraloom.store.ledger import open_ledger
from paraloom.store.ledger_sql import SqlLedger, Strategy


async def fresh_postgres(url: str) -> None:
    """Drop the ledger's tables: each test starts from an empty ledger."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DROP TABLE IF EXISTS paraloom_scopes, paraloom_holds, paraloom_holders")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("conditional", marks=pytest.mark.postgres),
        pytest.param("locked", marks=pytest.mark.postgres),
    ]
)
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlLedger]:
    """A fresh ledger: SQLite, or PostgreSQL in either strategy (marked postgres)."""
    if request.param == "sqlite":
        location = str(tmp_path / "ledger.sqlite")
        strategy: Strategy = "locked"
    else:
        location = request.getfixturevalue("postgres_url")
        strategy = request.param
        await fresh_postgres(location)
    async with open_ledger(location, strategy=strategy) as led:
        yield led
