"""Configuration → live objects: the model pool, tools, agents, workflows, the router.

Only what the chosen workflow needs is built (an unused MCP server is not started, an
unused model needs no API key). ``open_project`` is an async context manager because
HTTP clients and MCP sessions must be closed::

    loaded = load_config("flow.yaml", resolve_env=True)
    async with open_project(loaded, "main") as project:
        result = await project.orchestrator.run(project.task({"region": "EU"}),
                                                budget=project.new_budget())
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue

from paraloom.config.errors import ConfigError, ConfigProblem
from paraloom.config.executor import ExecutorKind, build_executor
from paraloom.config.load import LoadedConfig
from paraloom.config.needs import (
    Needs,
    _calls,
    _llm_planned,
    choose_workflow,
    endpoint_problem,
    model_descriptors,
    needs_of,
    planner_name,
)
from paraloom.config.schema import ParaloomConfig, WorkflowConfig
from paraloom.config.selector import PerAgentSelector, build_router
from paraloom.config.tools import build_tool, tool_groups
from paraloom.orchestrator.errors import PlanValidationError
from paraloom.orchestrator.orchestrator import Orchestrator
from paraloom.orchestrator.planner import Planner, StaticPlanner
from paraloom.orchestrator.validation import validate_plan
from paraloom.orchestrator.workflow_action import WorkflowAction
from paraloom.protocols.actions import ActionCall, ActionResult, ActionSpec
from paraloom.protocols.plan import Plan
from paraloom.runtime.budget import Budget, OnAbandoned
from paraloom.runtime.context import Action, ActionContext
from paraloom.runtime.dag import Digraph
from paraloom.runtime.redact import register_secrets_of
from paraloom.runtime.scopes import ScopedBudget, ScopeLedger
from paraloom.runtime.selection import ModelSelector
from paraloom.tools.actionset import ActionSet

# What only models, agents and LLM planners need (the model clients, the agent loop, the
# planner's prompts) is imported where those are built: a file without them (and
# ``paraloom validate`` of it) does not import them.
if TYPE_CHECKING:
    from paraloom.models.pool import ModelPool

__all__ = [
    "Needs",
    "Project",
    "choose_workflow",
    "endpoint_problem",
    "file_budget",
    "file_scopes",
    "model_descriptors",
    "needs_of",
    "open_actions",
    "open_project",
    "planner_name",
]


@dataclass(slots=True)
class Project:
    """Live objects for one workflow of a configuration."""

    loaded: LoadedConfig
    workflow: str
    orchestrator: Orchestrator
    actions: ActionSet
    pool: ModelPool | None
    selector: ModelSelector | None
    needs: Needs
    orchestrators: dict[str, Orchestrator] = field(default_factory=dict)

    @property
    def config(self) -> ParaloomConfig:
        return self.loaded.config

    @property
    def workflow_config(self) -> WorkflowConfig:
        return self.config.workflows[self.workflow]

    def budget_usd(self, override: Decimal | None = None) -> Decimal | None:
        if override is not None:
            return override
        if self.workflow_config.budget_usd is not None:
            return self.workflow_config.budget_usd
        return self.config.budget.usd if self.config.budget else None

    def scopes(self, extra: Sequence[str] = ()) -> list[str]:
        """The ledger scopes of a run: the file's ``budget.scopes`` and ``extra``."""
        return file_scopes(self.config, extra)

    def new_budget(
        self,
        override_usd: Decimal | None = None,
        *,
        ledger: ScopeLedger | None = None,
        scopes: Sequence[str] = (),
    ) -> Budget:
        """The run's budget; inside ``scopes`` of ``ledger`` when both are given."""
        return file_budget(self.config, self.budget_usd(override_usd), ledger=ledger, scopes=scopes)

    def task(self, given: JsonValue = None) -> JsonValue:
        return merge_input(self.workflow_config.input, given)


def file_scopes(config: ParaloomConfig, extra: Sequence[str] = ()) -> list[str]:
    """The ledger scopes enclosing a run of ``config``: its ``budget.scopes`` and
    ``extra``."""
    limits = config.budget
    return sorted({*(limits.scopes if limits else ()), *extra})


def file_budget(
    config: ParaloomConfig,
    usd: Decimal | None,
    *,
    ledger: ScopeLedger | None = None,
    scopes: Sequence[str] = (),
) -> Budget:
    """A fresh budget of ``usd`` with the file's other ``budget:`` limits (tokens, calls,
    abandoned calls); inside ``scopes`` of ``ledger`` when both are given."""
    limits = config.budget
    max_tokens = limits.max_tokens if limits else None
    max_calls = limits.max_calls if limits else None
    on_abandoned: OnAbandoned = limits.on_abandoned if limits else "bill_worst_case"
    if ledger is not None and scopes:
        return ScopedBudget(
            ledger,
            scopes,
            usd,
            max_tokens=max_tokens,
            max_calls=max_calls,
            on_abandoned=on_abandoned,
        )
    return Budget(usd, max_tokens=max_tokens, max_calls=max_calls, on_abandoned=on_abandoned)


def merge_input(defaults: Mapping[str, JsonValue], given: JsonValue) -> JsonValue:
    """The workflow's default input values, overridden by what was given."""
    if given is None:
        return dict(defaults) if defaults else None
    if isinstance(given, dict) and defaults:
        return {**defaults, **given}
    return given


@dataclass(slots=True)
class _Built:
    actions: dict[str, Action]
    orchestrators: dict[str, Orchestrator]
    pool: ModelPool | None
    selector: ModelSelector | None


@asynccontextmanager
async def open_project(
    loaded: LoadedConfig,
    workflow: str | None = None,
    *,
    check_env: bool = True,
    executor: ExecutorKind | None = None,
) -> AsyncIterator[Project]:
    """Build every object ``workflow`` needs; closes clients and MCP sessions on exit.

    ``check_env=False`` tolerates unset ``${env:…}`` variables (for validation: nothing
    is called). ``executor`` overrides the file's ``executor.kind`` (``local`` or
    ``ray``: every orchestrator then runs its python tools as Ray tasks)."""
    name = choose_workflow(loaded, workflow)
    needs = needs_of(loaded.config, name)
    if check_env:
        _check_env(loaded, needs)
    async with AsyncExitStack() as stack:
        b = await _build(loaded, needs, stack)
        _place(loaded, needs, b, stack, executor)
        yield Project(
            loaded=loaded,
            workflow=name,
            orchestrator=b.orchestrators[name],
            actions=ActionSet(b.actions.values()),
            pool=b.pool,
            selector=b.selector,
            needs=needs,
            orchestrators=b.orchestrators,
        )


@asynccontextmanager
async def open_actions(
    loaded: LoadedConfig, *, check_env: bool = True
) -> AsyncIterator[tuple[ActionSet, ModelSelector | None]]:
    """Every tool, agent and workflow of the configuration as one action set (for
    serving them over MCP), with the model selector their calls must use."""
    config = loaded.config
    needs = Needs(
        tools=frozenset(config.tools),
        agents=frozenset(config.agents),
        workflows=frozenset(config.workflows),
        models=frozenset(config.pool_names())
        if (config.agents or _llm_planned(config, set(config.workflows)))
        else frozenset(),
    )
    if check_env:
        _check_env(loaded, needs)
    async with AsyncExitStack() as stack:
        b = await _build(loaded, needs, stack)
        yield ActionSet(b.actions.values()), b.selector


def _place(
    loaded: LoadedConfig,
    needs: Needs,
    built: _Built,
    stack: AsyncExitStack,
    kind: ExecutorKind | None,
) -> None:
    """Give every orchestrator the executor of the ``executor:`` section (if not local)."""
    tools = loaded.config.tools
    modules = [ref.split(":", 1)[0] for n in needs.tools if (ref := tools[n].python) is not None]
    executor = build_executor(loaded, modules, kind)
    if executor is None:
        return
    stack.push_async_callback(executor.aclose)  # shuts down a Ray it started
    for orch in built.orchestrators.values():
        orch.scheduler.executor = executor


async def _build(loaded: LoadedConfig, needs: Needs, stack: AsyncExitStack) -> _Built:
    config = loaded.config
    register_secrets_of(config)  # every credential of the file, before anything can fail
    pool: ModelPool | None = None
    if needs.models:
        from paraloom.config.pool import build_pool

        pool = build_pool(loaded, needs, stack)
    built: dict[str, Action] = {}
    for tool_name in sorted(needs.tools):
        for action in await build_tool(loaded, tool_name, config.tools[tool_name], stack):
            if action.spec.name in built:
                raise loaded.error(
                    ("tools", tool_name),
                    f"tool {action.spec.name!r} (from {tool_name!r}) clashes with another action",
                )
            built[action.spec.name] = action
    groups = tool_groups(config, built)
    router = build_router(loaded) if config.router is not None and pool else None
    pinned: dict[str, str] = {}
    orchestrators: dict[str, Orchestrator] = {}
    for node in _build_order(config, needs):
        if node in config.agents:
            a = config.agents[node]
            assert pool is not None
            if a.model is not None and not a.router:
                pinned[node] = a.model
            from paraloom.agents.llm_agent import LLMAgent

            built[node] = LLMAgent(
                node,
                instructions=a.instructions,
                model=a.model or pool.names[0],
                pool=pool,
                actions=_select(loaded, ("agents", node), a.actions, built, groups),
                description=a.description,
                output_schema=a.output_schema,
                max_turns=a.max_turns,
                answer_on_last_turn=a.answer_on_last_turn,
                max_corrections=a.max_corrections,
                max_tokens=a.max_tokens,
                temperature=a.temperature,
            )
        else:
            wf = config.workflows[node]
            actions = _select(loaded, ("workflows", node), _calls(config, node), built, groups)
            planner = _planner(loaded, node, wf, actions, pool, pinned)
            orch = Orchestrator(
                actions,
                planner,
                name=node,
                max_rounds=wf.max_rounds,
                max_concurrency=wf.max_concurrency,
                action_limits=wf.action_limits,
                default_policy=wf.policy,
                budget_usd=wf.budget_usd,
                approval_timeout_s=wf.approval_timeout_s,
                on_approval_timeout=wf.on_approval_timeout,
            )
            # every action the run may reach (agents' tools too) that needs approval
            orch.requires_approval = {n: True for n in _approval_required(config, groups)}
            if wf.approve_plans:
                orch.approve_plans = True
                orch.plan_projector = _plan_projector(loaded, node)
            orchestrators[node] = orch
            flow: Action = WorkflowAction(
                orch,
                name=node,
                description=wf.description,
                input_schema=_workflow_input_schema(wf),
            )
            built[node] = _WithDefaults(flow, wf.input) if wf.input else flow
    selector: ModelSelector | None = PerAgentSelector(router, pinned) if router else None
    for orch in orchestrators.values():
        orch.model_selector = selector
    return _Built(built, orchestrators, pool, selector)


def _check_env(loaded: LoadedConfig, needs: Needs) -> None:
    needed_roots = (
        {("models", n) for n in needs.models}
        | {("tools", n) for n in needs.tools}
        | {("agents", n) for n in needs.agents}
        | {("workflows", n) for n in needs.workflows}
    )
    problems = [
        ConfigProblem(
            m.mark,
            f"environment variable {m.variable!r} is not set (needed by "
            f"{'.'.join(str(p) for p in m.path)})",
        )
        for m in loaded.missing_env
        if m.path[:2] in needed_roots or m.path[:1] in (("router",), ("budget",))
    ]
    if problems:
        raise ConfigError(problems)


def _plan_projector(
    loaded: LoadedConfig, workflow: str
) -> Callable[[Plan], Awaitable[dict[str, Any]]]:
    """The dry-run projection of a plan of ``workflow`` (shown while it waits)."""

    async def project(plan: Plan) -> dict[str, Any]:
        from paraloom.config.projection import project_plan  # it imports this module

        return (await project_plan(loaded, workflow, plan)).model_dump(mode="json")

    return project


def _approval_required(config: ParaloomConfig, groups: Mapping[str, list[str]]) -> list[str]:
    """The actions declared ``approval: required`` (an MCP entry: each of its tools)."""
    names: list[str] = []
    for name, t in config.tools.items():
        if t.approval == "required":
            names.extend(groups.get(name, [name]))
    names.extend(n for n, a in config.agents.items() if a.approval == "required")
    names.extend(n for n, w in config.workflows.items() if w.approval == "required")
    return names


def _select(
    loaded: LoadedConfig,
    where: tuple[str, str],
    names: list[str],
    built: Mapping[str, Action],
    groups: Mapping[str, list[str]],
) -> ActionSet:
    chosen: dict[str, Action] = {}
    for i, n in enumerate(names):
        expanded = groups.get(n, [n])
        for a in expanded:
            if a not in built:
                raise loaded.error(
                    (*where, "actions", i),
                    f"unknown action {n!r} for {where[0][:-1]} {where[1]!r}: available actions "
                    f"are {', '.join(sorted(built)) or '(none)'}",
                )
            chosen[a] = built[a]
    return ActionSet(chosen.values())


def _planner(
    loaded: LoadedConfig,
    name: str,
    wf: WorkflowConfig,
    actions: ActionSet,
    pool: ModelPool | None,
    pinned: dict[str, str],
) -> Planner:
    if wf.planner == "llm":
        assert pool is not None
        pname = planner_name(name)
        if wf.model is not None and not wf.router:
            pinned[pname] = wf.model
        from paraloom.orchestrator.llm_planner import LLMPlanner

        return LLMPlanner(pool, wf.model or pool.names[0], name=pname, guidance=wf.guidance)
    plan = Plan(subtasks=tuple(wf.subtasks), rationale=wf.description)
    try:
        validate_plan(plan, actions)
    except PlanValidationError as exc:
        raise ConfigError(
            ConfigProblem(loaded.mark("workflows", name, "subtasks"), f"workflow {name!r}: {p}")
            for p in exc.problems
        ) from None
    return StaticPlanner(plan, output=wf.output, name="static")


class _WithDefaults:
    """A workflow called as an action gets its default input values too."""

    def __init__(self, inner: Action, defaults: Mapping[str, JsonValue]) -> None:
        self.inner = inner
        self.defaults = dict(defaults)

    @property
    def spec(self) -> ActionSpec:
        return self.inner.spec

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        merged = {**self.defaults, **call.arguments}
        return await self.inner.invoke(call.model_copy(update={"arguments": merged}), context)


def _workflow_input_schema(wf: WorkflowConfig) -> dict[str, Any] | None:
    if not wf.input:
        return None
    return {
        "type": "object",
        "properties": {k: {"description": f"default: {v!r}"} for k, v in wf.input.items()},
        "additionalProperties": True,
    }


def _build_order(config: ParaloomConfig, needs: Needs) -> list[str]:
    """Agents and workflows, callees first (the checks rule out cycles)."""
    graph = Digraph()
    nodes = needs.agents | needs.workflows
    graph.add_nodes(sorted(nodes))
    for n in nodes:
        graph.add_edges((c, n) for c in _calls(config, n) if c in nodes)
    return graph.topological_order()
