"""What a resumed run reuses from its earlier life (usually read from the run store)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from paraloom.protocols.actions import ActionResult
from paraloom.protocols.plan import FinalAnswer, Plan

__all__ = ["ResumeState"]


@dataclass(frozen=True, slots=True)
class ResumeState:
    """``decisions`` are the planner's answers per round (replayed instead of asking the
    planner again); ``results`` are stored subtask results: those with status ``ok`` are
    reused as they are, every other subtask runs again."""

    run_id: str
    decisions: Mapping[int, Plan | FinalAnswer] = field(default_factory=dict)
    results: Mapping[str, ActionResult] = field(default_factory=dict)
    spent_usd: Decimal = Decimal(0)
    """What the run's LLM calls (and its nested runs') cost in earlier sessions: the
    resumed run's cost starts there."""
