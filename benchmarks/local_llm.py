"""paraloom's own overhead on a real model: llama.cpp's ``llama-server`` with SmolLM2-135M
(``scripts/install_local_llm.sh``), the same chat requests sent

* bare: the exact JSON body paraloom would send, POSTed with httpx;
* through paraloom: an :class:`LLMAgent` turn (model selection, token estimate, budget
  reserve/settle, events, the OpenAI-compatible provider, output parsing);

one request at a time, and 4 at once (4 agents in parallel vs 4 bare requests; the
server has 4 slots). Rounds are interleaved (the order alternates) and medians reported:
wall time, tokens/s (completion tokens / wall time) and time to first token as the
server measured it (``timings.prompt_ms``: paraloom does not stream yet, so a client-side
TTFT exists only for the bare path). The ratio paraloom/bare of the wall times is the
overhead (goal <= 1.05). Greedy decoding (temperature 0), so both paths generate the
same tokens.

    python benchmarks/local_llm.py [--rounds 12] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
import httpx

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, ModelRequest, OpenAICompatible
from paraloom.models.wire import request_to_wire
from paraloom.protocols.actions import ActionCall, ActionStatus
from paraloom.protocols.messages import ModelDescriptor
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import ActionContext
from paraloom.testing.llama_server import LlamaServer, find_local_llm

PARALLEL = 4
MODEL = ModelDescriptor(
    name="smol",
    model_id="smollm2-135m",
    input_price_per_m=Decimal(1),
    output_price_per_m=Decimal(2),
    context_window=4096,
)
TASKS = [
    "Describe rivers in three sentences.",
    "Describe mountains in three sentences.",
    "Describe deserts in three sentences.",
    "Describe forests in three sentences.",
]


@dataclass
class Sample:
    wall_s: float
    completion_tokens: int
    prompt_ms: float


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)

    def median_wall(self) -> float:
        return statistics.median(s.wall_s for s in self.samples)

    def median_tps(self) -> float:
        return statistics.median(s.completion_tokens / s.wall_s for s in self.samples)

    def median_prompt_ms(self) -> float:
        return statistics.median(s.prompt_ms for s in self.samples)


class Recorder:
    """The chat-completion responses (usage, timings) that crossed the shared client."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    async def on_request(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            self.sent.append(json.loads(request.content))

    async def on_response(self, response: httpx.Response) -> None:
        if response.request.url.path.endswith("/chat/completions"):
            await response.aread()
            self.bodies.append(response.json())

    def take(self) -> list[dict[str, Any]]:
        out, self.bodies = self.bodies, []
        return out


def agents(pool: ModelPool, max_tokens: int) -> list[LLMAgent]:
    return [
        LLMAgent(
            f"writer{i}",
            instructions="You write short, plain descriptions.",
            model="smol",
            pool=pool,
            max_tokens=max_tokens,
            temperature=0,
        )
        for i in range(PARALLEL)
    ]


def bare_body(agent: LLMAgent, task: str, max_tokens: int) -> dict[str, Any]:
    request = ModelRequest(
        model=MODEL.provider_model,
        messages=tuple(agent.first_messages({"task": task})),
        max_tokens=max_tokens,
        temperature=0,
    )
    return request_to_wire(request)


async def timed(
    fn: Callable[[], Awaitable[None]], recorder: Recorder, series: Series, n: int
) -> None:
    recorder.take()
    start = time.perf_counter()
    await fn()
    wall = time.perf_counter() - start
    bodies = recorder.take()
    if len(bodies) != n:
        raise RuntimeError(f"expected {n} responses, saw {len(bodies)}")
    series.samples.append(
        Sample(
            wall_s=wall,
            completion_tokens=sum(b["usage"]["completion_tokens"] for b in bodies),
            prompt_ms=max(float(b.get("timings", {}).get("prompt_ms", 0.0)) for b in bodies),
        )
    )


async def run(server: LlamaServer, rounds: int, max_tokens: int) -> dict[str, Series]:
    recorder = Recorder()
    hooks = {"request": [recorder.on_request], "response": [recorder.on_response]}
    url = f"{server.base_url}/chat/completions"
    results = {k: Series() for k in ("bare1", "para1", "bareN", "paraN")}
    async with httpx.AsyncClient(timeout=600, event_hooks=hooks) as http:
        client = OpenAICompatible(base_url=server.base_url, http_client=http, timeout_s=600)
        pool = ModelPool([MODEL], client=client)
        crew = agents(pool, max_tokens)
        bodies = [bare_body(a, t, max_tokens) for a, t in zip(crew, TASKS, strict=True)]

        async def bare(i: int) -> None:
            response = await http.post(url, json=bodies[i])
            response.raise_for_status()

        async def para(i: int) -> None:
            context = ActionContext(run_id=f"bench_{i}", budget=Budget(Decimal(10)))
            call = ActionCall(action=crew[i].spec.name, arguments={"task": TASKS[i]})
            result = await crew[i].invoke(call, context)
            if result.status != ActionStatus.OK:
                raise RuntimeError(f"agent failed: {result.error}")

        async def many(one: Callable[[int], Awaitable[None]]) -> None:
            async with anyio.create_task_group() as tg:
                for i in range(PARALLEL):
                    tg.start_soon(one, i)

        # warm-up (loads caches), and a check that both paths send the same body
        recorder.sent.clear()
        await para(0)
        await bare(0)
        sent_by_paraloom, sent_bare = recorder.sent[-2:]
        if sent_by_paraloom != sent_bare:
            raise RuntimeError(f"bodies differ:\n{sent_by_paraloom}\n{sent_bare}")

        for r in range(rounds):
            pairs: list[tuple[str, Callable[[], Awaitable[None]], int]] = [
                ("bare1", lambda: bare(0), 1),
                ("para1", lambda: para(0), 1),
                ("bareN", lambda: many(bare), PARALLEL),
                ("paraN", lambda: many(para), PARALLEL),
            ]
            if r % 2:
                pairs = [pairs[1], pairs[0], pairs[3], pairs[2]]
            for key, fn, n in pairs:
                await timed(fn, recorder, results[key], n)
            print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    return results


def report(results: dict[str, Series], rounds: int, max_tokens: int) -> None:
    print(
        f"llama-server, SmolLM2-135M-Instruct Q4_1, 2 threads, {PARALLEL} slots; "
        f"{rounds} interleaved rounds, max_tokens={max_tokens}, medians"
    )
    print(f"{'':24}{'wall s':>9}{'tokens/s':>10}{'TTFT ms (server)':>18}")
    for label, bare, para in (
        ("1 request", "bare1", "para1"),
        (f"{PARALLEL} in parallel", "bareN", "paraN"),
    ):
        for name, key in (("bare", bare), ("paraloom", para)):
            s = results[key]
            print(
                f"{label:14}{name:10}{s.median_wall():9.3f}{s.median_tps():10.1f}"
                f"{s.median_prompt_ms():18.1f}"
            )
        ratio = results[para].median_wall() / results[bare].median_wall()
        print(f"{label:14}{'ratio':10}{ratio:9.3f}   (paraloom / bare wall time, goal <= 1.05)")


def main() -> None:
    parser = argparse.ArgumentParser(description="paraloom overhead on a real local model")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    local = find_local_llm()
    if local is None:
        sys.exit("no local model server: run scripts/install_local_llm.sh first")
    with LlamaServer(local.server, local.model, context=4096 * PARALLEL, parallel=PARALLEL) as s:
        results = anyio.run(run, s, args.rounds, args.max_tokens)
    report(results, args.rounds, args.max_tokens)


if __name__ == "__main__":
    main()
