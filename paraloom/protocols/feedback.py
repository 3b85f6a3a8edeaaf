"""What a planner is told after each round."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from paraloom.protocols.actions import ActionStatus

__all__ = ["StateFeedback", "SubtaskFeedback"]


class SubtaskFeedback(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    round: int
    action: str
    status: ActionStatus
    output: JsonValue = Field(default=None, description="The output, shortened if long.")
    output_truncated: bool = False
    error: str | None = None
    cost_usd: Decimal = Decimal(0)
    duration_s: float = 0.0


class StateFeedback(BaseModel):
    """Every subtask of every round so far (keyed by subtask id), budget and time."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    round: int = Field(description="The round that just finished (1-based).")
    subtasks: dict[str, SubtaskFeedback]
    budget_spent_usd: Decimal = Decimal(0)
    budget_left_usd: Decimal | None = None
    elapsed_s: float = 0.0
    notes: tuple[str, ...] = Field(
        default=(), description="Problems the planner must know (e.g. its plan was invalid)."
    )
