"""A diamond workflow for tracing tests, the benchmark and the Phoenix screenshot:

    fetch (tool) → analyst_a (agent, model "mini") ┐
                 → analyst_b (agent, model "large") ┴→ merge (tool)

The planner makes one LLM call per round (round 1: the plan, round 2: the final answer);
each agent calls the ``lookup`` tool once, then answers. Models are in-process
``FunctionModel`` doubles; everything else is the real engine. With ``barrier`` the two
``lookup`` calls wait for each other, which proves the agents really run in parallel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anyio
from pydantic import JsonValue

from paraloom.agents import LLMAgent
from paraloom.models.base import ModelClient, ModelRequest
from paraloom.models.calling import StepInfo, call_model
from paraloom.models.pool import ModelPool
from paraloom.orchestrator import Listener, Orchestrator, PlannerContext
from paraloom.protocols.feedback import StateFeedback
from paraloom.protocols.messages import ChatMessage, ModelDescriptor
from paraloom.protocols.plan import FinalAnswer, Plan, Subtask
from paraloom.runtime.selection import ModelSelector
from paraloom.testing import FunctionModel, Reply, tool_call
from paraloom.tools.function import FunctionTool

__all__ = ["MODELS", "PLANNER_PROMPT", "Diamond", "build_diamond", "reply"]

PLANNER_PROMPT = "You are the demo planner. Plan the diamond."
MODELS = (
    ModelDescriptor(
        name="mini",
        provider="test",
        model_id="mini-2026",
        input_price_per_m=Decimal("0.15"),
        output_price_per_m=Decimal("0.60"),
    ),
    ModelDescriptor(
        name="large",
        provider="test",
        model_id="large-2026",
        input_price_per_m=Decimal("2.50"),
        output_price_per_m=Decimal("10"),
    ),
)


def reply(request: ModelRequest) -> Reply:
    """The scripted model: the planner gets a sentence, an agent a lookup, then a summary."""
    system = request.messages[0].content or ""
    if system.startswith(PLANNER_PROMPT):
        return Reply(content="fetch, then two analysts in parallel, then merge")
    tool_messages = [m for m in request.messages if m.role == "tool"]
    if not tool_messages:
        user = request.messages[1].content or ""
        topic = "costs" if "cost" in user else "risks"
        return Reply.calls(tool_call("lookup", {"topic": topic}))
    return Reply(content=f"summary: {tool_messages[-1].content}")


class _Barrier:
    """Each of ``parties`` callers waits until all have arrived (bounded by a timeout)."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.event = anyio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.event.set()
        with anyio.fail_after(10):
            await self.event.wait()


@dataclass
class DemoPlanner:
    """Round 1: one LLM call, then the diamond plan. Round 2: one LLM call, then the answer."""

    pool: ModelPool
    name: str = "demo_planner"
    seen_calls: list[str] = field(default_factory=list)

    async def next_round(
        self, task: JsonValue, feedback: StateFeedback | None, context: PlannerContext
    ) -> Plan | FinalAnswer:
        messages = [
            ChatMessage(role="system", content=PLANNER_PROMPT),
            ChatMessage(role="user", content=f"task: {task}; round {context.round}"),
        ]
        call = await call_model(
            self.pool, context.run, messages, default_model="mini", step=StepInfo(step_kind="plan")
        )
        self.seen_calls.append(call.llm_call_id)
        if feedback is not None:
            return FinalAnswer(output={"from": "merge.output"})
        return Plan(
            subtasks=(
                Subtask(id="fetch", action="fetch", arguments={"topic": {"from": "input.topic"}}),
                Subtask(
                    id="a",
                    action="analyst_a",
                    arguments={"task": "Assess the costs.", "context": {"from": "fetch.output"}},
                    depends_on=("fetch",),
                ),
                Subtask(
                    id="b",
                    action="analyst_b",
                    arguments={"task": "Assess the risks.", "context": {"from": "fetch.output"}},
                    depends_on=("fetch",),
                ),
                Subtask(
                    id="merge",
                    action="merge",
                    arguments={"a": {"from": "a.output"}, "b": {"from": "b.output"}},
                    depends_on=("a", "b"),
                ),
            )
        )


@dataclass
class Diamond:
    orchestrator: Orchestrator
    pool: ModelPool
    model: FunctionModel
    planner: DemoPlanner
    task: dict[str, Any]


def build_diamond(
    *,
    listeners: Iterable[Listener] = (),
    capture_content: bool = False,
    model_selector: ModelSelector | None = None,
    budget_usd: Decimal | None = Decimal("1"),
    barrier: bool = True,
    extra_tools: Sequence[FunctionTool] = (),
    client: ModelClient | None = None,
) -> Diamond:
    model = FunctionModel(reply)
    pool = ModelPool(MODELS, client=client or model)
    gate = _Barrier(2) if barrier else None

    def fetch(topic: str) -> dict[str, Any]:
        """Fetch facts about a topic."""
        return {"topic": topic, "facts": [f"{topic} is growing", f"{topic} needs storage"]}

    async def lookup(topic: str) -> str:
        """Look up one aspect."""
        if gate is not None:
            await gate.wait()
        return f"{topic}: moderate"

    def merge(a: str, b: str) -> str:
        """Merge two assessments."""
        return f"{a} | {b}"

    lookup_tool = FunctionTool(lookup)
    analyst_a = LLMAgent(
        "analyst_a",
        instructions="You are analyst A. Use lookup, then summarise.",
        model="mini",
        pool=pool,
        actions=[lookup_tool],
    )
    analyst_b = LLMAgent(
        "analyst_b",
        instructions="You are analyst B. Use lookup, then summarise.",
        model="large",
        pool=pool,
        actions=[lookup_tool],
    )
    planner = DemoPlanner(pool)
    orchestrator = Orchestrator(
        [FunctionTool(fetch), analyst_a, analyst_b, FunctionTool(merge), *extra_tools],
        planner,
        name="diamond",
        listeners=listeners,
        capture_content=capture_content,
        budget_usd=budget_usd,
        model_selector=model_selector,
    )
    return Diamond(orchestrator, pool, model, planner, {"topic": "solar power"})
