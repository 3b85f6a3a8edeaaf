"""``approve_plans: true``: each plan an LLM planner writes waits for approval with its
dry-run projection; a rejection's reason reaches the planner, whose next plan runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from paraloom.config import load_config, open_project
from paraloom.config.projection import Projection
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest, ServerReply

ROOT = Path(__file__).resolve().parents[2]

TOOLS = """
CALLS: list[int] = []


def work(x: int) -> int:
    CALLS.append(x)
    return x
"""

PLAN_A = {
    "decision": "plan",
    "subtasks": [{"id": "a1", "action": "work", "arguments": {"x": 99}}],
}
PLAN_B = {
    "decision": "plan",
    "subtasks": [
        {"id": "b1", "action": "work", "arguments": {"x": 2}},
        {"id": "b2", "action": "writer", "arguments": {"task": "Write one line about x."}},
    ],
}
FINAL = {"decision": "final", "answer": {"from": "b1.output"}}
REASON = "x must stay below 10"


def flow(base_url: str) -> str:
    return f"""
models:
  m: {{base_url: "{base_url}", api_key: test, input_price_per_m: 3, output_price_per_m: 15,
      latency_s: 0.7}}
tools:
  work: {{python: "plan_tools:work"}}
agents:
  writer: {{instructions: "You write one line.", model: m, max_tokens: 300}}
workflows:
  w:
    planner: llm
    model: m
    actions: [work, writer]
    approve_plans: true
  # plan B written as a static workflow: its --dry-run is what plan B must show
  plan_b:
    subtasks:
      - {{id: b1, action: work, arguments: {{x: 2}}}}
      - {{id: b2, action: writer, arguments: {{task: "Write one line about x."}}}}
"""


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_rejected_plan_reason_reaches_planner_and_second_plan_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plan_tools.py").write_text(TOOLS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    planner_requests: list[RecordedRequest] = []

    def handler(request: RecordedRequest) -> ServerReply:
        if "You write one line." in request.system:
            return "x is two."
        planner_requests.append(request)
        return json.dumps([PLAN_A, PLAN_B, FINAL][len(planner_requests) - 1])

    with OpenAITestServer(handler=handler) as server:
        f = tmp_path / "flow.yaml"
        f.write_text(flow(server.base_url), encoding="utf-8")
        loaded = load_config(f)
        async with open_project(loaded, "w") as project:
            orch = project.orchestrators["w"]
            async with orch.start(project.task()) as run:
                with anyio.fail_after(20):
                    [first] = await run.wait_pending(1)
                assert first.key == "plan:1"
                assert '"x": 99' in json.dumps(first.arguments)  # plan A, waiting
                await run.reject("plan:1", reason=REASON)
                with anyio.fail_after(20):
                    second = await run.approvals.next_request({"plan:1"})
                assert second.key == "plan:2"
                shown = Projection.model_validate(second.projection)
                await run.approve("plan:2")
                result = await run.result()
    import plan_tools  # type: ignore[import-not-found]

    assert result.status == "ok", result.error
    assert result.output == 2
    assert plan_tools.CALLS == [2]  # plan A never ran
    assert set(result.subtasks) == {"b1", "b2"}
    # the reason was in the planner's second request (as state feedback), not the first
    assert REASON not in json.dumps(planner_requests[0].raw)
    assert REASON in json.dumps(planner_requests[1].raw)

    # the projection shown for plan B is what --dry-run projects for the same subtasks
    cmd = [sys.executable, "-m", "paraloom.cli", "run", str(f), "plan_b", "--dry-run", "--json"]
    dry = await anyio.run_process(cmd, cwd=ROOT, check=False)
    assert dry.returncode == 0, dry.stderr.decode()
    projected = Projection.model_validate_json(dry.stdout)
    assert shown.steps == projected.steps
    assert shown.cost_usd == projected.cost_usd > 0
    assert (shown.llm_calls, shown.input_tokens, shown.output_tokens) == (
        projected.llm_calls,
        projected.input_tokens,
        projected.output_tokens,
    )
    assert shown.latency_s == projected.latency_s


@pytest.mark.timeout(180)
def test_cli_leaves_a_plan_waiting_with_its_projection_then_resumes(tmp_path: Path) -> None:
    import os
    import subprocess

    (tmp_path / "plan_tools.py").write_text(TOOLS, encoding="utf-8")
    planner_calls: list[int] = []

    def handler(request: RecordedRequest) -> ServerReply:
        if "You write one line." in request.system:
            return "x is two."
        planner_calls.append(1)
        return json.dumps([PLAN_B, FINAL][min(len(planner_calls), 2) - 1])

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PARALOOM_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    store = tmp_path / "runs.sqlite"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "paraloom.cli", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    with OpenAITestServer(handler=handler) as server:
        f = tmp_path / "flow.yaml"
        f.write_text(flow(server.base_url), encoding="utf-8")
        dry = Projection.model_validate_json(
            cli("run", str(f), "plan_b", "--dry-run", "--json").stdout
        )
        first = cli("run", str(f), "w", "--store", str(store))
        assert first.returncode == 5, first.stderr
        total = f"projected total: calls {dry.llm_calls}  tokens {dry.input_tokens}/"
        assert total in first.stderr and f"${dry.cost_usd} (worst case" in first.stderr
        assert "b2: writer" in first.stderr
        run_id = first.stderr.split("run ", 1)[1].split()[0]
        shown = cli("runs", "show", run_id, "--store", str(store))
        assert "plan:1" in shown.stdout and "PENDING" in shown.stdout
        assert f"${dry.cost_usd}" in shown.stdout
        assert cli("approve", run_id, "plan:1", "--store", str(store)).returncode == 0
        resumed = cli("resume", run_id, "--store", str(store), "--json")
        assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["output"] == 2
    assert len(planner_calls) == 2  # the approved plan was replayed, not planned again
