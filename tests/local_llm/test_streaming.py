"""Streaming against a real model: llama-server streams SSE with usage in its last chunk.
A streamed answer is rebuilt exactly from its delta events, and streamed and plain calls
are accounted alike: each call is priced from the usage the server reported, which
matches the server's own counter of generated tokens."""

from __future__ import annotations

from decimal import Decimal

import pytest

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, OpenAICompatible
from paraloom.orchestrator import Orchestrator, StaticPlanner, TextSoFar
from paraloom.protocols.events import Event, LLMCallFinished, LLMDelta
from paraloom.protocols.plan import Plan, Subtask
from paraloom.testing.llama_server import LlamaServer

from .conftest import MEASURED, check_reservations, local_model, server_metric

pytestmark = [pytest.mark.local_llm, pytest.mark.anyio, pytest.mark.timeout(300)]

PLAN = Plan(
    subtasks=(
        Subtask(id="fact", action="writer", arguments={"task": "Name three colours of a rainbow."}),
    )
)


async def run_once(llama: LlamaServer, *, stream: bool) -> tuple[list[Event], str, float]:
    """One static run of one agent; its events, its output, and how many tokens the
    server says it generated meanwhile."""
    model = local_model(price_in="100", price_out="200")
    before = server_metric(llama, "tokens_predicted_total")
    async with OpenAICompatible(base_url=llama.base_url, stream=stream, timeout_s=300) as client:
        pool = ModelPool([model], client=client)
        writer = LLMAgent(
            "writer",
            instructions="Answer in one short sentence.",
            model="smol",
            pool=pool,
            max_tokens=48,
            temperature=0,
        )
        orch = Orchestrator([writer], StaticPlanner(PLAN))
        events: list[Event] = []
        async with orch.start("go", budget=Decimal(10), deltas=stream) as run:
            async for ev in run.events():
                events.append(ev)
            result = await run.result()
    assert result.status == "ok", result.error
    output = result.subtasks["fact"].output
    assert isinstance(output, str) and output
    return events, output, server_metric(llama, "tokens_predicted_total") - before


async def test_streamed_and_plain_calls_are_accounted_alike(llama: LlamaServer) -> None:
    model = local_model(price_in="100", price_out="200")
    results = {}
    for stream in (True, False):
        events, output, generated = await run_once(llama, stream=stream)
        [call] = [e for e in events if isinstance(e, LLMCallFinished)]
        # priced from the usage the server reported; its own counter agrees
        assert call.cost_usd == model.cost(call.usage.input_tokens, call.usage.output_tokens)
        assert call.usage.output_tokens == generated
        assert call.usage_anomaly is None
        check_reservations(events)
        deltas = [e for e in events if isinstance(e, LLMDelta)]
        if stream:
            assert len(deltas) > 1  # it really streamed, in pieces
            texts = TextSoFar()
            for ev in events:
                texts.observe(ev)
            assert texts.text("fact") == output
        else:
            assert deltas == []
        results[stream] = (call.usage.input_tokens, call.usage.output_tokens, output)
    MEASURED["streaming"] = f"streamed {results[True]!r}; plain {results[False]!r}"
    # the same prompt is the same number of prompt tokens either way
    assert results[True][0] == results[False][0]
