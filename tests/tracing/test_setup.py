"""Set-up targets: jsonl, console, OTLP/HTTP (a local receiver), phoenix, env vars, extras."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from paraloom.tracing import parse_target, read_jsonl_spans, tracing_listener_for
from paraloom.tracing.setup import Target

from .diamond import build_diamond

pytestmark = pytest.mark.anyio

DIAMOND_SPANS = {
    "invoke_workflow diamond",
    "plan demo_planner",
    "chat mini-2026",
    "chat large-2026",
    "execute_tool fetch",
    "invoke_agent analyst_a",
    "invoke_agent analyst_b",
    "execute_tool lookup",
    "execute_tool merge",
}


def test_parse_target(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PHOENIX_COLLECTOR_ENDPOINT", "PARALOOM_TRACE", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    assert parse_target("phoenix") == Target("phoenix", "http://127.0.0.1:6006/v1/traces")
    assert parse_target("otlp://collector:4318") == Target(
        "otlp", "http://collector:4318/v1/traces"
    )
    assert parse_target("otlps://c.example:443") == Target(
        "otlp", "https://c.example:443/v1/traces"
    )
    assert parse_target("http://h:1/v1/traces") == Target("otlp", "http://h:1/v1/traces")
    assert parse_target("otlp") == Target("otlp")
    assert parse_target(None) == Target("otlp")
    assert parse_target("console") == Target("console")
    assert parse_target("jsonl:out/t.jsonl") == Target("jsonl", path="out/t.jsonl")
    assert parse_target("off") == Target("off")
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", "http://phx:7000/")
    assert parse_target("phoenix") == Target("phoenix", "http://phx:7000/v1/traces")
    monkeypatch.setenv("PARALOOM_TRACE", "console")
    assert parse_target(None) == Target("console")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert parse_target("console") == Target("off")
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    for bad in ("jsonl:", "zipkin", "otlp://"):
        with pytest.raises(ValueError, match="tracing target"):
            parse_target(bad)


async def test_jsonl_target(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "run.jsonl"
    listener, shutdown = tracing_listener_for(f"jsonl:{path}")
    d = build_diamond(listeners=[listener])
    result = await d.orchestrator.run(d.task)
    shutdown()
    spans = read_jsonl_spans(path)
    assert {s.name for s in spans} == DIAMOND_SPANS and len(spans) == 15
    by_id = {s.span_id: s for s in spans}
    (root,) = [s for s in spans if s.parent_id is None]
    assert root.attributes["paraloom.run.id"] == result.run_id
    assert root.resource["service.name"] == "paraloom"
    lookups = [s for s in spans if s.name == "execute_tool lookup"]
    assert {by_id[s.parent_id].name for s in lookups if s.parent_id} == {
        "invoke_agent analyst_a",
        "invoke_agent analyst_b",
    }
    assert {s.kind for s in spans if s.name.startswith("chat")} == {"CLIENT"}

    path.write_text(path.read_text() + '{"name": "x"}\n')
    with pytest.raises(ValueError, match=r"run\.jsonl:16: not a span record"):
        read_jsonl_spans(path)


async def test_console_target_writes_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    listener, shutdown = tracing_listener_for("console")
    d = build_diamond(listeners=[listener])
    await d.orchestrator.run(d.task)
    shutdown()
    out = capsys.readouterr()
    assert '"name": "invoke_workflow diamond"' in out.err
    assert "invoke_workflow" not in out.out


async def test_disabled_sdk_gives_a_silent_listener(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``OTEL_SDK_DISABLED=true`` wins over ``--trace console``: a whole run through the
    listener exports nothing (the same run writes spans to stderr when enabled)."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    listener, shutdown = tracing_listener_for("console")
    d = build_diamond(listeners=[listener])
    result = await d.orchestrator.run(d.task)
    shutdown()
    assert result.ok
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "")


def test_missing_otlp_extra_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ImportError, match=r'pip install "paraloom\[otlp\]"'):
        tracing_listener_for("otlp://127.0.0.1:4318")


# -- OTLP/HTTP against a local receiver ------------------------------------------------


@dataclass
class Receiver:
    url: str
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def spans(self) -> list[Any]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        out: list[Any] = []
        for path, _, body in self.posts:
            if path != "/v1/traces":
                continue
            req = ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    out.extend((span, resource) for span in ss.spans)
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    posts: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            posts.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}", posts)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_otlp_target_url(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-paraloom-test=yes")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "my-service")
    target = receiver.url.replace("http://", "otlp://")
    listener, shutdown = tracing_listener_for(target)
    d = build_diamond(listeners=[listener])
    await d.orchestrator.run(d.task)
    shutdown()
    spans = receiver.spans()
    assert {s.name for s, _ in spans} == DIAMOND_SPANS and len(spans) == 15
    assert {r["service.name"] for _, r in spans} == {"my-service"}
    paths = {p for p, _, _ in receiver.posts}
    assert paths == {"/v1/traces", "/v1/metrics"}
    assert all(h.get("x-paraloom-test") == "yes" for _, h, _ in receiver.posts)


async def test_otlp_endpoint_from_env(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.delenv("PARALOOM_TRACE", raising=False)
    listener, shutdown = tracing_listener_for(None)
    d = build_diamond(listeners=[listener])
    await d.orchestrator.run(d.task)
    shutdown()
    assert len(receiver.spans()) == 15
    assert {p for p, _, _ in receiver.posts} == {"/v1/traces"}


async def test_phoenix_target(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", receiver.url)
    monkeypatch.setenv("PHOENIX_PROJECT_NAME", "paraloom-tests")
    monkeypatch.setenv("PHOENIX_API_KEY", "phx-key-0123456789")
    listener, shutdown = tracing_listener_for("phoenix")
    d = build_diamond(listeners=[listener])
    await d.orchestrator.run(d.task)
    shutdown()
    spans = receiver.spans()
    assert len(spans) == 15
    assert {r["openinference.project.name"] for _, r in spans} == {"paraloom-tests"}
    assert {p for p, _, _ in receiver.posts} == {"/v1/traces"}  # Phoenix takes no metrics
    assert all(h.get("authorization") == "Bearer phx-key-0123456789" for _, h, _ in receiver.posts)
    assert all(b"phx-key-0123456789" not in body for _, _, body in receiver.posts)


def test_setup_for_services_sets_the_global_providers(tmp_path: Path) -> None:
    """In a subprocess: the global OpenTelemetry providers can only be set once."""
    code = (
        "from opentelemetry import trace\n"
        "from paraloom.tracing import setup\n"
        f"t = setup('jsonl:{tmp_path / 'g.jsonl'}', service_name='svc')\n"
        "assert trace.get_tracer_provider() is t.tracer_provider\n"
        "with trace.get_tracer('app').start_as_current_span('request'):\n"
        "    from paraloom.protocols.events import RunStarted, RunFinished\n"
        "    t.listener(RunStarted(run_id='r', workflow='w'))\n"
        "    t.listener(RunFinished(run_id='r', workflow='w', status='ok'))\n"
        "t.shutdown()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    spans = {s.name: s for s in read_jsonl_spans(tmp_path / "g.jsonl")}
    assert set(spans) == {"request", "invoke_workflow w"}
    # A run started inside a service's request span nests under it.
    assert spans["invoke_workflow w"].parent_id == spans["request"].span_id
    assert spans["request"].resource["service.name"] == "svc"
