from __future__ import annotations

import typing
from pathlib import Path

import pytest

import paraloom.store
from paraloom.orchestrator.result import RunStatus
from paraloom.store import models, schema, store


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
