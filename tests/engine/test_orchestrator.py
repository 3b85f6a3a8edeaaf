from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

import paraloom
from paraloom import (
    ActionResult,
    ActionStatus,
    Budget,
    FinalAnswer,
    Orchestrator,
    Plan,
    PlannerContext,
    ResumeState,
    StateFeedback,
    StaticPlanner,
    Subtask,
    WorkflowAction,
    tool,
)
from paraloom.protocols import Event, RunFinished, RunStarted, SubtaskFinished

pytestmark = pytest.mark.anyio


@tool
async def square(x: int) -> int:
    return x * x


class CountingPlanner:
    """Round 1: square 2 and 3; round 2: add them using the feedback; then answer."""

    name = "counting"

    def __init__(self) -> None:
        self.feedbacks: list[StateFeedback | None] = []

    async def next_round(
        self, task: Any, feedback: StateFeedback | None, context: PlannerContext
    ) -> Plan | FinalAnswer:
        self.feedbacks.append(feedback)
        if feedback is None:
            return Plan(
                subtasks=(
                    Subtask(id="a", action="square", arguments={"x": 2}),
                    Subtask(id="b", action="square", arguments={"x": 3}),
                )
            )
        if feedback.round == 1:
            total = sum(int(str(s.output)) for s in feedback.subtasks.values())
            return Plan(subtasks=(Subtask(id="c", action="square", arguments={"x": total}),))
        return FinalAnswer(output={"result": {"from": "c.output"}, "task": task})


async def test_rounds_feed_state_back_until_final_answer() -> None:
    planner = CountingPlanner()
    result = await Orchestrator([square], planner).run("sum squares")
    assert result.ok
    assert result.output == {"result": 169, "task": "sum squares"}
    assert result.rounds == 3
    fb = planner.feedbacks[2]
    assert fb is not None and fb.round == 2
    assert set(fb.subtasks) == {"a", "b", "c"}
    assert fb.subtasks["c"].round == 2 and fb.subtasks["a"].round == 1
    assert result.subtask_rounds == {"a": 1, "b": 1, "c": 2}


async def test_max_rounds_stops_a_planner_that_never_finishes() -> None:
    class Endless:
        name = "endless"

        async def next_round(self, task: Any, feedback: Any, context: PlannerContext) -> Plan:
            return Plan(
                subtasks=(
                    Subtask(
                        id=f"s{context.round}", action="square", arguments={"x": context.round}
                    ),
                )
            )

    result = await Orchestrator([square], Endless(), max_rounds=3).run()
    assert result.status == "max_rounds"
    assert set(result.subtasks) == {"s1", "s2", "s3"}  # nothing produced is lost


async def test_invalid_plan_fails_the_run_with_the_named_problem() -> None:
    plan = Plan(subtasks=(Subtask(id="x", action="cube", arguments={}),))
    result = await Orchestrator([square], StaticPlanner(plan)).run()
    assert result.status == "failed"
    assert result.error is not None and "subtask 'x': unknown action 'cube'" in result.error


async def test_cancellation_leaves_no_running_task_and_reports_partial_results() -> None:
    started = 0
    all_started = anyio.Event()
    finished: list[str] = []
    never = anyio.Event()

    @tool
    async def block(i: int) -> int:
        nonlocal started
        started += 1
        if started == 3:
            all_started.set()
        try:
            await never.wait()
        finally:
            finished.append(f"b{i}")
        return i

    plan = Plan(
        subtasks=(
            Subtask(id="done", action="square", arguments={"x": 4}),
            *(Subtask(id=f"b{i}", action="block", arguments={"i": i}) for i in range(3)),
        )
    )
    orch = Orchestrator([square, block], StaticPlanner(plan))
    events: list[Event] = []
    with anyio.fail_after(10):
        async with orch.start() as run:
            async for event in run.events():
                events.append(event)
                if isinstance(event, SubtaskFinished) and event.subtask_id == "done":
                    await all_started.wait()
                    run.cancel()
    assert sorted(finished) == ["b0", "b1", "b2"]
    last = events[-1]
    assert isinstance(last, RunFinished) and last.status == "cancelled"
    assert run.done
    partial = await run.result()
    assert partial.status == "cancelled"
    assert partial.subtasks["done"].output == 16


async def test_event_stream_is_ordered_and_complete() -> None:
    plan = Plan(subtasks=(Subtask(id="a", action="square", arguments={"x": 2}),))
    async with Orchestrator([square], StaticPlanner(plan)).start() as run:
        kinds = [e.type async for e in run.events()]
        result = await run.result()
    assert result.output == 4
    assert kinds == [
        "run_started",
        "round_started",
        "plan_created",
        "subtask_started",
        "action_started",
        "action_finished",
        "subtask_finished",
        "round_finished",
        "round_started",
        "plan_created",
        "run_finished",
    ]


async def test_workflow_as_action_nests_and_shares_the_budget() -> None:
    inner_plan = Plan(
        subtasks=(Subtask(id="sq", action="square", arguments={"x": {"from": "input.x"}}),)
    )
    inner = Orchestrator([square], StaticPlanner(inner_plan), name="inner")
    nested = WorkflowAction(
        inner,
        name="inner_wf",
        description="squares x",
        input_schema={
            "type": "object",
            "properties": {"x": {"type": "integer"}},
            "required": ["x"],
        },
    )
    assert nested.spec.kind.value == "workflow"
    outer_plan = Plan(
        subtasks=(
            Subtask(id="one", action="inner_wf", arguments={"x": 3}),
            Subtask(id="two", action="square", arguments={"x": {"from": "one.output"}}),
        )
    )
    events: list[Event] = []
    budget = Budget(Decimal("1.00"))
    outer = Orchestrator([nested, square], StaticPlanner(outer_plan), name="outer")
    result = await outer.run(budget=budget, on_event=events.append)
    assert result.output == 81
    starts = [e for e in events if isinstance(e, RunStarted)]
    assert [s.workflow for s in starts] == ["outer", "inner"]
    assert starts[1].parent_call_id is not None
    assert starts[1].budget_usd == Decimal("1.00")


async def test_resume_reuses_ok_results_and_reruns_the_rest() -> None:
    runs: list[int] = []

    @tool
    async def counted(x: int) -> int:
        runs.append(x)
        return x + 100

    plan = Plan(
        subtasks=(
            Subtask(id="a", action="counted", arguments={"x": 1}),
            Subtask(id="b", action="counted", arguments={"x": 2}),
            Subtask(id="c", action="counted", arguments={"x": {"from": "a.output"}}),
        )
    )
    stored_a = ActionResult(call_id="old", action="counted", status=ActionStatus.OK, output=101)
    stored_b = ActionResult(call_id="old2", action="counted", status=ActionStatus.CANCELLED)
    orch = Orchestrator([counted], StaticPlanner(plan))
    events: list[Event] = []
    result = await orch.run(
        resume=ResumeState(
            run_id="run_x", decisions={1: plan}, results={"a": stored_a, "b": stored_b}
        ),
        on_event=events.append,
    )
    assert result.run_id == "run_x"
    assert sorted(runs) == [2, 101]
    assert result.output == {"b": 102, "c": 201}
    reused = [e.subtask_id for e in events if isinstance(e, SubtaskFinished) and e.reused]
    assert reused == ["a"]


async def test_concurrent_runs_do_not_share_state() -> None:
    plan = Plan(subtasks=(Subtask(id="s", action="square", arguments={"x": {"from": "input"}}),))
    orch = Orchestrator([square], StaticPlanner(plan))
    results: dict[int, Any] = {}

    async def one(i: int) -> None:
        events: list[Event] = []
        results[i] = (await orch.run(i, on_event=events.append), events)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)
    for i, (res, events) in results.items():
        assert res.output == i * i
        assert {e.run_id for e in events} == {res.run_id}


def test_public_api_is_exported() -> None:
    for name in paraloom.__all__:
        assert hasattr(paraloom, name), name
    assert {"Orchestrator", "tool", "Plan", "Subtask", "Budget", "ActionSet"} <= set(
        paraloom.__all__
    )
