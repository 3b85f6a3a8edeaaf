"""The per-turn model selection hook. Before every LLM call (a planner round, an agent
turn) the caller asks a :class:`ModelSelector` which model of the pool to use.

The default selector returns the agent's configured model; routers
(``paraloom.routing``) implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.runtime.worst_case import InputSize

__all__ = ["ModelSelector", "Selection", "SelectionRequest", "StepKind"]

StepKind = Literal["plan", "agent_turn", "aggregate"]


@dataclass(frozen=True, slots=True)
class SelectionRequest:
    """Everything known before an LLM call."""

    step_kind: StepKind
    messages: Sequence[ChatMessage]
    candidates: Sequence[ModelDescriptor]
    max_output_tokens: int
    run_id: str | None = None
    agent: str | None = None
    step_index: int = 0
    models_used: Sequence[str] = ()
    costs_so_far_usd: Sequence[Decimal] = ()
    tool_errors: int = 0
    budget_spent_usd: Decimal = Decimal(0)
    budget_left_usd: Decimal | None = None
    expected_remaining_steps: int | None = None
    input_size: InputSize | None = None
    """The call's input as :func:`~paraloom.runtime.worst_case.measure_input` measures it
    (messages, tools, response schema). When set, a candidate's worst case is
    ``worst_case(candidate, input_size, max_tokens)``: exactly what the reservation will
    hold. ``None``: selectors measure ``messages`` and use ``max_output_tokens``."""
    max_tokens: int | None = None
    """The caller's ``max_tokens`` (``None``: each model's own output limit); used with
    ``input_size``."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The chosen model (``None`` when no candidate fits the budget) and why."""

    model: str | None
    reason: str = ""
    predicted_quality: float | None = None
    predicted_cost_usd: Decimal | None = None
    propensity: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ModelSelector(Protocol):
    async def select(self, request: SelectionRequest) -> Selection: ...
