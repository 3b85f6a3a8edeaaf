"""Every public module declares a non-empty ``__all__`` without repeats, and every name
in it exists."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "paraloom.agents",
    "paraloom.agents.llm_agent",
    "paraloom.agents.output",
    "paraloom.agents.toolcalls",
    "paraloom.cli",
    "paraloom.cli.app",
    "paraloom.cli.approvals",
    "paraloom.cli.execute",
    "paraloom.cli.graph",
    "paraloom.cli.inputs",
    "paraloom.cli.interrupts",
    "paraloom.cli.mcp_serve",
    "paraloom.cli.output",
    "paraloom.cli.progress",
    "paraloom.cli.render",
    "paraloom.cli.resume",
    "paraloom.cli.runs",
    "paraloom.cli.serve",
    "paraloom.cli.sinks",
    "paraloom.cli.validate",
    "paraloom.config",
    "paraloom.config.build",
    "paraloom.config.checks",
    "paraloom.config.errors",
    "paraloom.config.graph",
    "paraloom.config.load",
    "paraloom.config.needs",
    "paraloom.config.pool",
    "paraloom.config.projection",
    "paraloom.config.schema",
    "paraloom.config.selector",
    "paraloom.config.source",
    "paraloom.config.tools",
    "paraloom.models",
    "paraloom.models.base",
    "paraloom.models.calling",
    "paraloom.models.cascade",
    "paraloom.models.concurrency",
    "paraloom.models.estimate",
    "paraloom.models.fallback",
    "paraloom.models.openai",
    "paraloom.models.pool",
    "paraloom.models.retry",
    "paraloom.models.tool_mode",
    "paraloom.models.wire",
    "paraloom.orchestrator.llm_planner",
    "paraloom.orchestrator.prompts",
    "paraloom.runtime",
    "paraloom.runtime.approval",
    "paraloom.runtime.attempts",
    "paraloom.runtime.scopes",
    "paraloom.runtime.worst_case",
    "paraloom.runtime.stop",
    "paraloom.runtime.threads",
    "paraloom.store",
    "paraloom.store.apply",
    "paraloom.store.ledger",
    "paraloom.store.ledger_postgres",
    "paraloom.store.ledger_sql",
    "paraloom.store.ledger_sqlite",
    "paraloom.store.models",
    "paraloom.store.reader",
    "paraloom.store.schema",
    "paraloom.store.store",
    "paraloom.store.trajectories",
    "paraloom.store.writer",
    "paraloom.testing",
    "paraloom.testing.llama_server",
    "paraloom.testing.models",
    "paraloom.testing.openai_server",
    "paraloom.testing.provider",
    "paraloom.testing.budget_harness",
    "paraloom.testing.scoped_harness",
    "paraloom.testing.replies",
    "paraloom.tools.process",
    "paraloom.tracing",
    "paraloom.tracing.attributes",
    "paraloom.tracing.calls",
    "paraloom.tracing.content",
    "paraloom.tracing.jsonl",
    "paraloom.tracing.listener",
    "paraloom.tracing.metrics",
    "paraloom.tracing.phoenix_local",
    "paraloom.tracing.phoenix_prices",
    "paraloom.tracing.propagation",
    "paraloom.tracing.setup",
    "paraloom.tracing.spanbook",
    "paraloom.tracing.spanstate",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported, name
    assert len(set(exported)) == len(exported), name
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}: {missing}"
