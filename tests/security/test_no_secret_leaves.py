"""No secret leaves: not through errors, spans (content capture on or off), the run
store (``store: {redact: true}``), ``runs show --json``, trajectory exports, the
``RunResult`` or the CLI's stdout/stderr.

The provider echoes every request header in its 401 body (like a careless gateway); the
keys come from the environment (``${env:…}``), from a literal ``headers:`` value
(``X-Api-Key``) and an Azure-style ``api-key`` header; a tool returns common secret
shapes and an environment secret; another tool raises with a password in its message;
the model asks for a tool call whose arguments carry an ``api_key`` field.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio.to_thread
import pytest
from cli_run import run_cli
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from paraloom.config.build import open_project
from paraloom.config.load import load_config
from paraloom.testing import Reply
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest, ServerReply
from paraloom.testing.replies import tool_call
from paraloom.tracing import TracingListener
from paraloom.tracing.jsonl import span_to_dict

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]

GOOD_KEY = "good-key-7f3a9c1e5b2d"  # the key the provider accepts (no known shape)
BAD_KEY = "bad-key-0d9e8f7a6b5c"  # a wrong key: the provider answers 401, echoing it
AZURE_KEY = "azure-hdr-4c3b2a1908f7"  # an Azure-style `api-key:` header, from the env
X_API_KEY = "xapi-literal-5e6f7a8b9c0d"  # an `X-Api-Key:` header written in the YAML
STRIPE_ENV = "stripe-plain-1a2b3c4d5e"  # STRIPE_KEY: only its name says it is secret
TOOL_ARG = "argsecret-Qx81zT"  # an `api_key` argument of a model's tool call
PASSWORD = "hunter2-Zq9w"  # in a tool's exception message
SHAPES = {
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_" + "R4nd0mT0k3n" * 4,
    "slack": "xoxb-123456789012-abcdefghijkl",
    "openai": "sk-proj-" + "Abc123Def456" * 3,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9",
}
SECRETS = [
    GOOD_KEY,
    BAD_KEY,
    AZURE_KEY,
    X_API_KEY,
    STRIPE_ENV,
    TOOL_ARG,
    PASSWORD,
    *SHAPES.values(),
]

TOOLS = f'''
import os

def leak(q: str, api_key: str = "") -> str:
    """Returns what a careless API returns."""
    return "aws {SHAPES["aws"]} gh {SHAPES["github"]} slack {SHAPES["slack"]} " \\
        "sk {SHAPES["openai"]} jwt {SHAPES["jwt"]} stripe " + os.environ["STRIPE_KEY"]

def boom() -> str:
    """Fails."""
    raise RuntimeError("login failed: password {PASSWORD} rejected")
'''


def config(base_url: str) -> str:
    return f"""
models:
  good:
    model_id: gpt-good-1
    base_url: {base_url}
    api_key: ${{env:PL_GOOD_KEY}}
    input_price_per_m: 1
    output_price_per_m: 2
  bad:
    model_id: gpt-bad-1
    base_url: {base_url}
    api_key: ${{env:PL_BAD_KEY}}
    headers:
      api-key: ${{env:PL_AZURE_KEY}}
      X-Api-Key: {X_API_KEY}
store: {{redact: true}}
tools:
  leak: {{python: "secret_tools:leak"}}
  boom: {{python: "secret_tools:boom"}}
agents:
  helper:
    instructions: Use the leak tool.
    model: good
    actions: [leak]
  denied:
    instructions: Say hi.
    model: bad
workflows:
  main:
    policy: {{on_failure: continue}}
    subtasks:
      - {{id: fetch, action: leak, arguments: {{q: direct}}}}
      - {{id: crash, action: boom, arguments: {{}}}}
      - {{id: ask, action: helper, arguments: {{task: call leak}}}}
      - {{id: refused, action: denied, arguments: {{task: hi}}}}
"""


def provider(rec: RecordedRequest) -> ServerReply:
    if any(m.role == "tool" for m in rec.body.messages):
        return Reply(content="done")
    return Reply.calls(tool_call("leak", {"q": "via agent", "api_key": TOOL_ARG}))


ENV = {
    "PL_GOOD_KEY": GOOD_KEY,
    "PL_BAD_KEY": BAD_KEY,
    "PL_AZURE_KEY": AZURE_KEY,
    "STRIPE_KEY": STRIPE_ENV,
}


def leaks(blob: str) -> list[str]:
    return [s for s in SECRETS if s in blob]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env=ENV, drop=("OPENAI_", "PARALOOM_", "OTEL_"))


def cli_exports(project: Path) -> dict[str, str]:
    """Every byte the CLI exports, for a run with content capture off and one with it on."""
    exported: dict[str, str] = {}
    for mode in ("off", "on"):
        store = project / f"runs-{mode}.sqlite"
        trace = project / f"trace-{mode}.jsonl"
        args = [
            "run",
            "flow.yaml",
            "--json",
            "--store",
            str(store),
            "--trace",
            f"jsonl:{trace}",
        ]
        if mode == "on":
            args.append("--capture-content")
        run = cli(*args, cwd=project)
        assert run.returncode == 1, run.stderr  # two subtasks fail on purpose
        out = json.loads(run.stdout)
        exported[f"run {mode} stdout"] = run.stdout
        exported[f"run {mode} stderr"] = run.stderr
        exported[f"trace {mode}"] = trace.read_text()
        show = cli("runs", "show", out["run_id"], "--json", "--store", str(store), cwd=project)
        assert show.returncode == 0, show.stderr
        exported[f"runs show {mode}"] = show.stdout + show.stderr
        export = cli("runs", "export-trajectories", "--store", str(store), cwd=project)
        assert export.returncode == 0, export.stderr
        assert export.stdout.count("\n") >= 2  # the agent's two LLM calls at least
        exported[f"export {mode}"] = export.stdout + export.stderr
        for f in [f for f in project.glob(f"runs-{mode}.sqlite*") if f.is_file()]:
            exported[f.name] = f.read_bytes().decode("latin-1")
    return exported


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "secret_tools.py").write_text(TOOLS)
    return tmp_path


async def test_no_secret_in_any_exported_byte(project: Path) -> None:
    async with OpenAITestServer(
        handler=provider, api_key=GOOD_KEY, echo_headers=True
    ).running() as server:
        (project / "flow.yaml").write_text(config(server.base_url))
        exported = await anyio.to_thread.run_sync(cli_exports, project)
        trace_on = exported["trace on"]

        # In process: the RunResult, and spans with capture off and on.
        for k, v in ENV.items():
            os.environ[k] = v
        try:
            for capture in (False, True):
                exporter = InMemorySpanExporter()
                provider_ = TracerProvider()
                provider_.add_span_processor(SimpleSpanProcessor(exporter))
                listener = TracingListener(provider_, capture_content=capture)
                loaded = load_config([project / "flow.yaml"])
                sys.path.insert(0, str(project))
                async with open_project(loaded, "main") as p:
                    p.orchestrator.listeners.append(listener)
                    p.orchestrator.capture_content = capture
                    result = await p.orchestrator.run(None, budget=p.new_budget())
                exported[f"RunResult capture={capture}"] = result.model_dump_json()
                exported[f"spans capture={capture}"] = json.dumps(
                    [span_to_dict(s) for s in exporter.get_finished_spans()]
                )
        finally:
            for k in ENV:
                os.environ.pop(k, None)
            sys.path.remove(str(project))

    found = {where: leaks(blob) for where, blob in exported.items()}
    assert {where: f for where, f in found.items() if f} == {}
    # The secrets were really there to leak: the provider saw the keys, the 401 echoed them
    assert any(r.authorized for r in server.requests)
    assert any(not r.authorized for r in server.requests)
    assert "[REDACTED]" in exported["RunResult capture=False"]
    assert "[REDACTED]" in exported["trace off"]
    assert "api_key" in trace_on and "tool_calls" in trace_on  # the arguments were captured
    assert len(exported) >= 16
