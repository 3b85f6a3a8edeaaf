"""Open the scope ledger at a location: a ``postgresql://`` URL, or a SQLite file path.

The CLI takes it from ``--ledger``, else ``$PARALOOM_LEDGER``, else
``.paraloom/ledger.sqlite``. It is kept apart from the run store
(``--store``): budgets may be shared by processes recording runs in different stores."""

from __future__ import annotations

import os
from pathlib import Path

from paraloom.store.ledger_postgres import PostgresLedger, scrub_passwords
from paraloom.store.ledger_sql import SqlLedger, Strategy
from paraloom.store.ledger_sqlite import SqliteLedger
from paraloom.store.schema import is_postgres_url, redact_url

__all__ = ["DEFAULT_LEDGER", "LEDGER_ENV", "default_ledger_location", "describe", "open_ledger"]

LEDGER_ENV = "PARALOOM_LEDGER"
DEFAULT_LEDGER = ".paraloom/ledger.sqlite"


def default_ledger_location() -> str:
    return os.environ.get(LEDGER_ENV) or DEFAULT_LEDGER


def open_ledger(
    location: str,
    *,
    strategy: Strategy | None = None,
    lease_s: float = 30.0,
    label: str = "",
) -> SqlLedger:
    """The ledger at ``location`` (not yet open: use it as ``async with``). ``strategy``
    defaults to the backend's faster one as measured (README: "Shared budgets")."""
    if is_postgres_url(location):
        return PostgresLedger(
            location, strategy=strategy or "conditional", lease_s=lease_s, label=label
        )
    return SqliteLedger(Path(location), strategy=strategy or "locked", lease_s=lease_s, label=label)


def describe(location: str) -> str:
    """``location`` safe to print (a URL's password masked)."""
    return redact_url(location) if is_postgres_url(location) else scrub_passwords(location)
