from __future__ import annotations

import paraloom.store


def test_package_exports() -> None:
    assert set(paraloom.store.__all__) >= {
        "RunStore",
        "RunInfo",
        "RunSummary",
        "RunNotFoundError",
        "StoreError",
        "default_store_path",
    }
