"""100 concurrent runs through the service, each an LLM agent talking to the
OpenAI-compatible test server over real HTTP: every run gets its own result, its own
budget and router, and an event stream carrying only its own run."""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from decimal import Decimal

import anyio
import pytest

pytest.importorskip("fastapi", reason='needs the service extra: pip install "paraloom[service]"')

from paraloom_service import create_app

from paraloom import FailurePolicy, Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.agents import LLMAgent
from paraloom.models import FixedModel, ModelPool, OpenAICompatible
from paraloom.protocols import ModelDescriptor
from paraloom.testing import Reply, Slow, tool_call
from paraloom.testing.openai_server import OpenAITestServer, RecordedRequest

from .conftest import parse_sse, serve

pytestmark = pytest.mark.anyio

RUNS = 100
KEY = "sk-service-test-not-real"
MODELS = {
    "small": ModelDescriptor(
        name="small",
        model_id="gpt-small",
        input_price_per_m=Decimal(1),
        output_price_per_m=Decimal(2),
    ),
    "large": ModelDescriptor(
        name="large",
        model_id="gpt-large",
        input_price_per_m=Decimal(10),
        output_price_per_m=Decimal(30),
    ),
}
BY_PROVIDER_MODEL = {d.provider_model: d for d in MODELS.values()}
TAG = re.compile(r"tag-\d{4}-[a-z]+")
TINY = Decimal("0.000001")  # less than any first reservation: the agent cannot call a model


def tag_of(i: int) -> str:
    return f"tag-{i:04d}-{'abcdefghij'[i % 10] * (1 + i % 3)}"


@tool
async def stamp(tag: str) -> str:
    """Stamp a tag."""
    return tag.upper()[::-1]


class Script:
    """Replies from the request alone (requests of 100 runs interleave): turn one asks
    for the `stamp` tool, turn two answers. Records what it billed, per tag."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.billed: dict[str, list[tuple[str, int, int]]] = defaultdict(list)

    def __call__(self, req: RecordedRequest) -> Reply:
        match = TAG.search(str(req.body.messages[1].content))
        assert match is not None, "the agent's task carries the tag"
        tag = match.group(0)
        last = req.body.messages[-1]
        if last.role == "tool":
            reply = Reply(f"done {tag} {last.content}")
        else:
            reply = Reply.calls(tool_call("stamp", {"tag": tag}))
        usage = reply.usage_for(req.to_model_request())
        with self.lock:
            self.billed[tag].append((req.model, usage.input_tokens, usage.output_tokens))
        return Reply(
            reply.content,
            reply.tool_calls,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
        )


def plan_for_agent() -> Plan:
    return Plan(
        subtasks=(
            Subtask(
                id="work",
                action="worker",
                arguments={"task": {"from": "input.task"}},
                policy=FailurePolicy(on_failure="fail"),
            ),
        )
    )


def request_for(i: int) -> dict[str, object]:
    router = "large" if i % 3 == 0 else "small"
    budget = TINY if i % 4 == 1 else Decimal("0.5") + Decimal(i) / 1000
    return {
        "task": {"task": f"Stamp {tag_of(i)} with the stamp tool and report it."},
        "budget_usd": str(budget),
        "router": router,
    }


async def test_100_concurrent_llm_runs_do_not_mix() -> None:
    script = Script()
    server = OpenAITestServer(handler=script, api_key=KEY)
    async with server.running(), OpenAICompatible(server.base_url, KEY) as client:
        pool = ModelPool(MODELS.values(), client=client)
        worker = LLMAgent(
            "worker",
            instructions="Stamp tags with tools.",
            model="small",
            pool=pool,
            actions=[stamp],
        )
        orchestrator = Orchestrator([worker], StaticPlanner(plan_for_agent()), name="stamping")
        app = create_app(
            {"stamping": orchestrator},
            selectors={name: FixedModel(name) for name in MODELS},
        )
        async with serve(app) as http:
            run_ids: dict[int, str] = {}
            for i in range(RUNS):  # all started before any is awaited
                response = await http.post("/runs", json=request_for(i))
                assert response.status_code == 202, response.text
                run_ids[i] = response.json()["run_id"]
            assert len(set(run_ids.values())) == RUNS

            streams: dict[int, list[dict[str, object]]] = {}
            results: dict[int, dict[str, object]] = {}

            async def collect(i: int) -> None:
                events = await http.get(f"/runs/{run_ids[i]}/events")
                streams[i] = parse_sse(events.text)
                result = await http.get(f"/runs/{run_ids[i]}/result")
                assert result.status_code == 200
                results[i] = result.json()

            async with anyio.create_task_group() as tg:
                for i in range(RUNS):
                    tg.start_soon(collect, i)

    assert all(r.authorized for r in server.requests)
    assert not server.errors
    for i in range(RUNS):
        run_id, tag, frames, result = run_ids[i], tag_of(i), streams[i], results[i]
        asked = request_for(i)
        # no cross-talk: only this run's id and this run's tag in its stream
        assert {f["data"]["run_id"] for f in frames} == {run_id}  # type: ignore[index]
        assert set(TAG.findall(str([f["data"] for f in frames]))) == {tag}
        assert frames[0]["event"] == "run_started" and frames[-1]["event"] == "run_finished"
        assert Decimal(frames[0]["data"]["budget_usd"]) == Decimal(str(asked["budget_usd"]))  # type: ignore[index]
        assert result["run_id"] == run_id
        llm_done = [f["data"] for f in frames if f["event"] == "llm_call_finished"]
        if Decimal(str(asked["budget_usd"])) == TINY:
            # its own tiny budget stopped it; the others' budgets were not touched
            assert result["status"] == "failed"
            assert "budget" in str(result["error"]).lower()
            assert tag not in script.billed
            assert llm_done == []
            continue
        assert result["status"] == "ok", result["error"]
        assert result["output"] == f"done {tag} {tag.upper()[::-1]}"
        # its router picked every model it used
        router = str(asked["router"])
        assert {d["model"] for d in llm_done} == {router}  # type: ignore[index]
        assert {m for m, _, _ in script.billed[tag]} == {MODELS[router].provider_model}
        # its cost is exactly what the server billed for its own two requests
        billed = sum(
            (BY_PROVIDER_MODEL[m].cost(inp, out) for m, inp, out in script.billed[tag]), Decimal(0)
        )
        assert len(script.billed[tag]) == 2
        assert Decimal(str(result["cost_usd"])) == billed
        assert sum((Decimal(str(d["cost_usd"])) for d in llm_done), Decimal(0)) == billed  # type: ignore[index]
        assert billed <= Decimal(str(asked["budget_usd"]))


async def test_delete_cancels_a_run_waiting_on_the_model() -> None:
    asked = threading.Event()

    def slow(req: RecordedRequest) -> Slow:
        asked.set()
        return Slow(600, Reply("too late"))  # the server drops it when it stops

    server = OpenAITestServer(handler=slow, api_key=KEY)
    async with server.running(), OpenAICompatible(server.base_url, KEY) as client:
        pool = ModelPool(MODELS.values(), client=client)
        worker = LLMAgent("worker", instructions="Stamp.", model="small", pool=pool)
        orchestrator = Orchestrator([worker], StaticPlanner(plan_for_agent()), name="stamping")
        async with serve(create_app({"stamping": orchestrator})) as http:
            body = {"task": {"task": f"Stamp {tag_of(7)}."}, "budget_usd": "0.25"}
            run_id = (await http.post("/runs", json=body)).json()["run_id"]
            assert await anyio.to_thread.run_sync(asked.wait, 60)  # the model call is open
            assert (await http.delete(f"/runs/{run_id}")).status_code == 202
            frames = parse_sse((await http.get(f"/runs/{run_id}/events")).text)
            result = (await http.get(f"/runs/{run_id}/result")).json()
    llm = [f for f in frames if f["event"].startswith("llm_call")]
    assert [f["event"] for f in llm] == ["llm_call_started", "llm_call_finished"]
    finished: dict[str, object] = llm[1]["data"]
    assert finished["error"], finished  # the call was cut short, not answered
    # the provider may still bill the abandoned request: its worst case is kept as spent
    held = Decimal(str(llm[0]["data"]["reserved_usd"]))
    assert finished["abandoned"] is True and held > 0
    assert Decimal(str(finished["cost_usd"])) == held
    assert frames[-1]["event"] == "run_finished"
    assert frames[-1]["data"]["status"] == "cancelled"
    assert result["status"] == "cancelled"
    assert result["subtasks"]["work"]["status"] == "cancelled"
    assert Decimal(str(result["cost_usd"])) == held
