"""The span tree of a real run: a diamond DAG with two parallel LLM agents and tool calls."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from paraloom.runtime.selection import Selection, SelectionRequest
from paraloom.tracing import COST_METRIC, DURATION_METRIC, TOKEN_USAGE_METRIC

from .conftest import Traced
from .diamond import MODELS, build_diamond

pytestmark = pytest.mark.anyio

CONTENT_PREFIXES = (
    "input.",
    "output.",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "llm.input_messages",
    "llm.output_messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
)


def node(name: str, *children: Any) -> Any:
    return (name, sorted(children, key=repr))


EXPECTED_TREE = node(
    "invoke_workflow diamond",
    node("plan demo_planner", node("chat mini-2026")),
    node("execute_tool fetch"),
    node(
        "invoke_agent analyst_a",
        node("chat mini-2026"),
        node("execute_tool lookup"),
        node("chat mini-2026"),
    ),
    node(
        "invoke_agent analyst_b",
        node("chat large-2026"),
        node("execute_tool lookup"),
        node("chat large-2026"),
    ),
    node("execute_tool merge"),
    node("plan demo_planner", node("chat mini-2026")),
)


def attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


def usd(span: ReadableSpan) -> Decimal:
    return Decimal(str(attr(span, "paraloom.cost_usd")))


def by_subtask(t: Traced, subtask: str) -> ReadableSpan:
    found = [
        s
        for s in t.spans
        if attr(s, "graph.node.id") == subtask and attr(s, "paraloom.call.id") is not None
    ]
    assert len(found) == 1
    return found[0]


async def test_diamond_tree_names_parents_kinds(traced: Traced) -> None:
    d = build_diamond(listeners=[traced.listener()])
    result = await d.orchestrator.run(d.task)
    assert result.ok, result.error
    assert traced.tree() == EXPECTED_TREE

    run = traced.one("invoke_workflow diamond")
    assert attr(run, "gen_ai.operation.name") == "invoke_workflow"
    assert attr(run, "gen_ai.workflow.name") == "diamond"
    assert attr(run, "openinference.span.kind") == "CHAIN"
    assert attr(run, "paraloom.run.id") == result.run_id
    assert attr(run, "paraloom.run.status") == "ok"
    assert attr(run, "paraloom.budget.limit_usd") == "1"
    assert run.status.status_code is StatusCode.OK

    expected_kind = {
        "invoke_workflow": ("CHAIN", SpanKind.INTERNAL),
        "plan": ("CHAIN", SpanKind.INTERNAL),
        "invoke_agent": ("AGENT", SpanKind.INTERNAL),
        "execute_tool": ("TOOL", SpanKind.INTERNAL),
        "chat": ("LLM", SpanKind.CLIENT),
    }
    for span in traced.spans:
        op = span.name.split(" ", 1)[0]
        assert attr(span, "gen_ai.operation.name") == op
        assert (attr(span, "openinference.span.kind"), span.kind) == expected_kind[op]
        assert span.status.status_code is StatusCode.OK, span.name
        assert run.start_time is not None and span.start_time is not None
        assert run.end_time is not None and span.end_time is not None
        assert run.start_time <= span.start_time <= span.end_time <= run.end_time
        assert span.context.trace_id == run.context.trace_id

    for name in ("analyst_a", "analyst_b"):
        agent = traced.one(f"invoke_agent {name}")
        assert attr(agent, "gen_ai.agent.name") == name
        assert attr(agent, "gen_ai.agent.id") == name
        assert attr(agent, "paraloom.action.kind") == "agent"
        (lookup,) = [c for c in traced.children(agent) if c.name == "execute_tool lookup"]
        assert attr(lookup, "paraloom.parent_call.id") == attr(agent, "paraloom.call.id")
        assert attr(lookup, "gen_ai.tool.name") == "lookup"
        assert attr(lookup, "gen_ai.tool.type") == "function"
        assert attr(lookup, "gen_ai.tool.call.id") == attr(lookup, "paraloom.call.id")
        assert attr(lookup, "graph.node.parent_id") == attr(agent, "graph.node.id")

    # The two lookups waited for each other: the agents really overlapped in time.
    la, lb = traced.named("execute_tool lookup")
    assert la.start_time is not None and lb.start_time is not None
    assert la.end_time is not None and lb.end_time is not None
    assert la.start_time <= lb.end_time and lb.start_time <= la.end_time

    # Plan rounds: round 1 wrote the plan, round 2 the final answer; each holds its LLM call.
    rounds = sorted(traced.named("plan demo_planner"), key=lambda s: attr(s, "paraloom.round"))
    assert [attr(r, "paraloom.round") for r in rounds] == [1, 2]
    assert attr(rounds[0], "paraloom.plan.subtasks") == ("fetch", "a", "b", "merge")
    assert attr(rounds[0], "paraloom.plan.final") is False
    assert attr(rounds[1], "paraloom.plan.final") is True
    assert all(attr(r, "gen_ai.agent.name") == "demo_planner" for r in rounds)
    for r in rounds:
        (chat,) = traced.children(r)
        assert attr(chat, "paraloom.step_kind") == "plan"
        assert attr(chat, "paraloom.parent_call.id") == attr(r, "paraloom.call.id")
    assert [attr(traced.children(r)[0], "paraloom.llm_call.id") for r in rounds] == (
        d.planner.seen_calls
    )

    # The DAG, drawable from graph.node.*: fetch → a, b → merge.
    fetch, a, b, merge = (by_subtask(traced, s) for s in ("fetch", "a", "b", "merge"))
    assert attr(fetch, "graph.node.parent_id") == result.run_id
    assert attr(a, "graph.node.parent_id") == attr(b, "graph.node.parent_id") == "fetch"
    assert attr(merge, "graph.node.parent_id") == "a"
    assert attr(merge, "paraloom.subtask.depends_on") == ("a", "b")
    assert attr(a, "paraloom.subtask.depends_on") == ("fetch",)
    assert a.end_time is not None and b.end_time is not None and merge.start_time is not None
    assert merge.start_time >= max(a.end_time, b.end_time)
    assert attr(a, "paraloom.round") == attr(merge, "paraloom.round") == 1
    assert attr(run, "graph.node.id") == result.run_id


async def test_tokens_and_costs_add_up(traced: Traced) -> None:
    d = build_diamond(listeners=[traced.listener()])
    result = await d.orchestrator.run(d.task)
    assert result.ok
    chats = [s for s in traced.spans if s.name.startswith("chat ")]
    assert len(chats) == 6 == len(d.model.requests)

    prices = {m.name: m for m in MODELS}
    per_model: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for chat in chats:
        model = attr(chat, "paraloom.model")  # the pool name; the provider's id is requested
        assert attr(chat, "gen_ai.request.model") == prices[model].model_id
        assert chat.name == f"chat {prices[model].model_id}"
        assert attr(chat, "llm.model_name") == prices[model].model_id
        assert attr(chat, "gen_ai.provider.name") == attr(chat, "llm.provider") == "test"
        assert attr(chat, "gen_ai.response.model") == prices[model].model_id
        assert attr(chat, "gen_ai.response.finish_reasons") in (("stop",), ("tool_calls",))
        inp, out = attr(chat, "gen_ai.usage.input_tokens"), attr(chat, "gen_ai.usage.output_tokens")
        assert inp > 0 and out > 0
        assert (attr(chat, "llm.token_count.prompt"), attr(chat, "llm.token_count.completion")) == (
            inp,
            out,
        )
        assert attr(chat, "llm.token_count.total") == inp + out
        assert usd(chat) == prices[model].cost(inp, out)
        assert attr(chat, "llm.cost.total") == pytest.approx(float(usd(chat)))
        assert attr(chat, "llm.cost.prompt") == pytest.approx(float(prices[model].cost(inp, 0)))
        assert attr(chat, "llm.cost.completion") == pytest.approx(float(prices[model].cost(0, out)))
        assert json.loads(attr(chat, "llm.invocation_parameters"))["max_tokens"] > 0
        assert attr(chat, "gen_ai.request.max_tokens") > 0
        assert attr(chat, "session.id") == result.run_id
        assert Decimal(attr(chat, "paraloom.reserved_usd")) >= usd(chat)
        assert Decimal(attr(chat, "paraloom.budget.left_usd")) < 1
        per_model[model][0] += inp
        per_model[model][1] += out

    assert {m: [u.input_tokens, u.output_tokens] for m, u in result.usage.items()} == dict(
        per_model
    )
    total = sum((usd(c) for c in chats), Decimal(0))
    run = traced.one("invoke_workflow diamond")
    assert total == result.cost_usd == usd(run) > 0

    for name in ("analyst_a", "analyst_b"):
        agent = traced.one(f"invoke_agent {name}")
        own = [c for c in traced.children(agent) if c.name.startswith("chat ")]
        assert usd(agent) == sum((usd(c) for c in own), Decimal(0))
        assert attr(agent, "paraloom.usage.input_tokens") == sum(
            attr(c, "gen_ai.usage.input_tokens") for c in own
        )
        assert attr(agent, "paraloom.usage.output_tokens") == sum(
            attr(c, "gen_ai.usage.output_tokens") for c in own
        )

    # Metrics: token histograms, durations and the cost counter agree with the spans.
    data = traced.reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = defaultdict(list)
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points[metric.name].extend(metric.data.data_points)
    tokens = {p.attributes["gen_ai.token.type"]: 0 for p in points[TOKEN_USAGE_METRIC]}
    for p in points[TOKEN_USAGE_METRIC]:
        tokens[p.attributes["gen_ai.token.type"]] += p.sum
    assert tokens == {
        "input": sum(v[0] for v in per_model.values()),
        "output": sum(v[1] for v in per_model.values()),
    }
    assert sum(p.count for p in points[DURATION_METRIC]) == 6
    assert {p.attributes["gen_ai.request.model"] for p in points[DURATION_METRIC]} == {
        "mini-2026",
        "large-2026",
    }
    assert sum(p.value for p in points[COST_METRIC]) == pytest.approx(float(total))


async def test_content_capture_is_off_by_default(traced: Traced) -> None:
    d = build_diamond(listeners=[traced.listener()])
    assert (await d.orchestrator.run(d.task)).ok
    assert traced.spans
    for span in traced.spans:
        leaked = [k for k in span.attributes or {} if k.startswith(CONTENT_PREFIXES)]
        assert not leaked, (span.name, leaked)
    text = repr([dict(s.attributes or {}) for s in traced.spans])
    for content in ("solar power", "Assess the costs", "summary:", "You are analyst"):
        assert content not in text


async def test_content_capture_on(traced: Traced) -> None:
    d = build_diamond(listeners=[traced.listener(capture_content=True)], capture_content=True)
    result = await d.orchestrator.run(d.task)
    assert result.ok
    run = traced.one("invoke_workflow diamond")
    assert attr(run, "input.value") == '{"topic":"solar power"}'
    assert attr(run, "input.mime_type") == "application/json"
    assert attr(run, "output.value") == result.output
    assert attr(run, "output.mime_type") == "text/plain"

    agent = traced.one("invoke_agent analyst_a")
    assert "Assess the costs." in attr(agent, "input.value")
    assert attr(agent, "output.value") == "summary: costs: moderate"
    lookup = next(c for c in traced.children(agent) if c.name == "execute_tool lookup")
    assert attr(lookup, "gen_ai.tool.call.arguments") == '{"topic":"costs"}'
    assert attr(lookup, "gen_ai.tool.call.result") == '"costs: moderate"'

    first_chat = traced.children(agent)[0]
    assert attr(first_chat, "llm.input_messages.0.message.role") == "system"
    assert "analyst A" in attr(first_chat, "llm.input_messages.0.message.content")
    assert attr(first_chat, "llm.output_messages.0.message.role") == "assistant"
    assert (
        attr(first_chat, "llm.output_messages.0.message.tool_calls.0.tool_call.function.name")
        == "lookup"
    )
    assert '"type":"tool_call"' in attr(first_chat, "gen_ai.output.messages")
    assert '"role":"system"' in attr(first_chat, "gen_ai.input.messages")

    plan = traced.named("plan demo_planner")
    assert any('"id":"merge"' in str(attr(p, "output.value")) for p in plan)


class Router:
    """Picks "large" for analyst_b, "mini" otherwise, with scores and a predicted cost."""

    async def select(self, request: SelectionRequest) -> Selection:
        model = "large" if request.agent == "analyst_b" else "mini"
        return Selection(
            model=model,
            reason="best score within budget",
            predicted_quality=0.8,
            predicted_cost_usd=Decimal("0.0005"),
            scores={"mini": 0.7, "large": 0.9},
            info={"api_key": "should-not-appear", "pacing": 1.5},
        )


async def test_routing_decision_on_llm_spans(traced: Traced) -> None:
    d = build_diamond(listeners=[traced.listener()], model_selector=Router())
    assert (await d.orchestrator.run(d.task)).ok
    assert traced.tree() == EXPECTED_TREE
    chats = [s for s in traced.spans if s.name.startswith("chat ")]
    for chat in chats:
        assert attr(chat, "paraloom.routing.model") == attr(chat, "paraloom.model")
        assert attr(chat, "gen_ai.request.model") == f"{attr(chat, 'paraloom.model')}-2026"
        assert attr(chat, "paraloom.routing.reason") == "best score within budget"
        assert attr(chat, "paraloom.routing.predicted_quality") == 0.8
        assert attr(chat, "paraloom.routing.predicted_cost_usd") == "0.0005"
        assert attr(chat, "paraloom.routing.scores.candidates") == ("mini", "large")
        assert attr(chat, "paraloom.routing.scores.values") == (0.7, 0.9)
        assert attr(chat, "paraloom.routing.info") == '{"api_key":"[REDACTED]","pacing":1.5}'
    left = sorted(Decimal(attr(c, "paraloom.budget.left_usd")) for c in chats)
    assert len(set(left)) == len(left)  # every settled call left a different remainder


async def test_unsampled_run_exports_no_spans_but_keeps_metrics() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from paraloom.tracing import TracingListener

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=ALWAYS_OFF)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    listener = TracingListener(tracer_provider, MeterProvider(metric_readers=[reader]))
    d = build_diamond(listeners=[listener])
    result = await d.orchestrator.run(d.task)
    assert result.ok
    assert exporter.get_finished_spans() == ()
    assert listener.errors == 0 and listener._runs == {} and listener._open == {}
    data = reader.get_metrics_data()
    assert data is not None
    (cost,) = [
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == COST_METRIC
    ]
    values: list[Any] = [p.value for p in cost.data.data_points]  # type: ignore[union-attr]
    assert sum(values) == pytest.approx(float(result.cost_usd))
