"""Approval requests and decisions, as data (see :mod:`paraloom.runtime.approval`)."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = ["ApprovalDecision", "Outcome", "PendingApproval"]

Outcome = Literal["approved", "rejected", "failed", "skipped"]


class PendingApproval(BaseModel):
    """A call waiting for a person. ``key`` is the subtask id (a scheduled subtask) or
    ``subtask_id/call_id`` (a tool call an agent makes)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    key: str
    run_id: str
    round: int = 0
    subtask_id: str | None = None
    call_id: str | None = None
    action: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    requested_at: float = Field(default_factory=time.time)
    projection: dict[str, Any] | None = Field(
        default=None, description="The dry-run projection of a plan waiting for approval."
    )


class ApprovalDecision(BaseModel):
    """A person's (or a policy's, or a timeout's) answer. ``arguments`` are edited
    arguments, merged over the call's own when approved."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    outcome: Outcome
    by: str | None = None
    reason: str | None = None
    arguments: dict[str, JsonValue] | None = None
    decided_at: float = Field(default_factory=time.time)

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"
