from __future__ import annotations

from decimal import Decimal

import pytest

from paraloom.models import (
    ModelPool,
    ModelRequest,
    ResponseFormat,
    UnknownModelError,
    estimate_request_tokens,
    estimate_text_tokens,
    estimate_tokens,
    output_token_cap,
    worst_case_cost,
)
from paraloom.protocols.actions import TokenUsage
from paraloom.protocols.messages import ChatMessage, ModelDescriptor, ToolCall
from paraloom.testing import ScriptedModel

SMALL = ModelDescriptor(
    name="small", input_price_per_m=Decimal("0.15"), output_price_per_m=Decimal("0.6")
)
BIG = ModelDescriptor(
    name="big",
    provider="other",
    model_id="big-2024",
    input_price_per_m=Decimal(5),
    output_price_per_m=Decimal(15),
    context_window=1000,
    max_output_tokens=300,
)


def test_pool_maps_models_to_clients() -> None:
    default, other, special = ScriptedModel([]), ScriptedModel([]), ScriptedModel([])
    pool = ModelPool([SMALL, BIG], client=default, providers={"other": other})
    extra = ModelDescriptor(name="extra")
    pool.add(extra, special)
    assert pool.names == ["small", "big", "extra"]
    assert pool.client("small") is default
    assert pool.client("big") is other
    assert pool.client("extra") is special
    assert pool.descriptor("big").provider_model == "big-2024"
    assert "big" in pool and "nope" not in pool and len(pool) == 3
    assert [d.name for d in pool] == pool.names


def test_pool_errors_are_clear() -> None:
    pool = ModelPool([SMALL], client=ScriptedModel([]))
    with pytest.raises(UnknownModelError, match="unknown model 'gpt-9'; pool has: small"):
        pool.descriptor("gpt-9")
    with pytest.raises(ValueError, match="duplicate"):
        pool.add(SMALL)
    with pytest.raises(ValueError, match="no client serves model 'big'"):
        ModelPool([BIG])


def test_cost_is_usage_times_price() -> None:
    pool = ModelPool([SMALL, BIG], client=ScriptedModel([]))
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=500_000)
    assert pool.cost("small", usage) == Decimal("0.45")
    assert pool.cost("big", TokenUsage(input_tokens=200, output_tokens=100)) == Decimal("0.0025")


def test_estimate_is_conservative_and_monotone() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("abc") == 1
    assert estimate_text_tokens("abcd") == 2
    text = "The quick brown fox jumps over the lazy dog. " * 20
    # English BPE is ~4 chars/token; the estimate must not be below that.
    assert estimate_text_tokens(text) >= len(text) / 4
    assert estimate_text_tokens("日本語") == 3  # 9 UTF-8 bytes
    short = [ChatMessage(role="user", content="hi")]
    longer = [
        *short,
        ChatMessage(role="assistant", tool_calls=(ToolCall(id="1", name="f", arguments="{}"),)),
    ]
    assert estimate_tokens(short) < estimate_tokens(longer)
    assert estimate_tokens(short, [{"type": "function"}]) > estimate_tokens(short)


def test_request_estimate_counts_tools_and_schema() -> None:
    msgs = (ChatMessage(role="user", content="hello"),)
    bare = ModelRequest(model="m", messages=msgs)
    rich = ModelRequest(
        model="m",
        messages=msgs,
        tools=({"type": "function", "function": {"name": "x", "parameters": {}}},),
        response_format=ResponseFormat(json_schema={"type": "object"}),
    )
    assert estimate_request_tokens(rich) > estimate_request_tokens(bare)


def test_output_cap_and_worst_case() -> None:
    assert output_token_cap(SMALL, 100, 50) == 100
    assert output_token_cap(SMALL, None, 192) == 8000  # context window 8192 - input
    assert output_token_cap(BIG, 1000, 10) == 300  # the model's own limit wins
    assert output_token_cap(BIG, None, 990) == 300
    assert output_token_cap(ModelDescriptor(name="t", context_window=10), None, 50) == 1
    assert worst_case_cost(BIG, 100, 300) == Decimal("0.005")
