"""LLM agent benchmarks, measured side by side in one run (medians of interleaved runs).

1. Parallel tool calls: one agent turn asks for 8 I/O-bound tool calls (each awaits
   20 ms); unlimited parallelism vs ``max_parallel_tools=1``.
2. Overhead of :func:`call_model` (selection, token estimate, budget reserve/settle,
   two events) over calling the model client directly: with an in-process double (the
   worst case: the "model" costs nothing) and over loopback HTTP to the test server (the
   best real case: a local endpoint answering at once).

    python benchmarks/bench_llm_agent.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import anyio

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, ModelRequest, OpenAICompatible, call_model
from paraloom.protocols.actions import ActionCall
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.runtime.budget import Budget
from paraloom.runtime.context import ActionContext
from paraloom.testing import FunctionModel, Reply, tool_call
from paraloom.testing.openai_server import OpenAITestServer
from paraloom.tools import tool

MODEL = ModelDescriptor(name="m", input_price_per_m=Decimal(1), output_price_per_m=Decimal(2))
N_TOOLS = 8


@tool
async def io_tool(i: int) -> int:
    """Simulated I/O."""
    await anyio.sleep(0.02)
    return i


def reply(request: ModelRequest) -> Reply:
    if request.messages[-1].role == "tool":
        return Reply("done")
    return Reply.calls(*(tool_call("io_tool", {"i": i}) for i in range(N_TOOLS)))


async def median_ratio(
    base: Callable[[], Awaitable[object]],
    other: Callable[[], Awaitable[object]],
    rounds: int,
    *,
    after_round: Callable[[], object] | None = None,
) -> float:
    """median time of ``other`` / median time of ``base``, over interleaved rounds."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, runs in zip((base, other), times, strict=True):
            start = time.perf_counter()
            await fn()
            runs.append(time.perf_counter() - start)
        if after_round is not None:
            after_round()
    return statistics.median(times[1]) / statistics.median(times[0])


async def main() -> None:
    pool = ModelPool([MODEL], client=FunctionModel(reply))
    parallel = LLMAgent("p", instructions="x", model="m", pool=pool, actions=[io_tool])
    serial = LLMAgent(
        "s", instructions="x", model="m", pool=pool, actions=[io_tool], max_parallel_tools=1
    )
    ctx = ActionContext(run_id="bench", budget=Budget(100))
    ratio = await median_ratio(
        lambda: parallel.invoke(ActionCall(action="p", arguments={"task": "t"}), ctx),
        lambda: serial.invoke(ActionCall(action="s", arguments={"task": "t"}), ctx),
        7,
    )
    print(f"parallel tool calls ({N_TOOLS} x 20 ms I/O): serial/parallel = {ratio:.1f}x")

    client = FunctionModel(lambda r: Reply("ok", input_tokens=10, output_tokens=5))
    pool2 = ModelPool([MODEL], client=client)
    messages = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="hi " * 50),
    ]
    request = ModelRequest(model="m", messages=tuple(messages), max_tokens=100)
    n = 2000

    async def raw() -> None:
        for _ in range(n):
            await client.complete(request)

    async def full() -> None:
        for _ in range(n):
            await call_model(pool2, ctx, messages, default_model="m", max_tokens=100)

    ratio = await median_ratio(raw, full, 5, after_round=client.requests.clear)
    print(f"call_model (budget + events) vs bare in-process client: {ratio:.1f}x per call")

    with OpenAITestServer(handler=lambda r: Reply("ok", input_tokens=10, output_tokens=5)) as srv:
        async with OpenAICompatible(srv.base_url, "bench") as http_client:
            pool3 = ModelPool([MODEL], client=http_client)
            n_http = 200

            async def raw_h() -> None:
                for _ in range(n_http):
                    await http_client.complete(request)

            async def full_h() -> None:
                for _ in range(n_http):
                    await call_model(pool3, ctx, messages, default_model="m", max_tokens=100)

            await raw_h()  # warm up the connection
            ratio = await median_ratio(raw_h, full_h, 5)
    print(f"call_model vs bare OpenAICompatible over loopback HTTP: {ratio:.2f}x per call")


if __name__ == "__main__":
    anyio.run(main)
