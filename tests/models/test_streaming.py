"""The OpenAI-compatible provider streaming over real SSE from the test server."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from paraloom.models import ModelError, ModelPool, ModelRequest, OpenAICompatible, call_model
from paraloom.protocols.events import Event, LLMCallFinished, LLMDelta, UsageAnomaly
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import ActionContext
from paraloom.runtime.redact import register_secret
from paraloom.testing import Reply, Streamed, tool_call
from paraloom.testing.openai_server import OpenAITestServer
from tests.models.conftest import SleepRecorder

KEY = "sk-test-SECRET-1234"
MSGS = (ChatMessage(role="user", content="Say something long."),)
DESC = ModelDescriptor(
    name="m", model_id="m-v1", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2)
)
TEXT = "The quick brown fox jumps over the lazy dog, twice over."


def _client(server: OpenAITestServer, sleeps: SleepRecorder, **kw: Any) -> OpenAICompatible:
    return OpenAICompatible(server.base_url, KEY, retry=sleeps.policy(), **kw)


def _ctx(events: list[Event], budget: Budget | None = None, deltas: bool = True) -> ActionContext:
    return ActionContext(
        run_id="run_s",
        emit=events.append,
        budget=budget,
        call_id="call_1",
        subtask_id="s1",
        deltas=deltas,
    )


def _text(events: list[Event]) -> str:
    deltas = sorted((e for e in events if isinstance(e, LLMDelta)), key=lambda e: e.seq)
    return "".join(d.text for d in deltas if d.kind == "text")


@pytest.mark.anyio
async def test_stream_assembles_the_same_completion(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    reply = Reply(TEXT, input_tokens=30, output_tokens=12)
    server.script(reply, reply)
    request = ModelRequest(model="m-v1", messages=MSGS, max_tokens=100)
    async with _client(server, sleeps, stream=True) as client:
        streamed = await client.complete(request)
    async with _client(server, sleeps, stream=False) as client:
        plain = await client.complete(request)
    first, second = server.requests
    assert first.body.stream is True and first.raw["stream_options"] == {"include_usage": True}
    assert second.body.stream is None and "stream_options" not in second.raw
    assert streamed.message == plain.message and streamed.content == TEXT
    assert streamed.usage == plain.usage and streamed.usage_reported
    assert streamed.finish_reason == plain.finish_reason == "stop"


@pytest.mark.anyio
async def test_tool_call_arguments_assembled_from_pieces(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    args = {"query": "weather in Paris", "days": 3}
    server.script(Streamed(Reply.calls(tool_call("search", args, id="tc_1")), chunk_chars=4))
    events: list[Event] = []
    pool = ModelPool([DESC], client=_client(server, sleeps))
    mc = await call_model(pool, _ctx(events), list(MSGS), default_model="m")
    [call] = mc.completion.message.tool_calls
    assert call.id == "tc_1" and call.name == "search" and json.loads(call.arguments) == args
    pieces = [e for e in events if isinstance(e, LLMDelta) and e.kind == "tool_call"]
    assert len(pieces) > 3 and "".join(p.text for p in pieces) == call.arguments
    assert pieces[0].tool_name == "search" and pieces[0].tool_call_index == 0
    assert all(p.subtask_id == "s1" and p.llm_call_id == mc.llm_call_id for p in pieces)


@pytest.mark.anyio
async def test_deltas_carry_ids_and_rebuild_the_text(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    server.script(Streamed(Reply(TEXT), chunk_chars=5))
    events: list[Event] = []
    pool = ModelPool([DESC], client=_client(server, sleeps))
    mc = await call_model(pool, _ctx(events), list(MSGS), default_model="m")
    deltas = [e for e in events if isinstance(e, LLMDelta)]
    assert len(deltas) >= len(TEXT) // 5 - 1
    assert [d.seq for d in deltas] == list(range(1, len(deltas) + 1))
    assert {(d.run_id, d.subtask_id, d.parent_call_id, d.model) for d in deltas} == {
        ("run_s", "s1", "call_1", "m")
    }
    assert _text(events) == mc.completion.content == TEXT
    finished = events[-1]
    assert isinstance(finished, LLMCallFinished)
    assert finished.time_to_first_token_s is not None
    assert 0 <= finished.time_to_first_token_s <= finished.latency_s


@pytest.mark.anyio
async def test_no_listener_no_stream(server: OpenAITestServer, sleeps: SleepRecorder) -> None:
    server.script(Reply(TEXT))
    events: list[Event] = []
    pool = ModelPool([DESC], client=_client(server, sleeps))
    await call_model(pool, _ctx(events, deltas=False), list(MSGS), default_model="m")
    assert server.requests[0].body.stream is None
    assert not any(isinstance(e, LLMDelta) for e in events)


@pytest.mark.anyio
@pytest.mark.timeout(30)
@pytest.mark.parametrize("abort", [False, True])
async def test_stream_cut_midway_is_retried_and_partial_reported(
    server: OpenAITestServer, sleeps: SleepRecorder, abort: bool
) -> None:
    server.script(Streamed(Reply(TEXT), chunk_chars=4, cut_after=3, abort=abort), Reply(TEXT))
    events: list[Event] = []
    budget = Budget("1.00")
    pool = ModelPool([DESC], client=_client(server, sleeps))
    mc = await call_model(pool, _ctx(events, budget), list(MSGS), default_model="m")
    assert mc.completion.content == TEXT and len(server.requests) == 2
    [discarded] = [e for e in events if isinstance(e, LLMDelta) and e.kind == "discarded"]
    assert discarded.text == TEXT[:12]  # the partial text, reported
    first, second = [e for e in events if isinstance(e, LLMCallFinished)]
    assert first.abandoned and first.error is not None and "partial text" in first.error
    assert ("RemoteProtocolError" if abort else "stream cut after 4 chunk(s)") in first.error
    assert first.cost_usd > 0  # the broken attempt is billed at its worst case
    assert second.error is None and second.llm_call_id == mc.llm_call_id
    assert budget.spent_usd == first.cost_usd + second.cost_usd
    # the retry's text, without the broken attempt's
    retry = [e for e in events if isinstance(e, LLMDelta) and e.llm_call_id == mc.llm_call_id]
    assert "".join(d.text for d in retry if d.kind == "text") == TEXT


@pytest.mark.anyio
async def test_plain_request_gets_the_scripted_reply_unstreamed(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    server.script(Streamed(Reply(TEXT), cut_after=2))
    async with _client(server, sleeps) as client:  # no sink, stream=None: no streaming
        completion = await client.complete(ModelRequest(model="m-v1", messages=MSGS))
    assert completion.content == TEXT and server.requests[0].body.stream is None


@pytest.mark.anyio
async def test_forced_stream_cut_is_retryable_error(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    cut = Streamed(Reply(TEXT), cut_after=2)
    server.script(cut, cut, cut)
    async with _client(server, sleeps, stream=True) as client:
        with pytest.raises(ModelError) as info:
            await client.complete(ModelRequest(model="m-v1", messages=MSGS, max_tokens=50))
    assert info.value.retryable and info.value.maybe_billed
    assert "stream cut after" in str(info.value) and KEY not in str(info.value)
    assert len(server.requests) == 3


@pytest.mark.anyio
async def test_stream_without_usage_settled_at_worst_case(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    server.script(Reply(TEXT, report_usage=False))
    events: list[Event] = []
    budget = Budget("1.00")
    pool = ModelPool([DESC], client=_client(server, sleeps))
    mc = await call_model(pool, _ctx(events, budget), list(MSGS), default_model="m", max_tokens=40)
    assert mc.completion.content == TEXT and not mc.completion.usage_reported
    [anomaly] = [e for e in events if isinstance(e, UsageAnomaly)]
    assert "no usage reported" in anomaly.reasons[-1]
    assert mc.cost_usd == anomaly.reserved_usd == budget.spent_usd > 0


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_slow_chunks_first_token_before_the_end(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    server.script(Streamed(Reply("a b c d e f"), chunk_chars=2, chunk_delay_s=0.05))
    events: list[Event] = []
    pool = ModelPool([DESC], client=_client(server, sleeps))
    mc = await call_model(pool, _ctx(events), list(MSGS), default_model="m")
    finished = events[-1]
    assert isinstance(finished, LLMCallFinished) and finished.time_to_first_token_s is not None
    assert mc.completion.content == "a b c d e f"
    # six slow chunks: the first arrives well before the last
    assert finished.latency_s - finished.time_to_first_token_s >= 0.2


@pytest.mark.anyio
async def test_secret_split_across_chunks_is_scrubbed(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    secret = "tok-STREAMED-secret-9876"
    register_secret(secret)
    server.script(Streamed(Reply(f"the key is {secret}, keep it"), chunk_chars=3))
    events: list[Event] = []
    pool = ModelPool([DESC], client=_client(server, sleeps))
    await call_model(pool, _ctx(events), list(MSGS), default_model="m")
    text = _text(events)
    assert secret not in text and text.startswith("the key is ") and text.endswith(", keep it")


@pytest.mark.anyio
async def test_secret_shapes_split_over_sse_chunks_never_leave(
    server: OpenAITestServer, sleeps: SleepRecorder
) -> None:
    """Unregistered secret shapes (an sk- key, a JWT) split over SSE chunks of every
    size from 1 to 7 characters: no delta holds one, and the deltas put together are
    the redaction of the whole reply."""
    from paraloom.runtime.redact import REDACTOR

    key = "sk-proj-" + "Zz9" * 8
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9"
    reply = f"use {key} and then {jwt} to log in"
    sizes = range(1, 8)
    server.script(*(Streamed(Reply(reply), chunk_chars=n) for n in sizes))
    pool = ModelPool([DESC], client=_client(server, sleeps))
    for _ in sizes:
        events: list[Event] = []
        mc = await call_model(pool, _ctx(events), list(MSGS), default_model="m")
        assert mc.completion.content == reply  # the caller gets the reply itself
        deltas = [e.text for e in events if isinstance(e, LLMDelta)]
        assert len(deltas) > 1
        assert (
            "".join(deltas)
            == REDACTOR.text(reply)
            == "use [REDACTED] and then [REDACTED] to log in"
        )
        assert not any("sk-proj" in d or "eyJhbGci" in d for d in deltas)


def test_sink_holds_back_only_what_may_begin_a_secret() -> None:
    from paraloom.runtime.streaming import StreamSink

    secret = "zq-HOLD-me-secret-4242"
    register_secret(secret)
    out: list[dict[str, Any]] = []
    sink = StreamSink(out.append)
    sink.text("plain words ")  # cannot begin the secret: sent at once
    assert [d["text"] for d in out] == ["plain words "]
    for ch in f"then {secret} and zq-HO":  # one character at a time
        sink.text(ch)
    sink.end()
    text = "".join(d["text"] for d in out)
    assert secret not in text and text.startswith("plain words then ")
    assert text.endswith(" and zq-HO")  # a prefix that never completed: flushed as is
    assert [d["seq"] for d in out] == list(range(1, len(out) + 1))


@pytest.mark.anyio
async def test_error_inside_the_stream_is_a_broken_stream() -> None:
    from collections.abc import AsyncIterator

    from paraloom.models.sse import StreamAssembler, StreamBroken, read_stream

    chunk = {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}

    async def lines() -> AsyncIterator[str]:
        yield "data: " + json.dumps(chunk)
        yield ""
        yield 'data: {"error": {"message": "overloaded", "type": "server_error"}}'

    with pytest.raises(StreamBroken) as info:
        await read_stream(lines(), StreamAssembler())
    assert "overloaded" in str(info.value) and info.value.partial == "Hel"
