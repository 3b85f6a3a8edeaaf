"""The outcome of a run, and the feedback a planner gets between rounds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from paraloom.protocols.actions import ActionResult, TokenUsage
from paraloom.protocols.feedback import StateFeedback, SubtaskFeedback

__all__ = ["RunResult", "RunStatus", "build_feedback", "merge_usage"]

RunStatus = Literal["ok", "failed", "cancelled", "max_rounds", "budget_exhausted"]


class RunResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    workflow: str
    status: RunStatus
    output: JsonValue = None
    error: str | None = None
    rounds: int = 0
    subtasks: dict[str, ActionResult] = Field(default_factory=dict)
    subtask_rounds: dict[str, int] = Field(default_factory=dict)
    cost_usd: Decimal = Decimal(0)
    usage: dict[str, TokenUsage] = Field(default_factory=dict)
    started_at: float = Field(default_factory=time.time)
    ended_at: float = Field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def elapsed_s(self) -> float:
        return self.ended_at - self.started_at


def merge_usage(usages: Iterable[Mapping[str, TokenUsage]]) -> dict[str, TokenUsage]:
    total: dict[str, TokenUsage] = {}
    for usage in usages:
        for model, u in usage.items():
            total[model] = total[model] + u if model in total else u.model_copy()
    return total


def _preview(output: JsonValue, limit: int) -> tuple[JsonValue, bool]:
    if output is None or isinstance(output, bool | int | float):
        return output, False
    text = output if isinstance(output, str) else json.dumps(output, default=str)
    if len(text) <= limit:
        return output, False
    return text[:limit] + "…", True


def build_feedback(
    *,
    round: int,
    results: Mapping[str, ActionResult],
    rounds_of: Mapping[str, int],
    spent: Decimal,
    left: Decimal | None,
    elapsed_s: float,
    output_chars: int = 2000,
    notes: tuple[str, ...] = (),
) -> StateFeedback:
    subtasks: dict[str, SubtaskFeedback] = {}
    for sid, r in results.items():
        output, truncated = _preview(r.output, output_chars)
        subtasks[sid] = SubtaskFeedback(
            round=rounds_of.get(sid, round),
            action=r.action,
            status=r.status,
            output=output,
            output_truncated=truncated,
            error=f"{r.error.type}: {r.error.message}" if r.error else None,
            cost_usd=r.cost_usd,
            duration_s=r.duration_s,
        )
    return StateFeedback(
        round=round,
        subtasks=subtasks,
        budget_spent_usd=spent,
        budget_left_usd=left,
        elapsed_s=elapsed_s,
        notes=notes,
    )
