"""The run store: every run, round, subtask, attempt and LLM call in a SQLite file or a
PostgreSQL database (``open_store(url_or_path)``), written as it happens; resume of
crashed or cancelled runs; trajectory export. And the ledger of budget scopes shared
across processes (:func:`open_ledger`)."""

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package

if TYPE_CHECKING:
    from paraloom.store.ledger import LEDGER_ENV, open_ledger
    from paraloom.store.models import (
        FINISHED_STATUSES,
        LLMCallRecord,
        RoundRecord,
        RunInfo,
        RunNotFoundError,
        RunSummary,
        SubtaskRecord,
    )
    from paraloom.store.schema import (
        DEFAULT_STORE_PATH,
        STORE_ENV,
        StoreError,
        default_store_path,
        is_postgres_url,
    )
    from paraloom.store.store import DurableExecutor, RunStore, open_store

# Imported on first use: a run without budget scopes does not import the ledger (its SQL
# and PostgreSQL modules), nor a command without a store the store.
lazy_package(
    __name__,
    {
        "ledger": ("LEDGER_ENV", "open_ledger"),
        "models": (
            "FINISHED_STATUSES",
            "LLMCallRecord",
            "RoundRecord",
            "RunInfo",
            "RunNotFoundError",
            "RunSummary",
            "SubtaskRecord",
        ),
        "schema": (
            "DEFAULT_STORE_PATH",
            "STORE_ENV",
            "StoreError",
            "default_store_path",
            "is_postgres_url",
        ),
        "store": ("DurableExecutor", "RunStore", "open_store"),
    },
)

__all__ = [
    "DEFAULT_STORE_PATH",
    "FINISHED_STATUSES",
    "LEDGER_ENV",
    "STORE_ENV",
    "DurableExecutor",
    "LLMCallRecord",
    "RoundRecord",
    "RunInfo",
    "RunNotFoundError",
    "RunStore",
    "RunSummary",
    "StoreError",
    "SubtaskRecord",
    "default_store_path",
    "is_postgres_url",
    "open_ledger",
    "open_store",
]
