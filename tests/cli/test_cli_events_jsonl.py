"""``paraloom run --events jsonl``: ten agents stream at once; a script rebuilds each
branch's text from the JSON lines, by subtask id, equal to the final outputs."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from branches import BRANCHES, topic_of
from cli_run import run_cli

from paraloom.testing import Reply, Streamed
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
version: 1
models:
  small: {model_id: gpt-small, input_price_per_m: 0.15, output_price_per_m: 0.60}
agents:
  writer:
    instructions: Write.
    model: small
    max_tokens: 200
workflows:
  main:
    subtasks:
""" + "".join(
    f"      - {{id: b{n}, action: writer, arguments: {{task: 'Write on topic {n}'}}}}\n"
    for n in range(BRANCHES)
)


def branch_text(n: int) -> str:
    return f"Branch {n}: " + " ".join(f"w{n}.{k}" for k in range(15))


def handler(req: RecordedRequest) -> Streamed:
    n = topic_of(req)
    reply = Reply(branch_text(n), input_tokens=20 + n, output_tokens=12 + n)
    return Streamed(reply, chunk_chars=4, chunk_delay_s=0.002)


def paraloom(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=ROOT, env=env)


@pytest.mark.timeout(120)
def test_events_jsonl_rebuilds_every_branch(tmp_path: Path) -> None:
    config = tmp_path / "ten.yaml"
    config.write_text(CONFIG)
    with OpenAITestServer(handler=handler) as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "k"}
        proc = paraloom("run", str(config), "--events", "jsonl", "--no-store", env=env)
        streamed_requests = server.requests
        plain = paraloom("run", str(config), "--json", "--no-store", env=env)
    assert proc.returncode == 0, proc.stderr
    assert plain.returncode == 0, plain.stderr
    lines: list[dict[str, Any]] = [json.loads(line) for line in proc.stdout.splitlines()]
    assert all(r.body.stream for r in streamed_requests)
    texts: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for ev in lines:
        if ev["type"] == "llm_delta" and ev["kind"] == "text":
            texts[ev["subtask_id"]].append((ev["seq"], ev["text"]))
    outputs = {
        ev["subtask_id"]: ev["result"]["output"] for ev in lines if ev["type"] == "subtask_finished"
    }
    assert len(outputs) == BRANCHES
    for sid, output in outputs.items():
        assert "".join(t for _, t in sorted(texts[sid])) == output == branch_text(int(sid[1:]))
    last = lines[-1]
    assert last["type"] == "run_finished" and last["status"] == "ok"
    # the same cost with streaming on (events) and off (--json)
    result = json.loads(plain.stdout)
    assert last["cost_usd"] == result["cost_usd"] and float(result["cost_usd"]) > 0


def test_events_bad_format_is_bad_input(tmp_path: Path) -> None:
    config = tmp_path / "ten.yaml"
    config.write_text(CONFIG)
    proc = paraloom("run", str(config), "--events", "xml", env={})
    assert proc.returncode == 2
    assert "--events" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stream", [True, False])
def test_yaml_stream_option_forces_or_forbids(tmp_path: Path, stream: bool) -> None:
    config = tmp_path / "ten.yaml"
    flag = "true" if stream else "false"
    config.write_text(
        CONFIG.replace("output_price_per_m: 0.60}", f"output_price_per_m: 0.60, stream: {flag}}}")
    )
    with OpenAITestServer(handler=handler) as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "k"}
        # --json has no delta listener, --events jsonl has one: the model option wins
        args = ("--json",) if stream else ("--events", "jsonl")
        proc = paraloom("run", str(config), *args, "--no-store", env=env)
        requests = server.requests
    assert proc.returncode == 0, proc.stderr
    assert len(requests) == BRANCHES
    assert all(bool(r.body.stream) is stream for r in requests)
    if not stream:
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        assert not any(ev["type"] == "llm_delta" for ev in lines)
        assert lines[-1]["type"] == "run_finished" and lines[-1]["status"] == "ok"
