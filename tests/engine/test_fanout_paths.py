"""The fan-out's shortcuts keep the engine's behaviour: plan validation skips the
reference scan only for arguments that cannot hold a reference, and a planner that
does not read the feedback (a StaticPlanner) gets none built unless a listener wants
it."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from pydantic import JsonValue

import paraloom.orchestrator.orchestrator as orchestrator_module
from paraloom import ActionContext, Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.orchestrator.errors import PlanValidationError
from paraloom.orchestrator.planner import PlannerContext
from paraloom.orchestrator.validation import validate_plan
from paraloom.protocols.events import Event, RoundFinished
from paraloom.protocols.feedback import StateFeedback
from paraloom.protocols.plan import FinalAnswer
from paraloom.tools.actionset import ActionSet


async def echo_fn(x: JsonValue = None) -> JsonValue:
    return x


echo = tool(echo_fn)
ACTIONS = ActionSet([echo])

# A reference in each place it may hide: the arguments object itself, a value, inside
# a list, deeper inside an object (next to plain values).
PLACES: list[Any] = [
    lambda ref: ref,
    lambda ref: {"x": ref},
    lambda ref: {"x": [1, ref]},
    lambda ref: {"y": "text", "x": {"k": {"deep": ref}}, "z": 2.5},
]


@pytest.mark.parametrize("place", PLACES)
def test_a_reference_anywhere_in_the_arguments_is_found(place: Any) -> None:
    plan = Plan(
        subtasks=(
            Subtask(id="a", action="echo_fn", arguments={"x": 1}),
            Subtask(id="b", action="echo_fn", arguments=place({"from": "a.output"})),
        )
    )
    vplan = validate_plan(plan, ACTIONS, check_arguments=False)
    assert vplan.deps["b"] == {"a"}
    assert vplan.order == ("a", "b")
    assert vplan.referencing == {"b"}


@pytest.mark.parametrize("place", PLACES)
def test_a_reference_to_an_unknown_subtask_is_rejected_anywhere(place: Any) -> None:
    plan = Plan(
        subtasks=(Subtask(id="b", action="echo_fn", arguments=place({"from": "ghost.output"})),)
    )
    with pytest.raises(PlanValidationError, match="names unknown subtask 'ghost'"):
        validate_plan(plan, ACTIONS, check_arguments=False)


def test_flat_arguments_hold_no_reference() -> None:
    flat = {"x": "a.output", "from_": 1, "n": None, "f": 1.5, "b": True}
    plan = Plan(subtasks=(Subtask(id="b", action="echo_fn", arguments=flat),))
    vplan = validate_plan(plan, ACTIONS, check_arguments=False)
    assert vplan.deps["b"] == set() and vplan.referencing == set()
    # a "from" key that is no reference object (not alone, or not a string) either
    for arguments in ({"from": "a.output", "x": 1}, {"from": 3}):
        plan = Plan(subtasks=(Subtask(id="b", action="echo_fn", arguments=arguments),))
        assert validate_plan(plan, ACTIONS, check_arguments=False).referencing == set()


def test_unknown_actions_are_reported_for_each_subtask() -> None:
    plan = Plan(
        subtasks=tuple(Subtask(id=f"s{i}", action="nope", arguments={"x": i}) for i in range(3))
    )
    with pytest.raises(PlanValidationError) as caught:
        validate_plan(plan, ACTIONS)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "subtask 's0'",
        "subtask 's1'",
        "subtask 's2'",
    ]


def fanout(n: int) -> Plan:
    return Plan(
        subtasks=tuple(Subtask(id=f"n{i}", action="echo_fn", arguments={"x": i}) for i in range(n))
    )


@pytest.mark.anyio
async def test_a_static_plan_nobody_listens_to_builds_no_feedback() -> None:
    real = orchestrator_module.build_feedback
    with mock.patch.object(orchestrator_module, "build_feedback", wraps=real) as built:
        result = await Orchestrator([echo], StaticPlanner(fanout(3))).run()
        assert result.ok and result.rounds == 2
        assert result.output == {"n0": 0, "n1": 1, "n2": 2}
        assert built.call_count == 0
        # a listener gets the round's feedback as before
        events: list[Event] = []
        await Orchestrator([echo], StaticPlanner(fanout(3))).run(on_event=events.append)
        assert built.call_count == 1 and built.call_args.kwargs["round"] == 1
    (finished,) = [e for e in events if isinstance(e, RoundFinished)]
    assert set(finished.feedback.subtasks) == {"n0", "n1", "n2"}
    assert finished.feedback.subtasks["n1"].output == 1


class Recording(StaticPlanner):
    """A StaticPlanner with a next_round of its own: it reads the feedback."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self.seen: list[StateFeedback | None] = []

    async def next_round(
        self, task: JsonValue, feedback: StateFeedback | None, context: PlannerContext
    ) -> Plan | FinalAnswer:
        self.seen.append(feedback)
        return await super().next_round(task, feedback, context)


@pytest.mark.anyio
async def test_a_planner_that_reads_the_feedback_gets_it() -> None:
    planner = Recording(fanout(2))
    assert planner.reads_feedback and not StaticPlanner(fanout(2)).reads_feedback
    result = await Orchestrator([echo], planner).run()
    assert result.ok
    first, second = planner.seen
    assert first is None and second is not None
    assert set(second.subtasks) == {"n0", "n1"} and second.subtasks["n0"].output == 0


@pytest.mark.anyio
async def test_the_static_planner_decides_by_the_round() -> None:
    planner = StaticPlanner(fanout(1))

    def context(round: int) -> PlannerContext:
        return PlannerContext(
            run=ActionContext(run_id="r"), catalogue=[], round=round, max_rounds=8
        )

    assert await planner.next_round(None, None, context(1)) is planner.plan
    assert isinstance(await planner.next_round(None, None, context(2)), FinalAnswer)
