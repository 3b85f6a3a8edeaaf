"""The LLM planner with a real model: its replies come through JSON-schema constrained
output (``response_format``), are validated, and a rejected one is fed back for repair.

Records how often the model's first reply of round 1 was a valid plan, and how many runs
got a plan that validated and ran. SmolLM2-135M writes well-formed envelopes but (with
the planner's schema, where ``arguments`` is any object) almost never valid arguments or
references: the measured rates are reported, not asserted."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from jsonschema import Draft202012Validator

from paraloom.models import ModelPool, OpenAICompatible
from paraloom.orchestrator import Orchestrator
from paraloom.orchestrator.llm_planner import LLMPlanner
from paraloom.protocols.actions import ActionStatus
from paraloom.protocols.events import Event, LLMCallStarted, PlanCreated, SubtaskFinished
from paraloom.testing.llama_server import LlamaServer
from paraloom.tools import tool

from .conftest import MEASURED, Wire, add, check_reservations, local_model

pytestmark = [pytest.mark.local_llm, pytest.mark.anyio, pytest.mark.timeout(600)]


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a * b


@tool
def upper(text: str) -> str:
    """The text in upper case.

    Args:
        text: The text to convert.
    """
    return text.upper()


@tool
def word_count(text: str) -> int:
    """How many words a text has.

    Args:
        text: The text whose words to count.
    """
    return len(text.split())


TASKS = [
    "Add 17 and 25.",
    "Multiply 6 by 7.",
    "Convert the word 'paraloom' to upper case.",
    "Count the words in the sentence 'the quick brown fox jumps'.",
]


def first_plan_valid(events: list[Event]) -> bool:
    """Whether round 1's plan came from the model's first reply (one planner call)."""
    calls = 0
    for e in events:
        if isinstance(e, LLMCallStarted) and e.step_kind == "plan":
            calls += 1
        elif isinstance(e, PlanCreated) and e.round == 1:
            return calls == 1 and e.plan is not None
    return False


async def test_planner_plans_through_constrained_json_with_a_real_model(
    llama: LlamaServer,
) -> None:
    wire = Wire()
    first_valid = 0
    ran = 0
    outcomes: list[str] = []
    async with OpenAICompatible(
        base_url=llama.base_url, http_client=wire.http_client(), timeout_s=300
    ) as client:
        pool = ModelPool([local_model()], client=client)
        planner = LLMPlanner(pool, "smol", max_tokens=300, temperature=0, max_attempts=2)
        orch = Orchestrator([add, multiply, upper, word_count], planner, max_rounds=2)
        for task in TASKS:
            events: list[Event] = []
            result = await orch.run(task, budget=Decimal(1), on_event=events.append)
            check_reservations(events)
            plans = [e for e in events if isinstance(e, PlanCreated) and e.plan is not None]
            done = [
                e
                for e in events
                if isinstance(e, SubtaskFinished) and e.result.status == ActionStatus.OK
            ]
            first_valid += first_plan_valid(events)
            ran += bool(plans and done)
            outcomes.append(
                f"{task!r}: {result.status}, "
                f"{[s.action for p in plans for s in p.plan.subtasks] if plans else 'no plan'}"
                f" -> {str(result.output if result.ok else result.error)[:120]}"
            )
    MEASURED["first-plan validity"] = f"{first_valid}/{len(TASKS)}"
    MEASURED["plans that validated and ran"] = f"{ran}/{len(TASKS)}"
    MEASURED["planner runs"] = " | ".join(outcomes)

    pairs = list(zip(wire.requests, wire.responses, strict=True))
    assert len(pairs) >= len(TASKS)
    stopped = 0
    for body, response in pairs:
        # every planner request asks for the planner's JSON schema, with the catalogue
        schema = body["response_format"]["json_schema"]["schema"]
        action = schema["properties"]["subtasks"]["items"]["properties"]["action"]
        assert set(action["enum"]) == {"add", "multiply", "upper", "word_count"}
        # ... and the server's constrained decoding holds: a reply that was not cut off
        # by max_tokens is JSON matching that schema
        choice = response["choices"][0]
        if choice["finish_reason"] == "stop":
            stopped += 1
            reply = json.loads(choice["message"]["content"])
            assert Draft202012Validator(schema).is_valid(reply), reply
    assert stopped >= len(pairs) // 2
    # a rejected reply is fed back with the reason (the repair loop), then asked again
    repairs = 0
    for i, (body, _) in enumerate(pairs[1:], start=1):
        if len(body["messages"]) > 2:
            repairs += 1
            previous = pairs[i - 1][1]["choices"][0]["message"]["content"]
            assert body["messages"][-2] == {"role": "assistant", "content": previous}
            assert body["messages"][-1]["content"].startswith("Your reply was rejected")
    MEASURED["planner repair requests"] = str(repairs)
