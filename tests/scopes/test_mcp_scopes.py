"""``paraloom mcp serve --scope``: every served call spends from the ledger scopes, so a
scope's limit bounds the server's spend across calls; a call the scope refuses is an
MCP tool error naming the scope, and the server goes on serving. Driven by the official
MCP SDK client over stdio."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason='needs the mcp extra: pip install "paraloom[mcp]"')

from cli_run import cli_env, run_cli
from mcp import Client, StdioServerParameters
from mcp import types as mcp_types

from paraloom.store.ledger import open_ledger
from paraloom.testing import Reply
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
MAX_TOKENS = 20
SERVE = ["-m", "paraloom.cli", "mcp", "serve", "flow.yaml", "--no-store"]


def flow(base_url: str) -> str:
    return f"""
models:
  m:
    model_id: m
    base_url: {base_url}
    api_key: sk-unused-by-the-test-0000
    input_price_per_m: 1
    output_price_per_m: 2
agents:
  a: {{instructions: "Be brief.", model: m, max_tokens: {MAX_TOKENS}}}
budget: {{usd: 1.0}}
"""


def reply(req: RecordedRequest) -> Reply:
    # the input defaults to the reservation's estimate: each call costs its worst case
    return Reply("hi", output_tokens=MAX_TOKENS)


async def scope_state(ledger: str) -> tuple[Decimal, Decimal, Decimal]:
    async with open_ledger(ledger) as led:
        (state,) = await led.show(["tenant:acme"])
    return state.limit_usd, state.spent_usd, state.reserved_usd


def cost(result: mcp_types.CallToolResult) -> Decimal:
    assert result.meta is not None
    return Decimal(result.meta["io.paraloom/cost_usd"])


async def test_a_scope_bounds_the_servers_spend_across_calls(tmp_path: Path) -> None:
    """Two servers share the scope: its limit bounds what both spend together."""
    ledger = str(tmp_path / "ledger.sqlite")
    async with open_ledger(ledger) as led:
        await led.set_limit("tenant:acme", Decimal(1))
    async with OpenAITestServer(handler=reply).running() as server:
        (tmp_path / "flow.yaml").write_text(flow(server.base_url), encoding="utf-8")
        env = cli_env({"PYTHONPATH": str(ROOT)}, drop=("OPENAI_", "PARALOOM_", "OTEL_"))
        params = StdioServerParameters(
            command=sys.executable,
            args=[*SERVE, "--scope", "tenant:acme", "--ledger", ledger],
            env=env,
            cwd=str(tmp_path),
        )
        async with Client(params) as one, Client(params) as two:
            first = await one.call_tool("a", {"task": "say hi"})
            assert not first.is_error, first.content
            worst = cost(first)  # = the call's worst case, as the reply bills it
            assert worst > 0
            assert await scope_state(ledger) == (1, worst, 0)
            # a limit of 2.5 calls: room for one more call, by either server
            async with open_ledger(ledger) as led:
                await led.set_limit("tenant:acme", worst * Decimal("2.5"))
            second = await two.call_tool("a", {"task": "say hi"})
            assert not second.is_error, second.content
            refused = [await c.call_tool("a", {"task": "say hi"}) for c in (one, two)]
            for third in refused:
                assert third.is_error
                assert third.meta is not None
                assert third.meta["io.paraloom/status"] == "budget_exhausted"
                (text,) = third.content
                assert isinstance(text, mcp_types.TextContent)
                assert "scope tenant:acme" in text.text
                assert cost(third) == 0
            # both still serve: a refusal is one call's error, not the server's end
            for c in (one, two):
                assert len((await c.list_tools()).tools) == 1
        assert len(server.requests) == 2  # the refused calls reached no provider
    limit, spent, reserved = await scope_state(ledger)
    assert spent == cost(first) + cost(second) == 2 * worst
    assert spent <= limit and reserved == 0


def test_a_scope_without_a_limit_stops_the_server_before_serving(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.sqlite")
    env = {"PYTHONPATH": str(ROOT)}
    admin = run_cli("budget", "set", "tenant:acme", "1", "--ledger", ledger, cwd=tmp_path)
    assert admin.returncode == 0, admin.stderr
    (tmp_path / "flow.yaml").write_text(flow("http://127.0.0.1:9/v1"), encoding="utf-8")
    proc = run_cli(
        *SERVE[2:], "--scope", "tenant:nope", "--ledger", ledger,
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "scope 'tenant:nope' has no limit" in proc.stderr
    assert "Traceback" not in proc.stderr
