"""A wait for approval is a span: ``waiting`` until decided, with the time waited."""

from __future__ import annotations

import anyio
import pytest

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool

from .conftest import Traced

pytestmark = pytest.mark.anyio


@tool(requires_approval=True)
async def pay(amount: int) -> int:
    return amount


def _plan() -> Plan:
    return Plan(
        subtasks=(
            Subtask(id="a", action="pay", arguments={"amount": 1}),
            Subtask(id="b", action="pay", arguments={"amount": 2}),
        )
    )


async def test_approval_span_records_outcome_and_wait(traced: Traced) -> None:
    orch = Orchestrator([pay], StaticPlanner(_plan()), listeners=[traced.listener()])
    async with orch.start() as run:
        with anyio.fail_after(10):
            await run.wait_pending(2)
        await run.approve("a", by="alice")
        await run.reject("b", reason="no")
        await run.result()
    a = traced.one("approval a")
    attrs = dict(a.attributes or {})
    assert attrs["paraloom.approval.state"] == "decided"
    assert attrs["paraloom.approval.outcome"] == "approved"
    assert attrs["paraloom.approval.by"] == "alice"
    assert isinstance(attrs["paraloom.approval.wait_s"], float)
    assert attrs["paraloom.approval.wait_s"] >= 0
    b = dict(traced.one("approval b").attributes or {})
    assert (b["paraloom.approval.outcome"], b["paraloom.approval.reason"]) == ("rejected", "no")
    [root] = [s for s in traced.spans if s.parent is None]  # the run's span
    assert a.parent is not None and a.parent.span_id == root.context.span_id


async def test_a_run_left_waiting_ends_its_approval_spans_as_waiting(traced: Traced) -> None:
    orch = Orchestrator([pay], StaticPlanner(_plan()), listeners=[traced.listener()])
    result = await orch.run(approvals=orch.approval_gate(detach=True))
    assert result.status == "waiting"
    for name in ("approval a", "approval b"):
        attrs = dict(traced.one(name).attributes or {})
        assert attrs["paraloom.approval.state"] == "waiting"
        assert "paraloom.approval.wait_s" in attrs
