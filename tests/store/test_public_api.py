from __future__ import annotations

import importlib

import paraloom.store

MODULES = [
    "paraloom.store",
    "paraloom.store.apply",
    "paraloom.store.models",
    "paraloom.store.reader",
    "paraloom.store.schema",
    "paraloom.store.store",
    "paraloom.store.trajectories",
    "paraloom.store.writer",
]


def test_every_module_declares_all_and_exports_exist() -> None:
    for name in MODULES:
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), name
        for attr in module.__all__:
            assert hasattr(module, attr), f"{name}.{attr}"


def test_package_exports() -> None:
    assert set(paraloom.store.__all__) >= {
        "RunStore",
        "RunInfo",
        "RunSummary",
        "RunNotFoundError",
        "StoreError",
        "default_store_path",
    }
