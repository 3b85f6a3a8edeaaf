"""Adapter from a :class:`~paraloom.routing.base.Router` to the runtime's
:class:`~paraloom.runtime.selection.ModelSelector` hook."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import partial

import anyio.to_thread

from paraloom.protocols.messages import ChatMessage
from paraloom.routing.base import Router, RoutingContext, RoutingDecision
from paraloom.routing.trajectory import TrajectoryRecord
from paraloom.runtime.selection import Selection, SelectionRequest

__all__ = ["RouterSelector", "context_from_request", "message_text", "trajectory_record"]


def message_text(message: ChatMessage) -> str:
    """The text of a message as a router sees it: content plus tool-call names/args."""
    parts = [message.content or ""]
    parts.extend(f"{tc.name}({tc.arguments})" for tc in message.tool_calls)
    return "\n".join(p for p in parts if p)


def _task_and_history(messages: Sequence[ChatMessage]) -> tuple[str, list[str]]:
    """The task is the first user message; every later message is a turn."""
    first_user = next((i for i, m in enumerate(messages) if m.role == "user"), None)
    if first_user is None:
        texts = [message_text(m) for m in messages]
        return (texts[-1] if texts else ""), texts[:-1]
    task = message_text(messages[first_user])
    later = [f"{m.role}: {message_text(m)}" for m in messages[first_user + 1 :]]
    return task, later


def context_from_request(request: SelectionRequest) -> RoutingContext:
    task, history = _task_and_history(request.messages)
    return RoutingContext(
        candidates=tuple(request.candidates),
        text=task,
        history=tuple(history),
        step_kind=request.step_kind,
        max_output_tokens=request.max_output_tokens,
        models_used=tuple(request.models_used),
        costs_so_far_usd=tuple(request.costs_so_far_usd),
        tool_errors=request.tool_errors,
        budget_spent_usd=request.budget_spent_usd,
        budget_left_usd=request.budget_left_usd,
        step_index=request.step_index,
        expected_remaining_steps=request.expected_remaining_steps,
        run_id=request.run_id,
        input_size=request.input_size,
        max_tokens=request.max_tokens,
    )


class RouterSelector:
    """A :class:`ModelSelector` backed by a router. Decisions run in a worker thread
    (embedding and scoring are CPU work), one at a time (routers keep caches and a RNG)."""

    def __init__(self, router: Router, *, offload: bool = True) -> None:
        self.router = router
        self.offload = offload
        self._lock = threading.Lock()

    def _decide(self, ctx: RoutingContext) -> RoutingDecision:
        with self._lock:
            return self.router.choose(ctx)

    async def select(self, request: SelectionRequest) -> Selection:
        ctx = context_from_request(request)
        if self.offload:
            decision = await anyio.to_thread.run_sync(partial(self._decide, ctx))
        else:
            decision = self._decide(ctx)
        return Selection(
            model=decision.model,
            reason=decision.reason,
            predicted_quality=decision.predicted_quality,
            predicted_cost_usd=decision.predicted_cost_usd,
            propensity=decision.propensity,
            scores=dict(decision.scores),
            info={
                "router": self.router.kind,
                "worst_case_cost_usd": None
                if decision.worst_case_cost_usd is None
                else str(decision.worst_case_cost_usd),
                "allowed": list(decision.allowed),
            },
        )


def trajectory_record(
    request: SelectionRequest,
    selection: Selection,
    *,
    run_id: str,
    cost_usd: float,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    latency_s: float | None = None,
    step_success: float | None = None,
    final_score: float | None = None,
    task: str | None = None,
    token_cap: int = 256,
) -> TrajectoryRecord:
    """The trajectory record of one routed step of a paraloom run (for the run store and
    ``paraloom router train``). The context text is what routers embed: the task and the
    most recent turns within ``token_cap`` tokens."""
    from paraloom.routing.features import history_text

    if selection.model is None:
        raise ValueError("no model was chosen: nothing to record")
    ctx = context_from_request(request)
    return TrajectoryRecord(
        run_id=run_id,
        step_index=request.step_index,
        step_kind=request.step_kind,
        task=task,
        context_text=history_text(ctx.text, ctx.history, token_cap),
        candidates=_support(request, selection),
        chosen_model=selection.model,
        propensity=selection.propensity,
        cost_usd=cost_usd,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_s=latency_s,
        step_success=step_success,
        final_score=final_score,
        budget_left_usd=None if request.budget_left_usd is None else float(request.budget_left_usd),
    )


def _support(request: SelectionRequest, selection: Selection) -> tuple[str, ...]:
    """The models the choice was drawn from: what the router allowed (budget rule,
    pacing) when it says so, else every candidate: the support of the propensity."""
    allowed = selection.info.get("allowed") if selection.info else None
    if isinstance(allowed, list) and selection.model in allowed:
        return tuple(str(a) for a in allowed)
    return tuple(m.name for m in request.candidates)
