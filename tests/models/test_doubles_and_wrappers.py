from __future__ import annotations

import pytest

from paraloom.models import (
    Completion,
    FallbackModel,
    ModelError,
    ModelRequest,
    RetryingModel,
)
from paraloom.protocols.messages import ChatMessage
from paraloom.testing import FunctionModel, Reply, ScriptedModel, tool_call

from .conftest import SleepRecorder

REQ = ModelRequest(
    model="m", messages=(ChatMessage(role="user", content="hello world"),), max_tokens=5
)


@pytest.mark.anyio
async def test_function_model_sync_and_async() -> None:
    sync = FunctionModel(lambda r: f"got {r.messages[-1].content}")
    out = await sync.complete(REQ)
    assert out.content == "got hello world"
    assert out.usage.calls == 1 and out.usage.input_tokens > 0
    assert 1 <= out.usage.output_tokens <= 5  # capped at max_tokens
    assert sync.requests == [REQ]

    async def decide(r: ModelRequest) -> Reply:
        return Reply.calls(tool_call("t", {"a": 1}, id="c1"), input_tokens=7, output_tokens=2)

    out = await FunctionModel(decide).complete(REQ)
    assert out.tool_calls[0].name == "t" and out.tool_calls[0].arguments == '{"a": 1}'
    assert out.finish_reason == "tool_calls"
    assert (out.usage.input_tokens, out.usage.output_tokens) == (7, 2)


@pytest.mark.anyio
async def test_scripted_model_in_order_then_clear_error() -> None:
    ready = Completion(message=ChatMessage(role="assistant", content="c"), model="x")
    model = ScriptedModel(["a", Reply("b"), ready, ModelError("m", "scripted failure", status=500)])
    assert [(await model.complete(REQ)).content for _ in range(3)] == ["a", "b", "c"]
    with pytest.raises(ModelError, match="scripted failure"):
        await model.complete(REQ)
    with pytest.raises(ModelError, match="no reply left") as info:
        await model.complete(REQ)
    assert not info.value.retryable
    assert model.remaining == 0 and len(model.requests) == 5


@pytest.mark.anyio
async def test_fallback_moves_on_and_reports_all() -> None:
    failing = ScriptedModel([ModelError("m", "down", status=503, retryable=True)])
    ok = ScriptedModel(["from backup"])
    assert (await FallbackModel(failing, ok).complete(REQ)).content == "from backup"

    a = ScriptedModel([ModelError("m", "first", status=500)])
    b = ScriptedModel([ModelError("m", "second", status=500)])
    with pytest.raises(ModelError, match="second") as info:
        await FallbackModel(a, b).complete(REQ)
    assert any("first" in n for n in info.value.__notes__)

    only_retryable = FallbackModel(
        ScriptedModel([ModelError("m", "bad request", status=400)]),
        ScriptedModel(["unused"]),
        when=lambda e: e.retryable,
    )
    with pytest.raises(ModelError, match="bad request"):
        await only_retryable.complete(REQ)
    with pytest.raises(ValueError, match="at least one"):
        FallbackModel()


@pytest.mark.anyio
async def test_retrying_model(sleeps: SleepRecorder) -> None:
    inner = ScriptedModel(
        [ModelError("m", "busy", status=429, retryable=True, retry_after_s=2.0), "ok"]
    )
    out = await RetryingModel(inner, sleeps.policy(attempts=2)).complete(REQ)
    assert out.content == "ok" and sleeps.waits == [2.0]

    fatal = ScriptedModel([ModelError("m", "nope", status=404), "unused"])
    with pytest.raises(ModelError, match="nope"):
        await RetryingModel(fatal, sleeps.policy(attempts=3)).complete(REQ)
    assert fatal.remaining == 1
