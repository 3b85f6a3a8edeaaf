"""The machine-readable result of ``paraloom run --json`` / ``paraloom resume --json``.

:class:`RunOutput` is the documented contract: money is a decimal *string* of dollars
(exact, e.g. ``"0.000123"``), times are seconds, ``usage`` maps model name to tokens.
``paraloom run --dry-run --json`` prints a :class:`~paraloom.config.Projection` instead
(``"kind": "projection"``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from paraloom.orchestrator.result import RunResult, RunStatus
from paraloom.protocols.actions import TokenUsage

__all__ = ["RunOutput", "SubtaskOutcome", "run_output"]


class SubtaskOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str
    action: str
    round: int
    status: str
    attempt: int
    cost_usd: Decimal
    duration_s: float
    error: str | None = None


class RunOutput(BaseModel):
    """One finished run."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    kind: Literal["run"] = "run"
    run_id: str
    workflow: str
    status: RunStatus = Field(
        description="'partial': an answer, but some subtasks failed or were skipped "
        "(named in 'failed'); 'warning': an answer, but a usage anomaly was seen or the "
        "spend passed the budget's limit (named in 'warnings')."
    )
    ok: bool
    output: JsonValue = None
    error: str | None = None
    rounds: int
    cost_usd: Decimal = Field(description="Dollars spent by every LLM call of the run.")
    budget_usd: Decimal | None = None
    warnings: list[str] = Field(default_factory=list)
    elapsed_s: float
    usage: dict[str, TokenUsage] = Field(default_factory=dict)
    subtasks: list[SubtaskOutcome] = Field(default_factory=list)
    failed: list[str] = Field(
        default_factory=list, description="Subtasks that did not end ok, in finishing order."
    )
    store: str | None = Field(default=None, description="The run store file, if recorded.")


def run_output(
    result: RunResult, *, budget_usd: Decimal | None = None, store: str | None = None
) -> RunOutput:
    return RunOutput(
        run_id=result.run_id,
        workflow=result.workflow,
        status=result.status,
        ok=result.ok,
        output=result.output,
        error=result.error,
        rounds=result.rounds,
        cost_usd=result.cost_usd,
        budget_usd=budget_usd,
        warnings=list(result.warnings),
        elapsed_s=round(result.elapsed_s, 4),
        usage=result.usage,
        subtasks=[
            SubtaskOutcome(
                id=sid,
                action=r.action,
                round=result.subtask_rounds.get(sid, 0),
                status=r.status.value,
                attempt=r.attempt,
                cost_usd=r.cost_usd,
                duration_s=round(r.duration_s, 4),
                error=r.error.describe() if r.error else None,
            )
            for sid, r in result.subtasks.items()
        ],
        failed=list(result.failed),
        store=store,
    )
