"""CLI tracing options: content capture from the environment, the file or the flag, and a
tracing collector that is not running (one clear line, no wait at exit)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cli_run import run_cli

from paraloom.config.load import load_config
from paraloom.testing.openai_server import OpenAITestServer

ROOT = Path(__file__).resolve().parents[2]

FLOW = """
models:
  small: {{model_id: gpt-tiny-1, base_url: "{base_url}", api_key: sk-cli-capture-000000}}
{tracing}
agents:
  writer: {{instructions: Write one word., model: small}}
workflows:
  main:
    subtasks:
      - {{id: w, action: writer, arguments: {{task: say the magic word}}}}
"""


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env=env, drop=("OTEL_", "PARALOOM_", "PHOENIX_"), timeout=60)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(60)
def test_trace_phoenix_without_phoenix_is_one_line_and_no_wait(tmp_path: Path) -> None:
    with OpenAITestServer(["magic"] * 2) as server:
        (tmp_path / "flow.yaml").write_text(FLOW.format(base_url=server.base_url, tracing=""))
        env = {"PHOENIX_COLLECTOR_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
        started = time.monotonic()
        proc = cli("run", "flow.yaml", "--trace", "phoenix", "--no-store", cwd=tmp_path, env=env)
        elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "magic" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if "not traced" in line]
    assert len(warnings) == 1 and "phoenix serve" in warnings[0], proc.stderr
    assert "Connection refused" not in proc.stderr and "Traceback" not in proc.stderr
    assert elapsed < 10, elapsed  # the exporter's retries took ~13 s at exit before


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["env", "yaml", "flag", "off"])
def test_content_capture_reaches_the_cli_trace(tmp_path: Path, how: str) -> None:
    tracing = "tracing: {capture_content: true}" if how == "yaml" else ""
    env = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"} if how == "env" else {}
    flag = ["--capture-content"] if how == "flag" else []
    with OpenAITestServer(["abracadabra"] * 2) as server:
        (tmp_path / "flow.yaml").write_text(FLOW.format(base_url=server.base_url, tracing=tracing))
        trace = tmp_path / "trace.jsonl"
        proc = cli(
            "run",
            "flow.yaml",
            "--no-store",
            "--trace",
            f"jsonl:{trace}",
            *flag,
            cwd=tmp_path,
            env=env,
        )
    assert proc.returncode == 0, proc.stderr
    spans = [json.loads(line) for line in trace.read_text().splitlines()]
    (chat,) = [s for s in spans if s["name"].startswith("chat ")]
    assert chat["name"] == "chat gpt-tiny-1"
    attrs = chat["attributes"]
    if how == "off":
        assert not any(k.startswith(("llm.input_messages", "gen_ai.input.messages")) for k in attrs)
        assert "abracadabra" not in trace.read_text()
    else:
        assert "say the magic word" in attrs["gen_ai.input.messages"]
        assert attrs["llm.output_messages.0.message.content"] == "abracadabra"


def test_tracing_section_is_validated(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text("tracing: {capture_content: maybe}\n")
    proc = cli("validate", "flow.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "flow.yaml:1:" in proc.stderr and "capture_content" in proc.stderr
    (tmp_path / "ok.yaml").write_text("store: {redact: true}\ntracing: {capture_content: true}\n")
    config = load_config([tmp_path / "ok.yaml"]).config
    assert config.store.redact and config.tracing.capture_content
