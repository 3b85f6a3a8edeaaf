"""What a resumed run reuses from its earlier life (usually read from the run store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from paraloom.protocols.actions import ActionResult
from paraloom.protocols.plan import FinalAnswer, Plan

__all__ = ["ResumeState"]


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
