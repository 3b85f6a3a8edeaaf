from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest

from paraloom import (
    ActionResult,
    ActionStatus,
    FailurePolicy,
    FinalAnswer,
    Orchestrator,
    Plan,
    PlannerContext,
    StateFeedback,
    StaticPlanner,
    Subtask,
    tool,
)
from paraloom.orchestrator.result import RunResult
from paraloom.protocols.events import (
    Event,
    PlanCreated,
    RoundStarted,
    RunStarted,
    SubtaskFinished,
    SubtaskStarted,
)
from paraloom.store import RunStore

pytestmark = pytest.mark.anyio

DIAMOND = Plan(
    subtasks=(
        Subtask(id="a", action="step", arguments={"name": "a", "value": {"from": "input.start"}}),
        Subtask(id="b", action="step", arguments={"name": "b", "value": {"from": "a.output"}}),
        Subtask(id="c", action="step", arguments={"name": "c", "value": {"from": "a.output"}}),
        Subtask(id="d", action="step", arguments={"name": "d", "value": {"from": "b.output"}}),
        Subtask(
            id="e",
            action="join",
            arguments={"left": {"from": "c.output"}, "right": {"from": "d.output"}},
        ),
    )
)


class Work:
    """Counts executions; `d` blocks (until cancelled) while `block_d` is set."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.block_d = True

    def actions(self) -> list[Any]:
        @tool
        async def step(name: str, value: int) -> int:
            self.runs[name] += 1
            if name == "d" and self.block_d:
                await anyio.sleep_forever()
            return value + 1

        @tool
        async def join(left: int, right: int) -> int:
            self.runs["e"] += 1
            return left * 100 + right

        return [step, join]


async def run_until(orch: Orchestrator, task: Any, ready: anyio.Event) -> None:
    """Run ``task`` and cancel it once ``ready`` is set."""
    async with anyio.create_task_group() as tg:

        async def go() -> None:
            await orch.run(task)

        tg.start_soon(go)
        await ready.wait()
        tg.cancel_scope.cancel()


def when(*conditions: tuple[str, str]) -> tuple[anyio.Event, Any]:
    """An event set once every (event type, subtask id) pair was seen."""
    ready = anyio.Event()
    pending = set(conditions)

    def listener(event: Event) -> None:
        key = (event.type, getattr(event, "subtask_id", ""))
        pending.discard(key)
        if not pending:
            ready.set()

    return ready, listener


async def test_cancel_then_resume_reuses_finished_subtasks(store_location: str) -> None:
    work = Work()
    ready, watch = when(
        ("subtask_finished", "a"),
        ("subtask_finished", "b"),
        ("subtask_finished", "c"),
        ("subtask_started", "d"),
    )
    with RunStore(store_location) as store:
        orch = Orchestrator(
            work.actions(),
            StaticPlanner(DIAMOND),
            name="diamond",
            listeners=[store.listener(source="diamond.yaml"), watch],
        )
        await run_until(orch, {"start": 1}, ready)
        await store.aflush()
        (info,) = store.list_runs()
        run = store.get_run(info.run_id)
        assert run.status == "cancelled"
        assert {s.subtask_id: s.status for s in run.subtasks} == {
            "a": "ok",
            "b": "ok",
            "c": "ok",
            "d": "cancelled",
        }
        assert work.runs == Counter(a=1, b=1, c=1, d=1)

        state = store.resume_state(info.run_id)
        assert state.run_id == info.run_id
        assert state.decisions == {1: DIAMOND}
        assert set(state.results) == {"a", "b", "c"}

        work.block_d = False
        result = await orch.run(run.task, resume=state)
        await store.aflush()

    assert result.ok
    assert result.run_id == info.run_id
    assert result.output == 3 * 100 + 4  # c = a+1 = 3; d = b+1 = 4
    assert work.runs == Counter(a=1, b=1, c=1, d=2, e=1)
    with RunStore(store_location) as store:
        final = store.get_run(info.run_id)
    assert final.status == "ok"
    assert final.sessions == 2
    assert final.output == 304
    assert final.source == "diamond.yaml"
    by_id = {s.subtask_id: s for s in final.subtasks}
    assert {sid for sid, s in by_id.items() if s.reused} == {"a", "b", "c"}
    assert {sid: s.executions for sid, s in by_id.items()} == {
        "a": 1,
        "b": 1,
        "c": 1,
        "d": 2,
        "e": 1,
    }
    assert all(s.status == "ok" for s in final.subtasks)
    assert final.rounds[0].replayed


class CountingPlanner:
    """Round 1: x; round 2: y (uses x); round 3: answer. Counts its calls."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    async def next_round(
        self, task: Any, feedback: StateFeedback | None, context: PlannerContext
    ) -> Plan | FinalAnswer:
        self.calls += 1
        if feedback is None:
            return Plan(
                subtasks=(Subtask(id="x", action="step", arguments={"name": "x", "value": 10}),)
            )
        if feedback.round == 1:
            return Plan(
                subtasks=(
                    Subtask(id="y", action="step", arguments={"name": "y", "value": 20}),
                    Subtask(
                        id="d",
                        action="step",
                        arguments={"name": "d", "value": {"from": "x.output"}},
                    ),
                )
            )
        return FinalAnswer(
            output=[{"from": "x.output"}, {"from": "y.output"}, {"from": "d.output"}]
        )


async def test_resume_replays_recorded_rounds_without_asking_the_planner(
    store_location: str,
) -> None:
    work = Work()
    planner = CountingPlanner()
    ready, watch = when(("subtask_finished", "y"), ("subtask_started", "d"))
    with RunStore(store_location) as store:
        orch = Orchestrator(work.actions(), planner, listeners=[store.listener(), watch])
        await run_until(orch, "t", ready)
        assert planner.calls == 2
        await store.aflush()
        (info,) = store.list_runs()
        state = store.resume_state(info.run_id)
        assert sorted(state.decisions) == [1, 2]
        assert set(state.results) == {"x", "y"}
        work.block_d = False
        result = await orch.run("t", resume=state)
    assert result.ok
    assert result.output == [11, 21, 12]
    assert planner.calls == 3  # only the final round was asked again
    assert work.runs == Counter(x=1, y=1, d=2)


async def test_resume_state_stops_at_the_first_round_without_a_decision(
    store_location: str,
) -> None:
    """Built from recorded events: round 2 has no answer (the planner failed), so round 2
    and later are asked again (decisions end at a final answer); only ok results are
    offered for reuse."""
    plan = Plan(subtasks=(Subtask(id="s", action="step"), Subtask(id="t", action="step")))
    ok = ActionResult(call_id="c1", action="step", status=ActionStatus.OK, output=5)
    err = ActionResult(call_id="c2", action="step", status=ActionStatus.ERROR, output=None)
    events: list[Event] = [
        RunStarted(run_id="r1", workflow="w", task="t"),
        RoundStarted(run_id="r1", round=1, call_id="p1"),
        PlanCreated(run_id="r1", round=1, call_id="p1", plan=plan),
        SubtaskStarted(run_id="r1", round=1, subtask_id="s", action="step"),
        SubtaskStarted(run_id="r1", round=1, subtask_id="t", action="step"),
        SubtaskFinished(run_id="r1", round=1, subtask_id="s", result=ok),
        SubtaskFinished(run_id="r1", round=1, subtask_id="t", result=err),
        RoundStarted(run_id="r1", round=2, call_id="p2"),
        PlanCreated(run_id="r1", round=2, call_id="p2", error="bad plan"),
        RoundStarted(run_id="r1", round=3, call_id="p3"),
        PlanCreated(run_id="r1", round=3, call_id="p3", final_output={"x": 1}),
    ]
    with RunStore(store_location) as store:
        for event in events:
            store.record(event)
        store.flush()
        state = store.resume_state("r1")
        assert state.decisions == {1: plan}
        assert state.results == {"s": ok}
        # a final answer right after the plan is replayed as a FinalAnswer
        store.record(PlanCreated(run_id="r1", round=2, call_id="p2", final_output={"x": 1}))
        store.flush()
        state = store.resume_state("r1")
        assert state.decisions == {1: plan, 2: FinalAnswer(output={"x": 1})}


async def test_resume_of_a_finished_run_changes_nothing(store_location: str) -> None:
    work = Work()
    work.block_d = False
    with RunStore(store_location) as store:
        orch = Orchestrator(work.actions(), StaticPlanner(DIAMOND), listeners=[store.listener()])
        first: RunResult = await orch.run({"start": 1})
        await store.aflush()
        assert not store.get_run(first.run_id).resumable
        again = await orch.run({"start": 1}, resume=store.resume_state(first.run_id))
    assert again.output == first.output == 304
    assert work.runs == Counter(a=1, b=1, c=1, d=1, e=1)


class FailsOnce:
    """``a`` fails while ``broken`` is set (a file flag in the issue); ``b`` doubles it."""

    def __init__(self) -> None:
        self.broken = True
        self.runs: Counter[str] = Counter()

    def actions(self) -> list[Any]:
        @tool
        async def first(x: int) -> int:
            self.runs["a"] += 1
            if self.broken:
                raise ValueError("the flag is set")
            return x + 1

        @tool
        async def second(y: int | None) -> int:
            self.runs["b"] += 1
            return -1 if y is None else y * 10

        return [first, second]


@pytest.mark.parametrize("on_failure", ["skip_dependents", "continue", "fail"])
async def test_resume_after_a_failure_answers_from_the_resumed_results(
    store_location: str, on_failure: Any
) -> None:
    """The failed run's final answer (made from a failed ``a``) must not be replayed:
    the resumed run resolves its answer from the re-run subtasks, whatever the policy."""
    work = FailsOnce()
    plan = Plan(
        subtasks=(
            Subtask(id="a", action="first", arguments={"x": 1}),
            Subtask(id="b", action="second", arguments={"y": {"from": "a.output"}}),
        )
    )
    orch = Orchestrator(
        work.actions(),
        StaticPlanner(plan, output={"from": "b.output"}),
        default_policy=FailurePolicy(on_failure=on_failure),
    )
    with RunStore(store_location) as store:
        orch.listeners.append(store.listener())
        failed = await orch.run()
        assert failed.status in ("failed", "partial") and "a" in failed.failed
        await store.aflush()
        work.broken = False
        result = await orch.run(resume=store.resume_state(failed.run_id))
        await store.aflush()
        stored = store.get_run(failed.run_id)
    assert (result.status, result.output, result.error) == ("ok", 20, None)
    assert (stored.status, stored.output) == ("ok", 20)
    assert work.runs["a"] == 2


async def test_a_re_run_round_makes_the_planner_decide_again(store_location: str) -> None:
    """Round 2 of the failed run was planned from a failed round 1: after round 1 runs
    again the planner is asked again, and round 2's old results are not reused."""
    work = FailsOnce()
    seen: list[Any] = []

    class TwoRounds:
        name = "two_rounds"

        async def next_round(
            self, task: Any, feedback: StateFeedback | None, context: PlannerContext
        ) -> Plan | FinalAnswer:
            if feedback is None:
                return Plan(subtasks=(Subtask(id="a", action="first", arguments={"x": 1}),))
            if feedback.round == 1:
                seen.append(feedback.subtasks["a"].status)
                return Plan(
                    subtasks=(
                        Subtask(id="b", action="second", arguments={"y": {"from": "a.output"}}),
                    )
                )
            return FinalAnswer(output={"from": "b.output"})

    orch = Orchestrator(
        work.actions(),
        TwoRounds(),
        default_policy=FailurePolicy(on_failure="continue"),
    )
    with RunStore(store_location) as store:
        orch.listeners.append(store.listener())
        first = await orch.run()
        assert first.output == -1  # b ran with a's null output
        await store.aflush()
        work.broken = False
        result = await orch.run(resume=store.resume_state(first.run_id))
    assert (result.status, result.output) == ("ok", 20)
    assert seen == [ActionStatus.ERROR, ActionStatus.OK]
    assert work.runs == Counter(a=2, b=2)
