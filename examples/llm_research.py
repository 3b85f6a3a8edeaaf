"""An LLM planner with two LLM agents and two tools, against any OpenAI-compatible
endpoint (OpenAI, vLLM, Ollama, llama.cpp server, OpenRouter, LiteLLM proxy …).

    export OPENAI_API_KEY=sk-...                 # optional for local servers
    export OPENAI_BASE_URL=http://localhost:11434/v1   # optional, default OpenAI
    export PARALOOM_MODEL=gpt-4o-mini            # the model name the endpoint knows
    python examples/llm_research.py "Compare France and Japan by population."

Prices (dollars per 1M tokens) default to gpt-4o-mini's; set PARALOOM_PRICE_IN /
PARALOOM_PRICE_OUT for other models. The whole run shares one dollar budget
(PARALOOM_BUDGET_USD, default 0.05): a call whose worst case does not fit is not made.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal

import anyio

from paraloom.agents import LLMAgent
from paraloom.models import ModelPool, OpenAICompatible
from paraloom.orchestrator import Orchestrator, RunResult
from paraloom.orchestrator.llm_planner import LLMPlanner
from paraloom.protocols.events import Event, LLMCallFinished, SubtaskFinished
from paraloom.protocols.messages import ModelDescriptor
from paraloom.tools import tool

COUNTRIES = {
    "france": {"capital": "Paris", "population_millions": 68.2, "area_km2": 551_695},
    "japan": {"capital": "Tokyo", "population_millions": 124.5, "area_km2": 377_975},
    "brazil": {"capital": "Brasília", "population_millions": 203.1, "area_km2": 8_515_767},
    "kenya": {"capital": "Nairobi", "population_millions": 55.1, "area_km2": 580_367},
}


@tool
def country_facts(name: str) -> dict[str, object]:
    """Capital, population (millions) and area (km²) of a country.

    Args:
        name: The country's English name, e.g. "France".
    """
    facts = COUNTRIES.get(name.strip().lower())
    if facts is None:
        raise KeyError(f"no data for {name!r}; known: {', '.join(sorted(COUNTRIES))}")
    return {"country": name, **facts}


@tool
def ratio(a: float, b: float) -> float:
    """a divided by b, rounded to 3 decimals.

    Args:
        a: The numerator.
        b: The denominator (not zero).
    """
    return round(a / b, 3)


def build(client: OpenAICompatible, model: str) -> Orchestrator:
    price_in = Decimal(os.environ.get("PARALOOM_PRICE_IN", "0.15"))
    price_out = Decimal(os.environ.get("PARALOOM_PRICE_OUT", "0.60"))
    pool = ModelPool(
        [ModelDescriptor(name=model, input_price_per_m=price_in, output_price_per_m=price_out)],
        client=client,
    )
    researcher = LLMAgent(
        "researcher",
        instructions="You look up facts about countries with your tools and report them "
        "precisely, with the numbers you found. Compute ratios with the ratio tool.",
        description="Finds and compares facts about countries using a facts database.",
        model=model,
        pool=pool,
        actions=[country_facts, ratio],
        max_tokens=600,
    )
    writer = LLMAgent(
        "writer",
        instructions="You write short, clear prose from the facts you are given. "
        "Never invent numbers.",
        description="Writes a short text from given facts.",
        model=model,
        pool=pool,
        max_tokens=400,
    )
    planner = LLMPlanner(pool, model, max_tokens=1200)
    return Orchestrator([country_facts, ratio, researcher, writer], planner, max_rounds=4)


def show(event: Event) -> None:
    if isinstance(event, LLMCallFinished):
        status = f"error: {event.error}" if event.error else f"${event.cost_usd:.6f}"
        print(f"  llm {event.model}: {event.usage.total_tokens} tokens, {status}")
    elif isinstance(event, SubtaskFinished):
        print(f"  subtask {event.subtask_id} ({event.result.action}): {event.result.status.value}")


async def main(task: str) -> RunResult:
    model = os.environ.get("PARALOOM_MODEL", "gpt-4o-mini")
    budget = Decimal(os.environ.get("PARALOOM_BUDGET_USD", "0.05"))
    async with OpenAICompatible() as client:
        print(f"endpoint {client.base_url}, model {model}, budget ${budget}")
        return await build(client, model).run(task, budget=budget, on_event=show)


if __name__ == "__main__":
    if not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")):
        sys.exit("set OPENAI_API_KEY (and/or OPENAI_BASE_URL for a local server) first")
    question = " ".join(sys.argv[1:]) or (
        "How many times more people live in Japan than in France? Answer in two sentences."
    )
    result = anyio.run(main, question)
    print(f"\nstatus: {result.status} after {result.rounds} round(s), cost ${result.cost_usd:.6f}")
    print(result.output if result.ok else result.error)
