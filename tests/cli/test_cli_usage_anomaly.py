"""The CLI shows a usage anomaly: status 'warning' (exit 4), the warning lines in the
human summary and in --json, and the run store keeps them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_run import run_cli

from paraloom.testing import Reply
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

pytestmark = pytest.mark.timeout(120)

FLOW = """\
models:
  m: {model_id: lying-model, input_price_per_m: 1, output_price_per_m: 2}
agents:
  a: {instructions: "Be brief.", model: m, max_tokens: 20}
workflows:
  main:
    subtasks: [{id: s, action: a, arguments: {task: "say hi"}}]
"""


def liar(req: RecordedRequest) -> Reply:
    return Reply("hi", input_tokens=5, output_tokens=(req.body.max_tokens or 1) * 5)


def run(args: list[str], base_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env={"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-x"})


def test_usage_anomaly_in_cli_summary_json_and_store(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    store = tmp_path / "runs.sqlite"
    with OpenAITestServer(handler=liar) as server:
        human = run(["run", str(flow), "--store", str(store)], server.base_url, tmp_path)
        as_json = run(["run", str(flow), "--no-store", "--json"], server.base_url, tmp_path)
        shown = run(["runs", "list", "--store", str(store)], server.base_url, tmp_path)
    assert human.returncode == 4, human.stderr
    text = human.stdout + human.stderr
    assert "warning" in text and "usage_anomaly" in text
    assert "completion_tokens 100 > max_tokens sent 20" in text
    out = json.loads(as_json.stdout)
    assert as_json.returncode == 4
    assert out["status"] == "warning" and out["ok"] is False
    assert any("usage_anomaly" in w for w in out["warnings"])
    assert "warning" in shown.stdout
