"""A subtask's ``cost_usd`` is what all its attempts spent: timed-out, cancelled and
retried attempts (an abandoned call at the worst case held) as well as the last one, so
the subtasks' costs add up to the run's cost and to the store's totals."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, OpenAICompatible, RetryPolicy
from paraloom.orchestrator import Orchestrator, RunResult
from paraloom.orchestrator.planner import StaticPlanner
from paraloom.protocols.actions import ActionStatus
from paraloom.protocols.events import ActionFinished, Event, LLMCallFinished
from paraloom.protocols.messages import ModelDescriptor
from paraloom.protocols.plan import FailurePolicy, Plan, Subtask
from paraloom.runtime.budget import Budget
from paraloom.store import RunStore
from paraloom.testing import Reply, Slow, tool_call
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest
from paraloom.tools import tool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

M = ModelDescriptor(name="m", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2))


@tool
def ping() -> str:
    """Answers pong."""
    return "pong"


def llm_calls(events: list[Event]) -> list[LLMCallFinished]:
    return [e for e in events if isinstance(e, LLMCallFinished)]


async def run_recorded(
    tmp_path: Path, orch: Orchestrator, events: list[Event]
) -> tuple[RunResult, Decimal, dict[str, Decimal | None]]:
    """Run ``orch`` into a store: the result, the store's LLM cost and its subtask costs."""
    with RunStore(tmp_path / "runs.sqlite") as store:
        orch.listeners.append(store.listener())
        result = await orch.run("t", budget=Budget("1.00"), on_event=events.append)
        await store.aflush()
        stored = store.get_run(result.run_id)
        assert stored.cost_usd == result.cost_usd
        return (
            result,
            store.llm_cost(result.run_id),
            {s.subtask_id: s.result.cost_usd if s.result else None for s in stored.subtasks},
        )


def assert_costs_add_up(
    result: RunResult, store_total: Decimal, stored: dict[str, Decimal | None], events: list[Event]
) -> None:
    billed = sum((e.cost_usd for e in llm_calls(events)), Decimal(0))
    subtasks = sum((r.cost_usd for r in result.subtasks.values()), Decimal(0))
    assert subtasks == result.cost_usd == store_total == billed  # no planner calls here
    assert stored == {sid: r.cost_usd for sid, r in result.subtasks.items()}


async def test_a_timed_out_attempt_and_its_retry_are_both_in_the_subtask_cost(
    tmp_path: Path,
) -> None:
    """Attempt 1: turn 1 is billed, turn 2 outlives the subtask's timeout (its call is
    abandoned, its worst case held). Attempt 2 answers. Before, the subtask reported
    attempt 2's cost alone."""
    server = OpenAITestServer(
        [
            Reply.calls(tool_call("ping"), input_tokens=40, output_tokens=10),
            Slow(30, Reply("late")),
            Reply("done", input_tokens=7, output_tokens=3),
        ]
    )
    policy = FailurePolicy(retries=1, timeout_s=2, backoff_initial_s=0, backoff_jitter_s=0)
    async with (
        server.running(),
        OpenAICompatible(server.base_url, "k", retry=RetryPolicy(attempts=1)) as c,
    ):
        pool = ModelPool([M], client=c)
        agent = LLMAgent("a", instructions="Use ping.", model="m", pool=pool, actions=[ping])
        plan = Plan(
            subtasks=(Subtask(id="s", action="a", arguments={"task": "go"}, policy=policy),)
        )
        events: list[Event] = []
        result, store_total, stored = await run_recorded(
            tmp_path, Orchestrator([agent], StaticPlanner(plan)), events
        )
    first, abandoned, last = llm_calls(events)
    assert last.cost_usd == M.cost(7, 3) and not last.abandoned
    assert abandoned.abandoned and abandoned.cost_usd > 0 and not first.abandoned
    s = result.subtasks["s"]
    assert s.ok and s.attempt == 2
    assert s.cost_usd == M.cost(40, 10) + abandoned.cost_usd + M.cost(7, 3)
    assert s.usage["m"].calls == 3
    # each attempt's own ActionFinished reports what that attempt spent
    attempts = [
        e.result for e in events if isinstance(e, ActionFinished) and e.result.action == "a"
    ]
    assert [a.status for a in attempts] == [ActionStatus.TIMEOUT, ActionStatus.OK]
    assert [a.cost_usd for a in attempts] == [M.cost(40, 10) + abandoned.cost_usd, M.cost(7, 3)]
    assert_costs_add_up(result, store_total, stored, events)


async def test_a_client_retry_after_an_abandoned_call_is_in_the_subtask_cost(
    tmp_path: Path,
) -> None:
    """One attempt of the subtask, but its LLM call timed out on the client and was
    retried: the abandoned request keeps its worst case, and the subtask reports it
    (before: only the retried call's cost, which is all the agent's turn knows)."""
    server = OpenAITestServer(
        [Slow(30, Reply("late")), Reply("ok", input_tokens=5, output_tokens=2)]
    )
    retry = RetryPolicy(attempts=2, initial_wait_s=0)
    async with (
        server.running(),
        OpenAICompatible(server.base_url, "k", timeout_s=0.3, retry=retry) as c,
    ):
        agent = LLMAgent("a", instructions="Be brief.", model="m", pool=ModelPool([M], client=c))
        plan = Plan(subtasks=(Subtask(id="s", action="a", arguments={"task": "go"}),))
        events: list[Event] = []
        result, store_total, stored = await run_recorded(
            tmp_path, Orchestrator([agent], StaticPlanner(plan)), events
        )
    abandoned, ok = llm_calls(events)
    assert abandoned.abandoned and not ok.abandoned
    assert result.subtasks["s"].cost_usd == abandoned.cost_usd + M.cost(5, 2)
    assert_costs_add_up(result, store_total, stored, events)


async def test_a_cancelled_subtask_reports_its_abandoned_call(tmp_path: Path) -> None:
    """A sibling's failure (on_failure: fail) cancels an LLM call in flight: the
    cancelled subtask's cost is that call's worst case, held (before: 0)."""

    def handler(req: RecordedRequest) -> Reply | Slow:
        return Slow(30, Reply("late")) if "slow" in req.system else Reply("x")

    @tool
    def boom() -> str:
        """Fails."""
        raise RuntimeError("boom")

    server = OpenAITestServer(handler=handler)
    async with server.running(), OpenAICompatible(server.base_url, "k", timeout_s=20) as c:
        slow = LLMAgent("slow", instructions="slow", model="m", pool=ModelPool([M], client=c))
        plan = Plan(
            subtasks=(
                Subtask(id="s", action="slow", arguments={"task": "go"}),
                Subtask(id="b", action="boom", policy=FailurePolicy(on_failure="fail")),
            )
        )
        events: list[Event] = []
        result, store_total, stored = await run_recorded(
            tmp_path, Orchestrator([slow, boom], StaticPlanner(plan)), events
        )
    [finished] = llm_calls(events)
    assert finished.abandoned and finished.cost_usd > 0
    assert result.subtasks["s"].status is ActionStatus.CANCELLED
    assert result.subtasks["s"].cost_usd == finished.cost_usd
    assert_costs_add_up(result, store_total, stored, events)
