"""``paraloom run --dry-run``: project tokens, cost and latency of a workflow from the
model descriptors and the router, WITHOUT calling any model or tool.

It is a projection, not a measurement. The model of each LLM call is the one the
configured router (or the agent's pinned model) picks for a synthetic request; tokens
and latency follow the documented assumptions in :data:`ASSUMPTIONS`, which are
repeated in every :class:`Projection` so readers see what the numbers rest on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from paraloom.agents.llm_agent import AGENT_INPUT_SCHEMA
from paraloom.config.build import (
    choose_workflow,
    model_descriptors,
    planner_name,
)
from paraloom.config.load import LoadedConfig
from paraloom.config.selector import PerAgentSelector, build_router
from paraloom.models.estimate import estimate_tokens
from paraloom.orchestrator.references import find_references, parse_reference
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.protocols.plan import Plan, Subtask
from paraloom.runtime.dag import Digraph
from paraloom.runtime.selection import ModelSelector, SelectionRequest, StepKind
from paraloom.runtime.worst_case import InputSize, measure_input, worst_case

if TYPE_CHECKING:
    from paraloom.runtime.scopes import ScopeState

__all__ = [
    "ASSUMPTIONS",
    "ProjectedScope",
    "ProjectedStep",
    "Projection",
    "project_plan",
    "project_workflow",
    "with_scopes",
]

_Kind = Literal["tool", "agent", "workflow", "planner"]

REPLY_TOKENS = 400
TOOL_OUTPUT_TOKENS = 200
TOKENS_PER_SECOND = 50.0
CALL_OVERHEAD_S = 0.5
PLANNER_MAX_TOKENS = 2048

ASSUMPTIONS = (
    "projection only: no model or tool was called",
    f"each LLM reply is {REPLY_TOKENS} tokens (capped by max_tokens); worst case: every "
    "reply uses max_tokens and every turn/round allowed is used (input growth across "
    "turns not counted)",
    "an agent with actions takes 2 turns (call each action once, in parallel, then answer); "
    "without actions 1 turn",
    "an LLM-planned workflow takes 2 planner rounds (one plan running each of its actions "
    "once, in parallel; then the final answer)",
    f"input tokens: ~3 bytes per token of prompt, task and tool schemas; each tool result "
    f"adds {TOOL_OUTPUT_TOKENS} tokens; the worst case bounds the prompt, task and schemas "
    "at one token per UTF-8 byte plus framing (the budget reservation's own bound)",
    f"latency of a call: the model's latency_s if set, else {CALL_OVERHEAD_S}s + output "
    f"tokens / {TOKENS_PER_SECOND:g} per s; tools take 0s; the workflow's latency is its "
    "critical path",
    "a cascade escalates: each of its probes (in parallel) and then its escalation model "
    "is called, so its calls, tokens and cost are those of all its members",
)


class ProjectedStep(BaseModel):
    """One subtask (or planner round) of the workflow."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str
    action: str
    kind: _Kind
    models: list[str] = Field(default_factory=list)
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    worst_case_cost_usd: Decimal = Decimal(0)
    latency_s: float = 0.0


class ProjectedScope(BaseModel):
    """A shared budget scope enclosing the run (``--scope``, ``budget.scopes``), as the
    ledger has it now, and whether the projected cost fits what it has left."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    key: str
    limit_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    remaining_usd: Decimal
    fits: bool = Field(description="Whether the projected cost fits the scope's remaining.")
    fits_worst_case: bool = Field(
        description="Whether the worst-case cost fits it (then no call can be refused)."
    )


class Projection(BaseModel):
    """The dry-run result (``paraloom run --dry-run --json`` prints this)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    kind: Literal["projection"] = "projection"
    workflow: str
    planner: Literal["static", "llm"]
    steps: list[ProjectedStep]
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    worst_case_cost_usd: Decimal
    latency_s: float
    budget_usd: Decimal | None = None
    fits_budget: bool | None = Field(
        default=None, description="Whether the projected cost fits the budget (None: no budget)."
    )
    scopes: list[ProjectedScope] = Field(
        default_factory=list,
        description="The shared budget scopes enclosing the run, read from the ledger.",
    )
    assumptions: list[str] = Field(default_factory=lambda: list(ASSUMPTIONS))


@dataclass(slots=True)
class _Tally:
    models: list[str]
    calls: int = 0
    tin: int = 0
    tout: int = 0
    cost: Decimal = Decimal(0)
    worst: Decimal = Decimal(0)
    latency: float = 0.0

    def add(self, other: _Tally, parallel_latency: bool = False) -> None:
        for m in other.models:
            if m not in self.models:
                self.models.append(m)
        self.calls += other.calls
        self.tin += other.tin
        self.tout += other.tout
        self.cost += other.cost
        self.worst += other.worst
        if not parallel_latency:
            self.latency += other.latency

    def totals(self) -> dict[str, Any]:
        """The fields a :class:`ProjectedStep` and a :class:`Projection` share."""
        return {
            "llm_calls": self.calls,
            "input_tokens": self.tin,
            "output_tokens": self.tout,
            "cost_usd": self.cost,
            "worst_case_cost_usd": self.worst,
            "latency_s": round(self.latency, 3),
        }


class _Projector:
    def __init__(self, loaded: LoadedConfig, budget: Decimal | None) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.models: dict[str, ModelDescriptor] = model_descriptors(self.config)
        self.budget = budget
        self.cascades = {c.pool_name: (c.probes, c.escalate) for c in self.config.cascades}
        self.selector: ModelSelector | None = None
        if self.config.router is not None and self.models:
            pinned = {n: a.model for n, a in self.config.agents.items() if a.model and not a.router}
            pinned.update(
                {
                    planner_name(n): w.model
                    for n, w in self.config.workflows.items()
                    if w.model and not w.router
                }
            )
            self.selector = PerAgentSelector(build_router(loaded), pinned)

    async def _model(
        self,
        who: str,
        fixed: str | None,
        kind: StepKind,
        messages: list[ChatMessage],
        cap: int,
        size: InputSize,
    ) -> str | None:
        if self.selector is None:
            return fixed or (next(iter(self.models), None))
        sel = await self.selector.select(
            SelectionRequest(
                step_kind=kind,
                messages=tuple(messages),
                candidates=tuple(self.models.values()),
                max_output_tokens=cap,
                agent=who,
                budget_left_usd=self.budget,
                input_size=size,
                max_tokens=cap,
            )
        )
        return sel.model

    async def _call(
        self,
        who: str,
        fixed: str | None,
        kind: StepKind,
        messages: list[ChatMessage],
        extra_bytes: int,
        max_tokens: int,
        worst_calls: int,
        extra_tokens: int = 0,
    ) -> _Tally:
        size = measure_input(messages) + InputSize(extra_bytes, extra_tokens)
        name = await self._model(who, fixed, kind, messages, max_tokens, size)
        tin = estimate_tokens(messages) + -(-extra_bytes // 3) + extra_tokens
        tout = min(REPLY_TOKENS, max_tokens)
        if name is None or name not in self.models:
            return _Tally(models=[], calls=1, tin=tin, tout=tout)
        d = self.models[name]
        members, latency = 1, self._latency(d, tout)
        if name in self.cascades:  # priced at its members' summed prices already
            probes, escalate = self.cascades[name]
            members = len(probes) + 1
            latency = max(self._latency(self.models[p], tout) for p in probes) + self._latency(
                self.models[escalate], tout
            )
        return _Tally(
            models=[name],
            calls=members,
            tin=tin * members,
            tout=tout * members,
            cost=d.cost(tin, tout),
            worst=worst_case(d, size, max_tokens).usd * worst_calls,
            latency=latency,
        )

    @staticmethod
    def _latency(d: ModelDescriptor, tout: int) -> float:
        return (
            d.latency_s if d.latency_s is not None else CALL_OVERHEAD_S + tout / TOKENS_PER_SECOND
        )

    async def action(self, name: str, task_text: str, depth: int = 0) -> tuple[_Kind, _Tally]:
        if depth > 16:
            return "agent", _Tally(models=[])
        if name in self.config.agents:
            return "agent", await self.agent(name, task_text, depth)
        if name in self.config.workflows:
            return "workflow", await self.workflow(name, depth + 1)
        return "tool", _Tally(models=[])

    async def agent(self, name: str, task_text: str, depth: int) -> _Tally:
        a = self.config.agents[name]
        messages = [
            ChatMessage(role="system", content=a.instructions),
            ChatMessage(role="user", content=task_text),
        ]
        schemas = _json_bytes(AGENT_INPUT_SCHEMA) * len(a.actions)
        total = _Tally(models=[])
        first = await self._call(
            name, a.model, "agent_turn", messages, schemas, a.max_tokens, a.max_turns
        )
        total.add(first)
        if a.actions:
            slowest = 0.0
            for sub in a.actions:
                _, t = await self.action(sub, f"{a.description or a.instructions}", depth + 1)
                total.add(t, parallel_latency=True)
                slowest = max(slowest, t.latency)
            total.latency += slowest
            second = await self._call(
                name,
                a.model,
                "agent_turn",
                messages,
                schemas,
                a.max_tokens,
                0,
                extra_tokens=first.tout + TOOL_OUTPUT_TOKENS * len(a.actions),
            )
            total.add(second)
        return total

    async def workflow(self, name: str, depth: int = 0) -> _Tally:
        return self.aggregate(name, await self.steps(name, depth))

    def aggregate(
        self, name: str, steps: list[ProjectedStep], subtasks: Sequence[Subtask] | None = None
    ) -> _Tally:
        total = _Tally(models=[])
        for s in steps:
            total.add(
                _Tally(
                    models=s.models,
                    calls=s.llm_calls,
                    tin=s.input_tokens,
                    tout=s.output_tokens,
                    cost=s.cost_usd,
                    worst=s.worst_case_cost_usd,
                ),
                parallel_latency=True,
            )
        total.latency = _critical_path(self.loaded, name, steps, subtasks)
        return total

    async def subtask_steps(self, subtasks: Sequence[Subtask], depth: int) -> list[ProjectedStep]:
        out: list[ProjectedStep] = []
        for s in subtasks:
            text = json.dumps(s.arguments, default=str)
            kind, t = await self.action(s.action, text, depth)
            out.append(_step(s.id, s.action, kind, t))
        return out

    async def steps(self, name: str, depth: int = 0) -> list[ProjectedStep]:
        wf = self.config.workflows[name]
        out: list[ProjectedStep] = []
        if wf.planner == "static":
            return await self.subtask_steps(wf.subtasks, depth)
        pname = planner_name(name)
        catalogue = sum(_json_bytes(AGENT_INPUT_SCHEMA) + 120 for _ in wf.actions)
        messages = [
            ChatMessage(role="system", content=wf.guidance or "Plan the task."),
            ChatMessage(role="user", content=wf.description or name),
        ]
        plan_call = await self._call(
            pname, wf.model, "plan", messages, catalogue, PLANNER_MAX_TOKENS, wf.max_rounds
        )
        out.append(_step("planner round 1 (plan)", pname, "planner", plan_call))
        for action in wf.actions:
            kind, t = await self.action(action, wf.description or name, depth)
            out.append(_step(action, action, kind, t))
        final = await self._call(
            pname,
            wf.model,
            "plan",
            messages,
            catalogue,
            PLANNER_MAX_TOKENS,
            0,
            extra_tokens=TOOL_OUTPUT_TOKENS * len(wf.actions),
        )
        out.append(_step("planner round 2 (answer)", pname, "planner", final))
        return out


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value).encode("utf-8"))


def _step(sid: str, action: str, kind: _Kind, t: _Tally) -> ProjectedStep:
    return ProjectedStep(
        id=sid,
        action=action,
        kind=kind,
        models=t.models,
        **t.totals(),
    )


def _critical_path(
    loaded: LoadedConfig,
    name: str,
    steps: list[ProjectedStep],
    subtasks: Sequence[Subtask] | None = None,
) -> float:
    wf = loaded.config.workflows[name]
    weight = {s.id: s.latency_s for s in steps}
    if subtasks is None and wf.planner == "llm":
        planner = [s.latency_s for s in steps if s.kind == "planner"]
        work = [s.latency_s for s in steps if s.kind != "planner"]
        return sum(planner) + max(work, default=0.0)
    graph = Digraph()
    subtasks = wf.subtasks if subtasks is None else subtasks
    ids = {s.id for s in subtasks}
    for s in subtasks:
        graph.add_node(s.id)
        deps = set(s.depends_on)
        for text in find_references(s.arguments):
            root = parse_reference(text).root
            if root in ids:
                deps.add(root)
        graph.add_edges((d, s.id) for d in deps if d in ids)
    finish: dict[str, float] = {}
    for sid in graph.topological_order():
        finish[sid] = weight.get(sid, 0.0) + max((finish[p] for p in graph.pred[sid]), default=0.0)
    return max(finish.values(), default=0.0)


async def project_workflow(
    loaded: LoadedConfig, workflow: str | None = None, *, budget_usd: Decimal | None = None
) -> Projection:
    """Project one workflow; never touches the network."""
    name = choose_workflow(loaded, workflow)
    config = loaded.config
    wf = config.workflows[name]
    budget_usd = _budget_of(loaded, name, budget_usd)
    projector = _Projector(loaded, budget_usd)
    steps = await projector.steps(name)
    totals = projector.aggregate(name, steps)
    return Projection(
        workflow=name,
        planner=wf.planner,
        steps=steps,
        **totals.totals(),
        budget_usd=budget_usd,
        fits_budget=None if budget_usd is None else totals.cost <= budget_usd,
    )


def _budget_of(loaded: LoadedConfig, name: str, budget_usd: Decimal | None) -> Decimal | None:
    if budget_usd is not None:
        return budget_usd
    wf, config = loaded.config.workflows[name], loaded.config
    if wf.budget_usd is not None:
        return wf.budget_usd
    return config.budget.usd if config.budget else None


async def project_plan(
    loaded: LoadedConfig,
    workflow: str,
    plan: Plan,
    *,
    budget_usd: Decimal | None = None,
) -> Projection:
    """Project one plan of ``workflow`` (e.g. a plan its LLM planner wrote, waiting for
    approval) as ``--dry-run`` projects a static workflow with those subtasks: the same
    per-subtask numbers, totals and critical path. Never touches the network."""
    budget_usd = _budget_of(loaded, workflow, budget_usd)
    projector = _Projector(loaded, budget_usd)
    steps = await projector.subtask_steps(plan.subtasks, 0)
    totals = projector.aggregate(workflow, steps, plan.subtasks)
    return Projection(
        workflow=workflow,
        planner="static",
        steps=steps,
        **totals.totals(),
        budget_usd=budget_usd,
        fits_budget=None if budget_usd is None else totals.cost <= budget_usd,
    )


def with_scopes(projection: Projection, states: Sequence[ScopeState]) -> Projection:
    """``projection`` with the shared budget scopes enclosing the run (as the ledger has
    them now) and whether its cost, and its worst case, fit what each has left."""
    return projection.model_copy(
        update={
            "scopes": [
                ProjectedScope(
                    key=s.key,
                    limit_usd=s.limit_usd,
                    spent_usd=s.spent_usd,
                    reserved_usd=s.reserved_usd,
                    remaining_usd=s.remaining_usd,
                    fits=projection.cost_usd <= s.remaining_usd,
                    fits_worst_case=projection.worst_case_cost_usd <= s.remaining_usd,
                )
                for s in states
            ]
        }
    )
