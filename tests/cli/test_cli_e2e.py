"""End to end: the ``paraloom`` CLI in a subprocess against the real OpenAI-compatible
test server (real HTTP on 127.0.0.1), recording into a real run store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from cli_fake_llm import ExampleModels
from cli_run import run_cli

from paraloom.cli import RunOutput
from paraloom.testing.openai_server import OpenAITestServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
KEY = "sk-test-e2e-0123456789"
PRICES = {"small": (Decimal("0.15"), Decimal("0.60")), "large": (Decimal("2.50"), Decimal(10))}


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(handler=ExampleModels(), api_key=KEY) as s:
        yield s


def paraloom(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=ROOT, env=env, timeout=timeout)


def endpoint(server: OpenAITestServer) -> dict[str, str]:
    return {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY}


def expected_cost(out: RunOutput) -> Decimal:
    return sum(
        (
            (PRICES[m][0] * u.input_tokens + PRICES[m][1] * u.output_tokens) / 1_000_000
            for m, u in out.usage.items()
        ),
        Decimal(0),
    )


def test_research_planner_fans_out_and_writer_joins(
    server: OpenAITestServer, tmp_path: Path
) -> None:
    store = tmp_path / "runs.sqlite"
    proc = paraloom(
        "run",
        str(EXAMPLES / "research.yaml"),
        "--json",
        "--store",
        str(store),
        env=endpoint(server),
    )
    assert proc.returncode == 0, proc.stderr
    out = RunOutput.model_validate_json(proc.stdout)
    assert out.ok and out.output == "BRIEF built from MARKET+TECH+RISK"
    assert out.rounds == 2
    assert {s.id for s in out.subtasks} == {
        "market_analyst",
        "tech_analyst",
        "risk_analyst",
        "write",
    }
    # the cheapest router picked the small model for every specialist turn; the writer
    # and the planner are pinned to the large one
    requests = server.requests
    assert len(requests) == 6 and all(r.authorized for r in requests)
    by_system = {r.system.split(".")[0]: r.model for r in requests}
    assert by_system["You are a market analyst"] == "gpt-4o-mini"
    assert by_system["You write crisp research briefs"] == "gpt-4o"
    assert out.usage["small"].calls == 3 and out.usage["large"].calls == 3
    assert out.cost_usd == expected_cost(out) > 0
    assert out.budget_usd == Decimal("0.50")
    # the key is never printed nor stored
    assert KEY not in proc.stdout + proc.stderr
    assert KEY.encode() not in store.read_bytes()
    shown = paraloom("runs", "show", out.run_id, "--json", "--store", str(store))
    summary = json.loads(shown.stdout)
    assert summary["status"] == "ok"
    assert len(summary["llm_call_records"]) == 6
    exported = paraloom("runs", "export-trajectories", "--store", str(store))
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(records) == 6
    assert {r["chosen_model"] for r in records} == {"small", "large"}
    assert all(r["run_id"] == out.run_id for r in records)


def test_manager_calls_two_agents_as_tools(server: OpenAITestServer) -> None:
    proc = paraloom(
        "run",
        str(EXAMPLES / "agents_as_tools.yaml"),
        "--json",
        "--no-store",
        "--input",
        "question=Cache it?",
        env=endpoint(server),
    )
    assert proc.returncode == 0, proc.stderr
    out = RunOutput.model_validate_json(proc.stdout)
    assert out.output == "DECISION: yes. Heard: PRO: faster | CON: stale"
    manager_first = server.requests[0]
    assert sorted(manager_first.tool_names) == ["advocate", "critic"]
    assert "Cache it?" in json.dumps(manager_first.raw["messages"])
    assert out.cost_usd == expected_cost(out)


def test_human_output_and_failed_model(server: OpenAITestServer) -> None:
    proc = paraloom(
        "run",
        str(EXAMPLES / "agents_as_tools.yaml"),
        "--no-store",
        "--budget",
        "0.000001",
        env=endpoint(server),
    )
    # a budget too small for one call: the agent cannot call a model, the run fails
    assert proc.returncode == 1
    assert "budget" in proc.stderr.lower()
    assert server.requests == []


def test_main_job_on_a_machine_with_nothing_configured(tmp_path: Path) -> None:
    """The README's main-job command: no endpoint, no key, no store yet, any directory."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "paraloom.cli", "run", str(EXAMPLES / "data_pipeline.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Sales report — total revenue 13,771.45" in proc.stdout
    assert "status ok" in proc.stdout
    assert (tmp_path / ".paraloom" / "runs.sqlite").exists()
