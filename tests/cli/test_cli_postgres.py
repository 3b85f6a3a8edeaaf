"""The CLI on a PostgreSQL run store: ``--store postgresql://…`` and ``$PARALOOM_STORE``
work for run, runs list/show/export, resume and approve; the URL's password is never
printed; an unusable URL is bad input (exit 2) naming ``--store``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paraloom.cli import EXIT_BAD_INPUT, EXIT_OK, RunOutput, app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PIPELINE = str(EXAMPLES / "data_pipeline.yaml")
PASSWORD = "pw-Kx82-never-shown"

runner = CliRunner()


def _with_password(url: str) -> str:
    return url.replace("postgresql://paraloom@", f"postgresql://paraloom:{PASSWORD}@", 1)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "PARALOOM_TRACE", "PARALOOM_STORE"):
        monkeypatch.delenv(var, raising=False)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert PASSWORD not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_approve_and_the_environment_on_postgres(
    pg_database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``$PARALOOM_STORE`` may be a URL (run, runs list, approve use it); nothing lands
    in a local file. (run/list/show/export/resume on a URL: test_cli_commands.)"""
    monkeypatch.setenv("PARALOOM_STORE", _with_password(pg_database))
    code, out, err = _invoke("run", PIPELINE, "--json")
    assert code == EXIT_OK, err
    result = RunOutput.model_validate_json(out)
    assert result.store is not None and ":***@" in result.store
    code, out, err = _invoke("runs", "list", "--json")
    assert code == EXIT_OK, err
    assert [r["run_id"] for r in json.loads(out)] == [result.run_id]
    code, _, err = _invoke("approve", result.run_id)
    assert code == EXIT_BAD_INPUT and "has no pending approval (status ok)" in err
    assert list(tmp_path.iterdir()) == []  # no SQLite file on the side


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_a_database_without_a_store_is_not_created_by_reading(pg_database: str) -> None:
    for args in (["runs", "list"], ["runs", "show", "run_x"], ["resume", "run_x"]):
        code, _, err = _invoke(*args, "--store", _with_password(pg_database))
        assert code == EXIT_BAD_INPUT, err
        assert "no run store at" in " ".join(err.split())
        assert "Traceback" not in err
    import psycopg

    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT to_regclass('runs')").fetchone() == (None,)


CLOSED = f"postgresql://paraloom:{PASSWORD}@127.0.0.1:9/paraloom"  # port 9: nothing there


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["runs", "list", "--store", CLOSED], "--store postgresql://paraloom:***@127.0.0.1:9"),
        (["runs", "show", "r", "--store", CLOSED], "cannot connect to run store"),
        (["resume", "r", "--store", CLOSED], "--store postgresql://paraloom:***@127.0.0.1:9"),
        (["approve", "r", "--store", CLOSED], "--store postgresql://paraloom:***@127.0.0.1:9"),
        (["run", PIPELINE, "--store", CLOSED], "--store postgresql://paraloom:***@127.0.0.1:9"),
        (
            ["runs", "list", "--store", "postgres://u:secret-pw-1@127.0.0.1:notaport/db"],
            "--store postgres://u:***@127.0.0.1:notaport/db",
        ),
    ],
)
def test_an_unusable_store_url_is_bad_input_without_the_password(
    args: list[str], expected: str
) -> None:
    start = time.monotonic()
    code, out, err = _invoke(*args)
    assert code == EXIT_BAD_INPUT, out + err
    assert expected in " ".join(err.split())
    assert "Traceback" not in out + err and "secret-pw-1" not in out + err
    assert time.monotonic() - start < 30  # the connect timeout bounds it


def test_an_unusable_store_url_from_the_environment_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PARALOOM_STORE", CLOSED)
    code, _, err = _invoke("runs", "list")
    assert code == EXIT_BAD_INPUT
    assert "$PARALOOM_STORE (postgresql://paraloom:***@127.0.0.1:9/paraloom)" in err
