"""The attributes an action's spans share in a run are made once per run, action and
parent call (``CallSpans._action_static``) and copied per call: the spans exported are
the ones made with nothing kept between calls."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import JsonValue

from paraloom import FinalAnswer, Orchestrator, Plan, Subtask
from paraloom.orchestrator import PlannerContext
from paraloom.orchestrator.events import scrubbing_listener
from paraloom.protocols.events import Event
from paraloom.protocols.feedback import StateFeedback
from paraloom.tools.function import FunctionTool
from paraloom.tracing import TracingListener

from .test_fast_spans import canonical, diamond_events

pytestmark = pytest.mark.anyio


async def echo(i: int) -> int:
    return i


@dataclass
class TwoRounds:
    """Round 1: one call of ``echo``; round 2: three parallel ones (twins: their span
    names carry the subtask id); then the answer."""

    name: str = "two_rounds"

    async def next_round(
        self, task: JsonValue, feedback: StateFeedback | None, context: PlannerContext
    ) -> Plan | FinalAnswer:
        if context.round == 1:
            return Plan(subtasks=(Subtask(id="a", action="echo", arguments={"i": 0}),))
        if context.round == 2:
            twins = tuple(Subtask(id=f"b{i}", action="echo", arguments={"i": i}) for i in range(3))
            return Plan(subtasks=twins)
        return FinalAnswer(output=None)


async def twin_events() -> list[Event]:
    events: list[Event] = []
    orch = Orchestrator([FunctionTool(echo)], TwoRounds(), name="twins")
    assert (await orch.run(on_event=scrubbing_listener(events.append))).ok
    return events


def replay(events: list[Event], *, keep: bool) -> list[ReadableSpan]:
    """The spans exported for ``events``; ``keep=False``: the shared attributes are
    made again for every call (what is kept is dropped after each event)."""
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    listener = TracingListener(tp, capture_content=True, session_id="s1", user_id="u1")
    made = 0
    for event in events:
        listener(event)
        for run in listener._runs.values():
            made += len(run.actions)
            if not keep:
                run.actions.clear()
    tp.shutdown()
    assert made  # the shared attributes were used
    return list(exporter.get_finished_spans())


async def test_twins_and_agents_calls_export_what_uncached_attributes_export() -> None:
    for events in (await diamond_events(), await twin_events()):
        kept, fresh = replay(events, keep=True), replay(events, keep=False)
        assert canonical(kept) == canonical(fresh)
        assert len(kept) == len(fresh)


async def test_an_action_called_by_two_agents_names_each_parent() -> None:
    spans = replay(await diamond_events(), keep=True)
    lookups = [s for s in spans if s.name == "execute_tool lookup"]
    by_id = {s.context.span_id: s for s in spans}
    parents = {by_id[s.parent.span_id].name for s in lookups if s.parent is not None}
    assert parents == {"invoke_agent analyst_a", "invoke_agent analyst_b"}
    assert len({(s.attributes or {})["paraloom.parent_call.id"] for s in lookups}) == 2


async def test_twin_calls_are_told_apart_only_once_they_are_twins() -> None:
    names = sorted(s.name for s in replay(await twin_events(), keep=True))
    assert names == [
        "execute_tool echo",
        "execute_tool echo [b0]",
        "execute_tool echo [b1]",
        "execute_tool echo [b2]",
        "invoke_workflow twins",
    ]
