from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from paraloom.tracing import TracingListener


@dataclass
class Traced:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def listener(self, **kw: Any) -> TracingListener:
        return TracingListener(self.tracer_provider, self.meter_provider, **kw)

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name!r}"
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        pid = parent.context.span_id
        kids = [s for s in self.spans if s.parent is not None and s.parent.span_id == pid]
        return sorted(kids, key=lambda s: (s.start_time or 0, s.name))

    def tree(self, span: ReadableSpan | None = None) -> Any:
        """A canonical nested form: (name, sorted children) — order-free among siblings."""
        if span is None:
            roots = [s for s in self.spans if s.parent is None]
            assert len(roots) == 1, [s.name for s in roots]
            span = roots[0]
        return (span.name, sorted((self.tree(c) for c in self.children(span)), key=repr))


@pytest.fixture
def traced() -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Traced(exporter, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()
