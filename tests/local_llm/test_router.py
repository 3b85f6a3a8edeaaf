"""The per-turn router between two pool entries that the same server serves under
different prices and output limits ("premium": dear, 256 tokens; "cheap": 64 tokens).

Both entries are the same model, so answer quality does not differ: what the router
trades here is price against the output limit, turn by turn, under the run's budget."""

from __future__ import annotations

from decimal import Decimal

import pytest

from paraloom.models import ModelPool, OpenAICompatible
from paraloom.orchestrator import Orchestrator, StaticPlanner
from paraloom.protocols.events import Event, LLMCallFinished, LLMCallStarted
from paraloom.protocols.plan import Plan, Subtask
from paraloom.routing import FixedRouter, RouterSelector
from paraloom.testing.llama_server import LlamaServer

from .conftest import MEASURED, Wire, check_reservations, geographer, local_model

pytestmark = [pytest.mark.local_llm, pytest.mark.anyio, pytest.mark.timeout(300)]

# Output tokens dominate the premium price, so once a premium turn has spent, the next
# premium worst case cannot fit what is left, while the cheap entry's still does.
PREMIUM = local_model("premium", price_in="1", price_out="1000", max_output_tokens=256)
CHEAP = local_model("cheap", price_in="0.1", price_out="1", max_output_tokens=64)
MARGIN = Decimal("0.0005")  # > any cheap turn's worst case, << any premium turn's cost


async def test_router_picks_per_turn_between_two_entries_of_the_same_server(
    llama: LlamaServer,
) -> None:
    wire = Wire()
    async with OpenAICompatible(
        base_url=llama.base_url, http_client=wire.http_client(), timeout_s=300
    ) as client:
        pool = ModelPool([PREMIUM, CHEAP], client=client)
        agent = geographer(pool, model="cheap", max_tokens=256)
        plan = Plan(
            subtasks=(
                Subtask(id="ask", action="geographer", arguments={"task": "Capital of Japan?"}),
            )
        )
        # prefers premium; when its worst case does not fit the budget left: the cheapest
        selector = RouterSelector(FixedRouter("premium", pacing="none"), offload=False)
        orch = Orchestrator([agent], StaticPlanner(plan), model_selector=selector)

        rich: list[Event] = []
        await orch.run(budget=Decimal(100), on_event=rich.append)
        rich_requests = list(wire.requests)
        first = next(e for e in rich if isinstance(e, LLMCallStarted))

        tight: list[Event] = []
        budget = first.reserved_usd + MARGIN
        result = await orch.run(budget=budget, on_event=tight.append)
        tight_requests = wire.requests[len(rich_requests) :]

    rich_calls = [e for e in rich if isinstance(e, LLMCallFinished)]
    tight_calls = [e for e in tight if isinstance(e, LLMCallFinished)]
    MEASURED["router"] = (
        f"budget 100: {[e.model for e in rich_calls]}; budget {budget:.6f}: "
        f"{[e.model for e in tight_calls]} -> {result.status}"
    )
    # plenty of budget: every turn on premium, asked with premium's output limit
    assert [e.model for e in rich_calls] == ["premium"] * len(rich_calls)
    assert [r["max_tokens"] for r in rich_requests] == [256] * len(rich_requests)
    # a tight budget: premium while its worst case fits, then cheap with its own limit
    models = [e.model for e in tight_calls]
    assert len(models) >= 2, "the agent should call its tool, then answer"
    assert models[0] == "premium" and set(models[1:]) == {"cheap"}
    assert [r["max_tokens"] for r in tight_requests] == [256] + [64] * (len(models) - 1)
    for event in tight_calls:
        entry = PREMIUM if event.model == "premium" else CHEAP
        assert event.cost_usd == entry.cost(event.usage.input_tokens, event.usage.output_tokens)
    assert result.cost_usd <= budget
    assert result.status == "ok", result.error
    check_reservations(rich + tight)
