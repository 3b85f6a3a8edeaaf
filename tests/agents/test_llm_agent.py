from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from paraloom.agents import LLMAgent
from paraloom.models import ModelError, ModelPool, ModelRequest
from paraloom.protocols.actions import ActionCall, ActionKind, ActionStatus
from paraloom.protocols.events import ActionFinished, ActionStarted, Event, LLMCallFinished
from paraloom.protocols.messages import ModelDescriptor
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import Action, ActionContext
from paraloom.runtime.selection import Selection, SelectionRequest
from paraloom.testing import FunctionModel, Reply, ScriptedModel, tool_call
from paraloom.tools import tool

SMALL = ModelDescriptor(name="small", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2))
LARGE = ModelDescriptor(
    name="large", model_id="large-v2", input_price_per_m=Decimal(10), output_price_per_m=Decimal(20)
)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def pool_of(client: object) -> ModelPool:
    return ModelPool([SMALL, LARGE], client=client)  # type: ignore[arg-type]


def agent(client: object, actions: list[Action] | None = None, **kw: object) -> LLMAgent:
    return LLMAgent(
        "solver",
        instructions="You solve arithmetic.",
        model="small",
        pool=pool_of(client),
        actions=actions if actions is not None else [add],
        **kw,  # type: ignore[arg-type]
    )


def call(task: str = "what is 2+3?", **args: Any) -> ActionCall:
    return ActionCall(
        call_id="call_agent", action="solver", arguments={"task": task, **args}, run_id="run_1"
    )


def context(events: list[Event] | None = None, **kw: object) -> ActionContext:
    sink = events.append if events is not None else (lambda e: None)
    return ActionContext(run_id="run_1", emit=sink, call_id="call_agent", **kw)  # type: ignore[arg-type]


def test_spec_is_an_agent_with_task_input() -> None:
    a = agent(ScriptedModel([]), description="Solves sums")
    assert isinstance(a, Action)
    assert a.spec.kind is ActionKind.AGENT
    assert a.spec.name == "solver" and a.spec.description == "Solves sums"
    assert a.spec.input_schema["required"] == ["task"]
    with pytest.raises(ValueError, match="not in the pool"):
        LLMAgent("x", instructions="i", model="nope", pool=pool_of(ScriptedModel([])))


@pytest.mark.anyio
async def test_text_answer_records_usage_and_cost() -> None:
    model = ScriptedModel([Reply("5", input_tokens=40, output_tokens=2)])
    result = await agent(model).invoke(call(context={"hint": "small numbers"}), context())
    assert result.status is ActionStatus.OK and result.output == "5"
    assert result.usage["small"].input_tokens == 40 and result.usage["small"].calls == 1
    assert result.cost_usd == SMALL.cost(40, 2)
    [req] = model.requests
    assert req.model == "small" and req.max_tokens == 1024
    assert req.messages[0].role == "system" and req.messages[0].content == "You solve arithmetic."
    assert req.messages[1].content == 'what is 2+3?\n\nContext:\n{\n  "hint": "small numbers"\n}'
    assert [t["function"]["name"] for t in req.tools] == ["add"]


@pytest.mark.anyio
async def test_tool_calls_run_in_parallel_as_children() -> None:
    both_running = anyio.Event()
    arrived: list[str] = []

    @tool
    async def wait_for_peer(name: str) -> str:
        """Returns once both calls are running at the same time."""
        arrived.append(name)
        if len(arrived) == 2:
            both_running.set()
        await both_running.wait()
        return f"{name} done"

    model = ScriptedModel(
        [
            Reply.calls(
                tool_call("wait_for_peer", {"name": "a"}, id="t1"),
                tool_call("wait_for_peer", {"name": "b"}, id="t2"),
            ),
            Reply("both done"),
        ]
    )
    events: list[Event] = []
    with anyio.fail_after(10):  # a sequential implementation would deadlock here
        result = await agent(model, [wait_for_peer]).invoke(call(), context(events))
    assert result.ok and result.output == "both done"
    second = model.requests[1].messages
    assert [(m.role, m.tool_call_id, m.content) for m in second[-2:]] == [
        ("tool", "t1", "a done"),
        ("tool", "t2", "b done"),
    ]
    starts = [e for e in events if isinstance(e, ActionStarted)]
    ends = [e for e in events if isinstance(e, ActionFinished)]
    assert len(starts) == len(ends) == 2
    assert all(e.parent_call_id == "call_agent" and e.kind is ActionKind.TOOL for e in starts)
    assert {e.call_id for e in starts} == {e.result.call_id for e in ends}
    assert sorted(str(e.arguments["name"]) for e in starts) == ["a", "b"]


@pytest.mark.anyio
async def test_agent_as_tool_rolls_up_usage_and_cost() -> None:
    def inner_reply(r: ModelRequest) -> Reply:
        return Reply("inner says 42", input_tokens=100, output_tokens=10)

    inner = LLMAgent(
        "researcher",
        instructions="Research.",
        model="large",
        pool=pool_of(FunctionModel(inner_reply)),
        actions=[],
        description="Finds facts",
    )
    outer_model = ScriptedModel(
        [
            Reply.calls(
                tool_call("researcher", {"task": "find the answer"}),
                input_tokens=50,
                output_tokens=5,
            ),
            Reply("final: 42", input_tokens=80, output_tokens=4),
        ]
    )
    outer = agent(outer_model, [inner, add])
    events: list[Event] = []
    result = await outer.invoke(call(), context(events, budget=Budget(1)))
    assert result.ok and result.output == "final: 42"
    assert result.usage["small"].calls == 2 and result.usage["large"].calls == 1
    expected = SMALL.cost(50, 5) + SMALL.cost(80, 4) + LARGE.cost(100, 10)
    assert result.cost_usd == expected
    llm = [e for e in events if isinstance(e, LLMCallFinished)]
    assert sum((e.cost_usd for e in llm), Decimal(0)) == expected
    inner_call = next(e for e in events if isinstance(e, ActionStarted))
    assert inner_call.kind is ActionKind.AGENT
    assert {e.parent_call_id for e in llm} == {"call_agent", inner_call.call_id}
    offered = outer_model.requests[0].tools
    assert offered[0]["function"]["description"] == "[agent] Finds facts"


@pytest.mark.anyio
async def test_invalid_tool_arguments_are_fed_back_then_corrected() -> None:
    model = ScriptedModel(
        [
            Reply.calls(tool_call("add", {"a": "two", "b": 3}, id="bad")),
            Reply.calls(tool_call("add", raw="{not json", id="bad2")),
            Reply.calls(tool_call("add", {"a": 2, "b": 3}, id="good")),
            Reply("5"),
        ]
    )
    events: list[Event] = []
    result = await agent(model, max_corrections=2).invoke(call(), context(events))
    assert result.ok and result.output == "5"
    fed_back = model.requests[1].messages[-1]
    assert fed_back.role == "tool" and fed_back.tool_call_id == "bad"
    assert "Invalid call of tool 'add'" in (fed_back.content or "") and "a:" in (
        fed_back.content or ""
    )
    assert "not valid JSON" in (model.requests[2].messages[-1].content or "")
    assert model.requests[3].messages[-1].content == "5"
    assert sum(isinstance(e, ActionStarted) for e in events) == 1  # invalid calls never ran


@pytest.mark.anyio
async def test_invalid_tool_arguments_bounded() -> None:
    model = ScriptedModel([Reply.calls(tool_call("nope", {})) for _ in range(3)])
    result = await agent(model, max_corrections=1).invoke(call(), context())
    assert result.status is ActionStatus.ERROR and result.error is not None
    assert result.error.type == "invalid_tool_call"
    assert "unknown tool 'nope'; available tools: add" in result.error.message
    assert len(model.requests) == 2


@pytest.mark.anyio
async def test_tool_failures_are_reported_to_the_model() -> None:
    @tool
    def broken(x: int) -> int:
        """Always fails."""
        raise RuntimeError("disk on fire")

    model = ScriptedModel([Reply.calls(tool_call("broken", {"x": 1})), Reply("gave up politely")])
    result = await agent(model, [broken]).invoke(call(), context())
    assert result.ok
    fed = json.loads(model.requests[1].messages[-1].content or "")
    assert fed["status"] == "error" and "disk on fire" in fed["error"]["message"]


class Answer(BaseModel):
    value: int
    explanation: str


@pytest.mark.anyio
async def test_output_schema_validated_with_corrections() -> None:
    model = ScriptedModel(
        [
            Reply("five"),
            Reply('{"value": "x"}'),
            Reply('```json\n{"value": 5, "explanation": "2+3"}\n```'),
        ]
    )
    a = agent(model, output_schema=Answer, max_corrections=2)
    result = await a.invoke(call(), context())
    assert result.ok and result.output == {"value": 5, "explanation": "2+3"}
    assert a.spec.output_schema is not None
    rf = model.requests[0].response_format
    assert rf is not None and rf.name == "solver" and rf.json_schema == Answer.model_json_schema()
    assert "JSON Schema" in (model.requests[0].messages[0].content or "")
    assert "not valid JSON" in (model.requests[1].messages[-1].content or "")
    assert "value" in (model.requests[2].messages[-1].content or "")


@pytest.mark.anyio
async def test_output_json_schema_dict_and_give_up() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    ok = await agent(ScriptedModel(['{"n": 3}']), output_schema=schema).invoke(call(), context())
    assert ok.output == {"n": 3}
    bad = ScriptedModel(['{"n": "3"}', "{}"])
    result = await agent(bad, output_schema=schema, max_corrections=1).invoke(call(), context())
    assert result.status is ActionStatus.ERROR and result.error is not None
    assert (
        result.error.type == "invalid_output"
        and "'n' is a required property" in result.error.message
    )
    with pytest.raises(ValueError, match="invalid output schema"):
        agent(ScriptedModel([]), output_schema={"type": "nonsense"})


@pytest.mark.anyio
async def test_budget_exhausted_before_any_request() -> None:
    model = ScriptedModel(["never"])
    result = await agent(model).invoke(call(), context(budget=Budget("0.000001")))
    assert result.status is ActionStatus.BUDGET_EXHAUSTED
    assert model.requests == []


@pytest.mark.anyio
async def test_budget_exhausted_mid_loop_keeps_spent_cost() -> None:
    model = ScriptedModel(
        [Reply.calls(tool_call("add", {"a": 1, "b": 1}), input_tokens=10, output_tokens=10)]
    )
    budget = Budget(max_calls=1)
    result = await agent(model).invoke(call(), context(budget=budget))
    assert result.status is ActionStatus.BUDGET_EXHAUSTED
    assert result.cost_usd == SMALL.cost(10, 10) == budget.spent_usd


@pytest.mark.anyio
async def test_model_errors_map_to_statuses() -> None:
    retryable = ScriptedModel([ModelError("small", "overloaded", status=503, retryable=True)])
    r = await agent(retryable).invoke(call(), context())
    assert (
        r.status is ActionStatus.RETRYABLE_ERROR
        and r.error is not None
        and "overloaded" in r.error.message
    )
    fatal = ScriptedModel([ModelError("small", "bad request", status=400)])
    assert (await agent(fatal).invoke(call(), context())).status is ActionStatus.ERROR


@pytest.mark.anyio
async def test_invalid_input_and_max_turns() -> None:
    a = agent(ScriptedModel([]))
    bad = await a.invoke(ActionCall(action="solver", arguments={"task": ""}), context())
    assert (
        bad.status is ActionStatus.ERROR
        and bad.error is not None
        and bad.error.type == "invalid_arguments"
    )
    extra = await a.invoke(ActionCall(action="solver", arguments={"task": "t", "x": 1}), context())
    assert extra.error is not None and "unknown argument" in extra.error.message
    looping = ScriptedModel([Reply.calls(tool_call("add", {"a": 1, "b": 1})) for _ in range(2)])
    result = await agent(looping, max_turns=2).invoke(call(), context())
    assert result.error is not None and result.error.type == "max_turns"


@pytest.mark.anyio
async def test_parallel_invocations_do_not_share_state() -> None:
    gate = anyio.Event()
    started = 0

    async def reply(r: ModelRequest) -> Reply:
        nonlocal started
        task = r.messages[1].content or ""
        if len(r.messages) == 2:  # first turn: both calls interleave here
            started += 1
            if started == 2:
                gate.set()
            await gate.wait()
            return Reply.calls(tool_call("add", {"a": len(task), "b": 0}))
        return Reply(f"{task}:{r.messages[-1].content}")

    a = agent(FunctionModel(reply))
    results: dict[str, object] = {}

    async def run(task: str) -> None:
        results[task] = (await a.invoke(call(task), context())).output

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "ab")
            tg.start_soon(run, "abcdef")
    assert results == {"ab": "ab:2", "abcdef": "abcdef:6"}


class ChooseLarge:
    async def select(self, request: SelectionRequest) -> Selection:
        return Selection(model="large", reason=f"turn {request.step_index} of {request.agent}")


@pytest.mark.anyio
async def test_context_selector_picks_each_turn() -> None:
    model = ScriptedModel([Reply.calls(tool_call("add", {"a": 1, "b": 2})), Reply("3")])
    result = await agent(model).invoke(call(), context(model_selector=ChooseLarge()))
    assert [r.model for r in model.requests] == ["large-v2", "large-v2"]
    assert list(result.usage) == ["large"] and result.usage["large"].calls == 2


@pytest.mark.anyio
async def test_tool_calls_the_agent_makes_wait_for_approval() -> None:
    from paraloom.protocols.events import ApprovalDecided, ApprovalRequested
    from paraloom.runtime.approval import ApprovalDecision, ApprovalGate, PendingApproval

    paid: list[int] = []

    @tool(requires_approval=lambda args: int(str(args["amount"])) > 100)
    def pay(amount: int) -> int:
        """Pay an amount."""
        paid.append(amount)
        return amount

    def policy(request: PendingApproval) -> ApprovalDecision:
        if request.arguments["amount"] == 500:
            return ApprovalDecision(outcome="approved", by="policy", arguments={"amount": 90})
        return ApprovalDecision(outcome="rejected", by="policy", reason="over limit")

    model = ScriptedModel(
        [
            Reply.calls(
                tool_call("pay", {"amount": 50}, id="t1"),
                tool_call("pay", {"amount": 500}, id="t2"),
                tool_call("pay", {"amount": 700}, id="t3"),
            ),
            Reply("paid what I could"),
        ]
    )
    events: list[Event] = []
    gate = ApprovalGate(callback=policy)
    result = await agent(model, [pay]).invoke(call(), context(events, approvals=gate))
    assert result.ok
    assert sorted(paid) == [50, 90]  # 50 needs no approval; 500 was edited to 90; 700 refused
    tool_messages = {m.tool_call_id: m.content for m in model.requests[1].messages[-3:]}
    assert tool_messages["t2"] == "90"
    assert "not approved (rejected: over limit)" in str(tool_messages["t3"])
    requested = [e.request for e in events if isinstance(e, ApprovalRequested)]
    assert sorted(int(str(r.arguments["amount"])) for r in requested) == [500, 700]
    assert all(r.key.startswith("call_agent/") and r.call_id for r in requested)
    assert len([e for e in events if isinstance(e, ApprovalDecided)]) == 2
