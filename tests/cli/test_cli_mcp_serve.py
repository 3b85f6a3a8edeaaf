"""`paraloom mcp serve` keeps the file's budget, records each call as a run in the run
store and traces it: driven by the official MCP SDK client over stdio."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason='needs the mcp extra: pip install "paraloom[mcp]"')

from mcp import Client, StdioServerParameters

from paraloom.store import RunStore
from paraloom.testing.openai_server import OpenAITestServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


def flow(base_url: str) -> str:
    return f"""
models:
  small:
    model_id: gpt-small-2
    base_url: {base_url}
    api_key: sk-unused-by-the-test-0000
    input_price_per_m: 5
    output_price_per_m: 15
budget: 0.00001
agents:
  writer:
    instructions: Write one sentence.
    model: small
"""


async def test_served_agent_keeps_the_file_budget_and_is_recorded_and_traced(
    tmp_path: Path,
) -> None:
    async with OpenAITestServer(["a sentence"] * 4).running() as server:
        (tmp_path / "flow.yaml").write_text(flow(server.base_url))
        store, trace = tmp_path / "runs.sqlite", tmp_path / "trace.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PARALOOM_", "OTEL_"))}
        env["PYTHONPATH"] = str(ROOT)
        params = StdioServerParameters(
            command=sys.executable,
            args=[
                "-m",
                "paraloom.cli",
                "mcp",
                "serve",
                "flow.yaml",
                "--store",
                str(store),
                "--trace",
                f"jsonl:{trace}",
            ],
            env=env,
            cwd=str(tmp_path),
        )
        async with Client(params) as client:
            answer = await client.call_tool("writer", {"task": "hello"})
    assert answer.is_error, answer.content
    assert answer.meta is not None and answer.meta["io.paraloom/status"] == "budget_exhausted"
    assert not server.requests  # the budget stopped the call before any spending

    with RunStore(store, create=False) as s:
        runs = s.list_runs()
    assert [(r.workflow, r.status) for r in runs] == [("mcp:writer", "budget_exhausted")]

    spans = [json.loads(line) for line in trace.read_text().splitlines()]
    by_name = {s["name"]: s for s in spans}
    run_span = by_name["invoke_workflow mcp:writer"]
    agent_span = by_name["invoke_agent writer"]
    assert run_span["attributes"]["paraloom.run.status"] == "budget_exhausted"
    assert run_span["attributes"]["paraloom.run.id"] == runs[0].run_id
    assert agent_span["parent_id"] == run_span["span_id"]
    session = run_span["attributes"]["session.id"]  # one session for the server's calls
    assert session.startswith("mcp_") and agent_span["attributes"]["session.id"] == session


async def test_stream_text_progress_carries_the_agents_text(tmp_path: Path) -> None:
    from paraloom.testing import Reply, Streamed

    text = "A streamed sentence, sent to the MCP client piece by piece."
    reply = Streamed(Reply(text), chunk_chars=5, chunk_delay_s=0.01)
    async with OpenAITestServer([reply]).running() as server:
        (tmp_path / "flow.yaml").write_text(flow(server.base_url).replace("0.00001", "1"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PARALOOM_", "OTEL_"))}
        env["PYTHONPATH"] = str(ROOT)
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "paraloom.cli", "mcp", "serve", "flow.yaml", "--no-store", "--stream-text"],
            env=env,
            cwd=str(tmp_path),
        )
        messages: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            messages.append(message or "")

        async with Client(params) as client:
            answer = await client.call_tool(
                "writer", {"task": "hello"}, progress_callback=on_progress
            )
    assert not answer.is_error, answer.content
    assert server.requests[0].body.stream is True
    streamed = [m.removeprefix("small: ") for m in messages if m.startswith("small: ")]
    assert streamed and all(text.startswith(t) for t in streamed)
