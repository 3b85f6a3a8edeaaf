"""Errors, cancellation, retries, skips, nested workflows and duplicate events."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from paraloom import FailurePolicy, Orchestrator, Plan, StaticPlanner, Subtask, WorkflowAction
from paraloom.protocols.actions import (
    ActionCall,
    ActionKind,
    ActionResult,
    ActionSpec,
    ActionStatus,
)
from paraloom.protocols.events import (
    ActionFinished,
    Event,
    LLMCallFinished,
    LLMCallStarted,
    PlanCreated,
    RunFinished,
    RunStarted,
    SubtaskFinished,
)
from paraloom.runtime.context import ActionContext
from paraloom.tools.function import FunctionTool, RetryableError

from .conftest import Traced

pytestmark = pytest.mark.anyio


def attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


async def test_failure_cancels_sibling_and_skips_dependents(traced: Traced) -> None:
    started = anyio.Event()

    async def hang() -> str:
        started.set()
        await anyio.sleep_forever()
        return "never"

    async def boom() -> str:
        await started.wait()
        raise ValueError("kaput")

    def after(x: str) -> str:
        return x

    plan = Plan(
        subtasks=(
            Subtask(id="hang", action="hang"),
            Subtask(id="boom", action="boom", policy=FailurePolicy(on_failure="fail")),
            Subtask(id="after", action="after", arguments={"x": {"from": "hang.output"}}),
        )
    )
    orch = Orchestrator(
        [FunctionTool(hang), FunctionTool(boom), FunctionTool(after)],
        StaticPlanner(plan),
        name="failing",
        listeners=[traced.listener()],
    )
    result = await orch.run()
    assert result.status == "failed"

    # an instant static plan is an event of the run, not a 0 ms row
    assert traced.tree() == (
        "invoke_workflow failing",
        [("execute_tool boom", []), ("execute_tool hang", [])],
    )
    boom_span = traced.one("execute_tool boom")
    assert boom_span.status.status_code is StatusCode.ERROR
    assert boom_span.status.description == "kaput"
    (exception,) = [e for e in boom_span.events if e.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.type"] == "ValueError"
    assert exception.attributes["exception.message"] == "kaput"
    assert attr(boom_span, "error.type") == "ValueError"
    assert attr(boom_span, "paraloom.action.status") == "error"
    [exception] = [e for e in boom_span.events if e.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.type"] == "ValueError"
    assert exception.attributes["exception.message"] == "kaput"
    stack = str(exception.attributes["exception.stacktrace"])
    assert stack.startswith("Traceback (most recent call last)")
    assert 'raise ValueError("kaput")' in stack and "in boom" in stack

    hang_span = traced.one("execute_tool hang")
    assert hang_span.status.status_code is StatusCode.ERROR
    assert attr(hang_span, "error.type") == "cancelled"
    assert attr(hang_span, "paraloom.incomplete") is True

    run = traced.one("invoke_workflow failing")
    assert run.status.status_code is StatusCode.ERROR
    assert attr(run, "error.type") == "failed"
    assert attr(run, "paraloom.run.status") == "failed"
    assert run.status.description is not None and "boom" in run.status.description
    (plan,) = [e for e in run.events if e.name == "paraloom.plan"]
    assert plan.attributes is not None
    assert plan.attributes["paraloom.plan.subtasks"] == ("hang", "boom", "after")
    skipped = [e for e in run.events if e.name == "paraloom.subtask.skipped"]
    assert [e.attributes["paraloom.subtask.id"] for e in skipped if e.attributes] == ["after"]
    assert traced.tree(run) == traced.tree()


async def test_retries_are_sibling_attempts(traced: Traced) -> None:
    calls = [0]

    def flaky() -> str:
        calls[0] += 1
        if calls[0] == 1:
            raise RetryableError("try again")
        return "ok"

    policy = FailurePolicy(retries=2, backoff_initial_s=0, backoff_max_s=0, backoff_jitter_s=0)
    plan = Plan(subtasks=(Subtask(id="flaky", action="flaky", policy=policy),))
    orch = Orchestrator(
        [FunctionTool(flaky)], StaticPlanner(plan), name="retrying", listeners=[traced.listener()]
    )
    assert (await orch.run()).ok
    attempts = sorted(traced.named("execute_tool flaky"), key=lambda s: attr(s, "paraloom.attempt"))
    assert [attr(s, "paraloom.attempt") for s in attempts] == [1, 2]
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.OK]
    assert attr(attempts[0], "paraloom.action.status") == "retryable_error"
    assert {attr(s, "graph.node.id") for s in attempts} == {"flaky"}
    run = traced.one("invoke_workflow retrying")
    (retried,) = [e for e in run.events if e.name == "paraloom.subtask.retried"]
    assert retried.attributes is not None
    assert retried.attributes["paraloom.subtask.id"] == "flaky"
    assert retried.attributes["paraloom.attempt"] == 1


async def test_nested_workflow_with_listener_on_both_levels(traced: Traced) -> None:
    listener = traced.listener()

    def square(x: int) -> int:
        return x * x

    inner = Orchestrator(
        [FunctionTool(square)],
        StaticPlanner(Plan(subtasks=(Subtask(id="sq", action="square", arguments={"x": 3}),))),
        name="inner",
        listeners=[listener],
    )
    outer = Orchestrator(
        [WorkflowAction(inner, name="sub")],
        StaticPlanner(Plan(subtasks=(Subtask(id="s", action="sub", arguments={"task": "go"}),))),
        name="outer",
        listeners=[listener],
    )
    result = await outer.run()
    assert result.ok and result.output == 9
    # one row for the nested workflow (the action's span is the nested run's span), and
    # no 0 ms rows for the static planners' rounds
    assert traced.tree() == (
        "invoke_workflow outer",
        [("invoke_workflow sub", [("execute_tool square", [])])],
    )
    action = traced.one("invoke_workflow sub")
    assert attr(action, "openinference.span.kind") == "CHAIN"
    assert attr(action, "paraloom.action.kind") == "workflow"
    assert attr(action, "paraloom.run.id") == result.run_id
    inner_id = attr(action, "paraloom.nested_run.id")
    assert inner_id != result.run_id and attr(action, "gen_ai.workflow.name") == "inner"
    assert attr(action, "paraloom.run.status") == "ok"
    sq = traced.one("execute_tool square")
    assert attr(sq, "paraloom.run.id") == inner_id
    assert attr(sq, "graph.node.id") == "sq"
    assert attr(sq, "graph.node.parent_id") == "s"  # the outer subtask that ran `sub`
    assert listener.errors == 0


class EmittingAgent:
    """A hand-written agent action reporting one LLM call that fails."""

    spec = ActionSpec(name="writer", kind=ActionKind.AGENT)

    async def invoke(self, call: ActionCall, context: ActionContext) -> ActionResult:
        context.emit(
            LLMCallStarted(
                run_id=context.run_id, llm_call_id="llm_x", parent_call_id=call.call_id, model="m"
            )
        )
        context.emit(
            LLMCallFinished(
                run_id=context.run_id,
                llm_call_id="llm_x",
                parent_call_id=call.call_id,
                model="m",
                error="ModelError: upstream 503",
            )
        )
        return ActionResult.failure(call, ActionStatus.ERROR, "ModelError", "upstream 503")


async def test_llm_error_sets_status_and_error_type(traced: Traced) -> None:
    orch = Orchestrator(
        [EmittingAgent()],
        StaticPlanner(Plan(subtasks=(Subtask(id="w", action="writer"),))),
        name="llm_error",
        listeners=[traced.listener()],
    )
    await orch.run()
    chat = traced.one("chat m")
    assert chat.status.status_code is StatusCode.ERROR
    assert attr(chat, "error.type") == "ModelError"
    assert chat.parent is not None
    assert chat.parent.span_id == traced.one("invoke_agent writer").context.span_id


def test_stray_events_are_ignored_and_close_ends_open_spans(traced: Traced) -> None:
    listener = traced.listener()
    result = ActionResult(call_id="c", action="t", status=ActionStatus.OK)
    listener(ActionFinished(run_id="r", call_id="nope", kind=ActionKind.TOOL, result=result))
    listener(RunFinished(run_id="r", workflow="w", status="ok"))
    listener(LLMCallFinished(run_id="r", llm_call_id="nope", model="m"))
    assert traced.spans == [] and listener.errors == 0
    listener(RunStarted(run_id="r", workflow="w"))
    listener.close()
    (span,) = traced.spans
    assert span.name == "invoke_workflow w"
    assert attr(span, "paraloom.incomplete") is True


def test_resumed_run_replayed_round_and_reused_subtask(traced: Traced) -> None:
    listener = traced.listener()
    plan = Plan(subtasks=(Subtask(id="a", action="t"),))
    reused = ActionResult(call_id="c1", action="t", status=ActionStatus.OK, output=1)
    events: list[Event] = [
        RunStarted(run_id="r", workflow="w"),
        PlanCreated(run_id="r", round=1, call_id="p1", plan=plan, replayed=True),
        PlanCreated(run_id="r", round=1, call_id="p1", plan=plan, replayed=True),  # duplicate
        SubtaskFinished(run_id="r", round=1, subtask_id="a", result=reused, reused=True),
        RunFinished(run_id="r", workflow="w", status="ok"),
    ]
    for event in events:
        listener(event)
    assert traced.tree() == ("invoke_workflow w", [("plan planner", [])])
    plan_span = traced.one("plan planner")
    assert attr(plan_span, "paraloom.replayed") is True
    assert attr(plan_span, "paraloom.plan.subtasks") == ("a",)
    (span_event,) = traced.one("invoke_workflow w").events
    assert span_event.name == "paraloom.subtask.reused"
    assert span_event.attributes is not None
    assert span_event.attributes["paraloom.subtask.id"] == "a"
    assert listener.errors == 0
