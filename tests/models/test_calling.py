from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from paraloom.models import (
    FixedModel,
    ModelError,
    ModelPool,
    ModelRequest,
    StepInfo,
    call_model,
)
from paraloom.protocols.events import Event, LLMCallFinished, LLMCallStarted
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.runtime.budget import Budget, BudgetExhausted
from paraloom.runtime.context import ActionContext
from paraloom.runtime.selection import Selection, SelectionRequest
from paraloom.testing import FunctionModel, Reply, ScriptedModel

CHEAP = ModelDescriptor(
    name="cheap", model_id="cheap-v1", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2)
)
DEAR = ModelDescriptor(name="dear", input_price_per_m=Decimal(100), output_price_per_m=Decimal(200))
MSGS = [ChatMessage(role="user", content="What is 2 + 2?")]


def ctx(events: list[Event], budget: Budget | None = None, **kw: Any) -> ActionContext:
    return ActionContext(
        run_id="run_1", emit=events.append, budget=budget, call_id="call_parent", **kw
    )


@pytest.mark.anyio
async def test_reserve_call_settle_and_events() -> None:
    model = FunctionModel(lambda r: Reply("4", input_tokens=20, output_tokens=3))
    pool = ModelPool([CHEAP], client=model)
    budget = Budget("1.00")
    events: list[Event] = []
    mc = await call_model(pool, ctx(events, budget), MSGS, default_model="cheap", max_tokens=50)
    assert mc.completion.content == "4" and mc.model == "cheap"
    assert mc.cost_usd == Decimal(1 * 20 + 2 * 3) / 1_000_000
    assert budget.spent_usd == mc.cost_usd and budget.reserved_usd == 0
    assert budget.calls_made == 1 and budget.tokens_used == 23
    [request] = model.requests
    assert request.model == "cheap-v1" and request.max_tokens == 50
    started, finished = events
    assert isinstance(started, LLMCallStarted) and isinstance(finished, LLMCallFinished)
    assert started.parent_call_id == finished.parent_call_id == "call_parent"
    assert started.llm_call_id == finished.llm_call_id == mc.llm_call_id
    # the input bound: one token per UTF-8 byte (14) plus 4 framing + 3 priming tokens
    assert started.reserved_usd == CHEAP.cost(14 + 4 + 3, 50)
    assert started.routing == {"model": "cheap", "reason": "configured model"}
    assert started.messages is None and finished.output is None  # content capture off
    assert finished.cost_usd == mc.cost_usd and finished.usage.total_tokens == 23
    assert finished.budget_left_usd == Decimal("1.00") - mc.cost_usd


@pytest.mark.anyio
async def test_content_captured_only_when_asked() -> None:
    pool = ModelPool([CHEAP], client=ScriptedModel(["4"]))
    events: list[Event] = []
    await call_model(
        pool, ctx(events, capture_content=True), MSGS, default_model="cheap", max_tokens=5
    )
    started, finished = events
    assert isinstance(started, LLMCallStarted) and isinstance(finished, LLMCallFinished)
    assert started.messages == [{"role": "user", "content": "What is 2 + 2?"}]
    assert finished.output == {"role": "assistant", "content": "4"}


@pytest.mark.anyio
async def test_reservation_that_does_not_fit_sends_nothing() -> None:
    model = ScriptedModel(["never"])
    pool = ModelPool([DEAR], client=model)
    budget = Budget("0.001")
    events: list[Event] = []
    with pytest.raises(BudgetExhausted, match="usd"):
        await call_model(pool, ctx(events, budget), MSGS, default_model="dear", max_tokens=1000)
    assert model.requests == [] and events == []
    assert budget.reserved_usd == 0 and budget.spent_usd == 0


@pytest.mark.anyio
async def test_call_limit_of_budget() -> None:
    pool = ModelPool([CHEAP], client=ScriptedModel(["a", "b"]))
    budget = Budget(max_calls=1)
    await call_model(pool, ctx([], budget), MSGS, default_model="cheap", max_tokens=5)
    with pytest.raises(BudgetExhausted, match="calls"):
        await call_model(pool, ctx([], budget), MSGS, default_model="cheap", max_tokens=5)


@pytest.mark.anyio
async def test_failure_releases_and_reports() -> None:
    pool = ModelPool([CHEAP], client=ScriptedModel([ModelError("cheap-v1", "down", status=503)]))
    budget = Budget(1)
    events: list[Event] = []
    with pytest.raises(ModelError, match="down"):
        await call_model(pool, ctx(events, budget), MSGS, default_model="cheap", max_tokens=5)
    assert budget.reserved_usd == 0 and budget.spent_usd == 0 and budget.calls_made == 0
    finished = events[-1]
    assert isinstance(finished, LLMCallFinished)
    assert finished.error is not None and "down" in finished.error
    assert finished.cost_usd == 0


class PickDearUnlessPoor:
    def __init__(self) -> None:
        self.requests: list[SelectionRequest] = []

    async def select(self, request: SelectionRequest) -> Selection:
        self.requests.append(request)
        left = request.budget_left_usd
        if left is not None and left < Decimal("0.01"):
            return Selection(model=None, reason="nothing fits")
        return Selection(model="dear", reason="quality", scores={"dear": 0.9, "cheap": 0.4})


@pytest.mark.anyio
async def test_context_selector_wins_and_sees_the_step() -> None:
    model = FunctionModel(lambda r: Reply(r.model, input_tokens=1, output_tokens=1))
    pool = ModelPool([CHEAP, DEAR], client=model)
    selector = PickDearUnlessPoor()
    events: list[Event] = []
    step = StepInfo(
        step_kind="plan", agent="planner", step_index=2, models_used=("cheap",), tool_errors=1
    )
    mc = await call_model(
        pool,
        ctx(events, Budget(1), model_selector=selector),
        MSGS,
        default_model="cheap",
        step=step,
        max_tokens=9,
    )
    assert mc.model == "dear" and mc.completion.content == "dear"
    [sel] = selector.requests
    assert sel.step_kind == "plan" and sel.agent == "planner" and sel.step_index == 2
    assert [c.name for c in sel.candidates] == ["cheap", "dear"]
    assert sel.models_used == ("cheap",) and sel.tool_errors == 1
    assert sel.budget_left_usd == Decimal(1) and sel.max_output_tokens == 9
    started = events[0]
    assert isinstance(started, LLMCallStarted) and started.step_kind == "plan"
    assert started.routing is not None and started.routing["scores"] == {"dear": 0.9, "cheap": 0.4}

    with pytest.raises(BudgetExhausted, match="nothing fits"):
        await call_model(
            pool, ctx([], Budget("0.001"), model_selector=selector), MSGS, default_model="cheap"
        )


@pytest.mark.anyio
async def test_fixed_model_selector() -> None:
    sel = await FixedModel("x").select(
        SelectionRequest(step_kind="agent_turn", messages=(), candidates=(), max_output_tokens=1)
    )
    assert sel.model == "x"


@pytest.mark.anyio
async def test_without_budget_no_reservation_needed() -> None:
    pool = ModelPool([DEAR], client=ScriptedModel([Reply("ok", input_tokens=10, output_tokens=10)]))
    mc = await call_model(pool, ctx([]), MSGS, default_model="dear")
    assert mc.cost_usd == Decimal("0.003")
    req: ModelRequest = pool.client("dear").requests[0]  # type: ignore[attr-defined]
    assert req.max_tokens == DEAR.context_window - (14 + 4 + 3)


class ChooseUnknown:
    async def select(self, request: SelectionRequest) -> Selection:
        return Selection(model="gpt-imaginary")


@pytest.mark.anyio
async def test_selector_choosing_outside_the_pool_is_a_model_error() -> None:
    pool = ModelPool([CHEAP], client=ScriptedModel(["x"]))
    budget = Budget(1)
    with pytest.raises(ModelError, match="not in the pool"):
        await call_model(
            pool, ctx([], budget, model_selector=ChooseUnknown()), MSGS, default_model="cheap"
        )
    assert budget.reserved_usd == 0
