"""The LLM planner: asks a model for the next round as a Plan, or for the final answer.

The model sees the task, the action catalogue (name, kind, description, input schema)
and the state of every earlier subtask (status, output, cost), and replies with a JSON
envelope (sent as a JSON-schema ``response_format``). Replies are parsed, converted and
validated (known actions, valid arguments, acyclic, references to known subtasks); a
rejected reply is fed back with the reason, at most ``max_attempts`` times in all, then
:class:`PlanningError` fails the run showing the last reason.

The prompt lives in ``paraloom/orchestrator/prompts/planner_*.md``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from paraloom.models.base import ModelError, ResponseFormat
from paraloom.models.calling import StepInfo, call_model
from paraloom.models.pool import ModelPool
from paraloom.orchestrator.errors import PlanningError
from paraloom.orchestrator.planner import PlannerContext
from paraloom.orchestrator.prompts import load_prompt
from paraloom.orchestrator.references import find_references, parse_reference
from paraloom.orchestrator.validation import validate_plan
from paraloom.protocols.actions import ActionCall, ActionResult, ActionSpec, ActionStatus
from paraloom.protocols.feedback import StateFeedback
from paraloom.protocols.messages import ChatMessage
from paraloom.protocols.plan import FinalAnswer, Plan, Subtask
from paraloom.runtime.context import ActionContext
from paraloom.tools.actionset import ActionSet

__all__ = ["LLMPlanner", "PlannerReply", "planner_reply_schema"]


class _PlannedSubtask(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str
    action: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    description: str = ""


class PlannerReply(BaseModel):
    """The envelope the planner model answers with."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    decision: Literal["plan", "final"]
    rationale: str = ""
    subtasks: list[_PlannedSubtask] = Field(default_factory=list)
    answer: JsonValue = None


def planner_reply_schema(action_names: Sequence[str]) -> dict[str, Any]:
    """JSON Schema of :class:`PlannerReply`, with ``action`` limited to the catalogue."""
    action: dict[str, Any] = {"type": "string"}
    if action_names:
        action["enum"] = list(action_names)
    return {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["plan", "final"]},
            "rationale": {"type": "string"},
            "subtasks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_\\-]{0,63}$"},
                        "action": action,
                        "arguments": {"type": "object"},
                        "depends_on": {"type": "array", "items": {"type": "string"}},
                        "description": {"type": "string"},
                    },
                    "required": ["id", "action", "arguments"],
                    "additionalProperties": False,
                },
            },
            "answer": {},
        },
        "required": ["decision"],
        "additionalProperties": False,
    }


class _CatalogueEntry:
    """A catalogue spec standing in for its action during validation; never invoked."""

    def __init__(self, spec: ActionSpec) -> None:
        self._spec = spec

    @property
    def spec(self) -> ActionSpec:
        return self._spec

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        return ActionResult.failure(
            call, ActionStatus.ERROR, "not_invocable", "a catalogue entry cannot be invoked"
        )


class LLMPlanner:
    """A :class:`~paraloom.orchestrator.planner.Planner` backed by a model of ``pool``
    (``model`` by default; the run's model selector may pick another per round)."""

    def __init__(
        self,
        pool: ModelPool,
        model: str,
        *,
        name: str = "llm_planner",
        guidance: str = "",
        max_attempts: int = 3,
        max_tokens: int = 2048,
        temperature: float | None = None,
        structured_output: bool = True,
    ) -> None:
        if model not in pool:
            raise ValueError(f"planner model {model!r} is not in the pool {pool.names}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.pool = pool
        self.model = model
        self._name = name
        self.guidance = guidance
        self.max_attempts = max_attempts
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.structured_output = structured_output

    @property
    def name(self) -> str:
        return self._name

    def messages(
        self, task: JsonValue, feedback: StateFeedback | None, context: PlannerContext
    ) -> list[ChatMessage]:
        """The system and user messages of a round (rendered from the templates)."""
        guidance = f"\n{self.guidance.strip()}\n" if self.guidance.strip() else ""
        system = load_prompt("planner_system").substitute(guidance=guidance)
        last = (
            " This is the last round: give the final answer now."
            if context.round >= context.max_rounds
            else ""
        )
        user = load_prompt("planner_user").substitute(
            round=context.round,
            max_rounds=context.max_rounds,
            last_round_note=last,
            task=task if isinstance(task, str) else json.dumps(task, indent=2),
            catalogue=_render_catalogue(context.catalogue),
            state=_render_state(feedback),
        )
        return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]

    async def next_round(
        self, task: JsonValue, feedback: StateFeedback | None, context: PlannerContext
    ) -> Plan | FinalAnswer:
        messages = self.messages(task, feedback, context)
        actions = ActionSet(_CatalogueEntry(s) for s in context.catalogue)
        earlier = set(feedback.subtasks) if feedback is not None else set()
        response_format = (
            ResponseFormat(name="planner_reply", json_schema=planner_reply_schema(actions.names))
            if self.structured_output
            else None
        )
        last_error = ""
        for attempt in range(self.max_attempts):
            try:
                mc = await call_model(
                    self.pool,
                    context.run,
                    messages,
                    default_model=self.model,
                    step=StepInfo(step_kind="plan", agent=self._name, step_index=attempt),
                    max_tokens=self.max_tokens,
                    temperature=self.temperature,
                    response_format=response_format,
                )
            except ModelError as exc:
                raise PlanningError(f"planner model call failed: {exc}") from exc
            content = mc.completion.content or ""
            try:
                return _decide(content, actions, earlier)
            except (PlanningError, ValueError) as exc:
                last_error = str(exc)
            messages += [
                ChatMessage(role="assistant", content=content),
                ChatMessage(
                    role="user",
                    content=f"Your reply was rejected:\n{last_error}\n"
                    "Reply again with only the corrected JSON object.",
                ),
            ]
        raise PlanningError(
            f"the planner gave no valid reply in {self.max_attempts} attempt(s); "
            f"last error: {last_error}"
        )


def _decide(content: str, actions: ActionSet, earlier: Collection[str]) -> Plan | FinalAnswer:
    text = _strip_fence(content)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the reply is not valid JSON ({exc.msg} at {exc.pos})") from None
    try:
        reply = PlannerReply.model_validate(data)
    except ValidationError as exc:
        raise ValueError("the reply does not match the format: " + _errors(exc)) from None
    if reply.decision == "final":
        if reply.subtasks:
            raise ValueError('a "final" reply must not contain subtasks')
        _check_final_references(reply.answer, earlier)
        return FinalAnswer(output=reply.answer)
    if not reply.subtasks:
        raise ValueError('a "plan" reply needs at least one subtask (or decide "final")')
    try:
        plan = Plan(
            subtasks=tuple(Subtask(**s.model_dump()) for s in reply.subtasks),
            rationale=reply.rationale,
        )
    except ValidationError as exc:
        raise ValueError("invalid subtask: " + _errors(exc)) from None
    validate_plan(plan, actions, earlier_ids=earlier)
    return plan


def _check_final_references(answer: JsonValue, earlier: Collection[str]) -> None:
    for text in find_references(answer):
        ref = parse_reference(text)
        if ref.root != "input" and ref.root not in earlier:
            known = ", ".join(sorted(earlier)) or "(none yet)"
            raise ValueError(
                f"the answer references {text!r} but no finished subtask is called "
                f"{ref.root!r}; finished subtasks: {known}"
            )


def _strip_fence(content: str) -> str:
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:6]
    )


def _render_catalogue(specs: Sequence[ActionSpec]) -> str:
    if not specs:
        return "(no actions: answer directly)"
    lines = []
    for s in specs:
        lines.append(f"- {s.name} (kind: {s.kind.value}): {s.description or '(no description)'}")
        lines.append(f"  input schema: {json.dumps(s.input_schema, separators=(',', ':'))}")
    return "\n".join(lines)


def _render_state(feedback: StateFeedback | None) -> str:
    if feedback is None:
        return "Nothing has run yet (round 1)."
    state: dict[str, Any] = {
        "finished_rounds": feedback.round,
        "subtasks": {
            sid: {
                k: v
                for k, v in f.model_dump(mode="json").items()
                if v is not None and k != "output_truncated"
            }
            | ({"output_truncated": True} if f.output_truncated else {})
            for sid, f in feedback.subtasks.items()
        },
        "budget_spent_usd": str(feedback.budget_spent_usd),
    }
    if feedback.budget_left_usd is not None:
        state["budget_left_usd"] = str(feedback.budget_left_usd)
    if feedback.notes:
        state["notes"] = list(feedback.notes)
    return json.dumps(state, indent=2)
