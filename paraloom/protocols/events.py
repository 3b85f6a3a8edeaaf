"""The event stream: every step of a run, as data.

CLI progress, tracing and the run store listen to these; none of them drives logic.
Ids tie events together: ``run_id`` → ``round`` → ``subtask_id`` → ``call_id`` (one per
attempt) → ``llm_call_id``; ``parent_call_id`` nests calls made by agents and workflows.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from paraloom.protocols.actions import ActionKind, ActionResult, TokenUsage
from paraloom.protocols.approval import ApprovalDecision, PendingApproval
from paraloom.protocols.feedback import StateFeedback
from paraloom.protocols.plan import Plan

__all__ = [
    "ActionFinished",
    "ActionProgress",
    "ActionStarted",
    "ApprovalDecided",
    "ApprovalRequested",
    "Event",
    "EventsDropped",
    "LLMCallFinished",
    "LLMCallStarted",
    "LLMDelta",
    "PlanCreated",
    "RoundFinished",
    "RoundStarted",
    "RunFinished",
    "RunStarted",
    "RunStatus",
    "SubtaskFinished",
    "SubtaskRetried",
    "SubtaskSkipped",
    "SubtaskStarted",
    "UsageAnomaly",
]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    run_id: str
    ts: float = Field(default_factory=time.time)


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    workflow: str
    task: JsonValue = None
    budget_usd: Decimal | None = None
    parent_call_id: str | None = None


RunStatus = Literal[
    "ok",
    "warning",
    "partial",
    "failed",
    "cancelled",
    "max_rounds",
    "budget_exhausted",
    "waiting",
]
"""How a run ended. ``warning``: an answer, but a usage anomaly was seen or a budget's
spend passed its limit (``RunResult.warnings`` says which). ``partial``: the run reached
its final answer, which depends on no failed subtask, but some subtask failed or was
skipped (``on_failure: continue`` or ``skip_dependents`` off the answer's path);
``RunResult.failed`` names them. ``waiting``: the run stopped with approvals pending
(nobody to answer them in this process); answer them, then resume the run."""


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    workflow: str
    status: RunStatus
    output: JsonValue = None
    error: str | None = None
    cost_usd: Decimal = Decimal(0)
    warnings: list[str] = Field(default_factory=list)


class RoundStarted(_Event):
    """The planner is asked for round ``round``; its LLM calls have ``call_id`` as parent."""

    type: Literal["round_started"] = "round_started"
    round: int
    call_id: str
    planner: str = "planner"


class PlanCreated(_Event):
    """The planner answered: a plan to run, or (``plan`` is None) the final answer."""

    type: Literal["plan_created"] = "plan_created"
    round: int
    call_id: str
    planner: str = "planner"
    plan: Plan | None = None
    final_output: JsonValue = None
    error: str | None = None
    replayed: bool = Field(default=False, description="Replayed from a resumed run's store.")


class RoundFinished(_Event):
    type: Literal["round_finished"] = "round_finished"
    round: int
    feedback: StateFeedback


class SubtaskStarted(_Event):
    type: Literal["subtask_started"] = "subtask_started"
    round: int
    subtask_id: str
    action: str
    kind: ActionKind = ActionKind.TOOL
    depends_on: tuple[str, ...] = ()


class SubtaskRetried(_Event):
    type: Literal["subtask_retried"] = "subtask_retried"
    round: int
    subtask_id: str
    attempt: int = Field(description="The attempt that failed.")
    reason: str
    delay_s: float


class SubtaskFinished(_Event):
    """A subtask ended: ok, failed (any error status) or took its fallback."""

    type: Literal["subtask_finished"] = "subtask_finished"
    round: int
    subtask_id: str
    result: ActionResult
    reused: bool = Field(default=False, description="Taken from a resumed run's store.")


class SubtaskSkipped(_Event):
    type: Literal["subtask_skipped"] = "subtask_skipped"
    round: int
    subtask_id: str
    reason: str


class ActionStarted(_Event):
    """One invocation (one attempt) of an action: by the scheduler or by an agent."""

    type: Literal["action_started"] = "action_started"
    call_id: str
    action: str
    kind: ActionKind
    subtask_id: str | None = None
    parent_call_id: str | None = None
    attempt: int = 1
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class ActionFinished(_Event):
    type: Literal["action_finished"] = "action_finished"
    call_id: str
    kind: ActionKind
    result: ActionResult


class ActionProgress(_Event):
    """An action reported progress while running: e.g. a remote MCP tool's progress
    notifications (``progress`` grows; ``total`` when known)."""

    type: Literal["action_progress"] = "action_progress"
    call_id: str
    action: str
    progress: float
    total: float | None = None
    message: str | None = None


class LLMCallStarted(_Event):
    type: Literal["llm_call_started"] = "llm_call_started"
    llm_call_id: str
    parent_call_id: str | None = None
    model: str
    request_model: str | None = Field(
        default=None, description="The provider's model id (``model`` is the pool name)."
    )
    provider: str = "openai"
    step_kind: Literal["plan", "agent_turn", "aggregate"] = "agent_turn"
    parameters: dict[str, JsonValue] = Field(
        default_factory=dict, description="Invocation parameters (max_tokens, temperature …)."
    )
    tools: list[dict[str, Any]] | None = Field(
        default=None, description="The tool schemas offered (only when content capture is on)."
    )
    routing: dict[str, Any] | None = Field(
        default=None, description="The routing decision (chosen model, candidate scores …)."
    )
    reserved_usd: Decimal = Decimal(0)
    messages: list[dict[str, Any]] | None = Field(
        default=None, description="Only filled when content capture is on."
    )


class LLMCallFinished(_Event):
    type: Literal["llm_call_finished"] = "llm_call_finished"
    llm_call_id: str
    parent_call_id: str | None = None
    model: str
    response_model: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: Decimal = Decimal(0)
    input_cost_usd: Decimal | None = Field(
        default=None, description="The input tokens' share of ``cost_usd``, when known."
    )
    finish_reason: str | None = None
    latency_s: float = 0.0
    error: str | None = None
    budget_left_usd: Decimal | None = None
    output: dict[str, Any] | None = Field(
        default=None, description="Only filled when content capture is on."
    )
    abandoned: bool = Field(
        default=False,
        description="The client gave up on the request (timeout, broken reply, "
        "cancellation) while the provider may bill it: cost_usd is the worst case held.",
    )
    usage_anomaly: str | None = Field(
        default=None, description="Why the reported usage is outside the call's bound."
    )
    time_to_first_token_s: float | None = Field(
        default=None, description="Seconds from the request to the first streamed piece."
    )


class LLMDelta(_Event):
    """A piece of a streamed LLM reply (only sent to listeners that want deltas).

    ``kind``: ``text`` (assistant text), ``tool_call`` (a piece of the arguments of tool
    call ``tool_call_index``), or ``discarded`` (the attempt's stream broke: ``text`` is
    the partial text it had streamed; its earlier deltas are void, a retry follows or
    the call fails). ``seq`` increases (from 1) over the deltas of one model call (its
    retries included); a call's text is its ``text`` deltas joined in ``seq`` order."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    type: Literal["llm_delta"] = "llm_delta"
    llm_call_id: str
    parent_call_id: str | None = None
    subtask_id: str | None = None
    model: str
    seq: int
    kind: Literal["text", "tool_call", "discarded"] = "text"
    text: str
    tool_call_index: int | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None


class UsageAnomaly(_Event):
    """A provider reported usage outside the call's bound (``completion_tokens`` above
    the ``max_tokens`` sent, or ``prompt_tokens`` above the input bound). The reported
    cost was charged; the run finishes with a warning."""

    type: Literal["usage_anomaly"] = "usage_anomaly"
    llm_call_id: str
    parent_call_id: str | None = None
    model: str
    reasons: list[str]
    usage: TokenUsage
    input_token_bound: int
    max_tokens_sent: int
    cost_usd: Decimal
    reserved_usd: Decimal


class ApprovalRequested(_Event):
    """A call waits for a person's approval (it holds no slot and no budget meanwhile)."""

    type: Literal["approval_requested"] = "approval_requested"
    request: PendingApproval


class ApprovalDecided(_Event):
    """An approval was answered: by a person, a policy, or its timeout (``by``)."""

    type: Literal["approval_decided"] = "approval_decided"
    key: str
    subtask_id: str | None = None
    decision: ApprovalDecision
    waited_s: float = 0.0
    offline: bool = Field(
        default=False,
        description="Recorded outside the run's process (``paraloom approve``): taken "
        "when the run is resumed.",
    )


class EventsDropped(_Event):
    """Only in a lossy ``run.events()`` stream (``overflow="drop_oldest"``): the consumer
    fell behind and the ``count`` oldest events before this one were dropped. Listeners
    (the run store, tracing) are never lossy and never see it."""

    type: Literal["events_dropped"] = "events_dropped"
    count: int


Event = Annotated[
    RunStarted
    | RunFinished
    | RoundStarted
    | PlanCreated
    | RoundFinished
    | SubtaskStarted
    | SubtaskRetried
    | SubtaskFinished
    | SubtaskSkipped
    | ActionStarted
    | ActionFinished
    | ActionProgress
    | LLMCallStarted
    | LLMDelta
    | UsageAnomaly
    | LLMCallFinished
    | ApprovalRequested
    | ApprovalDecided
    | EventsDropped,
    Field(discriminator="type"),
]
