"""``paraloom mcp serve``: every tool, agent and workflow of a file as an MCP tool. Each
call is a run with the file's budget, recorded in the run store and traced like
``paraloom run``."""

from __future__ import annotations

from decimal import Decimal

from paraloom.cli.sinks import Sinks
from paraloom.config.build import open_actions
from paraloom.config.load import LoadedConfig
from paraloom.orchestrator.events import EventBus
from paraloom.protocols.actions import ActionKind, ActionSpec
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import ActionContext

__all__ = ["call_budget", "serve_mcp"]


def call_budget(loaded: LoadedConfig, spec: ActionSpec) -> Budget:
    """A fresh budget for one served call: a workflow's own ``budget_usd`` if it has one,
    else the file's ``budget:`` (dollars, tokens, calls); unlimited without either."""
    config = loaded.config
    limits = config.budget
    usd: Decimal | None = limits.usd if limits else None
    workflow = config.workflows.get(spec.name) if spec.kind is ActionKind.WORKFLOW else None
    if workflow is not None and workflow.budget_usd is not None:
        usd = workflow.budget_usd
    return Budget(
        usd,
        max_tokens=limits.max_tokens if limits else None,
        max_calls=limits.max_calls if limits else None,
    )


async def serve_mcp(
    loaded: LoadedConfig,
    sinks: Sinks,
    *,
    http: bool,
    host: str,
    port: int,
    stream_text: bool = False,
) -> None:
    """Serve until the client disconnects (stdio) or the process is interrupted (HTTP).
    ``stream_text``: progress messages carry the agents' latest streamed text."""
    from paraloom.tools import mcp_server

    bus = EventBus(sinks.listeners)
    async with open_actions(loaded) as (actions, selector):
        base = ActionContext(
            run_id="mcp",
            model_selector=selector,
            emit=bus.emit,
            capture_content=sinks.capture_content,
        )

        def new_budget(spec: ActionSpec) -> Budget:
            return call_budget(loaded, spec)

        if http:
            await mcp_server.serve_http(
                actions,
                host=host,
                port=port,
                base_context=base,
                new_budget=new_budget,
                stream_text=stream_text,
            )
        else:
            await mcp_server.serve_stdio(
                actions, base_context=base, new_budget=new_budget, stream_text=stream_text
            )
