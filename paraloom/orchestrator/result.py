"""The outcome of a run, and the feedback a planner gets between rounds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from paraloom.protocols.actions import ActionResult, TokenUsage
from paraloom.protocols.events import Event, LLMCallFinished, UsageAnomaly
from paraloom.protocols.feedback import StateFeedback, SubtaskFeedback
from paraloom.runtime.budget import Budget

__all__ = ["CostTally", "RunResult", "RunStatus", "build_feedback", "merge_usage"]

RunStatus = Literal["ok", "warning", "failed", "cancelled", "max_rounds", "budget_exhausted"]


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
    cost_usd: Decimal = Field(
        default=Decimal(0),
        description="What every LLM call of the run cost: each attempt, abandoned call "
        "(its worst case held), planner round and nested workflow; the sum of the run's "
        "LLMCallFinished events.",
    )
    usage: dict[str, TokenUsage] = Field(default_factory=dict)
    warnings: list[str] = Field(
        default_factory=list,
        description="Why a run with an answer has status 'warning' (usage anomalies, "
        "spend past the budget's limit).",
    )
    started_at: float = Field(default_factory=time.time)
    ended_at: float = Field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def elapsed_s(self) -> float:
        return self.ended_at - self.started_at


class CostTally:
    """The one cost tally of a run: the sum of every ``LLMCallFinished`` it sees (the
    run's planner rounds, every attempt of every subtask, abandoned calls at the worst
    case held, nested workflows' calls), plus ``prior`` (what earlier sessions of a
    resumed run spent). ``RunResult.cost_usd``, ``RunFinished.cost_usd`` and the store's
    run cost are this number. Usage anomalies seen become the run's warnings."""

    def __init__(self, prior_usd: Decimal = Decimal(0)) -> None:
        self.cost_usd = prior_usd
        self.usage: dict[str, TokenUsage] = {}
        self.calls = 0
        self.abandoned = 0
        self.anomalies: list[str] = []

    def observe(self, event: Event) -> None:
        if isinstance(event, LLMCallFinished):
            self.cost_usd += event.cost_usd
            self.calls += 1
            self.abandoned += int(event.abandoned)
            u = self.usage.get(event.model)
            self.usage[event.model] = event.usage if u is None else u + event.usage
        elif isinstance(event, UsageAnomaly):
            self.anomalies.append(
                f"usage_anomaly: {event.model} call {event.llm_call_id}: "
                + "; ".join(event.reasons)
                + f" (charged ${event.cost_usd}, reserved ${event.reserved_usd})"
            )

    def warnings(self, budget: Budget | None) -> list[str]:
        out = list(self.anomalies)
        if budget is not None and budget.exceeded:
            out.append(
                f"budget exceeded: ${budget.spent_usd} spent against a limit of "
                f"${budget.limit_usd} (a provider billed more than the reserved worst case)"
            )
        return out


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
