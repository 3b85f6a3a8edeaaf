"""An LLM agent with tools on a real model whose chat template has no tool support
(SmolLM2): in ``tool_mode: json`` it asks for the call through constrained JSON, the tool
runs, its result is fed back, and the run ends with the agent's answer.

Left alone, SmolLM2 asks for the same call again after seeing its result, turn after turn
(tried with several prompts); ``answer_on_last_turn`` offers no tools on the last turn,
where it must answer from the results it has."""

from __future__ import annotations

from decimal import Decimal

import pytest

from paraloom.models import ModelPool, OpenAICompatible
from paraloom.orchestrator import Orchestrator, StaticPlanner
from paraloom.protocols.actions import ActionStatus
from paraloom.protocols.events import ActionFinished, Event, LLMCallFinished
from paraloom.protocols.plan import Plan, Subtask
from paraloom.testing.llama_server import LlamaServer

from .conftest import MEASURED, Wire, check_reservations, geographer, local_model

pytestmark = [pytest.mark.local_llm, pytest.mark.anyio, pytest.mark.timeout(300)]


async def test_agent_calls_a_tool_in_json_mode_and_answers_with_its_result(
    llama: LlamaServer,
) -> None:
    wire = Wire()
    events: list[Event] = []
    async with OpenAICompatible(
        base_url=llama.base_url, http_client=wire.http_client(), timeout_s=300
    ) as client:
        pool = ModelPool([local_model(tool_mode="json")], client=client)
        agent = geographer(pool, model="smol", max_tokens=120)
        plan = Plan(
            subtasks=(
                Subtask(
                    id="ask",
                    action="geographer",
                    arguments={"task": "What is the capital of Japan?"},
                ),
            )
        )
        orch = Orchestrator([agent], StaticPlanner(plan))
        result = await orch.run(budget=Decimal(1), on_event=events.append)

    finished = [e.result for e in events if isinstance(e, ActionFinished)]
    tool_runs = [r for r in finished if r.action == "capital_of"]
    MEASURED["agent (json tool mode)"] = (
        f"{result.status}; tool calls {[r.output for r in tool_runs]}; answer {result.output!r}"
    )
    assert result.ok, result.error
    assert tool_runs and tool_runs[0].status == ActionStatus.OK
    # the model was asked through a JSON schema, not native tools ...
    first = wire.requests[0]
    assert "tools" not in first and "anyOf" in first["response_format"]["json_schema"]["schema"]
    # ... asked for the tool, and the tool's result went back to it in the next request
    assert '"tool": "capital_of"' in wire.responses[0]["choices"][0]["message"]["content"]
    later = ["\n".join(str(m.get("content")) for m in r["messages"]) for r in wire.requests[1:]]
    assert any(f"Result of tool capital_of:\n{tool_runs[0].output}" in m for m in later)
    # the run ends with the agent's own answer (text, not the JSON envelope)
    assert isinstance(result.output, str) and result.output.strip()
    assert '"final_answer"' not in result.output
    llm = [e for e in events if isinstance(e, LLMCallFinished)]
    assert len(llm) >= 2 and all(e.error is None for e in llm)
    check_reservations(events)
