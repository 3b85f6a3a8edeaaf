"""End to end through real HTTP: an LLM planner writes a 3-subtask DAG (one tool, then
two LLM agents in parallel that each call a tool), then answers in round two."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, OpenAICompatible
from paraloom.orchestrator import Orchestrator
from paraloom.orchestrator.llm_planner import LLMPlanner
from paraloom.protocols.events import (
    ActionStarted,
    Event,
    LLMCallFinished,
    SubtaskFinished,
    SubtaskStarted,
)
from paraloom.protocols.messages import ModelDescriptor
from paraloom.runtime.budget import Budget
from paraloom.testing import Reply, tool_call
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest
from paraloom.tools import tool

KEY = "sk-e2e-not-a-real-key"
MODELS = {
    "planner": ModelDescriptor(
        name="planner",
        model_id="gpt-plan",
        input_price_per_m=Decimal(5),
        output_price_per_m=Decimal(15),
    ),
    "small": ModelDescriptor(
        name="small",
        model_id="gpt-small",
        input_price_per_m=Decimal("0.15"),
        output_price_per_m=Decimal("0.6"),
    ),
    "large": ModelDescriptor(
        name="large",
        model_id="gpt-large",
        input_price_per_m=Decimal(3),
        output_price_per_m=Decimal(12),
    ),
}
FACTS = ["rivers carve valleys", "deltas form at river mouths", "the Nile is long"]

ROUND_1 = {
    "decision": "plan",
    "rationale": "gather facts, then two analysts in parallel",
    "subtasks": [
        {"id": "facts", "action": "fetch_facts", "arguments": {"topic": "rivers"}},
        {
            "id": "geo",
            "action": "geographer",
            "arguments": {
                "task": "Assess the facts about rivers for a geography class.",
                "context": {"from": "facts.output"},
            },
        },
        {
            "id": "edit",
            "action": "editor",
            "arguments": {
                "task": "Assess how long the facts text is for a newsletter.",
                "context": {"from": "facts.output"},
            },
        },
    ],
}
ROUND_2 = {
    "decision": "final",
    "rationale": "both analyses are in",
    "answer": {"geography": {"from": "geo.output"}, "editorial": {"from": "edit.output"}},
}


@tool
def fetch_facts(topic: str) -> list[str]:
    """Facts about a topic."""
    return FACTS if topic == "rivers" else []


@tool
def word_count(text: str) -> int:
    """Number of words in a text."""
    return len(text.split())


class Script:
    """Decides replies from the request alone (parallel agents arrive in any order) and
    records the usage it reported for each request."""

    def __init__(self) -> None:
        self.billed: list[tuple[str, int, int]] = []

    def __call__(self, req: RecordedRequest) -> Reply:
        reply = self.decide(req)
        usage = (10 * len(req.body.messages), 7)
        self.billed.append((req.model, *usage))
        return Reply(reply.content, reply.tool_calls, input_tokens=usage[0], output_tokens=usage[1])

    def decide(self, req: RecordedRequest) -> Reply:
        messages = req.body.messages
        if "planner of a multi-agent system" in req.system:
            user = str(messages[1].content)
            return Reply.json(ROUND_1 if "Nothing has run yet" in user else ROUND_2)
        who = "geographer" if "geographer" in req.system else "editor"
        last = messages[-1]
        if last.role == "tool":
            return Reply(f"{who}: the facts have {last.content} words")
        context = json.loads(str(messages[1].content).split("Context:\n", 1)[1])
        return Reply.calls(tool_call("word_count", {"text": " ".join(context)}))


@pytest.mark.anyio
async def test_planner_dag_with_parallel_agents_over_http() -> None:
    script = Script()
    server = OpenAITestServer(handler=script, api_key=KEY)
    async with server.running(), OpenAICompatible(server.base_url, KEY) as client:
        pool = ModelPool(MODELS.values(), client=client)
        geographer = LLMAgent(
            "geographer",
            instructions="You are a geographer. Use tools to check facts.",
            model="small",
            pool=pool,
            actions=[word_count],
            description="Assesses geography",
        )
        editor = LLMAgent(
            "editor",
            instructions="You are an editor. Use tools to measure texts.",
            model="large",
            pool=pool,
            actions=[word_count],
            description="Assesses texts",
        )
        orchestrator = Orchestrator(
            [fetch_facts, geographer, editor], LLMPlanner(pool, "planner"), max_rounds=4
        )
        events: list[Event] = []
        budget = Budget("1.00")
        result = await orchestrator.run(
            "Tell me about rivers", budget=budget, on_event=events.append
        )

    assert result.status == "ok", result.error
    assert result.rounds == 2
    assert result.output == {
        "geography": "geographer: the facts have 12 words",
        "editorial": "editor: the facts have 12 words",
    }

    # What the server saw: 2 planner calls + 2 turns for each agent, all authorized.
    seen = server.requests
    assert all(r.authorized for r in seen)
    assert sorted(r.model for r in seen) == [
        "gpt-large",
        "gpt-large",
        "gpt-plan",
        "gpt-plan",
        "gpt-small",
        "gpt-small",
    ]
    for r in seen:
        if r.model == "gpt-plan":
            assert r.tool_names == [] and r.body.response_format is not None
        else:
            assert r.tool_names == ["word_count"] and r.body.response_format is None
    planner_reqs = [r for r in seen if r.model == "gpt-plan"]
    catalogue = str(planner_reqs[0].body.messages[1].content)
    assert "- geographer (kind: agent)" in catalogue and "- fetch_facts (kind: tool)" in catalogue
    state = json.loads(str(planner_reqs[1].body.messages[1].content).split("# State\n", 1)[1])
    assert state["subtasks"]["geo"]["output"] == "geographer: the facts have 12 words"
    assert state["subtasks"]["facts"]["output"] == FACTS
    # State-grounded subtasks: the agents received the facts through the reference.
    first_agent_turns = [r for r in seen if r.model != "gpt-plan" and len(r.body.messages) == 2]
    assert all(
        json.dumps(FACTS, indent=2) in str(r.body.messages[1].content) for r in first_agent_turns
    )

    # The two agent subtasks ran in parallel: both started before either finished.
    order = [
        (type(e).__name__, e.subtask_id)
        for e in events
        if isinstance(e, SubtaskStarted | SubtaskFinished) and e.subtask_id in ("geo", "edit")
    ]
    assert {o[0] for o in order[:2]} == {"SubtaskStarted"}
    tool_calls = [e for e in events if isinstance(e, ActionStarted) and e.action == "word_count"]
    assert len(tool_calls) == 2 and all(e.parent_call_id is not None for e in tool_calls)

    # Cost = sum of per-call costs = what the server billed at the pool's prices.
    by_id = {d.provider_model: d for d in MODELS.values()}
    billed = sum((by_id[m].cost(i, o) for m, i, o in script.billed), Decimal(0))
    per_call = sum((e.cost_usd for e in events if isinstance(e, LLMCallFinished)), Decimal(0))
    assert len([e for e in events if isinstance(e, LLMCallFinished)]) == 6
    assert result.cost_usd == per_call == billed == budget.spent_usd
    assert budget.reserved_usd == 0
    assert result.usage["planner"].calls == 2 and result.usage["small"].calls == 2
    assert result.subtasks["geo"].cost_usd == sum(
        (MODELS["small"].cost(i, o) for m, i, o in script.billed if m == "gpt-small"), Decimal(0)
    )
