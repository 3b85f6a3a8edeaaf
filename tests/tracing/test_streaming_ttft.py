"""A streamed LLM call: its chat span carries time-to-first-token (an attribute and an
event), and deltas make no spans of their own."""

from __future__ import annotations

from decimal import Decimal

import pytest

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, OpenAICompatible
from paraloom.orchestrator import Orchestrator, StaticPlanner
from paraloom.protocols.messages import ModelDescriptor
from paraloom.protocols.plan import Plan, Subtask
from paraloom.testing import Reply, Streamed
from paraloom.testing.openai_server import OpenAITestServer
from tests.tracing.conftest import Traced

MODEL = ModelDescriptor(
    name="m", model_id="gpt-m", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2)
)


@pytest.mark.anyio
@pytest.mark.timeout(30)
@pytest.mark.parametrize("stream", [True, False])
async def test_chat_span_has_time_to_first_token(traced: Traced, stream: bool) -> None:
    reply = Streamed(Reply("one two three four five six"), chunk_chars=4, chunk_delay_s=0.02)
    server = OpenAITestServer([reply])
    async with server.running(), OpenAICompatible(server.base_url, "k", stream=stream) as client:
        pool = ModelPool([MODEL], client=client)
        writer = LLMAgent("writer", instructions="Write.", model="m", pool=pool)
        orch = Orchestrator(
            [writer],
            StaticPlanner(
                Plan(subtasks=(Subtask(id="w", action="writer", arguments={"task": "go"}),))
            ),
            listeners=[traced.listener()],
        )
        result = await orch.run()
    assert result.status == "ok", result.error
    chat = traced.one("chat gpt-m")
    ttft = (chat.attributes or {}).get("gen_ai.server.time_to_first_token")
    events = [e.name for e in chat.events]
    if not stream:
        assert ttft is None and "gen_ai.first_token" not in events
        return
    assert isinstance(ttft, float) and ttft > 0
    assert chat.end_time is not None and chat.start_time is not None
    assert ttft < (chat.end_time - chat.start_time) / 1e9
    assert events.count("gen_ai.first_token") == 1
    # one span per step (workflow, agent, chat), none per delta
    assert sorted(s.name for s in traced.spans) == [
        "chat gpt-m",
        "invoke_agent writer",
        "invoke_workflow workflow",
    ]
