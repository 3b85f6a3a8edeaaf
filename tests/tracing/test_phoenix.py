"""Integration: a real Arize Phoenix (loopback only, OTLP gRPC off, temp working dir)
receives the traces; the spans are read back through its REST API.

Needs ``pip install "paraloom[phoenix]"``; skipped otherwise. Run: ``pytest -m phoenix``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_run import CLI

from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest, ServerReply
from paraloom.tracing import tracing_listener_for
from paraloom.tracing.phoenix_local import (
    LocalPhoenix,
    PhoenixSpan,
    phoenix_installed,
    port_is_listening,
)

from .diamond import build_diamond

pytestmark = [
    pytest.mark.phoenix,
    # Phoenix itself may take up to its 180 s start-up allowance on a loaded machine.
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not phoenix_installed(),
        reason='arize-phoenix is not installed (pip install "paraloom[phoenix]")',
    ),
]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def phoenix() -> Iterator[LocalPhoenix]:
    with LocalPhoenix() as phx:
        yield phx


def trace_of(spans: list[PhoenixSpan], root_name: str) -> list[PhoenixSpan]:
    roots = [s for s in spans if s.parent_id is None and s.name == root_name]
    assert len(roots) == 1, [s.name for s in spans if s.parent_id is None]
    return [s for s in spans if s.trace_id == roots[0].trace_id]


def wait_for_trace(phoenix: LocalPhoenix, root_name: str, count: int) -> list[PhoenixSpan]:
    """Poll Phoenix (it inserts in batches) until the trace under ``root_name`` is whole."""
    deadline = time.monotonic() + 60
    while True:
        spans = phoenix.spans()
        roots = [s for s in spans if s.parent_id is None and s.name == root_name]
        if roots:
            found = [s for s in spans if s.trace_id == roots[0].trace_id]
            if len(found) >= count:
                return trace_of(spans, root_name)
        assert time.monotonic() < deadline, f"Phoenix has not got the whole {root_name!r} trace"
        time.sleep(0.2)


def tree(spans: list[PhoenixSpan]) -> Any:
    kids: dict[str | None, list[PhoenixSpan]] = defaultdict(list)
    for s in spans:
        kids[s.parent_id].append(s)

    def node(s: PhoenixSpan) -> Any:
        return (s.name, s.span_kind, sorted((node(c) for c in kids[s.span_id]), key=repr))

    (root,) = kids[None]
    return node(root)


def n(name: str, kind: str, *children: Any) -> Any:
    return (name, kind, sorted(children, key=repr))


@pytest.mark.anyio
async def test_diamond_in_phoenix(phoenix: LocalPhoenix, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not port_is_listening(phoenix.grpc_port), "Phoenix's OTLP gRPC port must stay closed"
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", phoenix.base_url)
    listener, shutdown = tracing_listener_for("phoenix", capture_content=True)
    d = build_diamond(listeners=[listener], capture_content=True)
    result = await d.orchestrator.run(d.task)
    shutdown()
    assert result.ok

    spans = wait_for_trace(phoenix, "invoke_workflow diamond", 15)
    assert tree(spans) == n(
        "invoke_workflow diamond",
        "CHAIN",
        n("plan demo_planner", "CHAIN", n("chat mini-2026", "LLM")),
        n("plan demo_planner", "CHAIN", n("chat mini-2026", "LLM")),
        n("execute_tool fetch", "TOOL"),
        n(
            "invoke_agent analyst_a",
            "AGENT",
            n("chat mini-2026", "LLM"),
            n("chat mini-2026", "LLM"),
            n("execute_tool lookup", "TOOL"),
        ),
        n(
            "invoke_agent analyst_b",
            "AGENT",
            n("chat large-2026", "LLM"),
            n("chat large-2026", "LLM"),
            n("execute_tool lookup", "TOOL"),
        ),
        n("execute_tool merge", "TOOL"),
    )
    assert {s.status_code for s in spans} == {"OK"}
    chats = [s for s in spans if s.span_kind == "LLM"]
    assert sum(s.attributes["llm.token_count.total"] for s in chats) == sum(
        u.total_tokens for u in result.usage.values()
    )
    assert sum(s.attributes["llm.cost.total"] for s in chats) == pytest.approx(
        float(result.cost_usd)
    )
    root = next(s for s in spans if s.parent_id is None)
    assert root.attributes["output.value"] == result.output
    assert root.attributes["paraloom.run.id"] == result.run_id


def _cli_model(rec: RecordedRequest) -> ServerReply:
    """The model behind examples/research.yaml: the planner fans out, agents write notes."""
    rf = rec.raw.get("response_format") or {}
    if (rf.get("json_schema") or {}).get("name") == "planner_reply":
        last = rec.body.messages[-1].content or ""
        if "Round 1 of" in str(last):
            analysts = ("market_analyst", "tech_analyst", "risk_analyst")
            subtasks: list[dict[str, Any]] = [
                {"id": a, "action": a, "arguments": {"task": "home batteries"}} for a in analysts
            ]
            subtasks.append(
                {
                    "id": "writer",
                    "action": "writer",
                    "arguments": {
                        "task": "Write the brief.",
                        "context": {a: {"from": f"{a}.output"} for a in analysts},
                    },
                    "depends_on": list(analysts),
                }
            )
            return json.dumps({"decision": "plan", "subtasks": subtasks})
        return json.dumps({"decision": "final", "answer": {"from": "writer.output"}})
    return f"notes from {rec.system.split('.')[0][:40]}"


def cli_to_phoenix(
    phoenix: LocalPhoenix,
    server: OpenAITestServer,
    api_key: str,
    *args: str,
    cwd: Path,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    """``paraloom *args`` against the test server, exporting traces to ``phoenix``."""
    env = {
        **os.environ,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": api_key,
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix.base_url,
    }
    env.pop("PARALOOM_TRACE", None)
    return subprocess.run(
        [*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_cli_run_example_with_trace_phoenix(phoenix: LocalPhoenix, tmp_path: Path) -> None:
    with OpenAITestServer(handler=_cli_model) as server:
        proc = cli_to_phoenix(
            phoenix,
            server,
            "sk-cli-test-key-0123456789abcdef",
            "run",
            str(REPO / "examples" / "research.yaml"),
            "--input",
            "topic=home batteries",
            "--trace",
            "phoenix",
            "--no-store",
            "--json",
            cwd=tmp_path,
            timeout=180,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    agents = ("market_analyst", "tech_analyst", "risk_analyst", "writer")
    # run + 2 planner rounds with 1 LLM call each + 4 agents with 1 LLM call each
    spans = wait_for_trace(phoenix, "invoke_workflow research", 13)
    assert len(spans) == 13
    shape = tree(spans)
    assert shape[:2] == ("invoke_workflow research", "CHAIN")
    children = shape[2]
    plans = [c for c in children if c[0].startswith("plan ")]
    assert len(plans) == 2
    for plan in plans:
        assert plan[1] == "CHAIN" and [k for _, k, _ in plan[2]] == ["LLM"]
    invoked = sorted(c for c in children if not c[0].startswith("plan "))
    assert [c[0] for c in invoked] == sorted(f"invoke_agent {a}" for a in agents)
    for _, kind, grandchildren in invoked:
        assert kind == "AGENT"
        assert [k for _, k, _ in grandchildren] == ["LLM"]
    assert "sk-cli-test-key-0123456789abcdef" not in json.dumps([s.model_dump() for s in spans])


UNPRICED_FLOW = """
models:
  house:
    model_id: paraloom-house-model-7
    input_price_per_m: 3
    output_price_per_m: 15
agents:
  poet: {instructions: Write one line about the sea., model: house}
workflows:
  main:
    subtasks:
      - {id: line, action: poet, arguments: {task: the sea at night}}
"""

_COST = """
query($id: ID!) { node(id: $id) { ... on Span {
  costSummary { prompt { cost } completion { cost } total { cost } } } } }
"""


def test_llm_span_shows_messages_and_paraloom_cost_of_a_model_phoenix_does_not_price(
    phoenix: LocalPhoenix, tmp_path: Path
) -> None:
    """`--trace phoenix --capture-content`: Phoenix shows the LLM span's input and output
    messages, and a cost equal to paraloom's for a model missing from its price table."""
    (tmp_path / "flow.yaml").write_text(UNPRICED_FLOW)
    with OpenAITestServer(["waves keep the moon's time"]) as server:
        proc = cli_to_phoenix(
            phoenix,
            server,
            "sk-unpriced-test-0123456789abcdef",
            "run",
            "flow.yaml",
            "--json",
            "--no-store",
            "--trace",
            "phoenix",
            "--capture-content",
            cwd=tmp_path,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    paraloom_cost = float(json.loads(proc.stdout)["cost_usd"])
    assert paraloom_cost > 0
    spans = wait_for_trace(phoenix, "invoke_workflow main", 3)
    (chat,) = [s for s in spans if s.span_kind == "LLM"]
    assert chat.name == "chat paraloom-house-model-7"
    attrs = json.dumps(chat.attributes)
    assert "the sea at night" in attrs  # the input messages
    assert "waves keep the moon" in attrs  # the output message
    assert "llm.invocation_parameters" in attrs or "invocation_parameters" in attrs

    deadline = time.monotonic() + 30
    while True:  # Phoenix computes span costs as it inserts them
        answer = httpx.post(
            f"{phoenix.base_url}/graphql",
            json={"query": _COST, "variables": {"id": chat.id}},
            timeout=10,
        ).json()
        summary = answer["data"]["node"]["costSummary"]
        if (summary and summary["total"]["cost"]) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert summary is not None, answer
    assert summary["total"]["cost"] == pytest.approx(paraloom_cost, rel=1e-6)
    assert summary["prompt"]["cost"] > 0 and summary["completion"]["cost"] > 0
