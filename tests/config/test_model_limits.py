"""``models.<name>.max_concurrency``: built as RetryingModel(ConcurrencyLimitedModel(client))
over a client that does not retry by itself; one limit per model, shared by every run
and cascade of the project."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from paraloom.config import load_config, open_project
from paraloom.models import (
    CascadeModel,
    Completion,
    ConcurrencyLimitedModel,
    ModelRequest,
    OpenAICompatible,
    RetryingModel,
)
from paraloom.orchestrator import RunResult
from paraloom.protocols.messages import ChatMessage
from paraloom.testing import Fault
from paraloom.testing.openai_server import OpenAITestServer

MODELS = """\
models:
  s1: {model_id: small-1, base_url: URL, api_key: sk-test, max_concurrency: 2}
  s2: {model_id: small-2, base_url: URL, api_key: sk-test}
  big: {model_id: big-1, base_url: URL, api_key: sk-test, max_concurrency: 1}
cascades:
  - {name: quick, probes: [s1, s2], escalate: big}
"""
FLOW = """\
agents:
  answerer: {instructions: Answer with one letter., model: MODEL, actions: []}
workflows:
  main:
    subtasks:
      - {id: q1, action: answerer, arguments: {task: "A or B?"}}
      - {id: q2, action: answerer, arguments: {task: "C or D?"}}
"""


def write(tmp_path: Path, model: str, url: str = "http://127.0.0.1:9/v1") -> Path:
    f = tmp_path / "flow.yaml"
    f.write_text((MODELS + FLOW).replace("URL", url).replace("MODEL", model), encoding="utf-8")
    return f


def limited_part(client: object) -> ConcurrencyLimitedModel:
    assert isinstance(client, RetryingModel)
    assert isinstance(client.client, ConcurrencyLimitedModel)
    return client.client


@pytest.mark.anyio
async def test_limited_models_are_built_inside_retries(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, "quick"), resolve_env=True)
    async with open_project(loaded) as project:
        pool = project.pool
        assert pool is not None
        s1, big = limited_part(pool.client("s1")), limited_part(pool.client("big"))
        assert (s1.max_concurrency, big.max_concurrency) == (2, 1)
        # one HTTP client for the endpoint's limited models, which does not retry itself
        assert s1.client is big.client
        assert isinstance(s1.client, OpenAICompatible) and s1.client.retry.attempts == 1
        assert s1.limit is not big.limit
        # an unlimited model keeps the client's own retries
        s2 = pool.client("s2")
        assert isinstance(s2, OpenAICompatible) and s2.retry.attempts > 1
        # the cascade calls its members through their limits
        cascade = pool.client("quick")
        assert isinstance(cascade, CascadeModel)
        assert cascade.probes[0][1] is pool.client("s1")
        assert cascade.escalate[1] is pool.client("big")


@pytest.mark.anyio
async def test_a_limited_model_retries_over_http(tmp_path: Path) -> None:
    async with OpenAITestServer(api_key="sk-test").running() as server:
        server.script(Fault(429, retry_after=0), "A", "B")
        loaded = load_config(write(tmp_path, "big", server.base_url), resolve_env=True)
        async with open_project(loaded) as project:
            result = await project.orchestrator.run(project.task(), budget=project.new_budget())
        assert len(server.requests) == 3
    assert result.ok, result.error
    assert isinstance(result.output, dict)
    assert sorted(str(v) for v in result.output.values()) == ["A", "B"]


class GatedModel:
    """Requests stay in flight until the test opens their gate (oldest first)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.pending: list[anyio.Event] = []

    async def complete(self, request: ModelRequest) -> Completion:
        gate = anyio.Event()
        self.pending.append(gate)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await gate.wait()
        finally:
            self.in_flight -= 1
        return Completion(message=ChatMessage(role="assistant", content="A"), model=request.model)


async def settle() -> None:
    for _ in range(50):
        await anyio.lowlevel.checkpoint()
    await anyio.wait_all_tasks_blocked()


@pytest.mark.anyio
async def test_the_limit_is_shared_by_concurrent_runs(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, "s1"), resolve_env=True)
    async with open_project(loaded) as project:
        assert project.pool is not None
        gated = GatedModel()
        limited_part(project.pool.client("s1")).client = gated  # the endpoint, held
        results: list[RunResult] = []

        async def one() -> None:
            results.append(
                await project.orchestrator.run(project.task(), budget=project.new_budget())
            )

        with anyio.fail_after(10):  # a hang guard, not a timing assertion
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(one)
                for opened in range(6):  # 3 runs x 2 agents, one call each
                    await settle()
                    assert gated.in_flight == min(2, 6 - opened)
                    gated.pending.pop(0).set()
    assert gated.peak == 2
    assert [r.ok for r in results] == [True] * 3
