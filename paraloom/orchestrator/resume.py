"""What a resumed run reuses from its earlier life (usually read from the run store)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from paraloom.protocols.actions import ActionResult
from paraloom.protocols.approval import ApprovalDecision
from paraloom.protocols.plan import FinalAnswer, Plan, Subtask

__all__ = ["ResumeState", "plan_changes"]

_COMPARED = ("action", "arguments", "depends_on", "policy")


@dataclass(frozen=True, slots=True)
class ResumeState:
    """``decisions`` are the planner's answers per round (replayed instead of asking the
    planner again); ``results`` are stored subtask results: those with status ``ok`` are
    reused as they are, every other subtask runs again.

    A decision is replayed only while every subtask of the rounds before it was reused:
    once a round runs a subtask again (it had failed, been skipped or was in flight),
    the decisions after it were made from results that no longer hold, so the planner
    is asked again (a static workflow's final answer is then resolved from the new
    results), and results of those later rounds are not reused."""

    run_id: str
    decisions: Mapping[int, Plan | FinalAnswer] = field(default_factory=dict)
    results: Mapping[str, ActionResult] = field(default_factory=dict)
    spent_usd: Decimal = Decimal(0)
    """What the run's LLM calls (and its nested runs') cost in earlier sessions: the
    resumed run's cost starts there."""
    approvals: Mapping[str, ApprovalDecision] = field(default_factory=dict)
    """Decisions recorded for approvals still pending when the run stopped (subtask
    id → decision), e.g. by ``paraloom approve``: a resumed subtask takes its answer."""

    def with_first_plan(self, plan: Plan) -> ResumeState:
        """This state with round 1 planned as ``plan`` (an edited static workflow):
        results of subtasks whose definition changed are dropped, so they run again
        (and, through the reuse rule, everything that depends on them)."""
        decisions = dict(self.decisions)
        old = decisions.get(1)
        decisions[1] = plan
        changed = set(plan_changes(old, plan.subtasks)) if isinstance(old, Plan) else set()
        results = {k: v for k, v in self.results.items() if k not in changed}
        return replace(self, decisions=decisions, results=results)


def plan_changes(recorded: Plan, current: Sequence[Subtask]) -> dict[str, str]:
    """Subtask id → what differs between a recorded plan and ``current`` subtasks:
    ``added``, ``removed``, or the changed fields (action, arguments, depends_on,
    policy; a description is not a change). Empty when they run the same work."""
    before = {s.id: s for s in recorded.subtasks}
    after = {s.id: s for s in current}
    changes: dict[str, str] = {}
    for sid in [*before, *(s for s in after if s not in before)]:
        if sid not in after:
            changes[sid] = "removed"
        elif sid not in before:
            changes[sid] = "added"
        else:
            fields = [f for f in _COMPARED if getattr(before[sid], f) != getattr(after[sid], f)]
            if fields:
                changes[sid] = ", ".join(fields) + " changed"
    return changes
