"""Run store overhead and commit lag, measured side by side in one run (medians of
interleaved repeats): no store vs the store's listener vs listener + durable executor.

Workloads:
- ``wide``: 200 trivial parallel async subtasks (worst case: the loop is CPU-bound and
  the nodes do no work, so recording is all the overhead there is);
- ``chain``: 100 trivial subtasks in sequence (the durable executor waits for one commit
  per subtask here: its worst case);
- ``io``: 8 chains of 8 subtasks that each wait 5 ms (stand-in for a tool or LLM call).

Times are to *durable*: the run plus the flush that makes its last event durable.
The lag is how many events were submitted but not yet committed when a subtask
started (median / max over all subtasks), i.e. what a SIGKILL at that moment loses.

    python benchmarks/store_overhead.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask
from paraloom.protocols.events import Event
from paraloom.store import RunStore
from paraloom.tools.function import FunctionTool

REPEATS = 7


async def noop(i: int) -> int:
    return i


async def io(i: int) -> int:
    await anyio.sleep(0.005)
    return i


def wide() -> Plan:
    return Plan(
        subtasks=tuple(Subtask(id=f"t{i}", action="noop", arguments={"i": i}) for i in range(200))
    )


def chain() -> Plan:
    return Plan(
        subtasks=tuple(
            Subtask(
                id=f"t{i}",
                action="noop",
                arguments={"i": {"from": f"t{i - 1}.output"} if i else 0},
            )
            for i in range(100)
        )
    )


def io_chains() -> Plan:
    subtasks = []
    for c in range(8):
        for i in range(8):
            arg = {"from": f"c{c}_{i - 1}.output"} if i else c
            subtasks.append(Subtask(id=f"c{c}_{i}", action="io", arguments={"i": arg}))
    return Plan(subtasks=tuple(subtasks))


WORKLOADS: dict[str, Callable[[], Plan]] = {"wide": wide, "chain": chain, "io": io_chains}
VARIANTS = ("off", "listener", "listener+executor")


async def once(plan: Plan, variant: str, store: RunStore, lags: list[int]) -> float:
    actions = [FunctionTool(noop), FunctionTool(io)]
    if variant == "off":
        orch = Orchestrator(actions, StaticPlanner(plan, output=None))
        start = time.perf_counter()
        result = await orch.run()
        elapsed = time.perf_counter() - start
    else:
        record = store.listener()
        writer = store._writer
        assert writer is not None

        def listen(event: Event) -> None:
            record(event)
            if event.type == "subtask_started":
                lags.append(writer.submitted - writer.committed)

        orch = Orchestrator(
            actions,
            StaticPlanner(plan, output=None),
            listeners=[listen],
            executor=store.executor() if variant == "listener+executor" else None,
        )
        start = time.perf_counter()
        result = await orch.run()
        await store.aflush()
        elapsed = time.perf_counter() - start
    assert result.ok, result.error
    return elapsed


async def measure() -> None:
    with tempfile.TemporaryDirectory() as tmp, RunStore(Path(tmp) / "bench.sqlite") as store:
        for name, make in WORKLOADS.items():
            plan = make()
            times: dict[str, list[float]] = {v: [] for v in VARIANTS}
            lags: dict[str, list[int]] = {v: [] for v in VARIANTS}
            for _ in range(REPEATS):
                for variant in VARIANTS:  # interleaved: drift hits every variant alike
                    times[variant].append(await once(plan, variant, store, lags[variant]))
            base = statistics.median(times["off"])
            n = len(plan.subtasks)
            print(f"{name} ({n} subtasks), median of {REPEATS}:")
            for variant in VARIANTS:
                med = statistics.median(times[variant])
                lag = lags[variant]
                lag_text = (
                    f"  lag at subtask start: median {statistics.median(lag):.0f},"
                    f" max {max(lag)} events"
                    if lag
                    else ""
                )
                print(
                    f"  {variant:18s} {med / n * 1e3:7.3f} ms/subtask"
                    f"  x{med / base:5.2f} vs off{lag_text}"
                )


if __name__ == "__main__":
    anyio.run(measure)
