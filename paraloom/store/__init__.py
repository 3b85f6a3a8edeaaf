"""The run store: every run, round, subtask, attempt and LLM call in a SQLite file or a
PostgreSQL database (``open_store(url_or_path)``), written as it happens; resume of
crashed or cancelled runs; trajectory export. And the ledger of budget scopes shared
across processes (:func:`open_ledger`)."""

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
