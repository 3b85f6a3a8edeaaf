"""A span exporter writing one JSON object per span per line, and a validating reader."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["JsonlSpan", "JsonlSpanExporter", "read_jsonl_spans", "span_to_dict"]


class JsonlSpan(BaseModel):
    """One line of a ``jsonl:`` trace file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    span_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    parent_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$")
    kind: str
    start_time_ns: int
    end_time_ns: int
    status: str
    status_description: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    events: list[dict[str, Any]] = Field(default_factory=list)
    resource: dict[str, Any] = Field(default_factory=dict)


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    return {
        "name": span.name,
        "trace_id": format_trace_id(ctx.trace_id),
        "span_id": format_span_id(ctx.span_id),
        "parent_id": format_span_id(span.parent.span_id) if span.parent else None,
        "kind": span.kind.name,
        "start_time_ns": span.start_time or 0,
        "end_time_ns": span.end_time or 0,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {
                "name": ev.name,
                "time_ns": ev.timestamp,
                "attributes": {k: _plain(v) for k, v in (ev.attributes or {}).items()},
            }
            for ev in span.events
        ],
        "resource": {k: _plain(v) for k, v in span.resource.attributes.items()},
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class JsonlSpanExporter(SpanExporter):
    """Appends spans to ``path`` (created with its parent directories), one per line.

    Use it behind a ``BatchSpanProcessor`` so file writes happen off the event loop.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(
            json.dumps(span_to_dict(s), ensure_ascii=False, default=str) + "\n" for s in spans
        )
        with self._lock:
            if self._file is None:
                return SpanExportResult.FAILURE
            self._file.write(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with self._lock:
            if self._file is not None:
                self._file.flush()
        return True

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_jsonl_spans(path: str | Path) -> list[JsonlSpan]:
    """Read a ``jsonl:`` trace file; a bad line raises ``ValueError`` naming file and line."""
    spans: list[JsonlSpan] = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                spans.append(JsonlSpan.model_validate_json(line))
            except ValidationError as exc:
                raise ValueError(f"{path}:{n}: not a span record: {exc}") from exc
    return spans
