"""Makespan vs critical path on random DAGs of sleeping actions.

Each node sleeps 5–50 ms (anyio.sleep); with width ≤ the concurrency limit an ideal
scheduler finishes in exactly the critical-path time. Prints makespan / critical path
per DAG and the median (target ≤ 1.05).

    python benchmarks/engine_makespan.py [--nodes 200] [--dags 5] [--seed 7]

With ``--store`` each DAG also runs recording into a SQLite run store with the durable
executor (what every CLI run does), timed until its last event is committed, and the
line shows its makespan / critical path next to the run without the store.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from paraloom import ActionSet, Orchestrator, Plan, StaticPlanner, Subtask, tool, validate_plan
from paraloom.store import RunStore


@tool
async def work(ms: float) -> float:
    await anyio.sleep(ms / 1000)
    return ms


def random_dag(n: int, rng: random.Random, max_parents: int = 3) -> tuple[Plan, dict[str, float]]:
    subtasks = []
    weights: dict[str, float] = {}
    for i in range(n):
        k = rng.randint(0, min(i, max_parents))
        parents = rng.sample(range(max(0, i - 30), i), k=min(k, i - max(0, i - 30)))
        ms = rng.uniform(5, 50)
        weights[f"n{i}"] = ms / 1000
        subtasks.append(
            Subtask(
                id=f"n{i}",
                action="work",
                arguments={"ms": ms},
                depends_on=tuple(f"n{p}" for p in parents),
            )
        )
    return Plan(subtasks=tuple(subtasks)), weights


async def raw_dag(plan: Plan) -> float:
    """The same DAG run by hand in one anyio TaskGroup (each node waits for its parents'
    events, then sleeps): the floor that timer granularity alone imposes."""
    done = {s.id: anyio.Event() for s in plan.subtasks}

    async def node(sid: str, deps: tuple[str, ...], ms: float) -> None:
        for d in deps:
            await done[d].wait()
        await anyio.sleep(ms / 1000)
        done[sid].set()

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for s in plan.subtasks:
            tg.start_soon(node, s.id, s.depends_on, float(s.arguments["ms"]))  # type: ignore[arg-type]
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--dags", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--store", action="store_true", help="also with the run store on")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs.sqlite") if args.store else None
        try:
            report(args.nodes, args.dags, random.Random(args.seed), store)
        finally:
            if store is not None:
                store.close()


def report(nodes: int, dags: int, rng: random.Random, store: RunStore | None) -> None:
    ratios: list[float] = []
    raw_ratios: list[float] = []
    store_ratios: list[float] = []
    for d in range(dags):
        plan, weights = random_dag(nodes, rng)
        critical = validate_plan(plan, ActionSet([work])).critical_path(weights)
        orch = Orchestrator([work], StaticPlanner(plan), max_concurrency=nodes)

        async def run(o: Orchestrator = orch) -> float:
            start = time.perf_counter()  # inside the loop: event-loop start-up excluded
            result = await o.run()
            assert result.ok, result.error
            return time.perf_counter() - start

        makespan = anyio.run(run)
        raw = anyio.run(raw_dag, plan)
        ratios.append(makespan / critical)
        raw_ratios.append(raw / critical)
        line = (
            f"dag {d}: {nodes} nodes, critical path {critical * 1000:7.1f} ms, "
            f"paraloom {makespan * 1000:7.1f} ms ({makespan / critical:5.3f}), "
            f"hand-written anyio {raw * 1000:7.1f} ms ({raw / critical:5.3f})"
        )
        if store is not None:
            durable = Orchestrator(
                [work], StaticPlanner(plan), max_concurrency=nodes, executor=store.executor()
            )

            async def run_stored(o: Orchestrator = durable, s: RunStore = store) -> float:
                start = time.perf_counter()
                result = await o.run(on_event=s.listener())
                await s.aflush()  # to durable
                assert result.ok, result.error
                return time.perf_counter() - start

            stored = anyio.run(run_stored)
            store_ratios.append(stored / critical)
            line += f", store on {stored * 1000:7.1f} ms ({stored / critical:5.3f})"
        print(line)
    summary = (
        f"median makespan / critical path: paraloom {statistics.median(ratios):.3f} "
        f"(target ≤ 1.05), hand-written anyio {statistics.median(raw_ratios):.3f}; "
        f"ratio of the two {statistics.median(ratios) / statistics.median(raw_ratios):.3f}"
    )
    if store_ratios:
        summary += f"; store on {statistics.median(store_ratios):.3f} (target ≤ 1.05)"
    print(summary)
    # the medians again as ``label 1.234x``, for benchmarks/ab_checkouts.py
    medians = (
        f"paraloom {statistics.median(ratios):.3f}x, by hand {statistics.median(raw_ratios):.3f}x"
    )
    if store_ratios:
        medians += f", store on {statistics.median(store_ratios):.3f}x"
    print("makespan / critical path medians: " + medians)


if __name__ == "__main__":
    main()
