"""Tracing overhead per DAG node, measured side by side in one run (medians of interleaved
repeats): tracing off (no listener) vs a :class:`TracingListener` on a no-op provider (the
OpenTelemetry API without an SDK) vs on an SDK provider exporting to memory (spans and
metrics recorded).

Workloads: a wide plan of trivial async tool subtasks (the worst case: the nodes do no
work, so tracing is all the overhead there is), and the diamond of two LLM agents with
in-process model doubles (each agent makes 2 LLM calls and 1 tool call).

Times are the process's CPU time (``time.process_time``): tracing's cost is CPU work,
and CPU time is far less disturbed than wall time by other load on a shared machine.

    python benchmarks/tracing_overhead.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask
from paraloom.orchestrator import Listener
from paraloom.protocols.events import Event
from paraloom.tools.function import FunctionTool
from paraloom.tracing import TracingListener

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tracing.diamond import build_diamond

WIDE = 200
REPEATS = 21


async def noop(i: int) -> int:
    return i


def wide_orchestrator(listeners: list[Listener]) -> Orchestrator:
    plan = Plan(
        subtasks=tuple(Subtask(id=f"t{i}", action="noop", arguments={"i": i}) for i in range(WIDE))
    )
    return Orchestrator(
        [FunctionTool(noop)], StaticPlanner(plan, output=None), name="wide", listeners=listeners
    )


def variants() -> dict[str, Callable[[], list[Listener]]]:
    def sdk() -> list[Listener]:
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
        return [TracingListener(tp, mp)]

    return {
        "off": lambda: [],
        "api-only": lambda: [TracingListener(NoOpTracerProvider())],
        "sdk+memory": sdk,
    }


async def measure() -> None:
    kinds = variants()
    wide: dict[str, list[float]] = {k: [] for k in kinds}
    diamond: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(REPEATS):
        for name, make in kinds.items():  # interleaved: drift hits every variant alike
            orch = wide_orchestrator(make())
            start = time.process_time()
            result = await orch.run()
            wide[name].append((time.process_time() - start) / WIDE)
            assert result.ok, result.error

            d = build_diamond(listeners=make(), barrier=False)
            start = time.process_time()
            result = await d.orchestrator.run(d.task)
            diamond[name].append((time.process_time() - start) / 4)
            assert result.ok, result.error

    # The listener's own cost, without the run around it: replay one run's events.
    events: list[Event] = []
    assert (await wide_orchestrator([events.append]).run()).ok
    replay: dict[str, list[float]] = {k: [] for k in kinds if k != "off"}
    for _ in range(REPEATS):
        for name in replay:
            (listener,) = kinds[name]()
            start = time.process_time()
            for event in events:
                listener(event)
            replay[name].append((time.process_time() - start) / WIDE)

    for title, data in (
        (f"wide plan, {WIDE} trivial tool nodes", wide),
        ("diamond, 4 nodes (2 LLM agents, 6 LLM calls, 4 tool calls)", diamond),
    ):
        base = statistics.median(data["off"])
        print(f"{title}: CPU time per node, median of {REPEATS}")
        for name, times in data.items():
            med = statistics.median(times)
            print(f"  {name:<11} {med * 1e6:9.1f} µs/node   ratio vs off: {med / base:5.2f}x")
    base = statistics.median(wide["off"])
    print(f"listener alone, replaying the wide run's {len(events)} events: CPU per node")
    for name, times in replay.items():
        med = statistics.median(times)
        print(f"  {name:<11} {med * 1e6:9.1f} µs/node   = {med / base:6.1%} of an untraced node")


if __name__ == "__main__":
    anyio.run(measure)
