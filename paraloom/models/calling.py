"""One budgeted, observed LLM call: select a model → reserve the worst case → call →
settle the real cost (or release) → emit events. Agents and planners both use it.

The worst case reserved is :func:`~paraloom.runtime.worst_case.worst_case` (the input
bound plus ``max_tokens`` sent), the same function the selector's budget rule uses
(``SelectionRequest.input_size``), so a model a router picks is never refused here.

Raises :class:`~paraloom.runtime.budget.BudgetExhausted` when no model is selected or
the reservation does not fit (no request is sent), and :class:`ModelError` when the
provider fails. A failure the provider does not bill (an HTTP error reply, a refused
connection) releases the reservation. An **abandoned** attempt (a client timeout, a
broken reply, a cancellation while the request may be with the provider) is kept as
spent at its worst case (``Budget.on_abandoned="bill_worst_case"``, the default; with
``"release"`` it is freed), reported by an ``LLMCallFinished`` with ``abandoned=True``;
a retry of it reserves anew against what is left.

**Usage check**: reported ``completion_tokens`` above the ``max_tokens`` sent, or
``prompt_tokens`` above the input bound, is a :class:`UsageAnomaly` event; the real
reported cost is charged all the same.

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

import anyio
from pydantic import JsonValue

from paraloom.models.base import (
    Completion,
    CompositeClient,
    ModelError,
    ModelRequest,
    ResponseFormat,
)
from paraloom.models.estimate import request_input_size
from paraloom.models.pool import ModelPool
from paraloom.models.tool_mode import json_tool_completion, json_tool_request, uses_tools
from paraloom.models.wire import message_to_wire
from paraloom.protocols.actions import TokenUsage, new_id
from paraloom.protocols.events import LLMCallFinished, LLMCallStarted, LLMDelta, UsageAnomaly
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.runtime.attempts import tracking
from paraloom.runtime.budget import BudgetExhausted, Reservation
from paraloom.runtime.context import ActionContext
from paraloom.runtime.selection import Selection, SelectionRequest, StepKind
from paraloom.runtime.streaming import StreamSink, streaming
from paraloom.runtime.worst_case import (
    WorstCase,
    output_token_cap,
    worst_case,
)

__all__ = [
    "FixedModel",
    "ModelCall",
    "StepInfo",
    "abandoned_error",
    "call_model",
    "output_token_cap",
    "usage_anomaly",
]


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
    request = ModelRequest(
        model=default_model,  # the pool name until a model is selected
        messages=tuple(messages),
        tools=tuple(tools),
        temperature=temperature,
        response_format=response_format,
    )
    # one measure for the selector's budget rule and the reservation: a tool_mode json
    # candidate is measured as the rewritten request it would be sent
    size = request_input_size(
        request, json_tools=any(d.tool_mode == "json" for d in pool.descriptors)
    )
    if max_tokens is None and default_model in pool:
        # tell the selector the output bound the default model would get
        hint = worst_case(pool.descriptor(default_model), size, None).output_tokens
    else:
        hint = max_tokens or 0
    selector = context.model_selector or FixedModel(default_model)
    base = request
    for choice in (1, 2):
        request = base
        left = budget.remaining_usd if budget else None
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
                budget_left_usd=left,
                expected_remaining_steps=step.expected_remaining_steps,
                input_size=size,
                max_tokens=max_tokens,
            )
        )
        if selection.model is None:
            remaining = budget.remaining_usd if budget else None
            raise BudgetExhausted(
                f"usd (no model fits: {selection.reason})", "any model", remaining
            )
        name = selection.model
        if name not in pool:
            raise ModelError(
                name,
                f"the model selector chose a model not in the pool {pool.names}",
                provider="pool",
            )
        descriptor = pool.descriptor(name)
        request = request.model_copy(update={"model": descriptor.provider_model})
        json_tools = descriptor.tool_mode == "json" and uses_tools(request)
        if json_tools:  # no native tool calling: ask through constrained JSON (tool_mode.py)
            request = json_tool_request(request)
        # what is really sent (size.json_tools for a json-mode model), as the selector saw it
        bound = worst_case(descriptor, size, max_tokens)
        request = request.model_copy(update={"max_tokens": bound.output_tokens})
        client = pool.client(name)
        fanout = max(1, client.max_calls_per_request) if isinstance(client, CompositeClient) else 1
        parameters: dict[str, JsonValue] = {"max_tokens": bound.output_tokens}
        if temperature is not None:
            parameters["temperature"] = temperature
        if response_format is not None:
            parameters["response_format"] = response_format.name
        started_fields: dict[str, Any] = {
            "request_model": descriptor.provider_model,
            "parameters": parameters,
            "tools": [dict(t) for t in tools] if context.capture_content and tools else None,
        }
        call = _Attempts(
            context, descriptor, name, step, selection, bound, fanout, messages, started_fields
        )
        try:
            await call.begin()
        except BudgetExhausted:
            # a shared scope (runtime/scopes.py) refused what the run's own budget let the
            # selector choose, and told the budget its room: choose once more with it
            if choice == 2 or budget is None or budget.remaining_usd == left:
                raise
            continue
        break
    started = time.perf_counter()
    # a composite client (a cascade) makes several calls, maybe at once: no deltas
    sink = StreamSink(call.delta if context.deltas and fanout == 1 else None)
    try:
        with tracking(call), streaming(sink):
            completion = await client.complete(request)
        if json_tools:
            completion = json_tool_completion(completion, json_answer=response_format is not None)
        usage = completion.usage.model_copy(
            update={"calls": max(1, completion.usage.calls) if fanout > 1 else 1}
        )
        cost = (
            completion.cost_usd
            if completion.cost_usd is not None
            else descriptor.cost(
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_input_tokens,
                usage.cache_write_tokens,
            )
        )
        anomaly = usage_anomaly(usage, bound, fanout)
        if not completion.usage_reported and bound.usd > 0:
            # billed, but by how much is unknown: keep the worst case, and say so
            cost = bound.usd
            usage = usage.model_copy(
                update={"input_tokens": bound.input_tokens, "output_tokens": bound.output_tokens}
            )
            anomaly = [*(anomaly or []), "no usage reported: charged the worst case"]
        # members' abandoned attempts retried inside a cascade: at their worst cases
        cost, usage = cost + call.held_usd, usage + call.held_usage
        await call.settle(cost, usage)
    except BaseException as exc:
        await call.failed(exc, time.perf_counter() - started)
        raise
    if anomaly is not None:
        context.emit(
            UsageAnomaly(
                **call.ids,
                reasons=anomaly,
                usage=usage,
                input_token_bound=bound.input_tokens * fanout,
                max_tokens_sent=bound.output_tokens,
                cost_usd=cost,
                reserved_usd=bound.usd,
            )
        )
    context.emit(
        LLMCallFinished(
            **call.ids,
            response_model=completion.model,
            usage=usage,
            cost_usd=cost,
            input_cost_usd=None
            if completion.cost_usd is not None
            else descriptor.cost(usage.input_tokens, 0),
            finish_reason=completion.finish_reason,
            latency_s=completion.latency_s or (time.perf_counter() - started),
            budget_left_usd=budget.remaining_usd if budget else None,
            output=message_to_wire(completion.message) if context.capture_content else None,
            usage_anomaly="; ".join(anomaly) if anomaly else None,
            time_to_first_token_s=sink.first_token_s,
        )
    )
    return ModelCall(
        completion=completion,
        model=name,
        usage=usage,
        cost_usd=cost,
        selection=selection,
        llm_call_id=call.ids["llm_call_id"],
    )


def usage_anomaly(usage: TokenUsage, bound: WorstCase, calls: int = 1) -> list[str] | None:
    """Why reported ``usage`` is impossible for a call bounded by ``bound`` (made
    ``calls`` times, for a cascade), or ``None`` when it is within the bound."""
    reasons: list[str] = []
    if usage.output_tokens > bound.output_tokens * calls:
        reasons.append(
            f"completion_tokens {usage.output_tokens} > max_tokens sent "
            f"{bound.output_tokens}" + (f" x {calls} calls" if calls > 1 else "")
        )
    if usage.input_tokens > bound.input_tokens * calls:
        reasons.append(
            f"prompt_tokens {usage.input_tokens} > input bound {bound.input_tokens}"
            + (f" x {calls} calls" if calls > 1 else "")
        )
    return reasons or None


def abandoned_error(exc: BaseException, sent: bool | None) -> bool:
    """Whether a failed attempt may have been billed: a cancellation while the request
    may be with the provider, or a :class:`ModelError` marked ``maybe_billed``
    (a timeout or a broken reply after the request was sent)."""
    if isinstance(exc, ModelError):
        return exc.maybe_billed
    return not isinstance(exc, Exception) and sent is not False


class _Attempts:
    """The reservation and events of one ``call_model`` call, one per HTTP attempt.

    Clients reach it through :mod:`paraloom.runtime.attempts`: a retry after an attempt
    the provider may have billed keeps that attempt's worst case as spent (by default)
    and reserves anew; the abandoned attempt gets its own ``LLMCallFinished`` with
    ``abandoned=True`` and ``cost_usd`` the amount held."""

    def __init__(
        self,
        context: ActionContext,
        descriptor: ModelDescriptor,
        name: str,
        step: StepInfo,
        selection: Selection,
        bound: WorstCase,
        fanout: int,
        messages: Sequence[ChatMessage],
        started_fields: dict[str, Any],
    ) -> None:
        self.context = context
        self.messages = messages
        self.started_fields = started_fields
        self.descriptor = descriptor
        self.step = step
        self.selection = selection
        self.bound = bound
        self.fanout = fanout
        self.name = name
        self.sent: bool | None = None
        self.reservation: Reservation | None = None
        self.extra: list[Reservation] = []
        """Reservations for members' retries (see :meth:`before_member_retry`)."""
        self.held_usd = Decimal(0)
        """The worst cases of members' abandoned attempts, kept as spent."""
        self.held_usage = TokenUsage()
        self.ids: dict[str, Any] = {}
        self.open = False
        """An attempt was started and has no LLMCallFinished yet."""
        self.started = 0.0
        self._lock = anyio.Lock()

    @property
    def bill_abandoned(self) -> bool:
        budget = self.context.budget
        return budget is None or budget.on_abandoned == "bill_worst_case"

    async def begin(self) -> None:
        budget = self.context.budget
        if budget is not None:
            self.reservation = await budget.reserve(
                self.bound.usd, tokens=self.bound.tokens * self.fanout, calls=self.fanout
            )
        self.extra, self.held_usd, self.held_usage = [], Decimal(0), TokenUsage()
        self.sent = None
        self.started = time.perf_counter()
        self.ids = {
            "run_id": self.context.run_id,
            "llm_call_id": new_id("llm_"),
            "parent_call_id": self.context.call_id,
            "model": self.name,
        }
        self.context.emit(
            LLMCallStarted(
                **self.ids,
                **self.started_fields,
                provider=self.descriptor.provider,
                step_kind=self.step.step_kind,
                routing=_routing(self.selection),
                reserved_usd=self.bound.usd,
                messages=[message_to_wire(m) for m in self.messages]
                if self.context.capture_content
                else None,
            )
        )
        self.open = True

    def delta(self, fields: dict[str, Any]) -> None:
        """A streamed piece of the current attempt, as an ``LLMDelta``."""
        self.context.emit(LLMDelta(**self.ids, subtask_id=self.context.subtask_id, **fields))

    async def before_retry(self, error: BaseException) -> None:
        async with self._lock:
            if not (self.bill_abandoned and abandoned_error(error, self.sent)):
                self.sent = None
                return  # nothing billed: the retry runs under the same reservation
            await self._finish_abandoned(error, time.perf_counter() - self.started)
            await self.begin()

    async def before_member_retry(
        self, error: BaseException, sent: bool | None, worst: WorstCase
    ) -> None:
        """A cascade member retries: its abandoned attempt keeps that member's worst case
        (it is inside this call's reservation, which covers each member once), and a
        new reservation of that worst case covers the retry."""
        async with self._lock:
            if not (self.bill_abandoned and abandoned_error(error, sent)):
                return
            self.held_usd += worst.usd
            self.held_usage += TokenUsage(
                input_tokens=worst.input_tokens, output_tokens=worst.output_tokens, calls=1
            )
            budget = self.context.budget
            if budget is not None:  # BudgetExhausted ends the member's retries
                self.extra.append(await budget.reserve(worst.usd, tokens=worst.tokens))

    async def settle(self, cost: Decimal, usage: TokenUsage) -> None:
        """Close this attempt's reservations with ``cost`` spent (the main one first,
        each up to its amount; a cost above them all is an overrun of the last)."""
        held = [r for r in (self.reservation, *self.extra) if r is not None and not r.closed]
        for i, r in enumerate(held):
            first = i == 0
            part = cost if i == len(held) - 1 else min(cost, r.usd)
            cost -= part
            await r.settle(
                part,
                tokens=usage.total_tokens if first else 0,
                calls=usage.calls if first else 0,
            )

    async def failed(self, exc: BaseException, latency_s: float) -> None:
        if isinstance(exc, ModelError) and exc.pool_model is None:
            exc.pool_model = self.name
        if not self.open:
            return  # a retry's reservation failed: its abandoned attempt is reported
        with anyio.CancelScope(shield=True):
            abandoned = abandoned_error(exc, self.sent)
            if abandoned and self.bill_abandoned:
                await self._finish_abandoned(exc, latency_s)
                return
            spent = exc.cost_usd if isinstance(exc, ModelError) else None
            spent_usage = (exc.usage if isinstance(exc, ModelError) else None) or TokenUsage()
            if self.held_usd:
                spent = (spent or Decimal(0)) + self.held_usd
                spent_usage += self.held_usage
            if spent is not None:
                await self.settle(spent, spent_usage)
            else:
                for r in (self.reservation, *self.extra):
                    if r is not None:
                        await r.release()
            self._finished(
                spent_usage, spent or Decimal(0), latency_s, _describe(exc), abandoned=abandoned
            )

    async def _finish_abandoned(self, exc: BaseException, latency_s: float) -> None:
        # everything in flight may have been billed: keep every reservation
        cost = self.bound.usd + sum((r.usd for r in self.extra), Decimal(0))
        usage = TokenUsage(
            input_tokens=self.bound.input_tokens * self.fanout,
            output_tokens=self.bound.output_tokens * self.fanout,
            calls=self.fanout,
        )
        await self.settle(cost, usage)
        usage += self.held_usage
        self._finished(usage, cost, latency_s, _describe(exc), abandoned=True)

    def _finished(
        self,
        usage: TokenUsage,
        cost: Decimal,
        latency_s: float,
        error: str,
        *,
        abandoned: bool = False,
    ) -> None:
        budget = self.context.budget
        self.open = False
        self.context.emit(
            LLMCallFinished(
                **self.ids,
                usage=usage,
                cost_usd=cost,
                latency_s=latency_s,
                error=error,
                abandoned=abandoned,
                budget_left_usd=budget.remaining_usd if budget else None,
            )
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
