"""Ten agents stream at once through a real SSE test server; every branch's text is
rebuilt from the run's delta events, by subtask id."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest
from branches import BRANCHES, ten_writers, topic_of

from paraloom.models import OpenAICompatible
from paraloom.orchestrator import Orchestrator, TextSoFar, delta_listener
from paraloom.protocols.events import Event, LLMCallFinished, LLMDelta
from paraloom.protocols.messages import ModelDescriptor
from paraloom.testing import Reply, Streamed
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

MODEL = ModelDescriptor(
    name="writer-model",
    model_id="gpt-writer",
    input_price_per_m=Decimal(3),
    output_price_per_m=Decimal(12),
)


def branch_text(n: int) -> str:
    return f"Branch {n} says: " + " ".join(f"word{n}-{k}" for k in range(12)) + "."


def handler(req: RecordedRequest) -> Streamed:
    n = topic_of(req)
    # fixed usage, so that streamed and plain runs are billed alike
    reply = Reply(branch_text(n), input_tokens=20 + n, output_tokens=15 + n)
    return Streamed(reply, chunk_chars=3, chunk_delay_s=0.002)


def orchestrator(client: OpenAICompatible) -> Orchestrator:
    return ten_writers(client, MODEL)


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_ten_branches_stream_and_rebuild_by_subtask_id() -> None:
    server = OpenAITestServer(handler=handler)
    async with server.running(), OpenAICompatible(server.base_url, "k") as client:
        orch = orchestrator(client)
        texts = TextSoFar()
        deltas: list[LLMDelta] = []
        async with orch.start("go", deltas=True) as run:
            async for ev in run.events():
                texts.observe(ev)
                if isinstance(ev, LLMDelta):
                    deltas.append(ev)
            streamed = await run.result()
        assert all(r.body.stream for r in server.requests)
        plain_events: list[Event] = []
        plain = await orchestrator(client).run("go", on_event=plain_events.append)
        assert not any(r.body.stream for r in server.requests[BRANCHES:])

    assert streamed.status == plain.status == "ok", streamed.warnings
    assert len(deltas) > BRANCHES * 10
    for n in range(BRANCHES):
        sid = f"b{n}"
        assert streamed.subtasks[sid].output == branch_text(n)
        assert texts.text(sid) == streamed.subtasks[sid].output
    # the branches streamed at once: their deltas interleave (one branch after another
    # would switch branches BRANCHES - 1 times; a loaded machine may start some branches
    # late, so not every branch need overlap every other)
    order = [d.subtask_id for d in deltas]
    switches = sum(a != b for a, b in pairwise(order))
    assert switches > 2 * BRANCHES, order
    # cost and tokens identical with streaming on and off
    assert streamed.cost_usd == plain.cost_usd > 0
    assert streamed.usage == plain.usage
    assert not any(isinstance(e, LLMDelta) for e in plain_events)


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_delta_listener_opt_in() -> None:
    server = OpenAITestServer(handler=handler)
    async with server.running(), OpenAICompatible(server.base_url, "k") as client:
        orch = orchestrator(client)
        plain: list[Event] = []
        texts = TextSoFar()
        orch.listeners += [plain.append, delta_listener(texts)]
        result = await orch.run("go")
    assert not any(isinstance(e, LLMDelta) for e in plain)  # a plain listener: no deltas
    finished = [e for e in plain if isinstance(e, LLMCallFinished)]
    assert len(finished) == BRANCHES and all(e.time_to_first_token_s for e in finished)
    assert texts.texts() == {f"b{n}": branch_text(n) for n in range(BRANCHES)}
    assert result.status == "ok"
