"""The budget against what the provider bills, over real HTTP: abandoned requests keep
their worst case, one cost tally per run, usage checks, cached and reasoning tokens."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, OpenAICompatible, RetryPolicy, call_model
from paraloom.orchestrator import Orchestrator
from paraloom.orchestrator.planner import StaticPlanner
from paraloom.protocols.actions import ActionStatus
from paraloom.protocols.events import (
    Event,
    LLMCallFinished,
    LLMCallStarted,
    RunStarted,
    UsageAnomaly,
)
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.protocols.plan import FailurePolicy, Plan, Subtask
from paraloom.runtime.budget import Budget, BudgetExhausted
from paraloom.runtime.context import ActionContext
from paraloom.runtime.worst_case import measure_input, worst_case
from paraloom.store import RunStore
from paraloom.testing import Reply, Slow, tool_call
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest
from paraloom.tools import tool

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

M = ModelDescriptor(
    name="m",
    input_price_per_m=Decimal(1),
    output_price_per_m=Decimal(2),
    cached_input_price_per_m=Decimal("0.25"),
)
MSGS = [ChatMessage(role="user", content="hello")]
NO_RETRY = RetryPolicy(attempts=1)


@tool
def ping() -> str:
    """Answers pong."""
    return "pong"


def llm_calls(events: list[Event]) -> list[LLMCallFinished]:
    return [e for e in events if isinstance(e, LLMCallFinished)]


def client(server: OpenAITestServer, **kw: Any) -> OpenAICompatible:
    kw.setdefault("retry", NO_RETRY)
    return OpenAICompatible(server.base_url, "k", **kw)


async def test_timed_out_turn_keeps_its_worst_case_and_the_run_reports_every_call(
    tmp_path: Path,
) -> None:
    """The issue's minimal case: turn 1 is billed, turn 2 times out on the client. Before,
    cost_usd was 0 (the failed subtask's) and the timed-out request was released."""
    server = OpenAITestServer(
        [
            Reply.calls(tool_call("ping"), input_tokens=40, output_tokens=10),
            Slow(30, Reply("late")),  # the provider finishes and bills it; the client left
        ]
    )
    async with server.running(), client(server, timeout_s=0.3) as c:
        pool = ModelPool([M], client=c)
        agent = LLMAgent("a", instructions="Use ping.", model="m", pool=pool, actions=[ping])
        plan = Plan(subtasks=(Subtask(id="s", action="a", arguments={"task": "go"}),))
        events: list[Event] = []
        budget = Budget("1.00")
        with RunStore(tmp_path / "runs.sqlite") as store:
            orch = Orchestrator([agent], StaticPlanner(plan), listeners=[store.listener()])
            result = await orch.run("t", budget=budget, on_event=events.append)
            await store.aflush()
            stored = store.get_run(result.run_id)
            store_total = store.llm_cost(result.run_id)
    first, second = llm_calls(events)
    assert first.cost_usd == M.cost(40, 10) and not first.abandoned
    assert second.abandoned and second.error is not None and "timed out" in second.error
    started = [e for e in events if isinstance(e, LLMCallStarted)]
    assert second.cost_usd == started[1].reserved_usd > 0  # the worst case, held
    assert budget.spent_usd == first.cost_usd + second.cost_usd
    assert result.status == "failed"
    assert result.cost_usd == budget.spent_usd == store_total == stored.cost_usd
    [rec_first, rec_second] = stored.llm_call_records
    assert not rec_first.abandoned and rec_second.abandoned
    assert rec_second.cost_usd == second.cost_usd


async def test_release_is_an_explicit_opt_out() -> None:
    server = OpenAITestServer([Slow(30, Reply("late"))])
    async with server.running(), client(server, timeout_s=0.2) as c:
        budget = Budget("1.00", on_abandoned="release")
        events: list[Event] = []
        ctx = ActionContext(run_id="r", emit=events.append, budget=budget)
        with pytest.raises(Exception, match="timed out"):
            await call_model(ModelPool([M], client=c), ctx, MSGS, default_model="m")
    [finished] = llm_calls(events)
    assert finished.abandoned and finished.cost_usd == 0
    assert budget.spent_usd == 0 and budget.reserved_usd == 0


async def test_a_retry_after_a_billed_timeout_reserves_anew() -> None:
    server = OpenAITestServer([Slow(30, Reply("late")), Reply("ok", input_tokens=5)])
    retry = RetryPolicy(attempts=2, initial_wait_s=0)
    async with server.running(), client(server, timeout_s=0.3, retry=retry) as c:
        budget = Budget("1.00")
        events: list[Event] = []
        ctx = ActionContext(run_id="r", emit=events.append, budget=budget)
        mc = await call_model(ModelPool([M], client=c), ctx, MSGS, default_model="m")
    abandoned, ok = llm_calls(events)
    started = [e for e in events if isinstance(e, LLMCallStarted)]
    assert len(started) == 2 and abandoned.llm_call_id != ok.llm_call_id
    assert abandoned.abandoned and abandoned.cost_usd == started[0].reserved_usd
    assert ok.llm_call_id == mc.llm_call_id and not ok.abandoned
    assert budget.spent_usd == abandoned.cost_usd + mc.cost_usd and budget.reserved_usd == 0
    assert budget.calls_made == 2


async def test_a_retry_that_no_longer_fits_is_not_sent() -> None:
    server = OpenAITestServer([Slow(30, Reply("late")), Reply("ok")])
    retry = RetryPolicy(attempts=3, initial_wait_s=0)
    worst = worst_case(M, measure_input(MSGS), 100).usd
    budget = Budget(worst * 3 / 2)  # one worst case fits, two do not
    events: list[Event] = []
    async with server.running(), client(server, timeout_s=0.3, retry=retry) as c:
        ctx = ActionContext(run_id="r", emit=events.append, budget=budget)
        with pytest.raises(BudgetExhausted):
            await call_model(ModelPool([M], client=c), ctx, MSGS, default_model="m", max_tokens=100)
        assert len(server.requests) == 1  # the timed-out request only: the retry was not sent
    [started] = [e for e in events if isinstance(e, LLMCallStarted)]
    [finished] = llm_calls(events)
    assert finished.abandoned and started.reserved_usd == worst
    assert budget.spent_usd == worst and budget.reserved_usd == 0


async def test_cancelled_sibling_is_billed_and_counted() -> None:
    """A sibling's failure (on_failure: fail) cancels an in-flight LLM call: the
    provider still bills it, so its worst case stays spent and is in the run's cost."""

    def handler(req: RecordedRequest) -> Reply | Slow:
        return Slow(30, Reply("late")) if "slow" in req.system else Reply("x")

    @tool
    def boom() -> str:
        """Fails."""
        raise RuntimeError("boom")

    server = OpenAITestServer(handler=handler)
    async with server.running(), client(server, timeout_s=20) as c:
        pool = ModelPool([M], client=c)
        slow = LLMAgent("slow", instructions="slow", model="m", pool=pool)
        plan = Plan(
            subtasks=(
                Subtask(id="s", action="slow", arguments={"task": "go"}),
                Subtask(
                    id="b", action="boom", arguments={}, policy=FailurePolicy(on_failure="fail")
                ),
            )
        )
        events: list[Event] = []
        budget = Budget("1.00")
        orch = Orchestrator([slow, boom], StaticPlanner(plan))
        result = await orch.run("t", budget=budget, on_event=events.append)
    [finished] = llm_calls(events)
    assert finished.abandoned and finished.error == "cancelled" and finished.cost_usd > 0
    assert result.status == "failed"
    assert result.cost_usd == budget.spent_usd == finished.cost_usd


async def test_lying_usage_is_an_anomaly_charged_as_billed_and_never_plain_ok(
    tmp_path: Path,
) -> None:
    """The provider reports 10x the max_tokens it was sent: the call is charged what was
    reported, a usage_anomaly event is emitted and recorded, and the run, whose spend
    passed its limit, finishes with status 'warning' (not 'ok')."""

    def liar(req: RecordedRequest) -> Reply:
        cap = req.body.max_tokens or 1
        return Reply("x", input_tokens=3, output_tokens=cap * 10)

    server = OpenAITestServer(handler=liar)
    async with server.running(), client(server) as c:
        pool = ModelPool([M], client=c)
        agent = LLMAgent("a", instructions="Be brief.", model="m", pool=pool, max_tokens=50)
        plan = Plan(subtasks=(Subtask(id="s", action="a", arguments={"task": "go"}),))
        events: list[Event] = []
        budget = Budget(Decimal("0.0005"))  # fits the worst case, not 10x the output
        with RunStore(tmp_path / "runs.sqlite") as store:
            orch = Orchestrator([agent], StaticPlanner(plan), listeners=[store.listener()])
            result = await orch.run("t", budget=budget, on_event=events.append)
            await store.aflush()
            stored = store.get_run(result.run_id)
            recorded = [e for e in store.events(result.run_id) if isinstance(e, UsageAnomaly)]
    [anomaly] = [e for e in events if isinstance(e, UsageAnomaly)]
    assert anomaly.usage.output_tokens == 500 and anomaly.max_tokens_sent == 50
    assert "completion_tokens 500 > max_tokens sent 50" in anomaly.reasons[0]
    [finished] = llm_calls(events)
    assert finished.cost_usd == M.cost(3, 500) == budget.spent_usd > budget.limit_usd
    assert finished.usage_anomaly is not None
    assert result.status == "warning" and not result.ok
    assert any("usage_anomaly" in w for w in result.warnings)
    assert any("budget exceeded" in w for w in result.warnings)
    assert stored.status == "warning" and len(stored.warnings) == 2
    assert stored.llm_call_records[0].usage_anomaly == finished.usage_anomaly
    assert recorded == [anomaly]


async def test_prompt_tokens_above_the_input_bound_are_an_anomaly() -> None:
    server = OpenAITestServer([Reply("x", input_tokens=10_000, output_tokens=1)])
    async with server.running(), client(server) as c:
        events: list[Event] = []
        ctx = ActionContext(run_id="r", emit=events.append, budget=Budget("1"))
        mc = await call_model(ModelPool([M], client=c), ctx, MSGS, default_model="m")
    [anomaly] = [e for e in events if isinstance(e, UsageAnomaly)]
    assert "prompt_tokens 10000 > input bound" in anomaly.reasons[0]
    assert mc.cost_usd == M.cost(10_000, 1)


async def test_cached_and_reasoning_tokens_are_read_and_priced_exactly(tmp_path: Path) -> None:
    reply = Reply("ok", input_tokens=9, output_tokens=7, cached_tokens=6, reasoning_tokens=5)
    server = OpenAITestServer([reply])
    async with server.running(), client(server) as c:
        events: list[Event] = []
        with RunStore(tmp_path / "runs.sqlite") as store:
            listener = store.listener()

            def emit(event: Event) -> None:
                events.append(event)
                listener(event)

            ctx = ActionContext(run_id="r", emit=emit, budget=Budget("1"))
            listener(RunStarted(run_id="r", workflow="w"))
            mc = await call_model(ModelPool([M], client=c), ctx, MSGS, default_model="m")
            await store.aflush()
            [rec] = store.get_run("r").llm_call_records
    assert mc.usage.cached_input_tokens == 6 and mc.usage.reasoning_tokens == 5
    # 3 uncached at $1/M + 6 cached at $0.25/M + 7 output (5 of them reasoning) at $2/M
    assert mc.cost_usd == (Decimal(3) + Decimal("1.5") + Decimal(14)) / 1_000_000
    [finished] = llm_calls(events)
    assert finished.usage.cached_input_tokens == 6 and finished.cost_usd == mc.cost_usd
    assert (rec.cached_input_tokens, rec.reasoning_tokens) == (6, 5)
    assert rec.cost_usd == mc.cost_usd


def test_on_abandoned_in_yaml(tmp_path: Path) -> None:
    from paraloom.config import ConfigError, load_config
    from paraloom.config.build import Project

    f = tmp_path / "flow.yaml"
    head = "tools:\n  ping: {python: 'json:dumps'}\nworkflows:\n  main:\n"
    head += "    subtasks: [{id: a, action: ping, arguments: {obj: 1}}]\n"
    f.write_text(head + "budget: {usd: 1, on_abandoned: release}\n", encoding="utf-8")
    loaded = load_config(f)
    project = Project(loaded, "main", None, None, None, None, None)  # type: ignore[arg-type]
    assert project.new_budget().on_abandoned == "release"
    f.write_text(head + "budget: 1\n", encoding="utf-8")
    project.loaded = load_config(f)
    assert project.new_budget().on_abandoned == "bill_worst_case"
    f.write_text(head + "budget: {usd: 1, on_abandoned: forget}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    [problem] = info.value.problems
    assert str(problem).startswith(f"{f}:6:") and "on_abandoned" in str(problem)


async def test_nested_workflow_and_retried_attempts_are_in_the_one_tally(tmp_path: Path) -> None:
    """Outer run: a nested workflow (an agent inside) and an agent subtask whose first
    attempt fails after a billed turn and is retried. cost_usd == every call's cost ==
    the store's sum over the run and its nested run == the store's run cost."""
    from paraloom import WorkflowAction

    calls = {"n": 0}

    def handler(req: RecordedRequest) -> Any:
        calls["n"] += 1
        if "flaky" in req.system and calls["n"] <= 3 and req.body.tools:
            return Reply.calls(tool_call("nope"), input_tokens=12, output_tokens=5)
        return Reply("done", input_tokens=8, output_tokens=4)

    server = OpenAITestServer(handler=handler)
    async with server.running(), client(server) as c:
        pool = ModelPool([M], client=c)
        inner_agent = LLMAgent("inner_agent", instructions="inner", model="m", pool=pool)
        inner = Orchestrator(
            [inner_agent],
            StaticPlanner(
                Plan(
                    subtasks=(
                        Subtask(
                            id="i", action="inner_agent", arguments={"task": {"from": "input"}}
                        ),
                    )
                )
            ),
            name="inner",
        )
        flaky = LLMAgent(
            "flaky", instructions="flaky", model="m", pool=pool, actions=[ping], max_turns=1
        )
        plan = Plan(
            subtasks=(
                Subtask(id="w", action="inner", arguments={"task": "go"}),
                Subtask(
                    id="f",
                    action="flaky",
                    arguments={"task": "go"},
                    policy=FailurePolicy(
                        retries=2,
                        retry_on=frozenset(ActionStatus),
                        backoff_initial_s=0,
                        backoff_jitter_s=0,
                    ),
                ),
            )
        )
        events: list[Event] = []
        budget = Budget("1.00")
        with RunStore(tmp_path / "runs.sqlite") as store:
            orch = Orchestrator(
                [WorkflowAction(inner), flaky], StaticPlanner(plan), listeners=[store.listener()]
            )
            result = await orch.run("t", budget=budget, on_event=events.append)
            await store.aflush()
            store_total = store.llm_cost(result.run_id)
            stored_cost = store.get_run(result.run_id).cost_usd
    finished = llm_calls(events)
    assert result.status == "ok", (result.error, result.warnings)
    assert result.subtasks["f"].attempt == 3
    assert len(finished) == 4  # the nested agent's call and three flaky attempts
    assert {e.run_id for e in finished} != {result.run_id}  # the nested run's own id too
    total = sum((e.cost_usd for e in finished), Decimal(0))
    assert result.cost_usd == total == budget.spent_usd == store_total == stored_cost
    # each subtask's cost is every attempt's: they add up to the run's
    assert result.cost_usd == sum((r.cost_usd for r in result.subtasks.values()), Decimal(0))

    # the same run with nobody listening: the tally does not depend on listeners
    calls["n"] = 0
    quiet_budget = Budget("1.00")
    async with server.running(), client(server) as c:
        pool2 = ModelPool([M], client=c)
        for agent in (inner_agent, flaky):
            agent.pool = pool2
        quiet = await Orchestrator([WorkflowAction(inner), flaky], StaticPlanner(plan)).run(
            "t", budget=quiet_budget
        )
    assert quiet.status == "ok" and quiet.subtasks["f"].attempt == 3
    assert quiet.cost_usd == quiet_budget.spent_usd == result.cost_usd
    assert quiet.cost_usd == sum((r.cost_usd for r in quiet.subtasks.values()), Decimal(0))


async def test_a_resumed_run_counts_what_earlier_sessions_spent(tmp_path: Path) -> None:
    """Session 1: an LLM subtask is billed, a tool fails. Session 2 reuses the LLM
    subtask and reruns the tool: the run's cost is both sessions' calls, as in the store."""
    broken = {"on": True}

    @tool
    def check(text: str) -> str:
        """Fails while broken."""
        if broken["on"]:
            raise RuntimeError("broken")
        return text

    server = OpenAITestServer(handler=lambda r: Reply("hi", input_tokens=8, output_tokens=2))
    async with server.running(), client(server) as c:
        pool = ModelPool([M], client=c)
        agent = LLMAgent("a", instructions="Greet.", model="m", pool=pool)
        plan = Plan(
            subtasks=(
                Subtask(id="g", action="a", arguments={"task": "greet"}),
                Subtask(id="c", action="check", arguments={"text": {"from": "g.output"}}),
            )
        )
        with RunStore(tmp_path / "runs.sqlite") as store:
            orch = Orchestrator([agent, check], StaticPlanner(plan), listeners=[store.listener()])
            first = await orch.run("t", budget=Budget("1"))
            await store.aflush()
            assert first.status == "failed" and first.cost_usd == M.cost(8, 2)
            broken["on"] = False
            again = await orch.run("t", budget=Budget("1"), resume=store.resume_state(first.run_id))
            await store.aflush()
            stored = store.get_run(first.run_id)
            total = store.llm_cost(first.run_id)
    assert again.status == "ok" and len(server.requests) == 1  # the LLM subtask was reused
    assert again.cost_usd == first.cost_usd == total == stored.cost_usd


async def test_a_reply_without_usage_is_charged_its_worst_case() -> None:
    server = OpenAITestServer([Reply("ok", report_usage=False)])
    async with server.running(), client(server) as c:
        events: list[Event] = []
        budget = Budget("1")
        ctx = ActionContext(run_id="r", emit=events.append, budget=budget)
        mc = await call_model(ModelPool([M], client=c), ctx, MSGS, default_model="m", max_tokens=30)
    worst = worst_case(M, measure_input(MSGS), 30).usd
    assert mc.cost_usd == worst == budget.spent_usd
    [anomaly] = [e for e in events if isinstance(e, UsageAnomaly)]
    assert anomaly.reasons == ["no usage reported: charged the worst case"]
