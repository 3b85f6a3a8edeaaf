from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from paraloom.protocols import (
    ActionCall,
    ActionKind,
    ActionResult,
    ActionSpec,
    ActionStatus,
    ModelDescriptor,
    TokenUsage,
    spec_from_openai_tool,
    spec_to_openai_tool,
)


def test_openai_round_trip_keeps_kind_and_schema() -> None:
    schema = {"type": "object", "properties": {"task": {"type": "string"}}, "required": ["task"]}
    spec = ActionSpec(
        name="writer", description="Writes reports.", kind=ActionKind.AGENT, input_schema=schema
    )
    wire = spec_to_openai_tool(spec)
    assert wire["type"] == "function"
    assert wire["function"]["name"] == "writer"
    assert wire["function"]["parameters"] == schema
    assert wire["function"]["description"].startswith("[agent]")
    back = spec_from_openai_tool(wire)
    assert back == spec


def test_openai_tool_conversion_rejects_malformed_entries() -> None:
    with pytest.raises(ValidationError, match="function"):
        spec_from_openai_tool({"type": "function"})


def test_spec_name_is_validated() -> None:
    with pytest.raises(ValidationError):
        ActionSpec(name="has space")


def test_result_failure_helper_and_json_round_trip() -> None:
    call = ActionCall(action="x", arguments={"a": 1}, attempt=2)
    result = ActionResult.failure(call, "timeout", "TimeoutError", "too slow")
    assert result.status is ActionStatus.TIMEOUT
    assert result.attempt == 2
    assert result.call_id == call.call_id
    again = ActionResult.model_validate_json(result.model_dump_json())
    assert again == result


def test_model_cost_is_exact_decimal_per_million() -> None:
    m = ModelDescriptor(
        name="m", input_price_per_m=Decimal("0.15"), output_price_per_m=Decimal("0.60")
    )
    assert m.cost(1_000_000, 0) == Decimal("0.15")
    assert m.cost(1000, 500) == Decimal("0.00045")


def test_token_usage_adds() -> None:
    total = TokenUsage(input_tokens=3, output_tokens=4, calls=1) + TokenUsage(
        input_tokens=1, output_tokens=1, calls=1
    )
    assert (total.input_tokens, total.output_tokens, total.calls, total.total_tokens) == (
        4,
        5,
        2,
        9,
    )
