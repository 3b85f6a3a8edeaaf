"""The planner interface (one round at a time) and the static planner for fixed DAGs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import JsonValue

from paraloom.orchestrator.references import find_references
from paraloom.protocols.actions import ActionSpec
from paraloom.protocols.feedback import StateFeedback
from paraloom.protocols.plan import FinalAnswer, Plan
from paraloom.runtime.context import ActionContext

__all__ = ["Planner", "PlannerContext", "StaticPlanner"]


@dataclass(frozen=True, slots=True)
class PlannerContext:
    """What a planner may use: the run's context (budget, model selector, event sink),
    the catalogue of actions it may schedule, and the 1-based round number."""

    run: ActionContext
    catalogue: Sequence[ActionSpec]
    round: int
    max_rounds: int


@runtime_checkable
class Planner(Protocol):
    """Decides the next round: a :class:`Plan` to run, or a :class:`FinalAnswer`.

    ``feedback`` is ``None`` on the first round. A planner may raise
    :class:`paraloom.orchestrator.errors.PlanningError` to fail the run with a reason.

    A planner whose decisions never depend on the feedback may say so with a
    ``reads_feedback`` attribute that is false: the orchestrator then builds no feedback
    for it (unless a listener gets it with ``RoundFinished``) and passes ``None`` in
    every round (the round number is in the context).
    """

    @property
    def name(self) -> str: ...

    async def next_round(
        self, task: JsonValue, feedback: StateFeedback | None, context: PlannerContext
    ) -> Plan | FinalAnswer: ...


class StaticPlanner:
    """Runs one fixed plan, then answers with ``output`` (reference objects allowed).

    By default the answer is the output of the plan's single sink, or a mapping of
    sink id → output when there are several.
    """

    def __init__(self, plan: Plan, output: JsonValue = None, *, name: str = "static") -> None:
        self.plan = plan
        self._name = name
        self.output = output if output is not None else _default_output(plan)

    @property
    def output(self) -> JsonValue:
        """The final answer's output (reference objects allowed)."""
        return self._answer.output

    @output.setter
    def output(self, output: JsonValue) -> None:
        self._answer = FinalAnswer(output=output)  # validated once, answered every run

    @property
    def name(self) -> str:
        return self._name

    @property
    def reads_feedback(self) -> bool:
        """False: the plan in round 1, the answer in any later round, whatever the
        feedback says (see :class:`Planner`); true for a subclass with a
        ``next_round`` of its own."""
        return type(self).next_round is not StaticPlanner.next_round

    async def next_round(
        self, task: JsonValue, feedback: StateFeedback | None, context: PlannerContext
    ) -> Plan | FinalAnswer:
        if feedback is None and context.round == 1:
            return self.plan
        return self._answer


def _default_output(plan: Plan) -> JsonValue:
    needed = {dep for s in plan.subtasks for dep in s.depends_on}
    for s in plan.subtasks:
        needed.update(ref.split(".", 1)[0].split("[", 1)[0] for ref in find_references(s.arguments))
    sinks = [s.id for s in plan.subtasks if s.id not in needed]
    if len(sinks) == 1:
        return {"from": f"{sinks[0]}.output"}
    return {sink: {"from": f"{sink}.output"} for sink in sinks}
