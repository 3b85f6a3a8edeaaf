from __future__ import annotations

import paraloom.tracing


def test_cli_entry_point_is_exported() -> None:
    listener, shutdown = paraloom.tracing.tracing_listener_for("off")
    shutdown()
    assert callable(listener)
