"""Running one turn's tool calls: in parallel, through the Action interface, as children
of the agent's call, with their arguments checked against each action's input schema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anyio

from paraloom.protocols.actions import ActionCall, ActionResult, ActionStatus
from paraloom.protocols.approval import PendingApproval
from paraloom.protocols.events import ActionFinished, ActionStarted
from paraloom.protocols.messages import ChatMessage, ToolCall
from paraloom.runtime.approval import needs_approval
from paraloom.runtime.context import Action, ActionContext
from paraloom.tools.actionset import ActionSet

__all__ = ["ToolOutcome", "run_tool_calls"]


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """The tool message to feed back; ``result`` when the action ran, ``invalid`` (the
    reason) when the call was rejected before running."""

    message: ChatMessage
    result: ActionResult | None = None
    invalid: str | None = None


def _check_arguments(actions: ActionSet, tc: ToolCall) -> dict[str, Any] | str:
    if tc.name not in actions:
        return f"unknown tool {tc.name!r}; available tools: {', '.join(actions.names) or '(none)'}"
    try:
        args = json.loads(tc.arguments or "{}")
    except json.JSONDecodeError as exc:
        return f"arguments are not valid JSON ({exc.msg} at {exc.pos})"
    if not isinstance(args, dict):
        return f"arguments must be a JSON object, got {type(args).__name__}"
    from jsonschema import Draft202012Validator  # on first use: slow to import

    schema = actions.get(tc.name).spec.input_schema
    errors = sorted(Draft202012Validator(schema).iter_errors(args), key=lambda e: e.path)
    if errors:
        return "; ".join(
            f"{'.'.join(str(p) for p in e.absolute_path) or '(arguments)'}: {e.message}"
            for e in errors[:5]
        )
    return args


def _content(result: ActionResult, limit: int) -> str:
    if result.ok:
        out = result.output
        text = out if isinstance(out, str) else json.dumps(out, default=str)
    else:
        err = result.error
        text = json.dumps(
            {
                "status": result.status.value,
                "error": {"type": err.type, "message": err.message} if err else None,
            }
        )
    if len(text) > limit:
        text = text[:limit] + f"… [truncated, {len(text)} chars in total]"
    return text


async def _run_one(
    actions: ActionSet,
    tc: ToolCall,
    parent: ActionCall,
    context: ActionContext,
    limit: int,
) -> ToolOutcome:
    checked = _check_arguments(actions, tc)
    if isinstance(checked, str):
        text = (
            f"Invalid call of tool {tc.name!r}: {checked}. Call it again with corrected arguments."
        )
        return ToolOutcome(
            message=ChatMessage(role="tool", tool_call_id=tc.id, content=text), invalid=checked
        )
    action = actions.get(tc.name)
    call = ActionCall(
        action=tc.name,
        arguments=checked,
        run_id=parent.run_id or context.run_id,
        subtask_id=parent.subtask_id,
        parent_call_id=parent.call_id,
        deadline=context.deadline,
    )
    refused = await _approve_tool_call(action, call, context, tc.id)
    if isinstance(refused, ToolOutcome):
        return refused
    call = refused
    kind = action.spec.kind
    context.emit(
        ActionStarted(
            run_id=context.run_id,
            call_id=call.call_id,
            action=call.action,
            kind=kind,
            subtask_id=call.subtask_id,
            parent_call_id=call.parent_call_id,
            arguments=call.arguments,
        )
    )
    try:
        result = await action.invoke(call, context.child(call))
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as exc:  # the action broke its contract; report, do not crash the agent
        result = ActionResult.failure(
            call, ActionStatus.ERROR, type(exc).__name__, f"action raised: {exc}"
        )
    context.emit(
        ActionFinished(run_id=context.run_id, call_id=call.call_id, kind=kind, result=result)
    )
    return ToolOutcome(
        message=ChatMessage(role="tool", tool_call_id=tc.id, content=_content(result, limit)),
        result=result,
    )


async def _approve_tool_call(
    action: Action, call: ActionCall, context: ActionContext, tool_call_id: str
) -> ActionCall | ToolOutcome:
    """The call to make (with edited arguments if a person edited them), or the tool
    message telling the model its call was not approved."""
    gate = context.approvals
    if gate is None or not needs_approval(gate.rule_for(action, call.action), call.arguments):
        return call
    request = PendingApproval(
        key=f"{call.subtask_id or call.parent_call_id}/{call.call_id}",
        run_id=context.run_id,
        subtask_id=call.subtask_id,
        call_id=call.call_id,
        action=call.action,
        arguments=call.arguments,
    )
    decision = await gate.request(request, context.emit)
    if decision is not None and decision.approved:
        if decision.arguments:
            return call.model_copy(update={"arguments": {**call.arguments, **decision.arguments}})
        return call
    if decision is None:
        why = "nobody can approve it in this run (detached)"
    else:
        why = f"{decision.outcome}" + (f": {decision.reason}" if decision.reason else "")
    text = f"The call of tool {call.action!r} was not approved ({why}). Do not call it again."
    result = ActionResult.failure(call, ActionStatus.ERROR, "ApprovalRejected", text)
    context.emit(
        ActionFinished(
            run_id=context.run_id, call_id=call.call_id, kind=action.spec.kind, result=result
        )
    )
    return ToolOutcome(
        message=ChatMessage(role="tool", tool_call_id=tool_call_id, content=text), result=result
    )


async def run_tool_calls(
    actions: ActionSet,
    tool_calls: tuple[ToolCall, ...],
    parent: ActionCall,
    context: ActionContext,
    *,
    limiter: anyio.CapacityLimiter | None = None,
    max_output_chars: int = 20_000,
) -> list[ToolOutcome]:
    """Run every call concurrently; outcomes come back in the order of ``tool_calls``."""
    outcomes: list[ToolOutcome | None] = [None] * len(tool_calls)

    async def one(i: int, tc: ToolCall) -> None:
        if limiter is None:
            outcomes[i] = await _run_one(actions, tc, parent, context, max_output_chars)
        else:
            async with limiter:
                outcomes[i] = await _run_one(actions, tc, parent, context, max_output_chars)

    async with anyio.create_task_group() as tg:
        for i, tc in enumerate(tool_calls):
            tg.start_soon(one, i, tc)
    return [o for o in outcomes if o is not None]
