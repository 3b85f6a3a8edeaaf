"""Spans handed straight to the SDK's processors (paraloom.tracing.fastspan) are the
spans the SDK's own tracer makes from the same events; and whenever that shortcut could
differ (another sampler, a processor that looks at spans as they start), the SDK's
tracer makes them."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from paraloom.orchestrator.events import scrubbing_listener
from paraloom.protocols.events import ActionStarted, Event, LLMCallStarted
from paraloom.tracing import TracingListener
from paraloom.tracing.fastspan import FastSpan, SpanFactory

from .diamond import build_diamond

pytestmark = pytest.mark.anyio


class StartWatcher(SpanProcessor):
    """A processor that looks at spans as they start (the shortcut must not skip it)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        self.started.append(span.name)


async def diamond_events() -> list[Event]:
    events: list[Event] = []
    d = build_diamond(
        listeners=[scrubbing_listener(events.append)], capture_content=True, barrier=False
    )
    assert (await d.orchestrator.run(d.task)).ok
    return events


def replay(
    events: list[Event], *processors: SpanProcessor, **provider: Any
) -> tuple[list[ReadableSpan], list[str]]:
    """The spans a listener on a fresh provider exports for ``events``, and the kinds of
    span it started for the calls (``fast``: FastSpan, else the SDK's)."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider(**provider)
    for p in (SimpleSpanProcessor(exporter), *processors):
        tp.add_span_processor(p)
    listener = TracingListener(tp, capture_content=True)
    kinds: list[str] = []
    for event in events:
        listener(event)
        key = (
            event.call_id
            if isinstance(event, ActionStarted)
            else event.llm_call_id
            if isinstance(event, LLMCallStarted)
            else None
        )
        if key is not None:
            kinds.append("fast" if isinstance(listener.span_for(key), FastSpan) else "sdk")
    tp.shutdown()
    return list(exporter.get_finished_spans()), kinds


def canonical(spans: list[ReadableSpan]) -> list[Any]:
    """Everything exported but the random ids (parents by name and start time)."""
    by_id = {s.context.span_id: s for s in spans}

    def where(s: ReadableSpan | None) -> Any:
        return None if s is None else (s.name, s.start_time)

    out = []
    for s in spans:
        parent = by_id.get(s.parent.span_id) if s.parent is not None else None
        out.append(
            (
                s.name,
                s.kind,
                s.start_time,
                s.end_time,
                where(parent),
                s.context.trace_id == (parent.context.trace_id if parent else s.context.trace_id),
                s.context.trace_flags,
                s.status.status_code,
                s.status.description,
                dict(s.attributes or {}),
                s.dropped_attributes,
                [(e.name, e.timestamp, dict(e.attributes or {})) for e in s.events],
                s.resource.attributes,
                s.instrumentation_scope,
            )
        )
    return sorted(out, key=repr)


@pytest.mark.parametrize("limits", [None, SpanLimits(max_span_attributes=6)])
async def test_fast_spans_export_what_the_sdk_tracer_exports(limits: SpanLimits | None) -> None:
    events = await diamond_events()
    provider: dict[str, Any] = {} if limits is None else {"span_limits": limits}
    fast, fast_kinds = replay(events, **provider)
    watcher = StartWatcher()
    sdk, sdk_kinds = replay(events, watcher, **provider)
    assert set(fast_kinds) == {"fast"} and len(fast_kinds) == 12  # 4 tools, 2 agents, 6 LLM calls
    assert set(sdk_kinds) == {"sdk"}  # a processor watching starts: the SDK's tracer
    assert sorted(watcher.started) == sorted(s.name for s in sdk)
    assert canonical(fast) == canonical(sdk)
    if limits is not None:
        assert all(len(s.attributes or {}) <= 6 for s in fast)
        assert any(s.dropped_attributes for s in fast)


async def test_a_sampler_that_drops_children_is_obeyed() -> None:
    events = await diamond_events()
    sampler = ParentBased(ALWAYS_ON, local_parent_sampled=ALWAYS_OFF)
    spans, kinds = replay(events, sampler=sampler)
    assert set(kinds) == {"sdk"}
    assert [s.name for s in spans] == ["invoke_workflow diamond"]  # children not sampled


def test_span_calls_do_what_they_do_on_the_sdk_span() -> None:
    def run(*extra: SpanProcessor) -> tuple[Span, list[ReadableSpan]]:
        exporter = InMemorySpanExporter()
        tp = TracerProvider(span_limits=SpanLimits(max_event_attributes=2))
        for p in (SimpleSpanProcessor(exporter), *extra):
            tp.add_span_processor(p)
        tracer = tp.get_tracer("paraloom")
        root = tracer.start_span("root", start_time=1)
        parent = trace.set_span_in_context(root)
        span = SpanFactory(tracer).start("child", parent, SpanKind.CLIENT, {"a": "x"}, 2)
        span.set_attribute("b", [1, 2])
        span.add_event("e", {"k": "v", "k2": [1], "k3": 3}, 3)  # one attribute too many
        span.record_exception(ValueError("boom"), timestamp=4)
        span.update_name("child renamed")
        span.set_status(Status(StatusCode.ERROR, "bad"))
        span.end(5)
        span.set_attribute("late", 1)  # after the end: ignored
        root.end(6)
        return span, list(exporter.get_finished_spans())

    fast_span, fast = run()
    sdk_span, sdk = run(StartWatcher())
    assert isinstance(fast_span, FastSpan) and not isinstance(sdk_span, FastSpan)
    assert canonical(fast) == canonical(sdk)
