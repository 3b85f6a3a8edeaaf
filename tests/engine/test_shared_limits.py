"""``max_concurrency`` and ``action_limits`` belong to the Scheduler: every round of every
concurrent run of one Orchestrator shares them. Calls are held in flight by gates the
test opens one at a time; ``settle`` waits until every other task is blocked."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from paraloom import (
    Orchestrator,
    Plan,
    RunResult,
    StaticPlanner,
    Subtask,
    WorkflowAction,
    tool,
    with_concurrency_limit,
)
from paraloom.orchestrator import Scheduler
from paraloom.tools import ActionSet


async def settle() -> None:
    """Return once every other task is blocked (the checkpoints only make it quick)."""
    for _ in range(50):
        await anyio.lowlevel.checkpoint()
    await anyio.wait_all_tasks_blocked()


class Gates:
    """Tools whose calls stay in flight until the test opens their gate (oldest first)."""

    def __init__(self) -> None:
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.total = 0
        self.total_peak = 0
        self.pending: list[anyio.Event] = []

    def tool(self, name: str) -> Any:
        async def body(i: int) -> int:
            gate = anyio.Event()
            self.pending.append(gate)
            self.in_flight[name] += 1
            self.total += 1
            self.peak[name] = max(self.peak[name], self.in_flight[name])
            self.total_peak = max(self.total_peak, self.total)
            try:
                await gate.wait()
            finally:
                self.in_flight[name] -= 1
                self.total -= 1
            return i

        body.__name__ = name
        return tool(body)

    def open_oldest(self) -> None:
        self.pending.pop(0).set()


def fan_out(action: str, n: int) -> Plan:
    return Plan(
        subtasks=tuple(
            Subtask(id=f"{action}{i}", action=action, arguments={"i": i}) for i in range(n)
        )
    )


@pytest.mark.anyio
async def test_action_limit_holds_across_concurrent_runs() -> None:
    gates = Gates()
    orch = Orchestrator([gates.tool("a")], StaticPlanner(fan_out("a", 3)), action_limits={"a": 2})
    results: list[RunResult] = []

    async def one() -> None:
        results.append(await orch.run())

    with anyio.fail_after(10):  # a hang guard, not a timing assertion
        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)
            await settle()
            # both runs' six calls compete for the same two slots
            assert gates.in_flight["a"] == 2
            _, limiters = orch.scheduler.limiters()
            assert limiters["a"].statistics().tasks_waiting == 4
            for opened in range(1, 7):
                gates.open_oldest()
                await settle()
                assert gates.in_flight["a"] == min(2, 6 - opened)
    assert gates.peak["a"] == 2
    assert [r.ok for r in results] == [True, True]


@pytest.mark.anyio
async def test_max_concurrency_holds_across_concurrent_runs_of_small_rounds() -> None:
    # each round alone fits the limit (2 subtasks, max_concurrency=2): the limiter used to
    # be skipped then, and two runs had 4 calls in flight
    gates = Gates()
    orch = Orchestrator([gates.tool("a")], StaticPlanner(fan_out("a", 2)), max_concurrency=2)
    results: list[RunResult] = []

    async def one() -> None:
        results.append(await orch.run())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
            await settle()
            assert gates.total == 2
            limiter, _ = orch.scheduler.limiters()
            assert limiter.statistics().tasks_waiting == 4
            for opened in range(1, 7):
                gates.open_oldest()
                await settle()
                assert gates.total == min(2, 6 - opened)
    assert gates.total_peak == 2
    assert [r.ok for r in results] == [True, True, True]


@pytest.mark.anyio
async def test_calls_queued_on_an_action_limit_hold_no_global_slot() -> None:
    gates = Gates()
    b_ran: list[int] = []

    @tool
    async def b(i: int) -> int:
        b_ran.append(i)
        return i

    plan = Plan(
        subtasks=(*fan_out("a", 3).subtasks, Subtask(id="b0", action="b", arguments={"i": 0}))
    )
    orch = Orchestrator(
        [gates.tool("a"), b], StaticPlanner(plan), max_concurrency=2, action_limits={"a": 1}
    )
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(orch.run)
            await settle()
            # a1 and a2 wait for a's only slot without taking the second global one
            assert gates.in_flight["a"] == 1
            assert b_ran == [0]
            limiter, _ = orch.scheduler.limiters()
            assert limiter.statistics().borrowed_tokens == 1
            for _ in range(3):
                gates.open_oldest()
                await settle()
    assert gates.peak["a"] == 1


@tool
async def double(x: int) -> int:
    return 2 * x


@pytest.mark.anyio
async def test_nested_workflow_under_max_concurrency_1_finishes() -> None:
    # the parent holds its only slot while the child runs; the child has its own
    # scheduler (and limits), so it is not starved
    child_plan = Plan(
        subtasks=(
            Subtask(id="x", action="double", arguments={"x": 1}),
            Subtask(id="y", action="double", arguments={"x": {"from": "x.output"}}),
            Subtask(id="z", action="double", arguments={"x": 5}),
        )
    )
    child = Orchestrator(
        [double], StaticPlanner(child_plan, output={"from": "y.output"}), max_concurrency=1
    )
    sub = WorkflowAction(child, name="sub")
    parent_plan = Plan(
        subtasks=(
            Subtask(id="first", action="sub", arguments={"task": "one"}),
            Subtask(id="second", action="sub", arguments={"task": "two"}),
        )
    )
    parents = [
        Orchestrator([sub], StaticPlanner(parent_plan), max_concurrency=1, name=f"p{i}")
        for i in range(2)
    ]
    assert all(p.scheduler is not child.scheduler for p in parents)
    results: list[RunResult] = []

    async def one(parent: Orchestrator) -> None:
        results.append(await parent.run())

    with anyio.fail_after(10):  # a deadlock would hang here
        async with anyio.create_task_group() as tg:
            for parent in (*parents, parents[0]):  # two parents, one of them twice
                tg.start_soon(one, parent)
    assert len(results) == 3
    for result in results:
        assert result.ok, result.error
        assert result.output == {"first": 4, "second": 4}


def test_limits_are_per_event_loop() -> None:
    # an orchestrator built before any loop runs serves runs on successive loops
    orch = Orchestrator([double], StaticPlanner(fan_out_double()), max_concurrency=1)
    for _ in range(2):
        result = anyio.run(orch.run)
        assert result.ok
        assert result.output == {"d0": 0, "d1": 2}


def fan_out_double() -> Plan:
    return Plan(
        subtasks=tuple(Subtask(id=f"d{i}", action="double", arguments={"x": i}) for i in range(2))
    )


def test_scheduler_limits_are_checked_and_fixed() -> None:
    actions = ActionSet([double])
    with pytest.raises(ValueError, match="max_concurrency must be >= 1"):
        Scheduler(actions, max_concurrency=0)
    with pytest.raises(ValueError, match=r"action_limits\['double'\] must be >= 1, got 0"):
        Scheduler(actions, action_limits={"double": 0})
    scheduler = Scheduler(actions, max_concurrency=3, action_limits={"double": 2})
    assert scheduler.max_concurrency == 3
    assert scheduler.action_limits == {"double": 2}
    with pytest.raises(AttributeError):
        scheduler.max_concurrency = 5  # type: ignore[misc]


@pytest.mark.anyio
async def test_a_limited_action_is_bounded_across_orchestrators() -> None:
    gates = Gates()
    search = with_concurrency_limit(gates.tool("search"), 2)
    assert search.spec.name == "search" and search.max_concurrency == 2
    orchestrators = [
        Orchestrator([search], StaticPlanner(fan_out("search", 3)), name=f"o{i}") for i in range(2)
    ]
    results: list[RunResult] = []

    async def one(orch: Orchestrator) -> None:
        results.append(await orch.run())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for orch in orchestrators:
                tg.start_soon(one, orch)
            await settle()
            assert gates.in_flight["search"] == 2
            for opened in range(1, 7):
                gates.open_oldest()
                await settle()
                assert gates.in_flight["search"] == min(2, 6 - opened)
    assert gates.peak["search"] == 2
    assert [r.ok for r in results] == [True, True]
    with pytest.raises(ValueError, match="must be >= 1"):
        with_concurrency_limit(double, 0)
