"""Two instances of the service example share one tenant scope in a ledger: together
they never spend past it (judged by what the fake provider billed)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import pytest

pytest.importorskip("fastapi", reason='needs the service extra: pip install "paraloom[service]"')

from paraloom_service import create_app

from paraloom import LLMAgent, ModelPool, Orchestrator, Plan, StaticPlanner, Subtask
from paraloom.models import ModelRequest
from paraloom.protocols.actions import ActionStatus
from paraloom.protocols.messages import ModelDescriptor
from paraloom.store import open_ledger
from paraloom.testing import FunctionModel, Reply

from .conftest import serve

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

MODEL = ModelDescriptor(name="m", input_price_per_m=Decimal(1), output_price_per_m=Decimal(4))


def ask(billed: list[Decimal]) -> Orchestrator:
    def provider(request: ModelRequest) -> Reply:
        assert request.max_tokens is not None
        text = sum(len((m.content or "").encode()) for m in request.messages)
        tokens_in = text + 4 * len(request.messages) + 3  # the densest honest count
        billed.append(MODEL.cost(tokens_in, request.max_tokens))
        return Reply("ok", input_tokens=tokens_in, output_tokens=request.max_tokens)

    pool = ModelPool([MODEL], client=FunctionModel(provider))
    agent = LLMAgent("a", instructions="Be brief.", model="m", pool=pool, max_tokens=300)
    plan = Plan(subtasks=(Subtask(id="s", action="a", arguments={"task": {"from": "input"}}),))
    return Orchestrator([agent], StaticPlanner(plan, output=None), name="ask")


async def test_two_service_instances_share_one_tenant_limit(tmp_path: Path) -> None:
    ledger = str(tmp_path / "ledger.sqlite")
    limit = Decimal("0.005")  # about four calls' worst case of the twenty asked for
    async with open_ledger(ledger) as led:
        await led.set_limit("tenant:acme", limit)
    billed: list[Decimal] = []
    apps = [
        create_app({"ask": ask(billed)}, ledger=ledger, scopes=["tenant:acme"]) for _ in range(2)
    ]
    async with serve(apps[0]) as one, serve(apps[1]) as two:

        async def start(client: httpx.AsyncClient, i: int) -> None:
            response = await client.post("/runs", json={"task": f"question {i}"})
            assert response.status_code == 202, response.text

        async with anyio.create_task_group() as tg:
            for i in range(10):
                for client in (one, two):
                    tg.start_soon(start, client, i)
        records = [r for app in apps for r in app.state.manager.list()]
        assert len(records) == 20
        with anyio.fail_after(60):
            for record in records:
                async for _ in record.follow():
                    pass
    results = [r.result for r in records]
    assert all(r is not None for r in results)
    stopped = [r for r in results if r and r.subtasks["s"].status is ActionStatus.BUDGET_EXHAUSTED]
    assert 0 < len(stopped) < 20  # the tenant's limit was binding, and let some through
    assert sum(billed, Decimal(0)) <= limit
    async with open_ledger(ledger) as led:
        (tenant,) = await led.show(["tenant:acme"])
    assert tenant.spent_usd == sum((r.cost_usd for r in results if r), Decimal(0))
    assert tenant.reserved_usd == 0
