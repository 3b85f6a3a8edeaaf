"""Fast CLI checks through typer's CliRunner (in-process; no model is called)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paraloom.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, RunOutput, app
from paraloom.config import Projection, config_json_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PIPELINE = str(EXAMPLES / "data_pipeline.yaml")
RESEARCH = str(EXAMPLES / "research.yaml")

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "PARALOOM_TRACE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PARALOOM_STORE", str(tmp_path / "store" / "runs.sqlite"))


def test_schema_prints_the_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout) == json.loads(json.dumps(config_json_schema()))


@pytest.mark.parametrize("name", ["data_pipeline", "research", "agents_as_tools"])
def test_validate_examples(name: str) -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLES / f"{name}.yaml")])
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout.startswith("ok ")


def test_validate_reports_located_errors(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("workflows:\n  w:\n    subtasks: [{id: a, action: nope}]\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(f)])
    assert result.exit_code == EXIT_BAD_INPUT
    assert f"{f}:3:32: unknown action 'nope' in workflow 'w' (subtask 'a')" in " ".join(
        result.stderr.split()
    )


def test_run_pipeline_json_output_schema() -> None:
    result = runner.invoke(app, ["run", PIPELINE, "--json", "--input", "top_n=1"])
    assert result.exit_code == EXIT_OK, result.stderr
    out = RunOutput.model_validate_json(result.stdout)
    assert out.ok and out.status == "ok" and out.workflow == "sales_report"
    assert isinstance(out.output, dict)
    assert out.output["best_product"] == "doohickey"
    assert "2." not in str(out.output["report"]).split("## Top products")[1].split("##")[0]
    assert sorted(s.id for s in out.subtasks) == sorted(
        ["load", "clean", "regions", "products", "trend", "report"]
    )
    assert all(s.status == "ok" and s.round == 1 for s in out.subtasks)
    assert out.cost_usd == 0 and out.usage == {}
    raw = json.loads(result.stdout)
    assert raw["cost_usd"] == "0"  # money is a decimal string
    assert set(raw) == set(RunOutput.model_fields)


def test_run_pipeline_human_output() -> None:
    result = runner.invoke(app, ["run", PIPELINE, "--no-store"])
    assert result.exit_code == EXIT_OK, result.stderr
    assert "Sales report — total revenue 13,771.45" in result.stdout
    assert "sales_report — summary" in result.stdout
    assert "status ok" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{not json"], "looks like JSON but is not valid"),
        (["--input", "a=1", "--input", "a=2"], "given twice"),
        (["--budget", "lots"], "expected dollars"),
        (["nosuchflow"], "unknown workflow 'nosuchflow': known workflows are sales_report"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["run", PIPELINE, *args])
    assert result.exit_code == EXIT_BAD_INPUT
    assert message in " ".join(result.stderr.split())


def test_json_mode_reports_errors_as_json(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("workflows:\n  w:\n    subtasks: [{id: a, action: nope}]\n", encoding="utf-8")
    result = runner.invoke(app, ["run", str(f), "--json"])
    assert result.exit_code == EXIT_BAD_INPUT
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["exit_code"] == EXIT_BAD_INPUT
    [problem] = doc["errors"]
    assert (problem["file"], problem["line"], problem["column"]) == (str(f), 3, 32)
    assert problem["message"].startswith("unknown action 'nope' in workflow 'w' (subtask 'a')")
    assert "unknown action" in result.stderr  # humans still read stderr
    bad_budget = json.loads(runner.invoke(app, ["run", PIPELINE, "--budget", "x", "--json"]).stdout)
    assert bad_budget["errors"][0]["file"] is None
    assert "expected dollars" in bad_budget["errors"][0]["message"]
    missing = runner.invoke(app, ["runs", "show", "run_nope", "--json"])
    assert missing.exit_code == EXIT_BAD_INPUT
    assert "no run" in json.loads(missing.stdout)["errors"][0]["message"]
    # without --json (even right after a --json invocation) stdout stays empty
    plain = runner.invoke(app, ["run", str(f)])
    assert plain.exit_code == EXIT_BAD_INPUT and plain.stdout == ""


def test_no_endpoint_says_so_and_offers_dry_run() -> None:
    result = runner.invoke(app, ["run", RESEARCH])
    assert result.exit_code == EXIT_BAD_INPUT
    text = " ".join(result.stderr.split())
    assert "no model endpoint is configured" in text
    assert "--dry-run" in text


def test_dry_run_is_a_labelled_projection() -> None:
    result = runner.invoke(app, ["run", RESEARCH, "--dry-run", "--json", "--budget", "0.001"])
    assert result.exit_code == EXIT_OK, result.stderr
    p = Projection.model_validate_json(result.stdout)
    assert p.kind == "projection" and p.workflow == "research"
    assert p.budget_usd is not None and p.fits_budget is False
    human = runner.invoke(app, ["run", RESEARCH, "--dry-run"])
    assert "PROJECTION of workflow 'research' — no model was called" in human.stdout
    assert "does NOT fit" not in human.stdout  # default budget $0.50 fits


def test_failed_run_exits_1(tmp_path: Path) -> None:
    (tmp_path / "boom_tools.py").write_text(
        "def boom(x: int) -> int:\n    raise ValueError(f'cannot handle {x}')\n", encoding="utf-8"
    )
    f = tmp_path / "boom.yaml"
    f.write_text(
        "tools:\n  boom: {python: 'boom_tools:boom'}\nworkflows:\n  w:\n    subtasks:\n"
        "      - {id: a, action: boom, arguments: {x: 3}, policy: {on_failure: fail}}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["run", str(f), "--json"])
    assert result.exit_code == EXIT_FAILED
    out = RunOutput.model_validate_json(result.stdout)
    assert out.status == "failed"
    where = f"{tmp_path / 'boom_tools.py'}:2 in boom"  # the raising frame
    assert out.error == f"subtask 'a' failed: ValueError: cannot handle 3 (at {where})"


def test_graph_formats(tmp_path: Path) -> None:
    mermaid = runner.invoke(app, ["graph", PIPELINE, "--format", "mermaid"])
    assert mermaid.exit_code == EXIT_OK
    lines = mermaid.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    assert "    clean --> regions" in lines
    assert "    regions --> report" in lines
    assert '    load["load<br/>load_csv (tool)"]' in lines
    dot = runner.invoke(app, ["graph", PIPELINE, "--format", "dot"])
    assert dot.stdout.startswith('digraph "sales_report" {')
    assert '  "trend" -> "report";' in dot.stdout
    llm = runner.invoke(app, ["graph", RESEARCH, "-f", "mermaid"])
    assert "research_planner -.-> writer" in llm.stdout
    png = tmp_path / "g.png"
    result = runner.invoke(app, ["graph", PIPELINE, "--format", "png", "-o", str(png)])
    assert result.exit_code == EXIT_OK, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


PASSWORD = "pw-Kx82-never-shown"


@pytest.mark.timeout(180)
def test_runs_list_show_and_export(store_location: str) -> None:
    """On a SQLite file and on a PostgreSQL URL (with a password: the test server
    trusts loopback, so any will do; it is never printed)."""
    store = store_location.replace("://paraloom@", f"://paraloom:{PASSWORD}@", 1)
    first = runner.invoke(app, ["run", PIPELINE, "--json", "--store", store])
    run_id = RunOutput.model_validate_json(first.stdout).run_id
    assert RunOutput.model_validate_json(first.stdout).store == store.replace(PASSWORD, "***")
    listed = runner.invoke(app, ["runs", "list", "--store", store, "--json"])
    assert listed.exit_code == EXIT_OK
    rows = json.loads(listed.stdout)
    assert [r["run_id"] for r in rows] == [run_id]
    assert rows[0]["status"] == "ok" and rows[0]["subtasks_ok"] == 6
    shown = runner.invoke(app, ["runs", "show", run_id[:10], "--store", store, "--json"])
    assert json.loads(shown.stdout)["output"]["rows_dropped"] == 3
    human = runner.invoke(app, ["runs", "show", run_id, "--store", store])
    assert "write_report" in human.stdout
    missing = runner.invoke(app, ["runs", "show", "run_nope", "--store", store])
    assert missing.exit_code == EXIT_BAD_INPUT
    exported = runner.invoke(app, ["runs", "export-trajectories", "--store", store])
    assert exported.exit_code == EXIT_OK and exported.stdout == ""  # no LLM calls
    again = runner.invoke(app, ["resume", run_id, "--store", store])
    assert again.exit_code == EXIT_OK
    assert "already finished ok" in again.stderr
    outputs = (first, listed, shown, human, missing, exported, again)
    assert all(PASSWORD not in r.stdout + r.stderr for r in outputs)
