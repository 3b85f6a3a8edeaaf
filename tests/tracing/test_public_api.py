from __future__ import annotations

import importlib

import pytest

import paraloom.tracing

MODULES = [
    "paraloom.tracing",
    "paraloom.tracing.attributes",
    "paraloom.tracing.content",
    "paraloom.tracing.jsonl",
    "paraloom.tracing.listener",
    "paraloom.tracing.metrics",
    "paraloom.tracing.phoenix_local",
    "paraloom.tracing.propagation",
    "paraloom.tracing.setup",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_all_and_exports_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.{symbol}"


def test_cli_entry_point_is_exported() -> None:
    listener, shutdown = paraloom.tracing.tracing_listener_for("off")
    shutdown()
    assert callable(listener)
