"""What the store returns: run listings and full run summaries (for ``paraloom runs``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from paraloom.protocols.actions import ActionKind, ActionResult, TokenUsage
from paraloom.protocols.approval import ApprovalDecision
from paraloom.protocols.plan import Plan

__all__ = [
    "FINISHED_STATUSES",
    "ApprovalRecord",
    "LLMCallRecord",
    "RoundRecord",
    "RunInfo",
    "RunNotFoundError",
    "RunSummary",
    "SubtaskRecord",
]

FINISHED_STATUSES = frozenset(
    {"ok", "warning", "partial", "waiting", "failed", "cancelled", "max_rounds", "budget_exhausted"}
)
"""Run statuses written by ``RunFinished`` (``waiting``: the run ended with approvals
pending; ``paraloom approve`` then ``paraloom resume`` continue it). Besides these a run
is ``running`` (started, not finished, and its process is alive or cannot be checked) or
``crashed`` (started, not finished, and the process that recorded it is gone: see
:mod:`paraloom.store.liveness`)."""


class RunNotFoundError(LookupError):
    """No run with this id (or id prefix) is in the store."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class RunInfo(_Model):
    """One line of ``paraloom runs list``."""

    run_id: str
    workflow: str
    status: str
    source: str | None = None
    parent_run_id: str | None = None
    cost_usd: Decimal | None = None
    started_at: float
    updated_at: float
    ended_at: float | None = None
    sessions: int = Field(1, description="How many times the run was started (1 + resumes).")
    writer_host: str | None = Field(None, description="Host of the process that last recorded it.")
    writer_pid: int | None = Field(None, description="Pid of the process that last recorded it.")
    writer_alive: bool | None = Field(
        None,
        description="Whether that process still records into the store (None: cannot "
        "tell, e.g. another host, or a store written before sessions were tracked).",
    )
    subtasks_total: int = 0
    subtasks_ok: int = 0
    llm_calls: int = 0
    warnings: tuple[str, ...] = Field(
        (), description="Why the run finished with status 'warning' (usage anomalies, …)."
    )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def resumable(self) -> bool:
        """Not finished ok: crashed, cancelled, failed… (a ``running`` run is resumable
        only once its process is gone: check ``writer_alive``)."""
        return self.status != "ok"


class RoundRecord(_Model):
    round: int
    planner: str | None = None
    plan: Plan | None = None
    final: bool = Field(False, description="The planner answered with the final output.")
    final_output: JsonValue = None
    error: str | None = None
    replayed: bool = False
    started_at: float | None = None
    finished_at: float | None = None


class SubtaskRecord(_Model):
    subtask_id: str
    round: int
    action: str
    kind: ActionKind | None = None
    depends_on: tuple[str, ...] = ()
    status: str = Field(description="'running', 'skipped' or the result's status.")
    result: ActionResult | None = None
    reason: str | None = Field(None, description="Skip reason or the last retry reason.")
    executions: int = Field(0, description="Times the subtask was started (over all sessions).")
    retries: int = 0
    reused: bool = Field(False, description="The last session reused the stored result.")
    started_at: float | None = None
    finished_at: float | None = None


class LLMCallRecord(_Model):
    llm_call_id: str
    parent_call_id: str | None = None
    round: int | None = None
    subtask_id: str | None = None
    model: str
    provider: str | None = None
    step_kind: str | None = None
    routing: dict[str, Any] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: Decimal | None = None
    latency_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    budget_left_usd: Decimal | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_tokens: int | None = None
    abandoned: bool = Field(
        False, description="Abandoned by the client; cost_usd is the worst case held."
    )
    usage_anomaly: str | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


class ApprovalRecord(_Model):
    """An approval request and its decision (``outcome`` None: still pending)."""

    key: str
    subtask_id: str | None = None
    round: int | None = None
    call_id: str | None = None
    action: str | None = None
    arguments: JsonValue = None
    projection: JsonValue = None
    requested_at: float | None = None
    outcome: str | None = None
    decided_by: str | None = None
    reason: str | None = None
    edited_arguments: JsonValue = None
    decided_at: float | None = None
    waited_s: float | None = None
    offline: bool = False

    @property
    def pending(self) -> bool:
        return self.outcome is None

    def decision(self) -> ApprovalDecision | None:
        """The recorded decision (None while pending)."""
        if self.outcome is None:
            return None
        edited = self.edited_arguments
        return ApprovalDecision.model_validate(
            {
                "outcome": self.outcome,
                "by": self.decided_by,
                "reason": self.reason,
                "arguments": edited if isinstance(edited, dict) else None,
                "decided_at": self.decided_at or 0.0,
            }
        )


class RunSummary(RunInfo):
    """Everything ``paraloom runs show ID`` prints, and what ``resume`` needs to rebuild
    the run: ``workflow``, ``source`` (the definition file), ``task`` and ``metadata``."""

    task: JsonValue = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    parent_call_id: str | None = None
    budget_usd: Decimal | None = None
    output: JsonValue = None
    error: str | None = None
    score: float | None = None
    rounds: tuple[RoundRecord, ...] = ()
    subtasks: tuple[SubtaskRecord, ...] = ()
    llm_call_records: tuple[LLMCallRecord, ...] = ()
    usage: dict[str, TokenUsage] = Field(
        default_factory=dict, description="Tokens per model over the run's LLM calls."
    )
    llm_cost_usd: Decimal = Field(Decimal(0), description="Sum of the LLM calls' costs.")
    child_run_ids: tuple[str, ...] = ()
    approvals: tuple[ApprovalRecord, ...] = ()

    @property
    def pending_approvals(self) -> tuple[ApprovalRecord, ...]:
        return tuple(a for a in self.approvals if a.pending)
