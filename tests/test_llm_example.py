"""examples/llm_research.py runs end to end against an OpenAI-compatible endpoint
(here: the test server, configured through the same environment variables)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from paraloom.testing import Reply, tool_call
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "llm_research.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llm_research_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def endpoint(req: RecordedRequest) -> Reply:
    msgs = req.body.messages
    if "planner of a multi-agent system" in req.system:
        if "Nothing has run yet" in str(msgs[1].content):
            task = "Find the populations of Japan and France and their ratio."
            plan = {"id": "r", "action": "researcher", "arguments": {"task": task}}
            return Reply.json({"decision": "plan", "subtasks": [plan]})
        return Reply.json({"decision": "final", "answer": {"from": "r.output"}})
    tool_results = [json.loads(str(m.content)) for m in msgs if m.role == "tool"]
    if not tool_results:
        return Reply.calls(
            tool_call("country_facts", {"name": "Japan"}),
            tool_call("country_facts", {"name": "France"}),
        )
    if len(tool_results) == 2:
        japan, france = tool_results
        return Reply.calls(
            tool_call(
                "ratio", {"a": japan["population_millions"], "b": france["population_millions"]}
            )
        )
    return Reply(f"Japan has {tool_results[-1]} times the population of France.")


@pytest.mark.anyio
async def test_example_against_an_openai_compatible_server(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example()
    server = OpenAITestServer(handler=endpoint, api_key="sk-example")
    async with server.running():
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-example")
        monkeypatch.setenv("PARALOOM_MODEL", "local-model")
        result = await example.main("How many times more people live in Japan than France?")
    assert result.status == "ok", result.error
    assert result.output == "Japan has 1.826 times the population of France."
    assert {r.model for r in server.requests} == {"local-model"}
    assert all(r.authorized for r in server.requests)
    assert result.cost_usd > 0
