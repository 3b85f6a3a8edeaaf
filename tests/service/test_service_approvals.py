"""The service example's approval endpoints: list what a run waits for, answer it."""

from __future__ import annotations

import anyio
import pytest

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.tools.human import ask_human

from .conftest import serve

pytestmark = pytest.mark.anyio


@tool(requires_approval=True)
async def pay(amount: int) -> int:
    return amount


def _orchestrator() -> Orchestrator:
    plan = Plan(
        subtasks=(
            Subtask(id="pay_a", action="pay", arguments={"amount": 5}),
            Subtask(id="q", action="ask_human", arguments={"question": "Why?"}),
        )
    )
    output = {"paid": {"from": "pay_a.output"}, "why": {"from": "q.output"}}
    return Orchestrator([pay, ask_human], StaticPlanner(plan, output=output))


@pytest.mark.timeout(30)
async def test_pending_and_decide_over_http() -> None:
    from paraloom_service.app import create_app

    app = create_app({"w": _orchestrator()})
    async with serve(app) as client:
        run_id = (await client.post("/runs", json={"task": None})).json()["run_id"]
        with anyio.fail_after(10):
            while len(pending := (await client.get(f"/runs/{run_id}/pending")).json()) < 2:
                await anyio.lowlevel.checkpoint()
        assert sorted(p["key"] for p in pending) == ["pay_a", "q"]
        missing = await client.post(f"/runs/{run_id}/approvals/nope", json={})
        assert missing.status_code == 404
        bad = await client.post(
            f"/runs/{run_id}/approvals/pay_a", json={"approve": False, "answer": "x"}
        )
        assert bad.status_code == 400
        ok = await client.post(
            f"/runs/{run_id}/approvals/pay_a", json={"by": "eve", "arguments": {"amount": 7}}
        )
        assert ok.status_code == 200 and ok.json()["outcome"] == "approved"
        answered = await client.post(f"/runs/{run_id}/approvals/q", json={"answer": "because"})
        assert answered.status_code == 200
        with anyio.fail_after(10):
            while (result := await client.get(f"/runs/{run_id}/result")).status_code == 202:
                await anyio.lowlevel.checkpoint()
    assert result.json()["status"] == "ok"
    assert result.json()["output"] == {"paid": 7, "why": "because"}
