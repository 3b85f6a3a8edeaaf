from __future__ import annotations

import typing
from pathlib import Path

import pytest

import paraloom.store
from paraloom.orchestrator.result import RunStatus
from paraloom.store import ledger, models, schema, store


def test_package_exports() -> None:
    """Exactly the documented names, each the very object of its home module."""
    expected = {
        "DEFAULT_STORE_PATH": schema,
        "FINISHED_STATUSES": models,
        "STORE_ENV": schema,
        "DurableExecutor": store,
        "LLMCallRecord": models,
        "RoundRecord": models,
        "RunInfo": models,
        "RunNotFoundError": models,
        "RunStore": store,
        "RunSummary": models,
        "StoreError": schema,
        "SubtaskRecord": models,
        "default_store_path": schema,
        "is_postgres_url": schema,
        "open_store": store,
        "open_ledger": ledger,
        "LEDGER_ENV": ledger,
    }
    assert set(paraloom.store.__all__) == set(expected)
    for name, home in expected.items():
        assert getattr(paraloom.store, name) is getattr(home, name), name


def test_finished_statuses_are_every_run_status() -> None:
    """A status the orchestrator can finish with that the store did not know would list
    a finished run as running or crashed."""
    assert set(typing.get_args(RunStatus)) == paraloom.store.FINISHED_STATUSES


def test_default_store_path_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paraloom.store.STORE_ENV, raising=False)
    assert paraloom.store.default_store_path() == Path(".paraloom") / "runs.sqlite"
    monkeypatch.setenv("PARALOOM_STORE", " /data/runs.sqlite ")
    assert paraloom.store.default_store_path() == Path("/data/runs.sqlite")
    monkeypatch.setenv("PARALOOM_STORE", "  ")
    assert paraloom.store.default_store_path() == paraloom.store.DEFAULT_STORE_PATH


def test_the_location_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A postgresql:// or postgres:// URL is PostgreSQL, anything else a SQLite path
    (``RunStore(path)`` keeps working); ``$PARALOOM_STORE`` may be either."""
    from paraloom.store.postgres import PostgresRunStore

    for url in ("postgresql://u@h/db", "postgres://u@h/db", "POSTGRESQL://u@h/db"):
        assert paraloom.store.is_postgres_url(url)
    for path in ("runs.sqlite", "postgresql.sqlite", tmp_path / "postgresql://x", "pg:x"):
        assert not paraloom.store.is_postgres_url(path)
    with paraloom.store.open_store(tmp_path / "a.sqlite") as s:
        assert type(s) is paraloom.store.RunStore and s.path == tmp_path / "a.sqlite"
    with paraloom.store.RunStore(str(tmp_path / "b.sqlite")) as s:
        assert s.location == str(tmp_path / "b.sqlite")
    monkeypatch.setenv("PARALOOM_STORE", "postgresql://u:pw-x7@127.0.0.1:9/db")
    with pytest.raises(paraloom.store.StoreError, match="cannot connect") as info:
        paraloom.store.RunStore(connect_timeout_s=1)
    assert "pw-x7" not in str(info.value) and "postgresql://u:***@127.0.0.1:9/db" in str(info.value)
    assert issubclass(PostgresRunStore, paraloom.store.RunStore)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw-1@h:5432/db", "postgresql://u:***@h:5432/db"),
        (
            "postgres://u@h/db?password=pw-1&sslmode=require",
            "postgres://u@h/db?password=***&sslmode=require",
        ),
        ("postgresql://u:pw-1@h/db?PASSWORD=pw-1", "postgresql://u:***@h/db?PASSWORD=***"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:pw-1@[bad/db", "postgresql://***"),
    ],
)
def test_store_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    from paraloom.store.schema import redact_url

    assert redact_url(url) == shown
    assert "pw-1" not in redact_url(url)
