from __future__ import annotations

import importlib

import pytest
from opentelemetry import trace

import paraloom.tracing

from .diamond import build_diamond


@pytest.mark.anyio
async def test_cli_entry_point_is_exported(capsys: pytest.CaptureFixture[str]) -> None:
    """``tracing_listener_for`` (what ``paraloom run --trace`` uses) is public, rejects an
    unknown target by name, traces a run, and leaves OpenTelemetry's global provider
    alone as documented."""
    entry = paraloom.tracing.tracing_listener_for
    assert "tracing_listener_for" in paraloom.tracing.__all__
    # (``paraloom.tracing.setup`` is also a function: take the module from importlib)
    assert entry is importlib.import_module("paraloom.tracing.setup").tracing_listener_for
    with pytest.raises(ValueError, match="zipkin"):
        entry("zipkin")
    before = trace.get_tracer_provider()
    listener, shutdown = entry("console")
    d = build_diamond(listeners=[listener])
    result = await d.orchestrator.run(d.task)
    shutdown()
    assert result.ok
    assert trace.get_tracer_provider() is before
    assert '"name": "invoke_workflow diamond"' in capsys.readouterr().err
