"""Action progress (e.g. a remote MCP tool's notifications) becomes span events,
with secrets redacted like every other text the listener writes."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from paraloom.protocols.actions import ActionCall, ActionKind, ActionResult
from paraloom.protocols.events import ActionFinished, ActionProgress, ActionStarted
from paraloom.tracing import TracingListener


def test_progress_events_become_span_events() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    listener = TracingListener(provider, secrets=["s3cret"])
    call = ActionCall(action="remote", arguments={}, run_id="r1")
    listener(
        ActionStarted(run_id="r1", call_id=call.call_id, action="remote", kind=ActionKind.TOOL)
    )
    listener(
        ActionProgress(
            run_id="r1",
            call_id=call.call_id,
            action="remote",
            progress=1,
            total=4,
            message="indexing with key s3cret",
        )
    )
    listener(
        ActionFinished(
            run_id="r1",
            call_id=call.call_id,
            kind=ActionKind.TOOL,
            result=ActionResult.success(call, "done", started_at=0.0),
        )
    )
    [span] = exporter.get_finished_spans()
    [event] = [e for e in span.events if e.name == "paraloom.action.progress"]
    assert event.attributes is not None
    assert (
        event.attributes["paraloom.progress"] == 1
        and event.attributes["paraloom.progress.total"] == 4
    )
    message = str(event.attributes["paraloom.progress.message"])
    assert message.startswith("indexing with key") and "s3cret" not in message
