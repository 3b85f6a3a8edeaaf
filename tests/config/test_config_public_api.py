"""Every name in ``__all__`` of the config and CLI modules exists."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "paraloom.config",
    "paraloom.config.build",
    "paraloom.config.checks",
    "paraloom.config.errors",
    "paraloom.config.graph",
    "paraloom.config.load",
    "paraloom.config.projection",
    "paraloom.config.schema",
    "paraloom.config.selector",
    "paraloom.config.source",
    "paraloom.cli",
    "paraloom.cli.app",
    "paraloom.cli.graph",
    "paraloom.cli.inputs",
    "paraloom.cli.output",
    "paraloom.cli.progress",
    "paraloom.cli.render",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported, name
    assert len(set(exported)) == len(exported)
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}: {missing}"
