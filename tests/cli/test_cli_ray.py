"""``paraloom run`` on a real local Ray (bound to 127.0.0.1, started and shut down by the
run itself): python tools run in Ray workers, everything else (an async tool, an LLM
agent) in the CLI process, and the run store, events and the budget work as in-process.

Marked ``ray``: selected with ``-m ray`` or ``--integration``.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paraloom.cli.output import RunOutput
from paraloom.testing.openai_server import OpenAITestServer
from paraloom.testing.replies import Reply
from tests.cli_run import run_cli

pytest.importorskip("ray", reason='needs the ray extra: pip install "paraloom[ray]"')

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]

KEY = "sk-test-ray-0123456789"
PRICE_IN, PRICE_OUT = Decimal(1), Decimal(2)

TOOLS = '''
import os


def pid(n: int) -> int:
    """The worker process's id (synchronous: runs on Ray)."""
    return os.getpid()


async def driver_pid() -> int:
    """The CLI process's id (async: stays in the driver)."""
    return os.getpid()
'''

FLOW = f"""\
models:
  small: {{model_id: m-small, input_price_per_m: {PRICE_IN}, output_price_per_m: {PRICE_OUT}}}
tools:
  pid: {{python: "ray_cli_tools:pid"}}
  driver_pid: {{python: "ray_cli_tools:driver_pid"}}
agents:
  summarize: {{instructions: "Summarize the process ids.", model: small}}
workflows:
  main:
    subtasks:
      - {{id: p0, action: pid, arguments: {{n: 0}}}}
      - {{id: p1, action: pid, arguments: {{n: 1}}}}
      - {{id: p2, action: pid, arguments: {{n: 2}}}}
      - {{id: p3, action: pid, arguments: {{n: 3}}}}
      - {{id: here, action: driver_pid}}
      - id: sum
        action: summarize
        arguments: {{task: "Summarize", context: [{{from: p0.output}}, {{from: here.output}}]}}
    output:
      workers: [{{from: p0.output}}, {{from: p1.output}}, {{from: p2.output}}, {{from: p3.output}}]
      driver: {{from: here.output}}
      summary: {{from: sum.output}}
"""

SUBTASKS = {"p0", "p1", "p2", "p3", "here", "sum"}


@pytest.fixture
def server() -> Any:
    with OpenAITestServer(handler=lambda request: Reply("pids summarized"), api_key=KEY) as s:
        yield s


def project(tmp_path: Path, executor: str = "") -> Path:
    (tmp_path / "ray_cli_tools.py").write_text(TOOLS, encoding="utf-8")
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW + executor, encoding="utf-8")
    return flow


def run(
    tmp_path: Path,
    server: OpenAITestServer,
    flow: Path,
    *extra: str,
    budget: str = "0.5",
    code: int = 0,
) -> RunOutput:
    store = tmp_path / "runs.sqlite"
    env = {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": KEY,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    args = ("run", str(flow), "--json", "--store", str(store), "--budget", budget, *extra)
    proc = run_cli(*args, cwd=tmp_path, env=env, timeout=400)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    return RunOutput.model_validate_json(proc.stdout)


def shown(tmp_path: Path, run_id: str) -> dict[str, Any]:
    proc = run_cli(
        "runs", "show", run_id, "--json", "--store", str(tmp_path / "runs.sqlite"), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary


def check_recorded(tmp_path: Path, out: RunOutput, executor: str) -> None:
    """``runs show``: the run ok, every subtask ok, the LLM call and its cost recorded."""
    summary = shown(tmp_path, out.run_id)
    assert summary["status"] == "ok"
    assert {s["subtask_id"]: s["status"] for s in summary["subtasks"]} == dict.fromkeys(
        SUBTASKS, "ok"
    )
    assert summary["metadata"]["executor"] == executor
    assert summary["output"] == out.output
    [call] = summary["llm_call_records"]
    assert call["subtask_id"] == "sum"
    assert Decimal(summary["llm_cost_usd"]) == out.cost_usd == Decimal(call["cost_usd"])


def expected_cost(out: RunOutput) -> Decimal:
    usage = out.usage["small"]
    return (PRICE_IN * usage.input_tokens + PRICE_OUT * usage.output_tokens) / 1_000_000


def test_executor_option_runs_python_tools_on_ray_workers(
    tmp_path: Path, server: OpenAITestServer
) -> None:
    out = run(tmp_path, server, project(tmp_path), "--executor", "ray")
    assert out.ok, out.error
    assert isinstance(out.output, dict)
    driver, workers = out.output["driver"], out.output["workers"]
    assert isinstance(driver, int) and driver != os.getpid()
    assert isinstance(workers, list) and len(workers) == 4
    # every synchronous python tool ran in a Ray worker process, not in the CLI's
    assert all(isinstance(w, int) and w not in (driver, os.getpid()) for w in workers)
    # the agent ran in the driver and spent from the run's budget, as in-process
    assert out.output["summary"] == "pids summarized"
    assert out.usage["small"].calls == 1 and len(server.requests) == 1
    assert out.cost_usd == expected_cost(out) > 0 and out.budget_usd == Decimal("0.5")
    check_recorded(tmp_path, out, "ray")
    # a budget too small for the agent's call: refused in the driver, nothing is sent
    poor = run(tmp_path, server, project(tmp_path), "--executor", "ray", budget="0.000001", code=1)
    assert len(server.requests) == 1 and poor.cost_usd == 0
    failed = {s.id: s.status for s in poor.subtasks if s.status != "ok"}
    assert list(failed) == ["sum"]


def test_executor_section_in_the_file_and_the_option_overriding_it(
    tmp_path: Path, server: OpenAITestServer
) -> None:
    flow = project(tmp_path, "executor: {kind: ray, address: local, num_cpus: 2}\n")
    on_ray = run(tmp_path, server, flow)
    assert on_ray.ok, on_ray.error
    assert isinstance(on_ray.output, dict)
    driver, workers = on_ray.output["driver"], on_ray.output["workers"]
    assert isinstance(workers, list)
    assert all(isinstance(w, int) and w not in (driver, os.getpid()) for w in workers)
    check_recorded(tmp_path, on_ray, "ray")
    # --executor local overrides the file: everything runs in the CLI process, and the
    # LLM spend is the same
    local = run(tmp_path, server, flow, "--executor", "local")
    assert local.ok, local.error
    assert isinstance(local.output, dict)
    assert set(local.output["workers"]) == {local.output["driver"]}  # type: ignore[arg-type]
    check_recorded(tmp_path, local, "local")
    assert local.cost_usd == on_ray.cost_usd == expected_cost(on_ray) > 0
