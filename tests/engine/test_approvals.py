"""Approval points: a pending approval pauses only its own branch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from pydantic import JsonValue

from paraloom import ActionStatus, Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.protocols import Event
from paraloom.protocols.events import ApprovalDecided, ApprovalRequested
from paraloom.runtime.approval import ApprovalDecision, PendingApproval

pytestmark = pytest.mark.anyio


def _plan() -> Plan:
    """Six independent subtasks (p1..p4 plain, pay_a/pay_b paid), and a dependent of each
    paid one."""
    subtasks = [Subtask(id=f"p{i}", action="work", arguments={"x": i}) for i in range(1, 5)]
    subtasks += [
        Subtask(id="pay_a", action="pay", arguments={"amount": 500}),
        Subtask(id="pay_b", action="pay", arguments={"amount": 700}),
        Subtask(id="after_a", action="work", arguments={"x": {"from": "pay_a.output"}}),
        Subtask(id="after_b", action="work", arguments={"x": {"from": "pay_b.output"}}),
    ]
    return Plan(subtasks=tuple(subtasks))


def _actions(done: list[str], four_done: anyio.Event | None = None) -> list[Any]:
    @tool
    async def work(x: int) -> int:
        done.append(f"work:{x}")
        if four_done is not None and len(done) == 4:
            four_done.set()
        return x

    @tool(requires_approval=lambda args: int(str(args["amount"])) > 100)
    async def pay(amount: int) -> int:
        done.append(f"pay:{amount}")
        return amount

    return [work, pay]


@pytest.mark.timeout(20)
async def test_siblings_finish_while_two_approvals_wait() -> None:
    done: list[str] = []
    events: list[Event] = []
    planner = StaticPlanner(_plan(), output={"from": "after_b.output"})
    four_done = anyio.Event()
    orch = Orchestrator(_actions(done, four_done), planner, max_concurrency=1)
    async with orch.start(on_event=events.append) as run:
        pending = await run.wait_pending(2)
        assert sorted(p.key for p in pending) == ["pay_a", "pay_b"]
        # The four plain subtasks all finish while both approvals wait, on ONE slot:
        # a waiting subtask holds no concurrency slot.
        with anyio.fail_after(5):
            await four_done.wait()
        assert sorted(done) == ["work:1", "work:2", "work:3", "work:4"]
        assert not run.done
        await run.reject("pay_a", reason="too much", by="alice")
        await run.approve("pay_b", by="bob", arguments={"amount": 650})
        result = await run.result()
    assert result.status == "partial"
    assert "pay:500" not in done and "pay:650" in done and "pay:700" not in done
    assert result.subtasks["pay_a"].status is ActionStatus.SKIPPED
    assert result.subtasks["pay_a"].error is not None
    assert "too much" in result.subtasks["pay_a"].error.message
    assert result.subtasks["after_a"].status is ActionStatus.SKIPPED
    assert result.subtasks["pay_b"].output == 650
    assert result.subtasks["after_b"].output == 650
    requested = [e for e in events if isinstance(e, ApprovalRequested)]
    decided = {e.key: e.decision for e in events if isinstance(e, ApprovalDecided)}
    assert sorted(e.request.key for e in requested) == ["pay_a", "pay_b"]
    assert decided["pay_a"].outcome == "rejected" and decided["pay_a"].by == "alice"
    assert decided["pay_b"].arguments == {"amount": 650} and decided["pay_b"].by == "bob"


async def test_predicate_decides_per_call_and_callback_answers_synchronously() -> None:
    done: list[str] = []
    seen: list[PendingApproval] = []

    def policy(request: PendingApproval) -> bool:
        seen.append(request)
        return request.arguments["amount"] == 500

    plan = Plan(
        subtasks=(
            Subtask(id="small", action="pay", arguments={"amount": 50}),
            Subtask(id="a", action="pay", arguments={"amount": 500}),
            Subtask(id="b", action="pay", arguments={"amount": 700}),
        )
    )
    orch = Orchestrator(_actions(done), StaticPlanner(plan), approval_callback=policy)
    result = await orch.run()
    assert sorted(r.subtask_id or "" for r in seen) == ["a", "b"]  # 50 needs no approval
    assert sorted(done) == ["pay:50", "pay:500"]
    assert result.subtasks["b"].status is ActionStatus.SKIPPED


@pytest.mark.parametrize(
    ("outcome", "status", "dependent", "error"),
    [
        ("reject", "failed", "skipped", "depends on failed subtasks"),
        ("skip", "partial", "ok", "did not finish ok"),
        ("fail", "failed", "skipped", "subtask 'pay' failed: ApprovalFailed"),
    ],
)
async def test_timeout_outcome(
    outcome: Any, status: str, dependent: str, error: str | None
) -> None:
    done: list[str] = []
    plan = Plan(
        subtasks=(
            Subtask(id="pay", action="pay", arguments={"amount": 500}),
            Subtask(id="next", action="work", arguments={"x": 1}, depends_on=("pay",)),
        )
    )
    orch = Orchestrator(
        _actions(done),
        StaticPlanner(plan, output={"from": "next.output"}),
        approval_timeout_s=0.05,
        on_approval_timeout=outcome,
    )
    with anyio.fail_after(10):
        result = await orch.run()
    assert "pay:500" not in done
    assert result.status == status
    assert result.subtasks["next"].status.value == dependent
    assert (result.error is None) if error is None else (error in (result.error or ""))


async def test_orchestrator_rules_by_name_and_decisions_given_ahead() -> None:
    done: list[str] = []
    plan = Plan(subtasks=(Subtask(id="w", action="work", arguments={"x": 3}),))
    orch = Orchestrator(_actions(done), StaticPlanner(plan), requires_approval={"work": True})
    gate = orch.approval_gate()
    gate.decide("w", ApprovalDecision(outcome="approved", arguments={"x": 4}))
    result = await orch.run(approvals=gate)
    assert done == ["work:4"] and result.status == "ok"
    with pytest.raises(ValueError, match="unknown actions: nope"):
        Orchestrator(_actions(done), StaticPlanner(plan), requires_approval={"nope": True})


async def test_detached_gate_ends_the_run_waiting_and_resume_takes_the_answer() -> None:
    done: list[str] = []
    orch = Orchestrator(_actions(done), StaticPlanner(_plan(), output={"from": "after_a.output"}))
    first = await orch.run(approvals=orch.approval_gate(detach=True))
    assert first.status == "waiting"
    assert first.error is not None and "pay_a" in first.error and "pay_b" in first.error
    assert sorted(done) == ["work:1", "work:2", "work:3", "work:4"]
    assert "pay_a" not in first.subtasks and "after_a" not in first.subtasks

    from paraloom import ResumeState
    from paraloom.protocols.plan import Plan as _Plan

    decisions: Mapping[int, _Plan] = {1: _plan()}
    approvals = {
        "pay_a": ApprovalDecision(outcome="approved"),
        "pay_b": ApprovalDecision(outcome="rejected", reason="no"),
    }
    state = ResumeState(
        run_id=first.run_id,
        decisions=decisions,
        results={k: v for k, v in first.subtasks.items() if v.ok},
        approvals=approvals,
    )
    second = await orch.run(resume=state, approvals=orch.approval_gate(detach=True, resume=state))
    assert second.status == "partial"
    # nothing finished ran twice; the approved payment and its dependent ran once
    assert sorted(done) == ["pay:500", "work:1", "work:2", "work:3", "work:4", "work:500"]
    output: JsonValue = second.subtasks["after_b"].status.value
    assert output == "skipped"


@pytest.mark.timeout(20)
async def test_ask_human_returns_the_answer_to_its_dependents() -> None:
    from paraloom.tools.human import ask_human

    done: list[str] = []

    @tool
    async def shout(text: str) -> str:
        done.append(text)
        return text.upper()

    plan = Plan(
        subtasks=(
            Subtask(id="q", action="ask_human", arguments={"question": "Favourite colour?"}),
            Subtask(id="s", action="shout", arguments={"text": {"from": "q.output"}}),
        )
    )
    orch = Orchestrator([ask_human, shout], StaticPlanner(plan, output={"from": "s.output"}))
    async with orch.start() as run:
        [question] = await run.wait_pending(1)
        assert question.arguments == {"question": "Favourite colour?"}
        assert done == []
        await run.answer("q", "blue", by="dana")
        result = await run.result()
    assert result.status == "ok" and result.output == "BLUE"
    unanswered = Orchestrator([ask_human, shout], StaticPlanner(plan), approval_callback=bool)
    failed = await unanswered.run()  # approved without an answer: the question fails
    assert failed.subtasks["q"].error is not None
    assert failed.subtasks["q"].error.type == "NoAnswer"


@pytest.mark.timeout(20)
async def test_a_nested_workflow_s_approval_is_answered_from_the_top_run() -> None:
    from paraloom import WorkflowAction

    done: list[str] = []
    inner_plan = Plan(subtasks=(Subtask(id="pay", action="pay", arguments={"amount": 500}),))
    inner = Orchestrator(_actions(done), StaticPlanner(inner_plan, output={"from": "pay.output"}))
    child = WorkflowAction(inner, name="payout", description="pays")
    outer_plan = Plan(
        subtasks=(Subtask(id="run_payout", action="payout", arguments={"task": "pay"}),)
    )
    outer = Orchestrator([child], StaticPlanner(outer_plan, output={"from": "run_payout.output"}))
    async with outer.start() as run:
        [request] = await run.wait_pending(1)  # returns even if the run ended (then fails)
        assert request.key.endswith("/pay") and request.action == "pay"
        assert done == []
        await run.approve(request.key, arguments={"amount": 5})
        result = await run.result()
    assert result.status == "ok" and result.output == 5 and done == ["pay:5"]
