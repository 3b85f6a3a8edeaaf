"""An LLM agent as an Action: a tool-calling loop over a set of actions.

Each turn asks the run's :class:`~paraloom.runtime.selection.ModelSelector` (default: the
agent's configured model) which model to use, reserves the worst case on the shared
budget, calls the model, and runs the tool calls it asked for in parallel — tools and
other agents alike, through the same Action interface. Invalid tool arguments and
invalid final answers are fed back for correction at most ``max_corrections`` times.

The agent keeps no per-call state on ``self``: one instance serves parallel calls.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from pydantic import BaseModel, JsonValue

from paraloom.agents.output import OutputError, OutputSpec
from paraloom.agents.toolcalls import run_tool_calls
from paraloom.models.base import ModelError, ResponseFormat
from paraloom.models.calling import ModelCall, StepInfo, call_model
from paraloom.models.pool import ModelPool
from paraloom.protocols.actions import (
    ActionCall,
    ActionKind,
    ActionResult,
    ActionSpec,
    ActionStatus,
    ErrorInfo,
    TokenUsage,
)
from paraloom.protocols.messages import ChatMessage
from paraloom.protocols.openai import spec_to_openai_tool
from paraloom.runtime.budget import BudgetExhausted
from paraloom.runtime.context import Action, ActionContext
from paraloom.tools.actionset import ActionSet

__all__ = ["AGENT_INPUT_SCHEMA", "LLMAgent"]

AGENT_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task": {
            "type": "string",
            "description": "What to do, stated fully: the agent sees nothing else of the run.",
        },
        "context": {"description": "Optional data the task needs (any JSON)."},
    },
    "required": ["task"],
    "additionalProperties": False,
}

MAX_DEPTH = 16


@dataclass(slots=True)
class _Tally:
    """Usage and cost of one invocation (own turns plus child calls)."""

    usage: dict[str, TokenUsage] = field(default_factory=dict)
    cost: Decimal = Decimal(0)
    models_used: list[str] = field(default_factory=list)
    turn_costs: list[Decimal] = field(default_factory=list)
    tool_errors: int = 0

    def add_usage(self, usage: dict[str, TokenUsage], cost: Decimal) -> None:
        for model, u in usage.items():
            self.usage[model] = self.usage[model] + u if model in self.usage else u.model_copy()
        self.cost += cost

    def add_turn(self, mc: ModelCall) -> None:
        self.add_usage({mc.model: mc.usage}, mc.cost_usd)
        self.models_used.append(mc.model)
        self.turn_costs.append(mc.cost_usd)

    def result(
        self,
        call: ActionCall,
        started: float,
        status: ActionStatus,
        output: JsonValue = None,
        error: tuple[str, str] | None = None,
    ) -> ActionResult:
        return ActionResult(
            call_id=call.call_id,
            action=call.action,
            status=status,
            output=output,
            error=ErrorInfo(type=error[0], message=error[1]) if error else None,
            usage=self.usage,
            cost_usd=self.cost,
            started_at=started,
            ended_at=time.time(),
            attempt=call.attempt,
        )

    def gave_up(
        self, call: ActionCall, started: float, error_type: str, what: str, last: object
    ) -> ActionResult:
        """The ``error`` result of a run that made more invalid ``what`` than it may."""
        return self.result(
            call,
            started,
            ActionStatus.ERROR,
            error=(error_type, f"gave up after {what}; last: {last}"),
        )


class LLMAgent:
    """An agent (``kind="agent"``) taking ``{"task": str, "context"?: any}``.

    ``model`` names the default model in ``pool``; ``actions`` are the tools and agents it
    may call; ``output_schema`` (JSON Schema dict or pydantic model class) makes the final
    answer validated JSON (sent as ``response_format`` when ``structured_output``; turn it
    off for servers that cannot combine ``response_format`` with tools — the schema is
    also in the system prompt and the answer is validated either way).
    ``answer_on_last_turn`` offers no tools on turn ``max_turns``, so the model must answer
    there instead of the run failing with ``max_turns`` (small models often repeat a tool
    call whose result they already have).
    """

    def __init__(
        self,
        name: str,
        *,
        instructions: str,
        model: str,
        pool: ModelPool,
        actions: ActionSet | Iterable[Action] = (),
        description: str = "",
        output_schema: dict[str, Any] | type[BaseModel] | None = None,
        max_turns: int = 8,
        max_corrections: int = 2,
        max_tokens: int = 1024,
        temperature: float | None = None,
        structured_output: bool = True,
        max_parallel_tools: int | None = None,
        max_tool_output_chars: int = 20_000,
        tags: frozenset[str] = frozenset(),
        answer_on_last_turn: bool = False,
    ) -> None:
        if model not in pool:
            raise ValueError(f"agent {name!r}: model {model!r} is not in the pool {pool.names}")
        if max_turns < 1 or max_corrections < 0 or max_tokens < 1:
            raise ValueError("max_turns and max_tokens must be >= 1, max_corrections >= 0")
        self.instructions = instructions
        self.model = model
        self.pool = pool
        self.actions = actions if isinstance(actions, ActionSet) else ActionSet(actions)
        self.output = OutputSpec(output_schema)
        self.max_turns = max_turns
        self.max_corrections = max_corrections
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_parallel_tools = max_parallel_tools
        self.max_tool_output_chars = max_tool_output_chars
        self.answer_on_last_turn = answer_on_last_turn
        self._spec = ActionSpec(
            name=name,
            description=description or (instructions.strip().splitlines() or [""])[0][:200],
            kind=ActionKind.AGENT,
            input_schema=AGENT_INPUT_SCHEMA,
            output_schema=self.output.json_schema,
            tags=tags,
        )
        self._tools = [spec_to_openai_tool(s) for s in self.actions.specs()]
        self._response_format = (
            ResponseFormat(name=_schema_name(name), json_schema=self.output.json_schema)
            if structured_output and self.output.json_schema is not None
            else None
        )

    @property
    def spec(self) -> ActionSpec:
        return self._spec

    def __repr__(self) -> str:
        return f"LLMAgent({self._spec.name!r}, model={self.model!r}, actions={self.actions.names})"

    def system_prompt(self) -> str:
        text = self.instructions.strip()
        if self.output.json_schema is not None:
            text += (
                "\n\nWhen you are done, reply with only a JSON value (no prose, no code fence) "
                "matching this JSON Schema:\n" + json.dumps(self.output.json_schema)
            )
        return text

    def first_messages(self, arguments: dict[str, JsonValue]) -> list[ChatMessage]:
        task = arguments.get("task")
        if not isinstance(task, str) or not task.strip():
            raise ValueError("argument 'task' must be a non-empty string")
        unknown = sorted(set(arguments) - {"task", "context"})
        if unknown:
            raise ValueError(f"unknown argument(s) {unknown}; the agent takes 'task' and 'context'")
        text = task.strip()
        ctx = arguments.get("context")
        if ctx is not None:
            rendered = ctx if isinstance(ctx, str) else json.dumps(ctx, indent=2, default=str)
            text += "\n\nContext:\n" + rendered
        return [
            ChatMessage(role="system", content=self.system_prompt()),
            ChatMessage(role="user", content=text),
        ]

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        started = time.time()
        tally = _Tally()
        if context.depth > MAX_DEPTH:
            return tally.result(
                call,
                started,
                ActionStatus.ERROR,
                error=("nesting", f"agents nested deeper than {MAX_DEPTH}"),
            )
        try:
            messages = self.first_messages(call.arguments)
        except ValueError as exc:
            return tally.result(
                call, started, ActionStatus.ERROR, error=("invalid_arguments", str(exc))
            )
        try:
            return await self._loop(call, context, messages, tally, started)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            return tally.result(
                call,
                started,
                ActionStatus.ERROR,
                error=(type(exc).__name__, f"agent failed: {exc}"),
            )

    async def _loop(
        self,
        call: ActionCall,
        context: ActionContext,
        messages: list[ChatMessage],
        tally: _Tally,
        started: float,
    ) -> ActionResult:
        corrections = 0
        limiter = (
            anyio.CapacityLimiter(self.max_parallel_tools) if self.max_parallel_tools else None
        )
        for turn in range(self.max_turns):
            step = StepInfo(
                step_kind="agent_turn",
                agent=self._spec.name,
                step_index=turn,
                models_used=tuple(tally.models_used),
                costs_so_far_usd=tuple(tally.turn_costs),
                tool_errors=tally.tool_errors,
                expected_remaining_steps=self.max_turns - turn,
            )
            try:
                mc = await call_model(
                    self.pool,
                    context,
                    messages,
                    default_model=self.model,
                    step=step,
                    tools=()
                    if self.answer_on_last_turn and turn == self.max_turns - 1
                    else self._tools,
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    response_format=self._response_format,
                )
            except BudgetExhausted as exc:
                return tally.result(
                    call,
                    started,
                    ActionStatus.BUDGET_EXHAUSTED,
                    error=("budget_exhausted", str(exc)),
                )
            except ModelError as exc:
                if exc.cost_usd is not None:  # a composite client spent before failing
                    spent_on = exc.pool_model or self.model
                    tally.add_usage({spent_on: exc.usage or TokenUsage()}, exc.cost_usd)
                status = ActionStatus.RETRYABLE_ERROR if exc.retryable else ActionStatus.ERROR
                return tally.result(call, started, status, error=("model_error", str(exc)))
            tally.add_turn(mc)
            reply = mc.completion.message
            messages.append(
                ChatMessage(role="assistant", content=reply.content, tool_calls=reply.tool_calls)
            )
            if reply.tool_calls:
                outcomes = await run_tool_calls(
                    self.actions,
                    reply.tool_calls,
                    call,
                    context,
                    limiter=limiter,
                    max_output_chars=self.max_tool_output_chars,
                )
                invalid = [o.invalid for o in outcomes if o.invalid is not None]
                for o in outcomes:
                    messages.append(o.message)
                    if o.result is not None:
                        tally.add_usage(o.result.usage, o.result.cost_usd)
                        if not o.result.ok:
                            tally.tool_errors += 1
                tally.tool_errors += len(invalid)
                if invalid:
                    corrections += 1
                    if corrections > self.max_corrections:
                        return tally.gave_up(
                            call,
                            started,
                            "invalid_tool_call",
                            f"{corrections} invalid tool calls",
                            invalid[-1],
                        )
                continue
            try:
                output = self.output.parse(reply.content)
            except OutputError as exc:
                corrections += 1
                if corrections > self.max_corrections:
                    return tally.gave_up(
                        call, started, "invalid_output", f"{corrections} invalid answers", exc
                    )
                messages.append(
                    ChatMessage(
                        role="user", content=f"Your answer was not accepted: {exc}. Try again."
                    )
                )
                continue
            return tally.result(call, started, ActionStatus.OK, output=output)
        return tally.result(
            call,
            started,
            ActionStatus.ERROR,
            error=("max_turns", f"no final answer within {self.max_turns} turns"),
        )


def _schema_name(name: str) -> str:
    return (re.sub(r"[^A-Za-z0-9_\-]", "_", name) or "output")[:64]
