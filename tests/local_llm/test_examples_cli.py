"""The CLI against the local server through OPENAI_BASE_URL, as a user runs it:
``examples/research.yaml`` unchanged, and ``examples/local/capitals.yaml`` (an agent with
a tool in ``tool_mode: json``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paraloom.testing.llama_server import LlamaServer

from .conftest import MEASURED

pytestmark = [pytest.mark.local_llm, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]


def paraloom_run(server: LlamaServer, *args: str) -> tuple[int, dict[str, Any], str]:
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "paraloom.cli", "run", *args, "--json", "--no-store"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stderr


def test_research_example_runs_unchanged_against_the_local_server(llama: LlamaServer) -> None:
    code, result, stderr = paraloom_run(
        llama, "examples/research.yaml", "--input", "topic=home batteries", "--budget", "0.25"
    )
    MEASURED["research.yaml"] = (
        f"exit {code}, status {result.get('status')}, cost {result.get('cost_usd')}, "
        f"error {result.get('error')!r}, output {str(result.get('output'))[:300]!r}"
    )
    # What SmolLM2-135M plans is recorded above, not judged (it varies with the batch the
    # server runs it in): it decides "final" at once (ok, no answer) or writes plans that
    # fail validation until the repair attempts run out. Either way the run must end as
    # paraloom promises: a JSON result, no traceback, real calls priced at the example's
    # (OpenAI) prices, and a planner failure named as one.
    assert (code, result["status"]) in {(0, "ok"), (1, "failed")}, (result, stderr)
    assert Decimal(str(result["cost_usd"])) > 0
    if result["status"] == "failed":
        assert "the planner gave no valid reply" in (result["error"] or ""), result


def test_tool_example_runs_against_the_local_server(llama: LlamaServer) -> None:
    code, result, stderr = paraloom_run(
        llama, "examples/local/capitals.yaml", "--input", "country=Japan"
    )
    MEASURED["capitals.yaml"] = (
        f"exit {code}, {result.get('status')}: {result.get('output')!r} {result.get('error')!r}"
    )
    assert code == 0, (result, stderr)
    assert result["status"] == "ok" and result["output"]
