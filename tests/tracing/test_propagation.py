"""Spans made inside actions nest under their call's span, also for parallel subtasks."""

from __future__ import annotations

import anyio
import pytest

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask
from paraloom.tools.function import FunctionTool
from paraloom.tracing import with_span_context

from .conftest import Traced

pytestmark = pytest.mark.anyio


async def test_inner_spans_nest_under_parallel_tool_spans(traced: Traced) -> None:
    tracer = traced.tracer_provider.get_tracer("user-code")
    arrived = [0]
    both = anyio.Event()

    async def work(label: str) -> str:
        arrived[0] += 1
        if arrived[0] == 2:
            both.set()
        with anyio.fail_after(10):
            await both.wait()  # both calls are in flight: their contexts must not mix
        with tracer.start_as_current_span(f"inner {label}"):
            await anyio.lowlevel.checkpoint()
        return label

    listener = traced.listener()
    plan = Plan(
        subtasks=(
            Subtask(id="x", action="work", arguments={"label": "x"}),
            Subtask(id="y", action="work", arguments={"label": "y"}),
        )
    )
    orch = Orchestrator(
        with_span_context([FunctionTool(work)], listener),
        StaticPlanner(plan),
        name="prop",
        listeners=[listener],
    )
    assert (await orch.run()).ok
    for label in ("x", "y"):
        inner = traced.one(f"inner {label}")
        (tool_span,) = [
            s
            for s in traced.named(f"execute_tool work [{label}]")  # twins named apart
            if s.attributes and s.attributes.get("graph.node.id") == label
        ]
        assert inner.parent is not None
        assert inner.parent.span_id == tool_span.context.span_id
        assert inner.context.trace_id == tool_span.context.trace_id


async def test_without_the_wrapper_inner_spans_do_not_nest(traced: Traced) -> None:
    tracer = traced.tracer_provider.get_tracer("user-code")

    async def work() -> str:
        with tracer.start_as_current_span("inner"):
            return "ok"

    orch = Orchestrator(
        [FunctionTool(work)],
        StaticPlanner(Plan(subtasks=(Subtask(id="w", action="work"),))),
        name="plain",
        listeners=[traced.listener()],
    )
    assert (await orch.run()).ok
    assert traced.one("inner").parent is None
