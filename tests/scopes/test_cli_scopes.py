"""The front ends: ``paraloom budget set/show/reap``, ``run --scope/--ledger`` and
``budget.scopes`` in YAML; bad input exits 2 with a located message, no traceback, no
password."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from cli_run import run_cli
from typer.testing import CliRunner

from paraloom.cli import app
from paraloom.testing import Reply
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

pytestmark = pytest.mark.timeout(120)

FLOW = """\
models:
  m: {model_id: m, input_price_per_m: 1, output_price_per_m: 2}
agents:
  a: {instructions: "Be brief.", model: m, max_tokens: 20}
budget: {usd: 1.0, scopes: [tenant:acme]}
workflows:
  main:
    subtasks:
      - {id: s1, action: a, arguments: {task: "say hi"}}
      - {id: s2, action: a, arguments: {task: "say ho"}}
"""


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the default ledger would be .paraloom/ here
    for name in ("PARALOOM_LEDGER", "PARALOOM_STORE", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Done:
    """``paraloom *args`` in this process (fast); see the slow test for a subprocess."""
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return Done(result.exit_code, result.stdout, result.stderr)


def subprocess_cli(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=tmp_path, env=env)


def bad(proc: Done | subprocess.CompletedProcess[str], *expected: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for text in expected:
        assert text in proc.stderr, proc.stderr


def test_budget_admin_commands(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.sqlite")
    bad(cli(tmp_path, "budget", "show", "--ledger", ledger), "no ledger at")
    assert not Path(ledger).exists()  # a read-only command creates nothing
    bad(cli(tmp_path, "budget", "set", " tenant", "1", "--ledger", ledger), "KEY", "scope key")
    bad(cli(tmp_path, "budget", "set", "tenant:acme", "lots", "--ledger", ledger), "DOLLARS 'lots'")
    bad(cli(tmp_path, "budget", "set", "tenant:acme", "NaN", "--ledger", ledger), "DOLLARS 'NaN'")
    ok = cli(tmp_path, "budget", "set", "tenant:acme", "5.00", "--ledger", ledger)
    assert ok.returncode == 0 and "tenant:acme" in ok.stdout
    cli(tmp_path, "budget", "set", "session:s1", "0.10", env={"PARALOOM_LEDGER": ledger})
    shown = cli(tmp_path, "budget", "show", "--json", "--ledger", ledger)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert [(d["key"], d["limit_usd"], d["spent_usd"]) for d in doc] == [
        ("session:s1", "0.10", "0"),
        ("tenant:acme", "5.00", "0"),
    ]
    bad(cli(tmp_path, "budget", "show", "nope", "--ledger", ledger), "KEY 'nope'")
    reaped = cli(tmp_path, "budget", "reap", "--json", "--ledger", ledger)
    assert json.loads(reaped.stdout) == {"reaped_holds": 0}


def test_passwords_never_printed(tmp_path: Path) -> None:
    url = "postgresql://alice:hunter2-secret@127.0.0.1:9/ledger"
    proc = cli(tmp_path, "budget", "set", "t", "1", "--ledger", url)
    bad(proc, "cannot open the ledger postgresql://alice:***@127.0.0.1:9/ledger")
    garbled = cli(
        tmp_path, "budget", "set", "t", "1", "--ledger", "postgresql://a:hunter2-secret@[::1/x"
    )
    assert garbled.returncode == 2
    for p in (proc, garbled):
        assert "hunter2" not in p.stdout + p.stderr


def test_bad_scopes_in_yaml_and_options_are_located(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW.replace("[tenant:acme]", '["tenant:acme", " padded"]'), encoding="utf-8")
    bad(cli(tmp_path, "validate", str(flow)), "flow.yaml:5:", "budget.scopes", "scope key")
    flow.write_text(FLOW, encoding="utf-8")
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-x"}
    bad(cli(tmp_path, "run", str(flow), "--no-store", "--scope", "", env=env), "--scope")
    ledger = str(tmp_path / "ledger.sqlite")
    cli(tmp_path, "budget", "set", "tenant:acme", "1", "--ledger", ledger)
    # a scope without a limit is refused before anything runs
    proc = cli(
        tmp_path,
        "run",
        str(flow),
        "--no-store",
        "--scope",
        "session:x",
        "--ledger",
        ledger,
        env=env,
    )
    bad(proc, "scope 'session:x' has no limit", "paraloom budget set session:x")


@pytest.mark.slow
def test_a_run_inside_scopes_spends_from_the_ledger(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    ledger = str(tmp_path / "ledger.sqlite")

    def reply(req: RecordedRequest) -> Reply:
        return Reply("hi", input_tokens=10, output_tokens=5)

    with OpenAITestServer(handler=reply) as server:
        env = {
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-x",
            "PARALOOM_LEDGER": ledger,
        }
        subprocess_cli(tmp_path, "budget", "set", "tenant:acme", "1", env=env)
        subprocess_cli(tmp_path, "budget", "set", "session:s1", "0", env=env)
        # fits the run (1.0) and the tenant, not the session: every call refused
        refused = cli(
            tmp_path, "run", str(flow), "--no-store", "--json", "--scope", "session:s1", env=env
        )
        ok = subprocess_cli(tmp_path, "run", str(flow), "--no-store", "--json", env=env)
        assert server.requests and len(server.requests) == 2  # only the second run called
    out = json.loads(refused.stdout)
    assert refused.returncode != 0 and out["cost_usd"] == "0"
    assert "scope session:s1" in json.dumps(out)
    assert ok.returncode == 0, ok.stderr
    cost = Decimal(json.loads(ok.stdout)["cost_usd"])
    assert cost == 2 * (Decimal(10) * 1 + Decimal(5) * 2) / 1_000_000
    shown = json.loads(subprocess_cli(tmp_path, "budget", "show", "--json", env=env).stdout)
    spent = {d["key"]: Decimal(d["spent_usd"]) for d in shown}
    assert spent == {"session:s1": 0, "tenant:acme": cost}


def test_bad_scope_on_resume_and_mcp_serve_is_located(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    bad(cli(tmp_path, "resume", "run_x", "--scope", " padded"), "--scope", "scope key")
    bad(cli(tmp_path, "mcp", "serve", str(flow), "--scope", ""), "--scope", "scope key")
    url = "postgresql://alice:hunter2-secret@127.0.0.1:9/ledger"
    unreachable = cli(tmp_path, "mcp", "serve", str(flow), "--no-store", "--ledger", url)
    bad(unreachable, "cannot open the ledger postgresql://alice:***@127.0.0.1:9/ledger")
    assert "hunter2" not in unreachable.stdout + unreachable.stderr


@pytest.mark.slow
def test_a_resumed_run_inside_scopes_spends_from_the_ledger(tmp_path: Path) -> None:
    """``resume``: refused before anything runs when a scope has no limit; a resumed run
    stays inside the scopes it was run in (``--scope`` adds more), so resuming without
    ``--scope`` cannot escape them; its calls spend from every one."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    ledger, store = str(tmp_path / "ledger.sqlite"), str(tmp_path / "runs.sqlite")

    def reply(req: RecordedRequest) -> Reply:
        return Reply("hi", input_tokens=10, output_tokens=5)

    with OpenAITestServer(handler=reply) as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-x"}
        for key, usd in (("tenant:acme", "1"), ("session:s1", "0"), ("session:s2", "1")):
            cli(tmp_path, "budget", "set", key, usd, "--ledger", ledger)
        # every call refused by session:s1: the run stops, recorded, to be resumed
        first = cli(
            tmp_path, "run", str(flow), "--json", "--store", store, "--ledger", ledger,
            "--scope", "session:s1", env=env,
        )  # fmt: skip
        assert first.returncode != 0 and not server.requests, first.stderr
        run_id = json.loads(first.stdout)["run_id"]
        unknown = cli(
            tmp_path, "resume", run_id, "--json", "--store", store, "--ledger", ledger,
            "--scope", "session:nope", env=env,
        )  # fmt: skip
        bad(unknown, "scope 'session:nope' has no limit")
        assert not server.requests  # refused before anything ran
        # without --scope, the run is still inside session:s1, which still refuses
        escaped = cli(
            tmp_path, "resume", run_id, "--json", "--store", store, "--ledger", ledger,
            env=env,
        )  # fmt: skip
        assert escaped.returncode != 0 and not server.requests, escaped.stdout
        assert "scope session:s1" in escaped.stdout
        cli(tmp_path, "budget", "set", "session:s1", "1", "--ledger", ledger)
        resumed = cli(
            tmp_path, "resume", run_id, "--json", "--store", store, "--ledger", ledger,
            "--scope", "session:s2", env=env,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        assert len(server.requests) == 2
    cost = Decimal(json.loads(resumed.stdout)["cost_usd"])
    assert cost == 2 * (Decimal(10) * 1 + Decimal(5) * 2) / 1_000_000
    shown = json.loads(cli(tmp_path, "budget", "show", "--json", "--ledger", ledger).stdout)
    spent = {d["key"]: Decimal(d["spent_usd"]) for d in shown}
    assert spent == {"session:s1": cost, "session:s2": cost, "tenant:acme": cost}


def test_dry_run_reads_the_scopes_room_and_changes_nothing(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    ledger = str(tmp_path / "ledger.sqlite")
    # no ledger yet: exit 2, and the read-only projection creates none
    bad(cli(tmp_path, "run", str(flow), "--dry-run", "--ledger", ledger), "no ledger at")
    assert not Path(ledger).exists()
    cli(tmp_path, "budget", "set", "tenant:acme", "1", "--ledger", ledger)
    cli(tmp_path, "budget", "set", "session:s1", "0.000001", "--ledger", ledger)
    before = cli(tmp_path, "budget", "show", "--json", "--ledger", ledger).stdout
    # the file's tenant:acme plus --scope session:s1
    proc = cli(
        tmp_path,
        "run",
        str(flow),
        "--dry-run",
        "--json",
        "--scope",
        "session:s1",
        "--ledger",
        ledger,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    cost, worst = Decimal(doc["cost_usd"]), Decimal(doc["worst_case_cost_usd"])
    assert 0 < cost <= worst < 1
    rooms = {s["key"]: s for s in doc["scopes"]}
    assert list(rooms) == ["session:s1", "tenant:acme"]
    assert rooms["tenant:acme"]["remaining_usd"] == "1"
    assert rooms["tenant:acme"]["fits"] and rooms["tenant:acme"]["fits_worst_case"]
    assert rooms["session:s1"]["fits"] is False
    assert rooms["session:s1"]["fits_worst_case"] is False
    text = cli(tmp_path, "run", str(flow), "--dry-run", "--scope", "session:s1", "--ledger", ledger)
    assert text.returncode == 0, text.stderr
    assert "scope session:s1: $0.000001 left of $0.000001 (does NOT fit)" in " ".join(
        text.stdout.split()
    )
    assert "scope tenant:acme:" in text.stdout and "(fits)" in text.stdout
    # nothing held, nothing spent
    assert cli(tmp_path, "budget", "show", "--json", "--ledger", ledger).stdout == before
    # a scope without a limit is bad input, as for a real run
    proc = cli(tmp_path, "run", str(flow), "--dry-run", "--scope", "nope", "--ledger", ledger)
    bad(proc, "scope 'nope' has no limit", "paraloom budget set nope")
    bad(cli(tmp_path, "run", str(flow), "--dry-run", "--scope", " x"), "--scope", "scope key")


def test_dry_run_without_scopes_does_not_open_a_ledger(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW.replace(", scopes: [tenant:acme]", ""), encoding="utf-8")
    proc = cli(tmp_path, "run", str(flow), "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scopes"] == []
    assert not (tmp_path / ".paraloom").exists()
