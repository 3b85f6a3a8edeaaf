"""Set-up helpers (the only place the OpenTelemetry SDK is used).

Targets:

- ``"phoenix"``: OTLP/HTTP to Arize Phoenix: ``$PHOENIX_COLLECTOR_ENDPOINT/v1/traces``,
  default ``http://127.0.0.1:6006/v1/traces`` (``PHOENIX_API_KEY`` → bearer header,
  ``PHOENIX_PROJECT_NAME`` → the project).
- ``"otlp"``: OTLP/HTTP configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables
  (endpoint, headers, timeout, compression); default ``http://localhost:4318``.
- ``"otlp://host:port"`` (``otlps://`` for TLS) or an ``http(s)://`` URL: OTLP/HTTP there.
- ``"console"``: spans as JSON on stderr (stdout stays for results).
- ``"jsonl:FILE"``: one JSON span per line appended to ``FILE``.

``None`` reads ``PARALOOM_TRACE``, else means ``"otlp"``. ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` set the resource; ``OTEL_SDK_DISABLED=true`` turns tracing
off. GenAI metrics are exported over OTLP for the ``otlp`` targets (not ``phoenix``,
which only takes traces) unless ``OTEL_METRICS_EXPORTER=none``.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from paraloom.protocols.events import Event
from paraloom.tracing.attributes import OpenInference
from paraloom.tracing.jsonl import JsonlSpanExporter
from paraloom.tracing.listener import TracingListener

__all__ = [
    "PHOENIX_DEFAULT_ENDPOINT",
    "Target",
    "Tracing",
    "parse_target",
    "reachable",
    "setup",
    "span_exporter_for",
    "tracing_listener_for",
]

PHOENIX_DEFAULT_ENDPOINT = "http://127.0.0.1:6006"
_INSTALL_HINT = 'the OTLP exporter is not installed; run: pip install "paraloom[otlp]"'
_TARGETS = "'phoenix', 'otlp', 'otlp://host:port', 'http(s)://…', 'console' or 'jsonl:FILE'"


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed tracing target: ``kind`` is otlp, phoenix, console, jsonl or off."""

    kind: str
    endpoint: str | None = None
    path: str | None = None


def parse_target(target: str | None) -> Target:
    """Parse a ``--trace`` value; raises ``ValueError`` naming the accepted forms."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Target("off")
    raw = (target if target is not None else os.environ.get("PARALOOM_TRACE", "otlp")).strip()
    low = raw.lower()
    if low in {"off", "none", ""}:
        return Target("off")
    if low == "console":
        return Target("console")
    if low == "otlp":
        return Target("otlp")
    if low == "phoenix":
        base = os.environ.get("PHOENIX_COLLECTOR_ENDPOINT") or PHOENIX_DEFAULT_ENDPOINT
        return Target("phoenix", _traces_url(base))
    if low.startswith("jsonl:"):
        path = raw[len("jsonl:") :].strip()
        if not path:
            raise ValueError(
                "tracing target 'jsonl:FILE' needs a file name, e.g. jsonl:trace.jsonl"
            )
        return Target("jsonl", path=path)
    if low.startswith(("otlp://", "otlps://", "http://", "https://")):
        scheme = {"otlp": "http", "otlps": "https"}.get(low.split("://", 1)[0])
        url = f"{scheme}://{raw.split('://', 1)[1]}" if scheme else raw
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"tracing target {raw!r} has no host")
        return Target("otlp", _traces_url(url))
    raise ValueError(f"unknown tracing target {raw!r}; use {_TARGETS}")


def reachable(target: Target, timeout_s: float = 1.0) -> bool:
    """Whether the collector of an OTLP/Phoenix target accepts TCP connections (other
    kinds: always). A dead endpoint would otherwise cost warnings per batch and the
    exporter's retries (~13 s) at exit."""
    if target.endpoint is None:
        return True
    parts = urlsplit(target.endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _traces_url(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1/traces") else url + "/v1/traces"


def _otlp_http() -> tuple[Any, Any]:
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(_INSTALL_HINT) from exc
    return OTLPSpanExporter, OTLPMetricExporter


def span_exporter_for(target: Target) -> SpanExporter:
    if target.kind == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    if target.kind == "jsonl":
        assert target.path is not None
        return JsonlSpanExporter(target.path)
    span_cls, _ = _otlp_http()
    headers: dict[str, str] | None = None
    if target.kind == "phoenix" and os.environ.get("PHOENIX_API_KEY"):
        headers = {"authorization": f"Bearer {os.environ['PHOENIX_API_KEY']}"}
    exporter: SpanExporter = span_cls(endpoint=target.endpoint, headers=headers)
    return exporter


def _metric_exporter_for(target: Target) -> MetricExporter | None:
    if target.kind != "otlp" or os.environ.get("OTEL_METRICS_EXPORTER", "").lower() == "none":
        return None
    _, metric_cls = _otlp_http()
    endpoint = None
    if target.endpoint is not None:
        endpoint = target.endpoint.removesuffix("/v1/traces") + "/v1/metrics"
    exporter: MetricExporter = metric_cls(endpoint=endpoint)
    return exporter


@dataclass(slots=True)
class Tracing:
    """What :func:`setup` built: the listener to pass to an Orchestrator, and the SDK
    providers behind it. Call :meth:`shutdown` at exit (it flushes pending spans)."""

    listener: Callable[[Event], None]
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider | None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        ok = True
        if self.tracer_provider is not None:
            ok = self.tracer_provider.force_flush(timeout_millis)
        if self.meter_provider is not None:
            ok = self.meter_provider.force_flush(timeout_millis) and ok
        return ok

    def shutdown(self) -> None:
        if isinstance(self.listener, TracingListener):
            self.listener.close()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def _off(event: Event) -> None:
    """The listener of a disabled set-up."""


def setup(
    target: str | None = None,
    *,
    capture_content: bool | None = None,
    service_name: str = "paraloom",
    project_name: str | None = None,
    set_global: bool = True,
    secrets: tuple[str, ...] = (),
    session_id: str | None = None,
) -> Tracing:
    """Build the SDK providers for ``target`` and a :class:`TracingListener` on them.

    With ``set_global`` the providers also become OpenTelemetry's global ones (once per
    process), so other instrumentations of a service land in the same traces.
    """
    parsed = parse_target(target)
    if parsed.kind == "off":
        return Tracing(listener=_off, tracer_provider=None, meter_provider=None)
    attrs: dict[str, str] = {}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = service_name
    project = project_name or os.environ.get("PHOENIX_PROJECT_NAME")
    if project:
        attrs[OpenInference.PROJECT_NAME] = project
    resource = Resource.create(attrs)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter_for(parsed)))
    meter_provider: MeterProvider | None = None
    metric_exporter = _metric_exporter_for(parsed)
    if metric_exporter is not None:
        reader = PeriodicExportingMetricReader(metric_exporter)
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        if meter_provider is not None:
            metrics.set_meter_provider(meter_provider)
    listener = TracingListener(
        tracer_provider,
        meter_provider,
        capture_content=capture_content,
        secrets=secrets,
        session_id=session_id,
    )
    return Tracing(
        listener=listener, tracer_provider=tracer_provider, meter_provider=meter_provider
    )


def tracing_listener_for(
    target: str | None, *, capture_content: bool | None = None, session_id: str | None = None
) -> tuple[Callable[[Event], None], Callable[[], None]]:
    """For ``paraloom run --trace TARGET``: ``(listener, shutdown)``. Pass the listener to
    the Orchestrator (``listeners=[listener]``) and call ``shutdown()`` when the run ends:
    it flushes the spans. Leaves OpenTelemetry's global providers alone. ``session_id``
    groups the runs (``session.id``; default: each top-level run is its own session)."""
    tracing = setup(
        target, capture_content=capture_content, set_global=False, session_id=session_id
    )
    return tracing.listener, tracing.shutdown
