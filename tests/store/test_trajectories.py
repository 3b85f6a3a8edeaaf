from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paraloom import FinalAnswer, Orchestrator, Plan, PlannerContext, StateFeedback, Subtask
from paraloom.models.base import ModelRequest
from paraloom.models.calling import StepInfo, call_model
from paraloom.models.pool import ModelPool
from paraloom.protocols.events import Event, LLMCallFinished
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.routing.trajectory import read_trajectories
from paraloom.runtime.context import ActionContext
from paraloom.runtime.selection import Selection, SelectionRequest
from paraloom.store import RunStore
from paraloom.testing.models import FunctionModel
from paraloom.tools.function import FunctionTool

pytestmark = pytest.mark.anyio

MODELS = [
    ModelDescriptor(name="cheap", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2)),
    ModelDescriptor(name="big", input_price_per_m=Decimal(10), output_price_per_m=Decimal(30)),
]


def reply(request: ModelRequest) -> str:
    return f"answer from {request.model}"


POOL = ModelPool(MODELS, client=FunctionModel(reply))


class Selector:
    """Hard questions go to `big`; every choice reports a propensity and scores."""

    async def select(self, request: SelectionRequest) -> Selection:
        text = " ".join(m.content or "" for m in request.messages)
        model = "big" if "hard" in text else "cheap"
        return Selection(
            model=model,
            reason="test rule",
            propensity=0.9,
            scores={"cheap": 0.2, "big": 0.8},
            info={"candidates": ["cheap", "big"]},
        )


async def ask(question: str, ctx: ActionContext) -> str:
    call = await call_model(
        POOL,
        ctx,
        [ChatMessage(role="user", content=question)],
        default_model="cheap",
        max_tokens=20,
    )
    return call.completion.content or ""


async def ask_then_fail(question: str, ctx: ActionContext) -> str:
    await ask(question, ctx)
    raise ValueError("the answer was unusable")


class LLMPlanner:
    name = "llm-ish"

    async def next_round(
        self, task: Any, feedback: StateFeedback | None, context: PlannerContext
    ) -> Plan | FinalAnswer:
        if feedback is None:
            await call_model(
                POOL,
                context.run,
                [ChatMessage(role="user", content=f"plan: {task}")],
                default_model="cheap",
                step=StepInfo(step_kind="plan"),
                max_tokens=20,
            )
            return Plan(
                subtasks=(
                    Subtask(id="easy", action="ask", arguments={"question": "an easy one"}),
                    Subtask(id="hard", action="ask", arguments={"question": "a hard one"}),
                    Subtask(id="bad", action="ask_then_fail", arguments={"question": "x"}),
                )
            )
        return FinalAnswer(output={"easy": {"from": "easy.output"}})


async def test_export_matches_the_logged_calls(store_location: str, tmp_path: Path) -> None:
    finished: list[LLMCallFinished] = []

    def keep(event: Event) -> None:
        if isinstance(event, LLMCallFinished):
            finished.append(event)

    with RunStore(store_location) as store:
        orch = Orchestrator(
            [FunctionTool(ask), FunctionTool(ask_then_fail)],
            LLMPlanner(),
            name="qa",
            model_selector=Selector(),
            listeners=[store.listener()],
        )
        result = await orch.run("answer two questions", budget="1", on_event=keep)
        assert (result.status, result.failed) == ("partial", ("bad",))
        await store.aflush()

        records = store.export_trajectories([result.run_id])
        assert len(records) == 4 == len(finished)
        assert [r.step_index for r in records] == [0, 1, 2, 3]
        plan = records[0]
        assert plan.step_kind == "plan"
        assert plan.context_text == "answer two questions"
        assert plan.step_success == 1.0
        turns = {r.context_text: r for r in records[1:]}
        assert set(turns) == {
            '{"question":"an easy one"}',
            '{"question":"a hard one"}',
            '{"question":"x"}',
        }
        assert turns['{"question":"a hard one"}'].chosen_model == "big"
        assert turns['{"question":"an easy one"}'].chosen_model == "cheap"
        assert turns['{"question":"an easy one"}'].step_success == 1.0
        assert turns['{"question":"x"}'].step_success == 0.0
        by_cost = {e.llm_call_id: e for e in finished}
        assert sorted(r.cost_usd for r in records) == sorted(
            float(e.cost_usd) for e in by_cost.values()
        )
        assert sum(r.input_tokens or 0 for r in records) == sum(
            e.usage.input_tokens for e in finished
        )
        for r in records:
            assert r.run_id == result.run_id
            assert r.task == "qa"
            assert r.candidates == ("cheap", "big")
            assert r.propensity == 0.9
            assert r.final_score == 1.0
            assert r.latency_s is not None
            assert r.budget_left_usd is not None and 0 < r.budget_left_usd <= 1

        summary = store.get_run(result.run_id)
        assert summary.llm_calls == 4
        assert summary.llm_cost_usd == sum((e.cost_usd for e in finished), Decimal(0))
        assert summary.usage["big"].calls == 1
        assert summary.usage["cheap"].calls == 3
        assert {c.routing["model"] for c in summary.llm_call_records if c.routing} == {
            "cheap",
            "big",
        }
        plan_calls = [c for c in summary.llm_call_records if c.step_kind == "plan"]
        assert [c.round for c in plan_calls] == [1]
        assert {c.subtask_id for c in summary.llm_call_records if c.step_kind != "plan"} == {
            "easy",
            "hard",
            "bad",
        }

        store.set_score(result.run_id, 0.5)
        path = tmp_path / "traj.jsonl"
        assert store.write_trajectories(path) == 4
        back = list(read_trajectories(path))
        assert [r.final_score for r in back] == [0.5] * 4
        assert [r.chosen_model for r in back] == [r.chosen_model for r in records]


async def test_export_of_all_runs_and_of_runs_without_llm_calls(store_location: str) -> None:
    with RunStore(store_location) as store:
        orch = Orchestrator(
            [FunctionTool(ask), FunctionTool(ask_then_fail)],
            LLMPlanner(),
            model_selector=Selector(),
            listeners=[store.listener()],
        )
        first = await orch.run("one")
        second = await orch.run("two")
        await store.aflush()
        records = store.export_trajectories()
        assert [r.run_id for r in records] == [first.run_id] * 4 + [second.run_id] * 4
        assert store.export_trajectories([]) == []
