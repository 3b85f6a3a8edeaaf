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

import importlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from pydantic import JsonValue

from paraloom.agents.llm_agent import LLMAgent
from paraloom.config.errors import ConfigError, ConfigProblem
from paraloom.config.load import LoadedConfig
from paraloom.config.schema import ParaloomConfig, ToolConfig, WorkflowConfig
from paraloom.config.selector import PerAgentSelector, build_router
from paraloom.models.base import ModelClient
from paraloom.models.cascade import CascadeModel, cascade_descriptor
from paraloom.models.concurrency import ConcurrencyLimitedModel
from paraloom.models.openai import OpenAICompatible
from paraloom.models.pool import ModelPool
from paraloom.models.ratelimit import RateLimit, RateLimitedModel
from paraloom.models.retry import RetryingModel, RetryPolicy
from paraloom.orchestrator.errors import PlanValidationError
from paraloom.orchestrator.llm_planner import LLMPlanner
from paraloom.orchestrator.orchestrator import Orchestrator
from paraloom.orchestrator.planner import Planner, StaticPlanner
from paraloom.orchestrator.validation import validate_plan
from paraloom.orchestrator.workflow_action import WorkflowAction
from paraloom.protocols.actions import ActionCall, ActionResult, ActionSpec
from paraloom.protocols.messages import ModelDescriptor
from paraloom.protocols.plan import Plan
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import Action, ActionContext
from paraloom.runtime.redact import register_secrets_of
from paraloom.runtime.selection import ModelSelector
from paraloom.tools.actionset import ActionSet
from paraloom.tools.function import FunctionTool
from paraloom.tools.wrappers import renamed, with_retry, with_timeout

if TYPE_CHECKING:
    import networkx as nx


__all__ = [
    "Needs",
    "Project",
    "choose_workflow",
    "endpoint_problem",
    "model_descriptors",
    "needs_of",
    "open_actions",
    "open_project",
    "planner_name",
]


def planner_name(workflow: str) -> str:
    """The name an LLM planner uses in events and model selection."""
    return f"{workflow}.planner"


@dataclass(frozen=True, slots=True)
class Needs:
    """What running one workflow touches, transitively."""

    tools: frozenset[str]
    agents: frozenset[str]
    workflows: frozenset[str]
    models: frozenset[str]


def choose_workflow(loaded: LoadedConfig, name: str | None) -> str:
    """``name``, else the only workflow, else ``main``; a clear error otherwise."""
    workflows = loaded.config.workflows
    known = ", ".join(sorted(workflows)) or "(none)"
    if name is not None:
        if name not in workflows:
            raise ConfigError.at(None, f"unknown workflow {name!r}: known workflows are {known}")
        return name
    if len(workflows) == 1:
        return next(iter(workflows))
    if "main" in workflows:
        return "main"
    if not workflows:
        files = ", ".join(str(f) for f in loaded.files)
        raise ConfigError.at(None, f"{files} defines no workflows (add a 'workflows:' section)")
    raise ConfigError.at(None, f"several workflows; name one of: {known}")


def _calls(config: ParaloomConfig, name: str) -> list[str]:
    if name in config.agents:
        return list(config.agents[name].actions)
    if name in config.workflows:
        wf = config.workflows[name]
        used = list(wf.actions) if wf.planner == "llm" else [s.action for s in wf.subtasks]
        used += [s.policy.fallback for s in wf.subtasks if s.policy and s.policy.fallback]
        if wf.policy is not None and wf.policy.fallback and wf.policy.fallback not in used:
            used.append(wf.policy.fallback)
        return list(dict.fromkeys(used))
    return []


def needs_of(config: ParaloomConfig, workflow: str) -> Needs:
    tools: set[str] = set()
    agents: set[str] = set()
    workflows: set[str] = set()
    models: set[str] = set()
    pending = [workflow]
    routed = False
    mcp_open = [n for n, t in config.tools.items() if t.mcp is not None]
    while pending:
        name = pending.pop()
        if name in config.workflows and name not in workflows:
            workflows.add(name)
            wf = config.workflows[name]
            if wf.planner == "llm":
                routed |= wf.router
                if wf.model:
                    models.add(wf.model)
            pending.extend(_calls(config, name))
        elif name in config.agents and name not in agents:
            agents.add(name)
            agent = config.agents[name]
            routed |= agent.router
            if agent.model:
                models.add(agent.model)
            pending.extend(agent.actions)
        elif name in config.tools:
            tools.add(name)
        elif name not in config.agents and name not in config.workflows:
            tools.update(mcp_open)  # a tool an MCP server provides
    if routed or (config.router is not None and (agents or _llm_planned(config, workflows))):
        models.update(config.pool_names())
    for c in config.cascades:  # a cascade needs its members
        if c.pool_name in models:
            models.update([*c.probes, c.escalate])
    return Needs(frozenset(tools), frozenset(agents), frozenset(workflows), frozenset(models))


def _llm_planned(config: ParaloomConfig, workflows: set[str]) -> bool:
    return any(config.workflows[w].planner == "llm" for w in workflows)


def model_descriptors(config: ParaloomConfig) -> dict[str, ModelDescriptor]:
    """Descriptors of every pool model: ``models:``, then ``cascades:`` (priced at the
    sum of their members' prices, see :func:`~paraloom.models.cascade.cascade_descriptor`)."""
    out = {
        name: ModelDescriptor(
            name=name,
            provider=m.provider,
            model_id=m.model_id,
            input_price_per_m=m.input_price_per_m,
            output_price_per_m=m.output_price_per_m,
            cached_input_price_per_m=m.cached_input_price_per_m,
            cache_write_price_per_m=m.cache_write_price_per_m,
            context_window=m.context_window,
            max_output_tokens=m.max_output_tokens,
            tokenizer_bytes_per_token=m.tokenizer_bytes_per_token,
            rpm=m.rpm,
            tpm=m.tpm,
            latency_s=m.latency_s,
            description=m.description,
            tool_mode=m.tool_mode,
        )
        for name, m in config.models.items()
    }
    for c in config.cascades:
        out[c.pool_name] = cascade_descriptor(
            [out[p] for p in c.probes], out[c.escalate], name=c.pool_name
        )
    return out


def endpoint_problem(
    loaded: LoadedConfig, workflow: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """Why a real run cannot reach any model, or ``None``. A model counts as configured
    when it has a ``base_url`` or ``api_key``, or OPENAI_BASE_URL / OPENAI_API_KEY is set."""
    env = os.environ if environ is None else environ
    needs = needs_of(loaded.config, workflow)
    if not needs.models:
        return None
    if env.get("OPENAI_BASE_URL") or env.get("OPENAI_API_KEY"):
        return None
    for name in needs.models:
        m = loaded.config.models.get(name)
        if m is None:  # a cascade: its members are in needs.models too
            continue
        if m.base_url and "${env:" not in m.base_url:
            return None
        if m.api_key is not None and "${env:" not in m.api_key.get_secret_value():
            return None
    return (
        f"no model endpoint is configured: workflow {workflow!r} calls models "
        f"({', '.join(sorted(needs.models))}) but neither OPENAI_BASE_URL nor OPENAI_API_KEY "
        "is set and the models have no base_url/api_key"
    )


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

    def new_budget(self, override_usd: Decimal | None = None) -> Budget:
        limits = self.config.budget
        return Budget(
            self.budget_usd(override_usd),
            max_tokens=limits.max_tokens if limits else None,
            max_calls=limits.max_calls if limits else None,
            on_abandoned=limits.on_abandoned if limits else "bill_worst_case",
        )

    def task(self, given: JsonValue = None) -> JsonValue:
        return merge_input(self.workflow_config.input, given)


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
) -> AsyncIterator[Project]:
    """Build every object ``workflow`` needs; closes clients and MCP sessions on exit.

    ``check_env=False`` tolerates unset ``${env:…}`` variables (for validation: nothing
    is called)."""
    name = choose_workflow(loaded, workflow)
    needs = needs_of(loaded.config, name)
    if check_env:
        _check_env(loaded, needs)
    async with AsyncExitStack() as stack:
        b = await _build(loaded, needs, stack)
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


async def _build(loaded: LoadedConfig, needs: Needs, stack: AsyncExitStack) -> _Built:
    config = loaded.config
    register_secrets_of(config)  # every credential of the file, before anything can fail
    pool = _build_pool(loaded, needs, stack) if needs.models else None
    built: dict[str, Action] = {}
    for tool_name in sorted(needs.tools):
        for action in await _build_tool(loaded, tool_name, config.tools[tool_name], stack):
            if action.spec.name in built:
                raise loaded.error(
                    ("tools", tool_name),
                    f"tool {action.spec.name!r} (from {tool_name!r}) clashes with another action",
                )
            built[action.spec.name] = action
    groups = _tool_groups(config, built)
    router = build_router(loaded) if config.router is not None and pool else None
    pinned: dict[str, str] = {}
    orchestrators: dict[str, Orchestrator] = {}
    for node in _build_order(config, needs):
        if node in config.agents:
            a = config.agents[node]
            assert pool is not None
            if a.model is not None and not a.router:
                pinned[node] = a.model
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


def _build_pool(loaded: LoadedConfig, needs: Needs, stack: AsyncExitStack) -> ModelPool:
    """One HTTP client per endpoint (base URL, key, timeout), shared by its models. A model
    with ``max_concurrency`` is ``RetryingModel(ConcurrencyLimitedModel(client, n))`` over
    a client that does not retry by itself, so a retry's wait holds no slot; with
    ``rpm``/``tpm`` a ``RateLimitedModel`` sits between the two (a rate wait holds no
    slot either). Limits are shared by every run and cascade using this pool."""
    config = loaded.config
    descriptors = model_descriptors(config)
    pool = ModelPool()
    clients: dict[
        tuple[str | None, str | None, float, bool, tuple[tuple[str, str], ...], bool | None],
        OpenAICompatible,
    ] = {}
    for name in [n for n in config.models if n in needs.models]:
        m = config.models[name]
        key = m.api_key.get_secret_value() if m.api_key is not None else None
        headers = {k: v.get_secret_value() for k, v in m.headers.items()}
        limited = m.max_concurrency is not None or m.rpm is not None or m.tpm is not None
        ident = (m.base_url, key, m.timeout_s, limited, tuple(sorted(headers.items())), m.stream)
        if ident not in clients:
            clients[ident] = OpenAICompatible(
                base_url=m.base_url,
                api_key=key,
                headers=headers,
                timeout_s=m.timeout_s,
                provider=m.provider,
                retry=RetryPolicy(attempts=1) if limited else None,
                stream=m.stream,
            )
            stack.push_async_callback(clients[ident].aclose)
        client: ModelClient = clients[ident]
        if m.max_concurrency is not None:
            client = ConcurrencyLimitedModel(client, m.max_concurrency)
        if m.rpm is not None or m.tpm is not None:
            client = RateLimitedModel(client, RateLimit(m.rpm, m.tpm), descriptors[name])
        if limited:
            client = RetryingModel(client)
        pool.add(descriptors[name], client)
    for c in config.cascades:
        if c.pool_name in needs.models:
            cascade = CascadeModel(
                [(descriptors[p], pool.client(p)) for p in c.probes],
                (descriptors[c.escalate], pool.client(c.escalate)),
                name=c.pool_name,
            )
            pool.add(cascade.descriptor, cascade)
    return pool


def _import(loaded: LoadedConfig, tool_name: str, ref: str) -> Any:
    module_name, attr = ref.split(":", 1)
    where = ("tools", tool_name, "python")
    base = str(loaded.base_dir)
    added = base not in sys.path
    if added:
        sys.path.insert(0, base)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise loaded.error(
            where,
            f"cannot import module {module_name!r} for tool {tool_name!r}: {exc} "
            f"(looked on the Python path and in {base})",
            at_value=True,
        ) from None
    except Exception as exc:
        raise loaded.error(
            where, f"importing {module_name!r} raised {type(exc).__name__}: {exc}", at_value=True
        ) from None
    finally:
        if added:
            sys.path.remove(base)
    if not hasattr(module, attr):
        public = sorted(n for n in vars(module) if not n.startswith("_"))
        raise loaded.error(
            where,
            f"module {module_name!r} has no {attr!r}; it defines: "
            f"{', '.join(public) or '(nothing)'}",
            at_value=True,
        )
    return getattr(module, attr)


async def _python_tool(loaded: LoadedConfig, name: str, cfg: ToolConfig, target: Any) -> Action:
    """A ``python:`` tool entry's function as an action (in a child process per call with
    ``isolation: process``)."""
    assert cfg.python is not None
    if isinstance(target, FunctionTool):
        function_tool = target
    elif callable(target):
        try:
            function_tool = FunctionTool(target, name=name, description=cfg.description)
        except Exception as exc:
            raise loaded.error(
                ("tools", name, "python"),
                f"{cfg.python} cannot be a tool: {type(exc).__name__}: {exc}",
            ) from None
    else:
        raise loaded.error(("tools", name, "python"), f"{cfg.python} is not callable")
    action: Action = function_tool
    if cfg.isolation == "process":
        from paraloom.tools.process import ProcessTool, warm_up

        await anyio.to_thread.run_sync(warm_up)  # not within the first call's timeout

        module_name, attr = cfg.python.split(":", 1)
        try:
            action = ProcessTool(function_tool, module_name, attr, sys_path=[str(loaded.base_dir)])
        except ValueError as exc:
            raise loaded.error(("tools", name, "isolation"), str(exc)) from None
    return action if action.spec.name == name else renamed(action, name)


async def _build_tool(
    loaded: LoadedConfig, name: str, cfg: ToolConfig, stack: AsyncExitStack
) -> list[Action]:
    actions: list[Action]
    if cfg.python is not None:
        target = _import(loaded, name, cfg.python)
        if not isinstance(target, FunctionTool) and isinstance(target, Action):
            # a ready action object (e.g. paraloom.tools.human:ask_human)
            if cfg.isolation == "process":
                raise loaded.error(
                    ("tools", name, "isolation"),
                    f"isolation: process needs a Python function; {cfg.python} is an action",
                )
            actions = [target if target.spec.name == name else renamed(target, name)]
        else:
            actions = [await _python_tool(loaded, name, cfg, target)]
    elif cfg.http is not None:
        from paraloom.tools.http import HttpTool

        actions = [HttpTool(cfg.http)]
    else:
        assert cfg.mcp is not None
        try:
            from paraloom.tools.mcp_client import MCPToolset
        except ImportError as exc:
            raise loaded.error(
                ("tools", name, "mcp"),
                f'MCP tools need the mcp extra: pip install "paraloom[mcp]" ({exc})',
            ) from None
        try:
            actions = list(await stack.enter_async_context(MCPToolset(cfg.mcp)))
        except Exception as exc:
            raise loaded.error(
                ("tools", name, "mcp"),
                f"cannot start MCP server {name!r} ({cfg.mcp.describe()}): {exc}",
            ) from None
    wrapped: list[Action] = []
    for action in actions:
        if cfg.timeout_s is not None:
            action = with_timeout(action, cfg.timeout_s)
        if cfg.retries:
            action = with_retry(action, cfg.retries)
        wrapped.append(action)
    return wrapped


def _tool_groups(config: ParaloomConfig, built: Mapping[str, Action]) -> dict[str, list[str]]:
    """``tools:`` entry name → the action names it produced (several for MCP)."""
    groups: dict[str, list[str]] = {}
    for name, cfg in config.tools.items():
        if cfg.mcp is None:
            groups[name] = [name]
        else:
            groups[name] = [
                a for a, action in built.items() if f"mcp:{cfg.mcp.name}" in action.spec.tags
            ]
    return groups


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
    import networkx as nx  # on first use: slow to import

    graph: nx.DiGraph[str] = nx.DiGraph()
    nodes = needs.agents | needs.workflows
    graph.add_nodes_from(sorted(nodes))
    for n in nodes:
        graph.add_edges_from((c, n) for c in _calls(config, n) if c in nodes)
    return list(nx.lexicographical_topological_sort(graph))
