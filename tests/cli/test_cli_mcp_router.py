"""`paraloom mcp serve` feeding the `mcp:` tools section (a real stdio MCP server in a
subprocess), and a trained router loaded from the `router:` section."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paraloom.cli import EXIT_OK, RunOutput, app
from paraloom.config import load_config, project_workflow

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "examples" / "data_pipeline.yaml"


@pytest.mark.slow
def test_workflow_uses_tools_served_by_paraloom_mcp_serve(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        f"""
tools:
  pipeline:
    mcp:
      command: {sys.executable}
      args: [-m, paraloom.cli, mcp, serve, {PIPELINE}, --no-store]
      cwd: {ROOT}
      include: [sales_report, clean_orders]
workflows:
  via_mcp:
    policy: {{on_failure: fail}}
    subtasks:
      - {{id: report, action: sales_report, arguments: {{top_n: 2}}}}
      - id: clean
        action: clean_orders
        arguments:
          rows: [{{order_id: x, month: m, region: r, product: p, quantity: '2',
                  unit_price: '1.5'}}]
""",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "paraloom.cli", "run", str(flow), "--json", "--no-store"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = RunOutput.model_validate_json(proc.stdout)
    assert isinstance(out.output, dict)
    report = out.output["report"]
    assert isinstance(report, dict)
    assert report["best_region"] == "north" and report["rows_dropped"] == 3
    clean = out.output["clean"]
    assert isinstance(clean, dict)
    assert clean["dropped"] == [] and [o["quantity"] for o in clean["orders"]] == [2]


def test_unknown_mcp_tool_is_reported_against_the_include_list(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "tools:\n  p:\n    mcp: {command: x, include: [a, b], prefix: srv}\n"
        "workflows:\n  w:\n    subtasks: [{id: s, action: srv_c}]\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["validate", str(flow)])
    assert result.exit_code == 2
    assert (
        "unknown action 'srv_c' in workflow 'w' (subtask 's'): known actions are p (tool), "
        "srv_a (tool), srv_b (tool), w (workflow)" in " ".join(result.stderr.split())
    )


@pytest.mark.anyio
async def test_trained_router_from_a_saved_directory(tmp_path: Path) -> None:
    from paraloom.routing import CheapestRouter, save_router

    save_router(CheapestRouter(), tmp_path / "my_router")
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "models:\n  cheap: {input_price_per_m: 0.1, output_price_per_m: 0.2}\n"
        "  dear: {input_price_per_m: 5, output_price_per_m: 15}\n"
        "router: {kind: trained, path: my_router}\n"
        "agents:\n  a: {instructions: do it, router: true}\n"
        "workflows:\n  w:\n    subtasks: [{id: s, action: a, arguments: {task: go}}]\n",
        encoding="utf-8",
    )
    p = await project_workflow(load_config(flow))
    assert p.steps[0].models == ["cheap"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(flow.read_text().replace("my_router", "missing_dir"), encoding="utf-8")
    from paraloom.config import ConfigError

    with pytest.raises(
        ConfigError, match=r"bad\.yaml:4:31: cannot build the router: .*missing_dir"
    ):
        await project_workflow(load_config(bad))


def test_router_subcommands_are_mounted() -> None:
    result = CliRunner().invoke(app, ["router", "--help"])
    assert result.exit_code == EXIT_OK
    assert "train" in result.stdout and "eval" in result.stdout
