"""Cached/reasoning tokens, abandoned calls, usage anomalies and run warnings in spans."""

from __future__ import annotations

from decimal import Decimal

from paraloom.protocols.actions import TokenUsage
from paraloom.protocols.events import LLMCallFinished, LLMCallStarted, RunFinished, RunStarted

from .conftest import Traced


def test_budget_facts_reach_the_spans(traced: Traced) -> None:
    listener = traced.listener()
    listener(RunStarted(run_id="r", workflow="w"))
    for i, (usage, abandoned, anomaly) in enumerate(
        [
            (
                TokenUsage(
                    input_tokens=9, output_tokens=7, cached_input_tokens=6, reasoning_tokens=5
                ),
                False,
                None,
            ),
            (TokenUsage(input_tokens=20, output_tokens=50), True, None),
            (TokenUsage(input_tokens=3, output_tokens=500), False, "completion_tokens 500 > 50"),
        ]
    ):
        listener(LLMCallStarted(run_id="r", llm_call_id=f"l{i}", model="m"))
        listener(
            LLMCallFinished(
                run_id="r",
                llm_call_id=f"l{i}",
                model="m",
                usage=usage,
                cost_usd=Decimal("0.001"),
                abandoned=abandoned,
                usage_anomaly=anomaly,
                error="cancelled" if abandoned else None,
            )
        )
    listener(RunFinished(run_id="r", workflow="w", status="warning", warnings=["usage_anomaly"]))
    cached, abandoned_span, lying = sorted(traced.named("chat m"), key=lambda s: s.start_time or 0)
    a = dict(cached.attributes or {})
    assert a["gen_ai.usage.cache_read.input_tokens"] == 6
    assert a["llm.token_count.prompt_details.cache_read"] == 6
    assert a["gen_ai.usage.reasoning.output_tokens"] == 5
    assert a["llm.token_count.completion_details.reasoning"] == 5
    assert "paraloom.llm.abandoned" not in a
    assert dict(abandoned_span.attributes or {})["paraloom.llm.abandoned"] is True
    lie = dict(lying.attributes or {})
    assert lie["paraloom.usage_anomaly"] == "completion_tokens 500 > 50"
    assert [e.name for e in lying.events] == ["usage_anomaly"]
    run = traced.one("invoke_workflow w")
    assert dict(run.attributes or {})["paraloom.run.warnings"] == ("usage_anomaly",)
