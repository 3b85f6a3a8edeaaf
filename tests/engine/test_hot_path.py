"""The engine's per-node shortcuts keep its behaviour: results built without validation
equal validated ones, the plain topological pass orders like graphlib, a child context
keeps every field, and a run nobody listens to builds no lifecycle events while the
actions' own events still reach the run's cost tally."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from decimal import Decimal
from graphlib import TopologicalSorter
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

import paraloom.orchestrator.scheduler as scheduler_module
from paraloom import ActionCall, ActionContext, Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.orchestrator.result import REPR_SUBTASKS, RunResult
from paraloom.orchestrator.validation import _topological_order, validate_plan
from paraloom.protocols.actions import ActionResult, ActionSpec, ActionStatus, ErrorInfo, TokenUsage
from paraloom.protocols.events import LLMCallFinished, SubtaskFinished, SubtaskStarted
from paraloom.protocols.feedback import SubtaskFeedback
from paraloom.protocols.plan import FailurePolicy
from paraloom.protocols.trusted import trusted_model
from paraloom.runtime.budget import Budget
from paraloom.runtime.stop import StopSignal

CALL = ActionCall(action="a", subtask_id="s", attempt=2)


@pytest.mark.parametrize("output", [7, "text", None, [1, {"k": [2]}], {"x": {"y": 1}}])
def test_a_trusted_success_result_is_the_validated_one(output: Any) -> None:
    trusted = ActionResult.success(CALL, output, started_at=1.0, trusted=True)
    checked = ActionResult.success(CALL, output, started_at=1.0)
    trusted.ended_at = checked.ended_at
    assert trusted == checked
    assert trusted.model_fields_set == checked.model_fields_set
    assert trusted.model_dump(exclude_unset=True) == checked.model_dump(exclude_unset=True)
    assert ActionResult.model_validate_json(trusted.model_dump_json()) == trusted
    # each result owns its mutable parts: assignment and copies work as on any model
    other = ActionResult.success(CALL, output, started_at=1.0, trusted=True)
    trusted.usage["m"] = TokenUsage(calls=1)
    assert other.usage == {}
    trusted.error = ErrorInfo(type="T", message="m")
    assert "error" in trusted.model_fields_set and "error" not in other.model_fields_set
    copy = other.model_copy(update={"cost_usd": Decimal("0.5")})
    assert copy.cost_usd == Decimal("0.5") and "cost_usd" in copy.model_fields_set


def test_the_topological_pass_orders_like_graphlib() -> None:
    for seed in range(200):
        rng = random.Random(seed)
        ids = [f"s{i}" for i in range(rng.randint(1, 30))]
        rank = {sid: rng.random() for sid in ids}  # a random order the edges follow
        deps = {sid: {d for d in ids if rank[d] < rank[sid] and rng.random() < 0.25} for sid in ids}
        order, dependents = _topological_order(deps)
        assert order == tuple(TopologicalSorter(deps).static_order()), seed
        assert {(d, s) for d, ss in dependents.items() for s in ss} == {
            (d, s) for s, ds in deps.items() for d in ds
        }


def test_a_cycle_leaves_the_order_short() -> None:
    order, _ = _topological_order({"a": {"c"}, "b": {"a"}, "c": {"b"}, "d": set()})
    assert order == ("d",)


def test_validated_plan_records_references_and_dependents() -> None:
    @tool
    async def echo(x: int) -> int:
        return x

    plan = Plan(
        subtasks=(
            Subtask(id="a", action="echo", arguments={"x": 1}),
            Subtask(id="b", action="echo", arguments={"x": {"from": "a.output"}}),
            Subtask(id="c", action="echo", arguments={"x": 2}, depends_on=("a",)),
        )
    )
    vplan = validate_plan(plan, Orchestrator([echo], StaticPlanner(plan)).actions)
    assert vplan.referencing == {"b"}
    assert vplan.dependents == {"a": ("b", "c")}
    assert vplan.subtask("c").arguments == {"x": 2}


def test_a_child_context_keeps_every_field_of_its_parent() -> None:
    values: dict[str, Any] = {
        "run_id": "run_1",
        "emit": print,
        "budget": Budget("1"),
        "model_selector": object(),
        "subtask_id": "parent",
        "call_id": "call_parent",
        "depth": 2,
        "deadline": 10.0**10,
        "capture_content": True,
        "stop": StopSignal(),
        "deltas": True,
        "extras": {"k": "v"},
        "approvals": object(),
        "pace": print,
    }
    # a field added to ActionContext must be set here, and carried over by child()
    assert set(values) == {f.name for f in dataclasses.fields(ActionContext)}
    parent = ActionContext(**values)
    call = ActionCall(action="a", subtask_id="s", deadline=10.0**9)
    expected = dataclasses.replace(
        parent, subtask_id="s", call_id=call.call_id, depth=3, deadline=10.0**9
    )
    assert parent.child(call) == expected


@pytest.mark.anyio
async def test_a_run_nobody_listens_to_builds_no_lifecycle_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []
    trusted = scheduler_module.trusted_model

    def counting(cls: type[Any], values: dict[str, Any]) -> Any:
        if cls in (SubtaskStarted, SubtaskFinished):
            built.append(cls.__name__)
        return trusted(cls, values)

    monkeypatch.setattr(scheduler_module, "trusted_model", counting)

    @tool
    async def billed(x: int, ctx: ActionContext) -> int:
        # an action's own event: the run's cost tally must still see it
        ctx.emit(LLMCallFinished(run_id=ctx.run_id, llm_call_id="l", model="m", cost_usd=1))
        return x

    plan = Plan(
        subtasks=tuple(Subtask(id=f"n{i}", action="billed", arguments={"x": i}) for i in range(3))
    )
    orch = Orchestrator([billed], StaticPlanner(plan))
    quiet = await orch.run()
    assert quiet.ok and built == []
    assert quiet.cost_usd == Decimal(3)
    heard: list[object] = []
    loud = await orch.run(on_event=heard.append)
    assert loud.ok and sorted(built) == ["SubtaskFinished"] * 3 + ["SubtaskStarted"] * 3
    assert loud.cost_usd == Decimal(3)
    assert sum(isinstance(e, SubtaskFinished) for e in heard) == 3


def _chain(n: int, action: str = "step") -> tuple[Subtask, ...]:
    return (
        Subtask(id="n0", action=action, arguments={"x": 0}),
        *(
            Subtask(id=f"n{i}", action=action, arguments={"x": {"from": f"n{i - 1}.output"}})
            for i in range(1, n)
        ),
    )


@pytest.mark.anyio
@pytest.mark.timeout(10)
async def test_a_chain_runs_in_one_task_and_a_fork_keeps_its_concurrency() -> None:
    tasks: dict[str, int] = {}
    both = anyio.Event()
    arrived: set[str] = set()
    alive: list[object] = []  # every task object kept: an id is never reused

    @tool
    async def step(x: int, ctx: ActionContext) -> int:
        assert ctx.subtask_id is not None
        task = asyncio.current_task()
        alive.append(task)
        tasks[ctx.subtask_id] = id(task)
        return x + 1

    @tool
    async def meet(x: int, ctx: ActionContext) -> int:
        # both branches of the fork must be in flight at once, or this never returns
        assert ctx.subtask_id is not None
        arrived.add(ctx.subtask_id)
        if len(arrived) == 2:
            both.set()
        await both.wait()
        return x

    chain = await Orchestrator([step], StaticPlanner(Plan(subtasks=_chain(6)))).run()
    assert chain.ok and chain.output == 6
    assert len(tasks) == 6 and len(set(tasks.values())) == 1  # no task per link

    fork = Plan(
        subtasks=(
            Subtask(id="a", action="step", arguments={"x": 0}),
            Subtask(id="b", action="meet", arguments={"x": {"from": "a.output"}}),
            Subtask(id="c", action="meet", arguments={"x": {"from": "a.output"}}),
            Subtask(
                id="d", action="step", arguments={"x": {"from": "b.output"}}, depends_on=("c",)
            ),
        )
    )
    run = await Orchestrator([step, meet], StaticPlanner(fork)).run()
    assert run.ok and run.output == 2 and arrived == {"b", "c"}


@pytest.mark.anyio
@pytest.mark.timeout(10)
async def test_a_subtask_kept_for_its_task_is_cancelled_with_the_run() -> None:
    """``a`` finishes and keeps ``b`` for its task; ``x`` then fails the run before that
    task resumes: ``b`` was started, so it has a result (cancelled), like a subtask whose
    task is cancelled; the run fails on ``x``."""

    @tool
    async def step(x: int) -> int:
        return x + 1

    @tool
    async def broken(x: int) -> int:
        raise ValueError("broken")

    plan = Plan(
        subtasks=(
            Subtask(id="a", action="step", arguments={"x": 0}),
            Subtask(id="x", action="broken", arguments={"x": 0}),
            Subtask(id="b", action="step", arguments={"x": {"from": "a.output"}}),
        )
    )
    run = await Orchestrator(
        [step, broken], StaticPlanner(plan), default_policy=FailurePolicy(on_failure="fail")
    ).run()
    assert run.status == "failed" and "'x' failed" in (run.error or "")
    assert run.subtasks["a"].ok
    b = run.subtasks["b"]
    assert b.status is ActionStatus.CANCELLED and b.error is not None
    assert b.error.type == "Cancelled"


@pytest.mark.anyio
async def test_an_action_gets_a_valid_call_with_arguments_of_its_own() -> None:
    seen: list[ActionCall] = []

    class Keeper:
        spec = ActionSpec(name="keep")

        async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
            seen.append(call)
            call.arguments["x"] = "changed"  # must not reach the plan or another attempt
            return ActionResult.success(call, None, started_at=0.0)

    plan = Plan(
        subtasks=(
            Subtask(id="k", action="keep", arguments={"x": [1, {"y": None}]}),
            Subtask(id="r", action="keep", arguments={"x": {"from": "input.v"}}),
        )
    )
    run = await Orchestrator([Keeper()], StaticPlanner(plan)).run({"v": "w"})
    assert run.ok and plan.subtasks[0].arguments == {"x": [1, {"y": None}]}
    for call in seen:
        assert ActionCall.model_validate(call.model_dump()) == call
        assert call.model_fields_set == set(ActionCall.model_fields)
    assert {c.subtask_id: c.attempt for c in seen} == {"k": 1, "r": 1}


def test_a_run_result_shows_many_subtasks_by_count() -> None:
    def result(n: int) -> RunResult:
        done = {f"s{i}": ActionResult(call_id=f"c{i}", action="a", status="ok") for i in range(n)}
        return RunResult(
            run_id="r",
            workflow="w",
            status="ok",
            subtasks=done,
            subtask_rounds=dict.fromkeys(done, 1),
        )

    few, many = repr(result(REPR_SUBTASKS)), repr(result(REPR_SUBTASKS + 1))
    assert "'s0': ActionResult(call_id='c0'" in few and "'s9': 1" in few
    assert "subtasks=<11 subtasks>" in many and "subtask_rounds=<11 subtasks>" in many
    assert "ActionResult" not in many and "run_id='r'" in many


def test_frozen_models_built_trusted_share_one_fields_set_safely() -> None:
    values = {
        "round": 1,
        "action": "a",
        "status": ActionStatus.OK,
        "output": 1,
        "output_truncated": False,
        "error": None,
        "cost_usd": Decimal(0),
        "duration_s": 0.5,
    }
    one = trusted_model(SubtaskFeedback, dict(values))
    two = trusted_model(SubtaskFeedback, dict(values))
    assert one == SubtaskFeedback(**values) and one.model_fields_set == set(values)
    assert one.model_fields_set is two.model_fields_set  # one set for all
    with pytest.raises(ValidationError):
        one.round = 2  # type: ignore[misc]
    copied = one.model_copy(update={"round": 3})
    assert copied.round == 3 and copied.model_fields_set is not one.model_fields_set
    assert two.model_fields_set == set(values) and two.round == 1
    # a model that is not frozen gets a set of its own
    assert ActionResult.success(CALL, 1, started_at=0.0, trusted=True).model_fields_set is not (
        ActionResult.success(CALL, 1, started_at=0.0, trusted=True).model_fields_set
    )
