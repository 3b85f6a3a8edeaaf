"""OpenAICompatible against the real HTTP test server (no mocks of httpx)."""

from __future__ import annotations

import email.utils
import socket
import time
from decimal import Decimal

import httpx
import pytest

from paraloom.models import (
    ModelError,
    ModelPool,
    ModelRequest,
    OpenAICompatible,
    ResponseFormat,
    call_model,
)
from paraloom.models.openai import _retry_after
from paraloom.protocols.events import Event, LLMCallFinished
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import ActionContext
from paraloom.testing import Fault, Malformed, Reply, Slow, Truncated, tool_call
from paraloom.testing.openai_server import OpenAITestServer

from .conftest import SleepRecorder

KEY = "sk-test-SECRET-1234"


def request(**kw: object) -> ModelRequest:
    base: dict[str, object] = {
        "model": "gpt-test",
        "messages": (
            ChatMessage(role="system", content="be brief"),
            ChatMessage(role="user", content="hello"),
        ),
    }
    base.update(kw)
    return ModelRequest.model_validate(base)


@pytest.mark.anyio
async def test_completion_round_trip(server: OpenAITestServer, sleeps: SleepRecorder) -> None:
    server.script(Reply("hi there", input_tokens=11, output_tokens=3, model="gpt-test-0613"))
    tools = (
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    )
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    async with OpenAICompatible(server.base_url, KEY, retry=sleeps.policy()) as client:
        out = await client.complete(
            request(
                tools=tools,
                max_tokens=50,
                temperature=0.2,
                response_format=ResponseFormat(name="answer", json_schema=schema),
            )
        )
    assert out.content == "hi there"
    assert out.finish_reason == "stop"
    assert (out.usage.input_tokens, out.usage.output_tokens, out.usage.calls) == (11, 3, 1)
    assert out.model == "gpt-test-0613"
    assert out.latency_s > 0
    [seen] = server.requests
    assert seen.authorized
    assert seen.raw["model"] == "gpt-test"
    assert seen.raw["max_tokens"] == 50
    assert seen.raw["temperature"] == 0.2
    assert seen.raw["messages"][0] == {"role": "system", "content": "be brief"}
    assert seen.tool_names == ["lookup"]
    assert seen.raw["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": False},
    }
    assert sleeps.waits == []


@pytest.mark.anyio
async def test_tool_calls_and_tool_messages(server: OpenAITestServer) -> None:
    call = tool_call("lookup", {"q": "x"}, id="tc_1")
    server.script(Reply.calls(call), Reply("done"))
    async with OpenAICompatible(server.base_url, KEY) as client:
        first = await client.complete(request())
        assert first.tool_calls == (call,)
        assert first.finish_reason == "tool_calls"
        follow = request(
            messages=(
                ChatMessage(role="user", content="hello"),
                first.message,
                ChatMessage(role="tool", tool_call_id="tc_1", content='{"r": 1}'),
            )
        )
        second = await client.complete(follow)
    assert second.content == "done"
    sent = server.requests[1].raw["messages"]
    assert sent[1]["tool_calls"] == [
        {
            "id": "tc_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
        }
    ]
    assert sent[2] == {"role": "tool", "content": '{"r": 1}', "tool_call_id": "tc_1"}


@pytest.mark.anyio
async def test_config_from_environment(
    server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.script(Reply("ok"))
    async with OpenAICompatible() as client:
        assert client.base_url == server.base_url
        assert (await client.complete(request())).content == "ok"
    assert server.requests[0].authorized


@pytest.mark.anyio
async def test_wrong_key_fails_once_without_leaking_it(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    wrong = "sk-wrong-key-5678"
    async with OpenAICompatible(server.base_url, wrong, retry=sleeps.policy()) as client:
        assert wrong not in repr(client)
        with pytest.raises(ModelError) as info:
            await client.complete(request())
    err = info.value
    assert err.status == 401
    assert not err.retryable
    assert "Incorrect API key" in str(err)
    assert "gpt-test" in str(err)
    assert wrong not in str(err) and wrong not in repr(err.args)
    assert len(server.requests) == 1
    assert sleeps.waits == []


@pytest.mark.anyio
async def test_provider_message_echoing_the_key_is_redacted(sleeps: SleepRecorder) -> None:
    key = "sk-live-abcdef"
    with OpenAITestServer([Fault(400, message=f"bad key {key} for model")]) as srv:
        async with OpenAICompatible(srv.base_url, key, retry=sleeps.policy()) as client:
            with pytest.raises(ModelError) as info:
                await client.complete(request())
    assert key not in str(info.value)
    assert "bad key *** for model" in str(info.value)


@pytest.mark.anyio
async def test_429_honours_retry_after(server: OpenAITestServer, sleeps: SleepRecorder) -> None:
    server.script(Fault(429, "slow down", retry_after=1.5), Fault(429, retry_after=0), Reply("ok"))
    async with OpenAICompatible(server.base_url, KEY, retry=sleeps.policy(attempts=3)) as client:
        out = await client.complete(request())
    assert out.content == "ok"
    assert sleeps.waits == [1.5, 0.0]
    assert len(server.requests) == 3


@pytest.mark.anyio
async def test_5xx_retried_then_gives_up(server: OpenAITestServer, sleeps: SleepRecorder) -> None:
    server.script(Fault(500, "boom"), Fault(503, "overloaded"), Fault(502, "bad gateway"))
    async with OpenAICompatible(server.base_url, KEY, retry=sleeps.policy(attempts=3)) as client:
        with pytest.raises(ModelError) as info:
            await client.complete(request())
    assert info.value.status == 502
    assert info.value.retryable
    assert "bad gateway" in str(info.value)
    assert len(server.requests) == 3
    assert len(sleeps.waits) == 2
    assert all(0 <= w <= 5.0 for w in sleeps.waits)


@pytest.mark.anyio
async def test_400_is_not_retried(server: OpenAITestServer, sleeps: SleepRecorder) -> None:
    server.script(Fault(400, "max_tokens is too large", type="invalid_request_error"), Reply("x"))
    async with OpenAICompatible(server.base_url, KEY, retry=sleeps.policy()) as client:
        with pytest.raises(ModelError, match="max_tokens is too large") as info:
            await client.complete(request())
    assert info.value.status == 400
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_truncated_or_malformed_body_is_retried_then_succeeds(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    server.script(Truncated(Reply("cut off"), keep=0.6), Malformed('{"choices": []}'), Reply("ok"))
    async with OpenAICompatible(server.base_url, KEY, retry=sleeps.policy(attempts=3)) as client:
        out = await client.complete(request())
    assert out.content == "ok"
    assert len(server.requests) == 3
    assert len(sleeps.waits) == 2  # backed off like a 5xx


@pytest.mark.anyio
async def test_malformed_bodies_exhaust_the_retries_with_a_retryable_error(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    server.script(Truncated(Reply("a")), Malformed(), Reply("too late"))
    async with OpenAICompatible(server.base_url, KEY, retry=sleeps.policy(attempts=2)) as client:
        with pytest.raises(ModelError, match="malformed response body") as info:
            await client.complete(request())
    assert info.value.retryable and info.value.status == 200
    assert len(server.requests) == 2  # bounded by the policy


@pytest.mark.anyio
async def test_retried_truncated_body_keeps_the_budget_right(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    """Through ``call_model``, the retries stay under the budget's books: nothing stays
    reserved, what was spent is what the call's events report (one tally), and it
    covers the good reply (a billed truncated attempt, if the budget keeps one, is in
    both)."""
    priced = ModelDescriptor(name="m", input_price_per_m=Decimal(3), output_price_per_m=Decimal(7))
    msgs = [ChatMessage(role="user", content="hello")]
    async with OpenAICompatible(server.base_url, KEY, retry=sleeps.policy(attempts=2)) as client:
        pool = ModelPool([priced], client=client)
        budget = Budget("1.00")
        events: list[Event] = []
        context = ActionContext(run_id="r", emit=events.append, budget=budget)

        def reported() -> Decimal:
            finished = [e for e in events if isinstance(e, LLMCallFinished)]
            return sum((e.cost_usd for e in finished), Decimal(0))

        server.script(Truncated(Reply("x")), Reply("good", input_tokens=100, output_tokens=10))
        mc = await call_model(pool, context, msgs, default_model="m", max_tokens=20)
        assert mc.completion.content == "good"
        assert mc.cost_usd == priced.cost(100, 10)
        assert budget.reserved_usd == 0
        assert budget.spent_usd == reported() >= mc.cost_usd
        last = events[-1]
        assert isinstance(last, LLMCallFinished) and last.error is None
        spent_before = budget.spent_usd
        server.script(Truncated(Reply("y")), Malformed())
        with pytest.raises(ModelError, match="malformed") as info:
            await call_model(pool, context, msgs, default_model="m", max_tokens=20)
        assert info.value.retryable
        assert budget.reserved_usd == 0
        assert budget.spent_usd == reported() >= spent_before
        last = events[-1]
        assert isinstance(last, LLMCallFinished) and last.error is not None
    assert len(server.requests) == 4


@pytest.mark.anyio
async def test_slow_reply_times_out(server: OpenAITestServer, sleeps: SleepRecorder) -> None:
    server.script(Slow(60, Reply("too late")), Reply("fast"))
    async with OpenAICompatible(
        server.base_url, KEY, timeout_s=0.5, retry=sleeps.policy(attempts=2)
    ) as client:
        out = await client.complete(request())
    assert out.content == "fast"
    assert len(sleeps.waits) == 1


@pytest.mark.anyio
async def test_slow_reply_timeout_error(server: OpenAITestServer, sleeps: SleepRecorder) -> None:
    server.script(Slow(60))
    async with OpenAICompatible(
        server.base_url, KEY, timeout_s=0.1, retry=sleeps.policy(attempts=1)
    ) as client:
        with pytest.raises(ModelError, match="timed out") as info:
            await client.complete(request())
    assert info.value.status is None
    assert info.value.retryable


@pytest.mark.anyio
async def test_connection_refused_is_retried(sleeps: SleepRecorder) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = OpenAICompatible(f"http://127.0.0.1:{port}/v1", KEY, retry=sleeps.policy(attempts=2))
    async with client:
        with pytest.raises(ModelError, match="connection failed") as info:
            await client.complete(request())
    assert info.value.retryable and info.value.status is None
    assert len(sleeps.waits) == 1


@pytest.mark.anyio
async def test_shared_http_client_is_not_closed(server: OpenAITestServer) -> None:
    server.script(Reply("a"))
    async with httpx.AsyncClient() as http:
        async with OpenAICompatible(server.base_url, KEY, http_client=http) as client:
            await client.complete(request())
        assert not http.is_closed


@pytest.mark.anyio
async def test_handler_function_decides(server: OpenAITestServer) -> None:
    server.respond_with(lambda r: Reply(f"echo {r.body.messages[-1].content}"))
    async with OpenAICompatible(server.base_url, KEY) as client:
        out = await client.complete(request())
    assert out.content == "echo hello"


@pytest.mark.anyio
async def test_script_exhausted_is_a_clear_client_error(server: OpenAITestServer) -> None:
    async with OpenAICompatible(server.base_url, KEY) as client:
        with pytest.raises(ModelError, match="no scripted reply left"):
            await client.complete(request())


def test_retry_after_parsing() -> None:
    def resp(**headers: str) -> httpx.Response:
        return httpx.Response(429, headers=headers)

    assert _retry_after(resp()) is None
    assert _retry_after(resp(**{"retry-after": "7"})) == 7.0
    assert _retry_after(resp(**{"retry-after-ms": "250"})) == 0.25
    assert _retry_after(resp(**{"retry-after": "soon"})) is None
    future = email.utils.formatdate(time.time() + 120, usegmt=True)
    parsed = _retry_after(resp(**{"retry-after": future}))
    assert parsed is not None and 100 < parsed <= 120


def test_server_rejects_invalid_request_bodies(server: OpenAITestServer) -> None:
    with httpx.Client() as http:
        r = http.post(f"{server.base_url}/chat/completions", content=b"{nope")
        assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]
        r = http.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": []})
        assert r.status_code == 400 and "invalid request" in r.json()["error"]["message"]
    assert server.requests == []


def test_server_lists_models_seen_and_restarts(server: OpenAITestServer) -> None:
    server.script(Reply("a"), Slow(30, Reply("b")))
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}) as http:
        body = {"model": "m-1", "messages": [{"role": "user", "content": "x"}]}
        assert http.post(f"{server.base_url}/chat/completions", json=body).status_code == 200
        models = http.get(f"{server.base_url}/models").json()
        assert models["data"] == [{"id": "m-1", "object": "model"}]
    server.stop()
    with pytest.raises(RuntimeError, match="not started"):
        server.base_url  # noqa: B018
    server.start()
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=0.2) as http:
        body = {"model": "m-1", "messages": [{"role": "user", "content": "x"}]}
        with pytest.raises(httpx.ReadTimeout):  # still slow after a restart
            http.post(f"{server.base_url}/chat/completions", json=body)


@pytest.mark.anyio
async def test_max_completion_tokens_field(server: OpenAITestServer) -> None:
    server.script(Reply("ok"))
    client = OpenAICompatible(server.base_url, KEY, max_tokens_field="max_completion_tokens")
    async with client:
        await client.complete(request(max_tokens=64))
    raw = server.requests[0].raw
    assert raw["max_completion_tokens"] == 64 and "max_tokens" not in raw
