"""What one workflow of a configuration needs, transitively (tools, agents, workflows,
models), which workflow a command means, the pool's model descriptors, and whether a
model endpoint is configured: the questions answered before anything is built."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from paraloom.config.errors import ConfigError
from paraloom.config.load import LoadedConfig
from paraloom.config.schema import ParaloomConfig
from paraloom.protocols.messages import ModelDescriptor

__all__ = [
    "Needs",
    "choose_workflow",
    "endpoint_problem",
    "model_descriptors",
    "needs_of",
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
        from paraloom.models.cascade import cascade_descriptor  # the model clients: when used

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
