"""OpenTelemetry tracing for paraloom runs: GenAI semantic conventions + OpenInference.

Tracing subscribes to the event stream (a :class:`TracingListener`) and never drives
logic. ``setup("phoenix")`` (or ``"otlp://host:port"``, ``"console"``, ``"jsonl:FILE"``)
builds the SDK providers and the listener; the CLI's ``--trace`` uses
:func:`tracing_listener_for`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paraloom._lazy import lazy_package

if TYPE_CHECKING:
    from paraloom.tracing.attributes import GenAI, OpenInference, Paraloom, Redactor
    from paraloom.tracing.content import CAPTURE_ENV, capture_from_env
    from paraloom.tracing.jsonl import JsonlSpan, JsonlSpanExporter, read_jsonl_spans
    from paraloom.tracing.listener import TracingListener
    from paraloom.tracing.metrics import COST_METRIC, DURATION_METRIC, TOKEN_USAGE_METRIC
    from paraloom.tracing.propagation import SpanContextAction, with_span_context
    from paraloom.tracing.setup import Tracing, parse_target, setup, tracing_listener_for

# Imported on first use: the OpenTelemetry SDK takes ~0.15 s to import, and a run
# without --trace only reads the content-capture setting (``tracing.content``).
lazy_package(
    __name__,
    {
        "attributes": ("GenAI", "OpenInference", "Paraloom", "Redactor"),
        "content": ("CAPTURE_ENV", "capture_from_env"),
        "jsonl": ("JsonlSpan", "JsonlSpanExporter", "read_jsonl_spans"),
        "listener": ("TracingListener",),
        "metrics": ("COST_METRIC", "DURATION_METRIC", "TOKEN_USAGE_METRIC"),
        "propagation": ("SpanContextAction", "with_span_context"),
        "setup": ("Tracing", "parse_target", "setup", "tracing_listener_for"),
    },
)

__all__ = [
    "CAPTURE_ENV",
    "COST_METRIC",
    "DURATION_METRIC",
    "TOKEN_USAGE_METRIC",
    "GenAI",
    "JsonlSpan",
    "JsonlSpanExporter",
    "OpenInference",
    "Paraloom",
    "Redactor",
    "SpanContextAction",
    "Tracing",
    "TracingListener",
    "capture_from_env",
    "parse_target",
    "read_jsonl_spans",
    "setup",
    "tracing_listener_for",
    "with_span_context",
]
