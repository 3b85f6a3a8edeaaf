"""Plans: a round's subtasks as a dependency graph, and the final answer.

Arguments may reference outputs of other subtasks (or the run's input) with a
*reference object*: a JSON object whose only key is ``"from"`` and whose value is a path::

    {"from": "search.output"}              # the whole output of subtask `search`
    {"from": "search.output.items[0].url"} # a field inside it
    {"from": "input.topic"}                # the run's input (`input` is reserved)

A reference to a subtask implies a dependency on it. Reference objects may appear at
any depth of the arguments; they are replaced by the referenced value before the call.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from paraloom.protocols.actions import ActionStatus

__all__ = ["RESERVED_IDS", "FailurePolicy", "FinalAnswer", "Plan", "Subtask"]

RESERVED_IDS = frozenset({"input"})

_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"


class FailurePolicy(BaseModel):
    """What to do when a subtask fails.

    ``retries`` extra attempts are made for the statuses in ``retry_on``, waiting an
    exponential backoff with jitter between them; then ``fallback`` (an action name) is
    tried once; then ``on_failure`` decides the fate of the run and the dependents:
    ``fail`` stops the run, ``skip_dependents`` skips everything downstream (with the
    reason), ``continue`` runs dependents anyway with ``null`` for the failed output.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    retries: int = Field(default=0, ge=0, le=20)
    retry_on: frozenset[ActionStatus] = frozenset(
        {ActionStatus.RETRYABLE_ERROR, ActionStatus.TIMEOUT}
    )
    backoff_initial_s: float = Field(default=0.2, ge=0)
    backoff_max_s: float = Field(default=10.0, ge=0)
    backoff_jitter_s: float = Field(default=0.1, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)
    fallback: str | None = None
    on_failure: Literal["fail", "skip_dependents", "continue"] = "skip_dependents"


class Subtask(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str = Field(pattern=_ID_PATTERN)
    action: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    description: str = Field(
        default="", description="Why this subtask exists; context for agents and readers."
    )
    policy: FailurePolicy | None = None


class Plan(BaseModel):
    """One round of work: subtasks and their dependencies (checked by the orchestrator)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    subtasks: tuple[Subtask, ...]
    rationale: str = ""


class FinalAnswer(BaseModel):
    """A planner's decision to stop. ``output`` may contain reference objects."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    output: JsonValue = None
