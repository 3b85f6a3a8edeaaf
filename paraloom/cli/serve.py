"""``paraloom mcp serve``: every tool, agent and workflow of a file as an MCP tool. Each
call is a run with the file's budget, recorded in the run store and traced like
``paraloom run``. Inside ledger scopes (``--scope``, ``budget.scopes``) every call's
budget is a :class:`~paraloom.runtime.scopes.ScopedBudget`, so a scope's limit bounds
what the server spends across calls (and across servers sharing the ledger)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from paraloom.cli.sinks import Sinks
from paraloom.config.build import file_budget, file_scopes, open_actions
from paraloom.config.load import LoadedConfig
from paraloom.orchestrator.events import EventBus
from paraloom.protocols.actions import ActionKind, ActionSpec
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import ActionContext
from paraloom.runtime.scopes import ScopeLedger

__all__ = ["call_budget", "serve_mcp"]


def call_budget(
    loaded: LoadedConfig,
    spec: ActionSpec,
    *,
    ledger: ScopeLedger | None = None,
    scopes: Sequence[str] = (),
) -> Budget:
    """A fresh budget for one served call: a workflow's own ``budget_usd`` if it has one,
    else the file's ``budget:`` (dollars, tokens, calls); unlimited without either.
    Inside ``scopes`` of ``ledger`` when both are given."""
    config = loaded.config
    usd: Decimal | None = config.budget.usd if config.budget else None
    workflow = config.workflows.get(spec.name) if spec.kind is ActionKind.WORKFLOW else None
    if workflow is not None and workflow.budget_usd is not None:
        usd = workflow.budget_usd
    return file_budget(config, usd, ledger=ledger, scopes=scopes)


async def serve_mcp(
    loaded: LoadedConfig,
    sinks: Sinks,
    *,
    http: bool,
    host: str,
    port: int,
    stream_text: bool = False,
    ledger: str | None = None,
    scopes: Sequence[str] = (),
) -> None:
    """Serve until the client disconnects (stdio) or the process is interrupted (HTTP).
    ``stream_text``: progress messages carry the agents' latest streamed text. The
    ledger of ``scopes`` (and the file's) is opened once, for the server's life
    (:class:`~paraloom.cli.budget.LedgerProblem` if a scope has no limit)."""
    from paraloom.cli.budget import run_ledger
    from paraloom.tools import mcp_server

    bus = EventBus(sinks.listeners)
    enclosing = file_scopes(loaded.config, scopes)
    async with (
        run_ledger(ledger, enclosing, label="paraloom mcp serve") as scope_ledger,
        open_actions(loaded) as (actions, selector),
    ):
        base = ActionContext(
            run_id="mcp",
            model_selector=selector,
            emit=bus.emit,
            capture_content=sinks.capture_content,
        )

        def new_budget(spec: ActionSpec) -> Budget:
            return call_budget(loaded, spec, ledger=scope_ledger, scopes=enclosing)

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
