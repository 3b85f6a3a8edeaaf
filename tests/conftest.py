from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The slow integration checks (real Phoenix, Ray, SIGKILLed processes, the reference MCP
# server, the local model server, CLI subprocess end-to-end runs). A plain `pytest` leaves
# them out so the default run stays quick; `pytest --integration` (what CI runs) selects
# everything, and `-m EXPR` selects by marker as usual.
INTEGRATION_MARKERS = ("slow", "ray", "phoenix", "node", "local_llm", "postgres")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--integration",
        action="store_true",
        help="also run the slow integration checks (Phoenix, Ray, SIGKILL, MCP, local model)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--integration") or config.getoption("markexpr"):
        return
    keep: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        slow = any(item.get_closest_marker(m) for m in INTEGRATION_MARKERS)
        (left_out if slow else keep).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = keep


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_real_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's OPENAI_* settings must never send test requests to a real API:
    every test starts with no key and a base URL pointing at a closed local port."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # discard port


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on 127.0.0.1 for the session (tests marked ``postgres``).

    Skips when the server binaries are missing, except under CI, where it fails: CI
    installs them (scripts/setup.sh) and must exercise the real database."""
    from paraloom.testing.postgres import PostgresServer, PostgresUnavailable, find_pg_bin

    if find_pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries missing under CI: scripts/setup.sh installs them")
        pytest.skip("PostgreSQL server binaries not installed (scripts/setup.sh)")
    try:
        server = PostgresServer()
        server.start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the session's server, dropped after the test."""
    from paraloom.testing.postgres import scratch_database

    with scratch_database(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's run store lives, once per backend: a SQLite file, or a fresh
    PostgreSQL database's URL (the ``postgres`` case is marked ``postgres``)."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.sqlite")
    url: str = request.getfixturevalue("pg_database")
    return url
