"""Each served call is a run (events to the base sink, its own budget); progress of runs
nested below the served one names the subtask and workflow it comes from."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason='needs the mcp extra: pip install "paraloom[mcp]"')

from mcp import Client

from paraloom.orchestrator import Orchestrator, StaticPlanner, WorkflowAction
from paraloom.protocols import Plan, Subtask
from paraloom.protocols.events import Event, RunFinished, RunStarted
from paraloom.runtime import Budget
from paraloom.runtime.context import ActionContext
from paraloom.tools import ActionSet
from paraloom.tools.mcp_server import create_mcp_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_mcp_server import build_actions

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def nested_actions() -> ActionSet:
    """``twice`` runs the ``quadruple`` workflow in two parallel subtasks."""
    inner = build_actions()
    plan = Plan(
        subtasks=(
            Subtask(id="left", action="quadruple", arguments={"x": 1}),
            Subtask(id="right", action="quadruple", arguments={"x": 2}),
        )
    )
    twice = WorkflowAction(
        Orchestrator(inner, StaticPlanner(plan), name="twice"),
        input_schema={"type": "object", "properties": {}},
    )
    return inner | ActionSet([twice])


async def test_served_call_is_a_run_with_its_budget_and_prefixed_nested_progress() -> None:
    events: list[Event] = []
    budgets: list[Budget] = []

    def new_budget(spec: object) -> Budget:
        budgets.append(Budget(Decimal("0.5")))
        return budgets[-1]

    server = create_mcp_server(
        nested_actions(),
        base_context=ActionContext(run_id="mcp", emit=events.append),
        new_budget=new_budget,
    )
    updates: list[str | None] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        updates.append(message)

    async with Client(server) as client:
        answer = await client.call_tool("twice", {}, progress_callback=on_progress)
    assert not answer.is_error, answer.content
    assert len(budgets) == 1
    started = [e for e in events if isinstance(e, RunStarted)]
    assert started[0].workflow == "mcp:twice" and started[0].budget_usd == Decimal("0.5")
    finished = [e for e in events if isinstance(e, RunFinished) and e.run_id == started[0].run_id]
    assert [f.status for f in finished] == ["ok"]
    # the served workflow's own progress is plain; the nested runs' name their subtask
    assert "round 1: planned 2 subtask(s)" in updates
    assert "left > quadruple: round 1: subtask second ok" in updates
    assert "right > quadruple: round 1: subtask second ok" in updates


def test_agent_model_turns_are_progress() -> None:
    from paraloom.protocols.actions import TokenUsage
    from paraloom.protocols.events import LLMCallFinished
    from paraloom.tools.mcp_server import progress_message

    done = LLMCallFinished(
        run_id="r",
        llm_call_id="l",
        model="small",
        usage=TokenUsage(input_tokens=7, output_tokens=3),
    )
    assert progress_message(done) == "model small: 10 tokens"
    failed = LLMCallFinished(run_id="r", llm_call_id="l", model="small", error="ModelError: 401")
    assert progress_message(failed) == "model small: failed"
