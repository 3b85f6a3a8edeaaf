"""One worst-case function: the reservation, the routers' budget rule, the dry-run and
cascade pricing agree, and the input side is a true bound."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paraloom.config import ConfigError, load_config
from paraloom.config.build import model_descriptors
from paraloom.models import ModelPool, call_model, cascade_descriptor
from paraloom.models.base import ModelRequest
from paraloom.models.estimate import request_input_size
from paraloom.protocols.events import Event, LLMCallStarted
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.routing.base import Estimate, Router
from paraloom.routing.features import ContextBatch
from paraloom.routing.selector import RouterSelector
from paraloom.runtime import (
    InputSize,
    input_token_bound,
    measure_input,
    measure_texts,
    worst_case,
)
from paraloom.runtime.budget import Budget, BudgetExhausted
from paraloom.runtime.context import ActionContext
from paraloom.runtime.worst_case import (
    FRAMING_TOKENS_PER_MESSAGE,
    FRAMING_TOKENS_PER_TOOL,
    REPLY_PRIMING_TOKENS,
)
from paraloom.testing import FunctionModel, Reply

CHEAP = ModelDescriptor(
    name="cheap", input_price_per_m=Decimal("0.15"), output_price_per_m=Decimal("0.6")
)
DEAR = ModelDescriptor(name="dear", input_price_per_m=Decimal(5), output_price_per_m=Decimal(15))
CJK = "東京の天気は晴れです" * 300  # 3,000 characters, 9,000 UTF-8 bytes


class PrefersDear(Router):
    """Quality grows with price: picks the dearest model the budget rule allows."""

    kind = "prefers_dear"

    def estimate(self, batch: ContextBatch, models: Sequence[ModelDescriptor]) -> Estimate:
        price = np.asarray([[float(m.input_price_per_m) for m in models]])
        return Estimate(quality=price, cost=price * 1e-6)


def test_bound_counts_every_byte_and_the_framing() -> None:
    msgs = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content=CJK)]
    size = measure_input(msgs)
    assert size == InputSize(
        text_bytes=9 + 9000,
        framing_tokens=2 * FRAMING_TOKENS_PER_MESSAGE + REPLY_PRIMING_TOKENS,
    )
    assert input_token_bound(CHEAP, size) == 9009 + 11
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    with_tool = measure_input(msgs, [tool], {"type": "object"})
    assert with_tool.framing_tokens == size.framing_tokens + 2 * FRAMING_TOKENS_PER_TOOL
    assert with_tool.text_bytes > size.text_bytes


def test_a_json_tool_mode_model_is_measured_as_it_is_sent() -> None:
    """InputSize carries the size of the tool_mode json rewrite; the bound of a json-mode
    model is that one's, of a native model the request's own; sums keep both."""
    request = ModelRequest(model="x", messages=(ChatMessage(role="user", content="hi"),))
    assert request_input_size(request).json_tools is None  # no tools: sent unchanged
    with_tools = request_input_size(request.model_copy(update={"tools": TOOLS}))
    json_size = with_tools.json_tools
    assert json_size is not None and json_size.text_bytes > with_tools.text_bytes
    as_json = CHEAP.model_copy(update={"tool_mode": "json"})
    assert input_token_bound(CHEAP, with_tools) == input_token_bound(CHEAP, with_tools.native)
    assert input_token_bound(as_json, with_tools) == input_token_bound(CHEAP, json_size)
    extra = InputSize(10, 2)
    total = with_tools + extra
    assert total.native == InputSize(with_tools.text_bytes + 10, with_tools.framing_tokens + 2)
    assert total.json_tools == json_size + extra
    assert (extra + extra).json_tools is None


def test_vouched_ratio_divides_the_text_only() -> None:
    vouched = CHEAP.model_copy(update={"tokenizer_bytes_per_token": Decimal(4)})
    size = InputSize(text_bytes=10, framing_tokens=7)
    assert input_token_bound(CHEAP, size) == 17
    assert input_token_bound(vouched, size) == 3 + 7  # ceil(10 / 4) + framing
    assert worst_case(vouched, size, 5).usd < worst_case(CHEAP, size, 5).usd


def test_dearer_cache_prices_are_in_the_worst_case() -> None:
    odd = CHEAP.model_copy(update={"cached_input_price_per_m": Decimal(1)})
    wc = worst_case(odd, InputSize(100, 0), 10)
    assert wc.usd == odd.cost(100, 10, cached_input_tokens=100) > CHEAP.cost(100, 10)
    writes = CHEAP.model_copy(update={"cache_write_price_per_m": Decimal("0.1875")})
    wc = worst_case(writes, InputSize(100, 0), 10)
    assert wc.usd == writes.cost(100, 10, cache_write_tokens=100) > CHEAP.cost(100, 10)


def test_cache_reads_and_writes_from_the_wire_are_priced_exactly() -> None:
    from paraloom.models.wire import WireUsage

    gateway = WireUsage.model_validate(  # Anthropic-style counts behind a gateway
        {
            "prompt_tokens": 1000,
            "completion_tokens": 10,
            "cache_read_input_tokens": 600,
            "cache_creation_input_tokens": 300,
        }
    ).to_usage()
    assert (gateway.cached_input_tokens, gateway.cache_write_tokens) == (600, 300)
    m = ModelDescriptor(
        name="c",
        input_price_per_m=Decimal(3),
        output_price_per_m=Decimal(15),
        cached_input_price_per_m=Decimal("0.3"),
        cache_write_price_per_m=Decimal("3.75"),
    )
    cost = m.cost(1000, 10, gateway.cached_input_tokens, gateway.cache_write_tokens)
    assert cost == (100 * Decimal(3) + 600 * Decimal("0.3") + 300 * Decimal("3.75") + 150) / (
        1_000_000
    )
    assert worst_case(m, 1000, 10).usd >= cost


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=0, max_size=400))
def test_bound_is_at_least_one_token_per_byte(text: str) -> None:
    size = measure_texts(text)
    assert input_token_bound(CHEAP, size) >= len(text.encode("utf-8"))


def test_cascade_keeps_the_smallest_vouched_ratio() -> None:
    a = CHEAP.model_copy(update={"tokenizer_bytes_per_token": Decimal(3)})
    b = DEAR.model_copy(update={"tokenizer_bytes_per_token": Decimal(2)})
    assert cascade_descriptor([a, b], b, name="c").tokenizer_bytes_per_token == Decimal(2)
    assert cascade_descriptor([a, CHEAP], b, name="c").tokenizer_bytes_per_token is None


@pytest.mark.anyio
async def test_router_never_picks_a_model_the_reservation_refuses() -> None:
    """The issue's case: 3,000 CJK characters. The budget fits the cheap model's worst
    case but not the dear one's; the router must pick cheap, and the call go through
    (before: the router counted 3.5 characters per token, chose dear, and the
    reservation, at 3 bytes per token, refused it with BudgetExhausted)."""
    msgs = [ChatMessage(role="user", content=CJK)]
    size = measure_input(msgs)
    cheap_wc, dear_wc = worst_case(CHEAP, size, 200).usd, worst_case(DEAR, size, 200).usd
    old_router_dear = DEAR.cost(len(CJK) * 2 // 7 + 1, 200)  # 3.5 characters per token
    budget = Budget((cheap_wc + dear_wc) / 2)
    assert old_router_dear < budget.limit_usd < dear_wc  # the old router would pick dear
    pool = ModelPool([CHEAP, DEAR], client=FunctionModel(lambda r: Reply("ok", input_tokens=1)))
    events: list[Event] = []
    context = ActionContext(
        run_id="r",
        emit=events.append,
        budget=budget,
        model_selector=RouterSelector(PrefersDear(pacing="none"), offload=False),
    )
    mc = await call_model(pool, context, msgs, default_model="dear", max_tokens=200)
    assert mc.model == "cheap"
    started = events[0]
    assert isinstance(started, LLMCallStarted)
    assert started.reserved_usd == cheap_wc
    assert started.routing is not None
    assert started.routing["info"]["worst_case_cost_usd"] == str(cheap_wc)


TOOLS = (
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up in the dictionary.",
            "parameters": {
                "type": "object",
                "properties": {"word": {"type": "string"}},
                "required": ["word"],
            },
        },
    },
)


def _sent_worst_case(model: ModelDescriptor, request: ModelRequest) -> Decimal:
    """The worst case of the request a client really received (as sent: rewritten for
    tool_mode json, with the ``max_tokens`` sent)."""
    return worst_case(model, request_input_size(request), request.max_tokens).usd


async def _route_once(
    models: Sequence[ModelDescriptor],
    limit: Decimal,
    msgs: Sequence[ChatMessage],
    tools: Sequence[dict[str, object]],
    max_tokens: int | None,
) -> tuple[list[Event], FunctionModel, list[str]]:
    client = FunctionModel(lambda r: Reply("ok", input_tokens=1, output_tokens=1))
    pool = ModelPool(list(models), client=client)
    events: list[Event] = []
    context = ActionContext(
        run_id="r",
        emit=events.append,
        budget=Budget(limit),
        model_selector=RouterSelector(PrefersDear(pacing="none"), offload=False),
    )
    refused: list[str] = []
    try:
        await call_model(
            pool, context, msgs, default_model=models[0].name, tools=tools, max_tokens=max_tokens
        )
    except BudgetExhausted as exc:
        refused.append(str(exc))
    return events, client, refused


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(min_size=0, max_size=300),
    limit=st.decimals(min_value=0, max_value=Decimal("0.01"), places=7),
    max_tokens=st.none() | st.integers(1, 500),
    with_tools=st.booleans(),
    modes=st.tuples(st.sampled_from(["native", "json"]), st.sampled_from(["native", "json"])),
)
def test_router_and_reservation_agree(
    text: str,
    limit: Decimal,
    max_tokens: int | None,
    with_tools: bool,
    modes: tuple[str, str],
) -> None:
    """Whatever the text, budget, tools and tool modes: when the router picks a model,
    its reservation fits, equals the router's worst case and bounds what was really
    sent (the tool_mode json rewrite included); when it picks none, nothing is sent."""
    import anyio

    small = CHEAP.model_copy(update={"max_output_tokens": 300, "tool_mode": modes[0]})
    vouched = DEAR.model_copy(
        update={"tokenizer_bytes_per_token": Decimal(2), "tool_mode": modes[1]}
    )
    msgs = [ChatMessage(role="user", content=text)]
    tools = TOOLS if with_tools else ()
    events, client, refused = anyio.run(
        _route_once, [small, vouched], limit, msgs, tools, max_tokens
    )
    if refused:  # refused by the router's budget rule, never by the reservation after it
        assert "no model fits" in refused[0] and client.requests == []
    by_name = {m.name: m for m in (small, vouched)}
    for e in events:
        if isinstance(e, LLMCallStarted):
            assert e.routing is not None
            assert e.routing["info"]["worst_case_cost_usd"] == str(e.reserved_usd)
            [sent] = client.requests
            assert e.reserved_usd == _sent_worst_case(by_name[e.model], sent)


@pytest.mark.anyio
async def test_router_measures_a_json_tool_mode_model_as_it_is_sent() -> None:
    """A tool_mode json model is sent the tools in its prompt and a reply schema that
    lists them: a bigger input than the native request. With a budget between the two
    worst cases of the dear json-mode model, the router must see it does not fit and
    pick the cheap one (before: it measured the native request, picked dear, and the
    reservation refused it with BudgetExhausted)."""
    dear = DEAR.model_copy(update={"tool_mode": "json"})
    msgs = [ChatMessage(role="user", content="Define 'paraloom'.")]
    native = request_input_size(ModelRequest(model="x", messages=tuple(msgs), tools=TOOLS))
    assert native.json_tools is not None
    as_native, as_sent = worst_case(DEAR, native, 100).usd, worst_case(dear, native, 100).usd
    assert as_native < as_sent
    events, client, refused = await _route_once(
        [CHEAP, dear], (as_native + as_sent) / 2, msgs, TOOLS, 100
    )
    assert refused == []
    [sent] = client.requests
    assert sent.tools == TOOLS and sent.model == "cheap"
    started = next(e for e in events if isinstance(e, LLMCallStarted))
    assert started.model == "cheap"
    assert started.reserved_usd == worst_case(CHEAP, native, 100).usd
    # with room for dear as sent, dear is picked and its reservation is what it was sent
    events, client, refused = await _route_once([CHEAP, dear], as_sent, msgs, TOOLS, 100)
    [sent] = client.requests
    assert refused == [] and sent.model == "dear" and sent.tools == ()
    started = next(e for e in events if isinstance(e, LLMCallStarted))
    assert (
        started.reserved_usd
        == as_sent
        == _sent_worst_case(dear, sent.model_copy(update={"max_tokens": 100}))
    )


def test_yaml_ratio_is_validated_and_reaches_the_descriptor(tmp_path: Path) -> None:
    f = tmp_path / "flow.yaml"
    f.write_text(
        "models:\n  small: {model_id: m, tokenizer_bytes_per_token: 0.5}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_config(f)
    [problem] = info.value.problems
    assert str(problem).startswith(f"{f}:2:") and "tokenizer_bytes_per_token" in str(problem)
    f.write_text(
        "models:\n  small: {model_id: m, tokenizer_bytes_per_token: 2.5,"
        " cached_input_price_per_m: 0.075}\n",
        encoding="utf-8",
    )
    d = model_descriptors(load_config(f).config)["small"]
    assert d.tokenizer_bytes_per_token == Decimal("2.5")
    assert d.cached_input_price_per_m == Decimal("0.075")


def test_dry_run_worst_case_is_the_reservation_s(tmp_path: Path) -> None:
    """--dry-run's worst case of an agent turn is worst_case() of the same messages."""
    import anyio

    from paraloom.config.projection import project_workflow

    f = tmp_path / "flow.yaml"
    f.write_text(
        "models:\n  m: {model_id: x, input_price_per_m: 1, output_price_per_m: 2}\n"
        "agents:\n  a: {instructions: 'Réponds en japonais.', model: m, max_tokens: 50,"
        " max_turns: 3}\n"
        "workflows:\n  main:\n    subtasks: [{id: s, action: a, arguments: {task: 東京}}]\n",
        encoding="utf-8",
    )
    loaded = load_config(f)
    projection = anyio.run(lambda: project_workflow(loaded, "main"))
    [step] = projection.steps
    d = model_descriptors(loaded.config)["m"]
    msgs = [
        ChatMessage(role="system", content="Réponds en japonais."),
        ChatMessage(role="user", content=json.dumps({"task": "東京"})),  # as the dry-run sees it
    ]
    assert step.worst_case_cost_usd == worst_case(d, measure_input(msgs), 50).usd * 3
