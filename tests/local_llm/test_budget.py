"""Money against a real server's books: every call's cost is its reported usage at the
pool prices, no call costs more than it reserved, and a tiny budget stops the run with
``budget_exhausted`` after the calls that fit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from paraloom.models import ModelPool, OpenAICompatible
from paraloom.orchestrator import Orchestrator
from paraloom.orchestrator.llm_planner import LLMPlanner
from paraloom.protocols.events import Event, LLMCallFinished, LLMCallStarted
from paraloom.testing.llama_server import LlamaServer

from .conftest import MEASURED, Wire, add, check_reservations, local_model, server_metric

pytestmark = [pytest.mark.local_llm, pytest.mark.anyio, pytest.mark.timeout(300)]


TASK = "Add 19 and 23, then answer with the sum."
GUIDANCE = "Round 1: plan one `add` subtask. Round 2: answer with a reference to its output."


async def test_costs_come_from_the_server_usage_and_a_tiny_budget_stops_the_run(
    llama: LlamaServer,
) -> None:
    # made-up prices, high enough for every token to matter
    model = local_model(price_in="100", price_out="200")
    wire = Wire()
    predicted_before = server_metric(llama, "tokens_predicted_total")
    async with OpenAICompatible(
        base_url=llama.base_url, http_client=wire.http_client(), timeout_s=300
    ) as client:
        pool = ModelPool([model], client=client)
        planner = LLMPlanner(pool, "smol", max_tokens=200, temperature=0, guidance=GUIDANCE)
        orch = Orchestrator([add], planner, max_rounds=3)

        events: list[Event] = []
        generous = await orch.run(TASK, budget=Decimal(10), on_event=events.append)
        predicted_after = server_metric(llama, "tokens_predicted_total")

        finished = [e for e in events if isinstance(e, LLMCallFinished)]
        reported = wire.usages()
        assert len(finished) == len(reported) >= 1
        for event, (prompt, completion) in zip(finished, reported, strict=True):
            assert (event.usage.input_tokens, event.usage.output_tokens) == (prompt, completion)
            assert event.cost_usd == model.cost(prompt, completion)
        assert generous.cost_usd == sum(e.cost_usd for e in finished)
        # the server's own counter of generated tokens agrees with the usage we priced
        assert predicted_after - predicted_before == sum(c for _, c in reported)
        check_reservations(events)

        # a budget that fits exactly the first call: every later call reserves more
        first = next(e for e in events if isinstance(e, LLMCallStarted))
        tiny = first.reserved_usd + Decimal("1e-9")
        small_events: list[Event] = []
        stopped = await orch.run(TASK, budget=tiny, on_event=small_events.append)

    calls = [e for e in small_events if isinstance(e, LLMCallFinished)]
    MEASURED["budget"] = (
        f"generous run {generous.status} ${generous.cost_usd:.6f} in {len(finished)} calls; "
        f"tiny budget ${tiny:.6f}: {stopped.status} after {len(calls)} call(s), "
        f"${stopped.cost_usd:.6f}"
    )
    assert stopped.status == "budget_exhausted", stopped.error
    assert len(calls) == 1 and calls[0].error is None
    assert stopped.cost_usd == calls[0].cost_usd <= tiny
    check_reservations(small_events)
