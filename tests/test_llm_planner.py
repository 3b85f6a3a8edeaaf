from __future__ import annotations

import json
from decimal import Decimal

import pytest

from paraloom.models import ModelError, ModelPool
from paraloom.orchestrator.errors import PlanningError
from paraloom.orchestrator.llm_planner import LLMPlanner, planner_reply_schema
from paraloom.orchestrator.planner import Planner, PlannerContext
from paraloom.protocols.actions import ActionKind, ActionSpec, ActionStatus
from paraloom.protocols.events import Event, LLMCallStarted
from paraloom.protocols.feedback import StateFeedback, SubtaskFeedback
from paraloom.protocols.messages import ModelDescriptor
from paraloom.protocols.plan import FinalAnswer, Plan
from paraloom.runtime.budget import Budget, BudgetExhausted
from paraloom.runtime.context import ActionContext
from paraloom.testing import Reply, ScriptedModel

PLANNER_MODEL = ModelDescriptor(
    name="planner", input_price_per_m=Decimal(2), output_price_per_m=Decimal(8)
)
SEARCH = ActionSpec(
    name="search",
    description="Web search",
    input_schema={
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
)
WRITER = ActionSpec(
    name="writer",
    description="Writes prose",
    kind=ActionKind.AGENT,
    input_schema={
        "type": "object",
        "properties": {"task": {"type": "string"}, "context": {}},
        "required": ["task"],
    },
)


def planner(model: ScriptedModel, **kw: object) -> LLMPlanner:
    return LLMPlanner(ModelPool([PLANNER_MODEL], client=model), "planner", **kw)  # type: ignore[arg-type]


def pctx(
    round: int = 1, events: list[Event] | None = None, budget: Budget | None = None
) -> PlannerContext:
    run = ActionContext(
        run_id="run_1",
        emit=(events.append if events is not None else lambda e: None),
        budget=budget,
        call_id="plan_1",
    )
    return PlannerContext(run=run, catalogue=[SEARCH, WRITER], round=round, max_rounds=3)


GOOD_PLAN = {
    "decision": "plan",
    "rationale": "search then write",
    "subtasks": [
        {
            "id": "s1",
            "action": "search",
            "arguments": {"query": "anyio"},
            "description": "find facts",
        },
        {
            "id": "w1",
            "action": "writer",
            "arguments": {
                "task": "Write a summary of anyio for engineers.",
                "context": {"from": "s1.output"},
            },
        },
    ],
}


@pytest.mark.anyio
async def test_first_round_plan_and_prompt() -> None:
    model = ScriptedModel([Reply.json(GOOD_PLAN)])
    events: list[Event] = []
    p = planner(model)
    assert isinstance(p, Planner) and p.name == "llm_planner"
    plan = await p.next_round("Explain anyio", None, pctx(events=events))
    assert isinstance(plan, Plan)
    assert [s.id for s in plan.subtasks] == ["s1", "w1"]
    assert plan.subtasks[1].arguments["context"] == {"from": "s1.output"}
    assert plan.rationale == "search then write"
    [req] = model.requests
    system, user = (m.content or "" for m in req.messages)
    assert "reference object" in system and '"decision": "final"' in system
    assert "Round 1 of 3." in user and "# Task\nExplain anyio" in user
    assert "- search (kind: tool): Web search" in user
    assert "- writer (kind: agent): Writes prose" in user
    assert '"required":["query"]' in user
    assert "Nothing has run yet" in user
    assert req.response_format is not None
    assert req.response_format.json_schema == planner_reply_schema(["search", "writer"])
    started = next(e for e in events if isinstance(e, LLMCallStarted))
    assert started.step_kind == "plan" and started.parent_call_id == "plan_1"


@pytest.mark.anyio
async def test_invalid_plan_fed_back_then_fixed() -> None:
    cyclic = {
        "decision": "plan",
        "subtasks": [
            {"id": "a", "action": "search", "arguments": {"query": {"from": "b.output"}}},
            {"id": "b", "action": "search", "arguments": {"query": {"from": "a.output"}}},
        ],
    }
    unknown = {"decision": "plan", "subtasks": [{"id": "x", "action": "fly", "arguments": {}}]}
    model = ScriptedModel(
        [Reply("not json at all"), Reply.json(cyclic), Reply.json(unknown), Reply.json(GOOD_PLAN)]
    )
    plan = await planner(model, max_attempts=4).next_round("t", None, pctx())
    assert isinstance(plan, Plan)
    feedback = [r.messages[-1].content or "" for r in model.requests[1:]]
    assert "not valid JSON" in feedback[0]
    assert "dependency cycle" in feedback[1]
    assert "unknown action 'fly'; known actions: search, writer" in feedback[2]
    assert model.requests[1].messages[-2].content == "not json at all"


@pytest.mark.anyio
async def test_gives_up_with_the_last_error() -> None:
    bad_args = {
        "decision": "plan",
        "subtasks": [{"id": "s", "action": "search", "arguments": {"query": 3}}],
    }
    model = ScriptedModel([Reply.json(bad_args), Reply.json(bad_args)])
    with pytest.raises(
        PlanningError,
        match=r"2 attempt\(s\); last error: (?s:.)*argument query: 3 is not of type 'string'",
    ):
        await planner(model, max_attempts=2).next_round("t", None, pctx())


@pytest.mark.anyio
async def test_final_answer_with_references_to_earlier_rounds() -> None:
    feedback = StateFeedback(
        round=1,
        subtasks={
            "s1": SubtaskFeedback(
                round=1,
                action="search",
                status=ActionStatus.OK,
                output={"hits": ["a"]},
                cost_usd=Decimal("0.01"),
            ),
            "w1": SubtaskFeedback(
                round=1, action="writer", status=ActionStatus.ERROR, error="model_error: down"
            ),
        },
        budget_spent_usd=Decimal("0.02"),
        budget_left_usd=Decimal("0.98"),
        notes=("writer failed",),
    )
    wrong = {"decision": "final", "answer": {"from": "zzz.output"}}
    right = {
        "decision": "final",
        "rationale": "done",
        "answer": {"summary": {"from": "s1.output.hits[0]"}},
    }
    model = ScriptedModel([Reply.json(wrong), Reply.json(right)])
    answer = await planner(model).next_round({"topic": "x"}, feedback, pctx(round=3))
    assert answer == FinalAnswer(output={"summary": {"from": "s1.output.hits[0]"}})
    user = model.requests[0].messages[1].content or ""
    assert "This is the last round" in user
    state = json.loads(user.split("# State\n", 1)[1])
    assert state["subtasks"]["s1"]["output"] == {"hits": ["a"]}
    assert state["subtasks"]["w1"]["error"] == "model_error: down"
    assert state["budget_left_usd"] == "0.98" and state["notes"] == ["writer failed"]
    assert '"topic": "x"' in user
    assert "no finished subtask is called 'zzz'" in (model.requests[1].messages[-1].content or "")


@pytest.mark.anyio
async def test_earlier_ids_cannot_be_reused() -> None:
    feedback = StateFeedback(
        round=1, subtasks={"s1": SubtaskFeedback(round=1, action="search", status=ActionStatus.OK)}
    )
    reuse = {
        "decision": "plan",
        "subtasks": [{"id": "s1", "action": "search", "arguments": {"query": "q"}}],
    }
    with pytest.raises(PlanningError, match="earlier round"):
        await planner(ScriptedModel([Reply.json(reuse)]), max_attempts=1).next_round(
            "t", feedback, pctx(2)
        )


@pytest.mark.anyio
async def test_model_failure_and_budget() -> None:
    down = ScriptedModel([ModelError("planner", "service down", status=500)])
    with pytest.raises(PlanningError, match="service down"):
        await planner(down).next_round("t", None, pctx())
    model = ScriptedModel([Reply.json(GOOD_PLAN)])
    with pytest.raises(BudgetExhausted):
        await planner(model).next_round("t", None, pctx(budget=Budget("0.000001")))
    assert model.requests == []


def test_guidance_and_construction_errors() -> None:
    p = planner(ScriptedModel([]), guidance="Always search first.")
    system = p.messages("t", None, pctx())[0].content or ""
    assert "Always search first." in system
    with pytest.raises(ValueError, match="not in the pool"):
        LLMPlanner(ModelPool([PLANNER_MODEL], client=ScriptedModel([])), "gpt-x")
