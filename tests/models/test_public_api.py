"""Every name in ``__all__`` of the models/agents/testing modules exists."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "paraloom.models",
    "paraloom.models.base",
    "paraloom.models.calling",
    "paraloom.models.estimate",
    "paraloom.models.fallback",
    "paraloom.models.openai",
    "paraloom.models.pool",
    "paraloom.models.retry",
    "paraloom.models.wire",
    "paraloom.agents",
    "paraloom.agents.llm_agent",
    "paraloom.agents.output",
    "paraloom.agents.toolcalls",
    "paraloom.testing",
    "paraloom.testing.models",
    "paraloom.testing.replies",
    "paraloom.testing.openai_server",
    "paraloom.orchestrator.llm_planner",
    "paraloom.orchestrator.prompts",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported, name
    assert len(set(exported)) == len(exported)
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}: {missing}"
