"""Ten agents of one run stream at once through the service's SSE endpoint; a client
rebuilds each branch's text exactly, by subtask id, equal to the final outputs."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from branches import BRANCHES, ten_writers, topic_of

pytest.importorskip("fastapi", reason='needs the service extra: pip install "paraloom[service]"')

from paraloom_service import create_app

from paraloom import Orchestrator
from paraloom.models import OpenAICompatible
from paraloom.protocols import ModelDescriptor
from paraloom.testing import Reply, Streamed
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

from .conftest import parse_sse, serve

pytestmark = pytest.mark.anyio

MODEL = ModelDescriptor(
    name="m", model_id="gpt-m", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2)
)


def branch_text(n: int) -> str:
    return f"Branch {n} streams: " + " ".join(f"t{n}:{k}" for k in range(20))


def handler(req: RecordedRequest) -> Streamed:
    n = topic_of(req)
    reply = Reply(branch_text(n), input_tokens=20 + n, output_tokens=30 + n)
    return Streamed(reply, chunk_chars=5, chunk_delay_s=0.002)


def workflow(client: OpenAICompatible) -> Orchestrator:
    return ten_writers(client, MODEL)


@pytest.mark.timeout(60)
async def test_ten_branches_stream_over_sse_and_rebuild_by_subtask_id() -> None:
    server = OpenAITestServer(handler=handler)
    async with server.running(), OpenAICompatible(server.base_url, "k") as model_client:
        app = create_app({"ten": workflow(model_client)})
        async with serve(app) as client:
            streamed_id = (await client.post("/runs", json={"task": "go", "stream": True})).json()[
                "run_id"
            ]
            body = (await client.get(f"/runs/{streamed_id}/events")).text
            streamed = (await client.get(f"/runs/{streamed_id}/result")).json()
            plain_id = (await client.post("/runs", json={"task": "go"})).json()["run_id"]
            plain_body = (await client.get(f"/runs/{plain_id}/events")).text
            plain = (await client.get(f"/runs/{plain_id}/result")).json()
    frames = parse_sse(body)
    deltas = [f["data"] for f in frames if f["event"] == "llm_delta"]
    assert len(deltas) > BRANCHES * 10
    pieces: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for d in deltas:
        assert d["run_id"] == streamed_id and d["subtask_id"] in streamed["subtasks"]
        if d["kind"] == "text":
            pieces[d["subtask_id"]].append((d["seq"], d["text"]))
    rebuilt = {sid: "".join(t for _, t in sorted(p)) for sid, p in pieces.items()}
    outputs = {sid: r["output"] for sid, r in streamed["subtasks"].items()}
    assert rebuilt == outputs == {f"b{n}": branch_text(n) for n in range(BRANCHES)}
    # parallel: every branch had streamed before any branch finished streaming
    order = [d["subtask_id"] for d in deltas]
    assert max(order.index(s) for s in outputs) < min(
        len(order) - 1 - order[::-1].index(s) for s in outputs
    )
    # no deltas unless asked; the same cost and tokens either way
    assert not any(f["event"] == "llm_delta" for f in parse_sse(plain_body))
    assert streamed["status"] == plain["status"] == "ok"
    assert streamed["cost_usd"] == plain["cost_usd"] and streamed["usage"] == plain["usage"]
