"""One budgeted, observed LLM call: select a model → reserve the worst case → call →
settle the real cost (or release) → emit events. Agents and planners both use it.

Raises :class:`~paraloom.runtime.budget.BudgetExhausted` when no model is selected or
the reservation does not fit (no request is sent), and :class:`ModelError` when the
provider fails (the reservation is released). A cancelled call is released too: its
cost, if the provider billed one, is unknown to paraloom.

The settled cost is the completion's own ``cost_usd`` when a composite client (a
:class:`~paraloom.models.cascade.CascadeModel`) computed it, else its usage at the pool
descriptor's prices; events report the same number. A composite client must stay
within the worst case reserved at its descriptor's prices (a cascade's are the sum of
its members', an exact bound): a real cost above the reservation is still recorded,
truthfully, and counted in ``Budget.overrun_usd``. A
:class:`~paraloom.models.base.CompositeClient` gets ``max_calls_per_request`` calls and
as many times the token bound reserved, and the calls and tokens it made settled. When
it fails after spending (a cascade whose escalation failed), the
:class:`ModelError`'s ``cost_usd`` is settled instead of releasing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from paraloom.models.base import (
    Completion,
    CompositeClient,
    ModelError,
    ModelRequest,
    ResponseFormat,
)
from paraloom.models.estimate import estimate_request_tokens, worst_case_cost
from paraloom.models.pool import ModelPool
from paraloom.models.tool_mode import json_tool_completion, json_tool_request, uses_tools
from paraloom.models.wire import message_to_wire
from paraloom.protocols.actions import TokenUsage, new_id
from paraloom.protocols.events import LLMCallFinished, LLMCallStarted
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.runtime.budget import BudgetExhausted, Reservation
from paraloom.runtime.context import ActionContext
from paraloom.runtime.selection import Selection, SelectionRequest, StepKind

__all__ = ["FixedModel", "ModelCall", "StepInfo", "call_model", "output_token_cap"]


@dataclass(frozen=True, slots=True)
class FixedModel:
    """The default :class:`~paraloom.runtime.selection.ModelSelector`: always ``model``."""

    model: str

    async def select(self, request: SelectionRequest) -> Selection:
        return Selection(model=self.model, reason="configured model")


@dataclass(frozen=True, slots=True)
class StepInfo:
    """What the caller knows about its loop, passed on to the model selector."""

    step_kind: StepKind = "agent_turn"
    agent: str | None = None
    step_index: int = 0
    models_used: tuple[str, ...] = ()
    costs_so_far_usd: tuple[Decimal, ...] = ()
    tool_errors: int = 0
    expected_remaining_steps: int | None = None


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A finished call: the completion, the pool model used, its usage and exact cost."""

    completion: Completion
    model: str
    usage: TokenUsage
    cost_usd: Decimal
    selection: Selection
    llm_call_id: str


def output_token_cap(model: ModelDescriptor, max_tokens: int | None, input_tokens: int) -> int:
    """The output tokens a call may use: ``max_tokens``, bounded by the model's own
    output limit, else what is left of its context window (at least 1)."""
    caps = [c for c in (max_tokens, model.max_output_tokens) if c is not None]
    if caps:
        return max(1, min(caps))
    return max(1, model.context_window - input_tokens)


async def call_model(
    pool: ModelPool,
    context: ActionContext,
    messages: Sequence[ChatMessage],
    *,
    default_model: str,
    step: StepInfo | None = None,
    tools: Sequence[dict[str, Any]] = (),
    max_tokens: int | None = None,
    temperature: float | None = None,
    response_format: ResponseFormat | None = None,
) -> ModelCall:
    step = step or StepInfo()
    budget = context.budget
    if max_tokens is None and default_model in pool:
        # tell the selector the output bound the default model would get
        guess = ModelRequest(model=default_model, messages=tuple(messages), tools=tuple(tools))
        hint = output_token_cap(
            pool.descriptor(default_model), None, estimate_request_tokens(guess)
        )
    else:
        hint = max_tokens or 0
    selector = context.model_selector or FixedModel(default_model)
    selection = await selector.select(
        SelectionRequest(
            step_kind=step.step_kind,
            messages=tuple(messages),
            candidates=tuple(pool.descriptors),
            max_output_tokens=hint,
            run_id=context.run_id,
            agent=step.agent,
            step_index=step.step_index,
            models_used=step.models_used,
            costs_so_far_usd=step.costs_so_far_usd,
            tool_errors=step.tool_errors,
            budget_spent_usd=budget.spent_usd if budget else Decimal(0),
            budget_left_usd=budget.remaining_usd if budget else None,
            expected_remaining_steps=step.expected_remaining_steps,
        )
    )
    if selection.model is None:
        remaining = budget.remaining_usd if budget else None
        raise BudgetExhausted(f"usd (no model fits: {selection.reason})", "any model", remaining)
    name = selection.model
    if name not in pool:
        raise ModelError(
            name, f"the model selector chose a model not in the pool {pool.names}", provider="pool"
        )
    descriptor = pool.descriptor(name)
    draft = ModelRequest(
        model=descriptor.provider_model,
        messages=tuple(messages),
        tools=tuple(tools),
        temperature=temperature,
        response_format=response_format,
    )
    json_tools = descriptor.tool_mode == "json" and uses_tools(draft)
    if json_tools:  # no native tool calling: ask through constrained JSON (tool_mode.py)
        draft = json_tool_request(draft)
    input_estimate = estimate_request_tokens(draft)
    cap = output_token_cap(descriptor, max_tokens, input_estimate)
    request = draft.model_copy(update={"max_tokens": cap})
    reserved = worst_case_cost(descriptor, input_estimate, cap)
    client = pool.client(name)
    fanout = max(1, client.max_calls_per_request) if isinstance(client, CompositeClient) else 1
    reservation: Reservation | None = None
    if budget is not None:
        reservation = await budget.reserve(
            reserved, tokens=(input_estimate + cap) * fanout, calls=fanout
        )
    llm_call_id = new_id("llm_")
    # what LLMCallStarted and LLMCallFinished of this call share
    ids: dict[str, Any] = {
        "run_id": context.run_id,
        "llm_call_id": llm_call_id,
        "parent_call_id": context.call_id,
        "model": name,
    }
    context.emit(
        LLMCallStarted(
            **ids,
            provider=descriptor.provider,
            step_kind=step.step_kind,
            routing=_routing(selection),
            reserved_usd=reserved,
            messages=[message_to_wire(m) for m in messages] if context.capture_content else None,
        )
    )
    started = time.perf_counter()
    try:
        completion = await client.complete(request)
        if json_tools:
            completion = json_tool_completion(completion, json_answer=response_format is not None)
        usage = TokenUsage(
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            calls=max(1, completion.usage.calls) if fanout > 1 else 1,
        )
        cost = (
            completion.cost_usd
            if completion.cost_usd is not None
            else descriptor.cost(usage.input_tokens, usage.output_tokens)
        )
        if reservation is not None:
            await reservation.settle(cost, tokens=usage.total_tokens, calls=usage.calls)
    except BaseException as exc:
        if isinstance(exc, ModelError) and exc.pool_model is None:
            exc.pool_model = name
        spent = exc.cost_usd if isinstance(exc, ModelError) else None
        spent_usage = (exc.usage if isinstance(exc, ModelError) else None) or TokenUsage()
        if reservation is not None and not reservation.closed:
            if spent is not None:
                await reservation.settle(
                    spent, tokens=spent_usage.total_tokens, calls=spent_usage.calls
                )
            else:
                await reservation.release()
        context.emit(
            LLMCallFinished(
                **ids,
                usage=spent_usage,
                cost_usd=spent or Decimal(0),
                latency_s=time.perf_counter() - started,
                error=_describe(exc),
                budget_left_usd=budget.remaining_usd if budget else None,
            )
        )
        raise
    context.emit(
        LLMCallFinished(
            **ids,
            response_model=completion.model,
            usage=usage,
            cost_usd=cost,
            finish_reason=completion.finish_reason,
            latency_s=completion.latency_s or (time.perf_counter() - started),
            budget_left_usd=budget.remaining_usd if budget else None,
            output=message_to_wire(completion.message) if context.capture_content else None,
        )
    )
    return ModelCall(
        completion=completion,
        model=name,
        usage=usage,
        cost_usd=cost,
        selection=selection,
        llm_call_id=llm_call_id,
    )


def _describe(exc: BaseException) -> str:
    if not isinstance(exc, Exception):
        return "cancelled"
    return f"{type(exc).__name__}: {exc}"


def _routing(selection: Selection) -> dict[str, Any]:
    out: dict[str, Any] = {"model": selection.model, "reason": selection.reason}
    if selection.predicted_quality is not None:
        out["predicted_quality"] = selection.predicted_quality
    if selection.predicted_cost_usd is not None:
        out["predicted_cost_usd"] = str(selection.predicted_cost_usd)
    if selection.propensity is not None:
        out["propensity"] = selection.propensity
    if selection.scores:
        out["scores"] = dict(selection.scores)
    if selection.info:
        out["info"] = dict(selection.info)
    return out
