"""A 10,000-node DAG: wall time and peak memory per node.

Peak memory is measured with tracemalloc around plan construction + run (so it counts
the plan, validation graph, tasks, events off, and every result kept). Prints µs/node
next to the raw-anyio cost of spawning as many tasks (a ratio), and KB/node
(target ≤ 5 KB/node).

    python benchmarks/engine_scale.py [--nodes 10000]
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc

import anyio

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool


async def step_fn(x: int) -> int:
    return x + 1


step = tool(step_fn)


def layered_plan(n: int, width: int = 100, seed: int = 3) -> Plan:
    rng = random.Random(seed)
    subtasks = []
    for i in range(n):
        layer = i // width
        if layer == 0:
            args: dict[str, object] = {"x": i}
            deps: tuple[str, ...] = ()
        else:
            parent = (layer - 1) * width + rng.randrange(width)
            args = {"x": {"from": f"n{parent}.output"}}
            deps = (f"n{(layer - 1) * width + rng.randrange(width)}",)
        subtasks.append(Subtask(id=f"n{i}", action="step_fn", arguments=args, depends_on=deps))  # type: ignore[arg-type]
    return Plan(subtasks=tuple(subtasks))


async def raw(n: int) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(step_fn, i)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10_000)
    args = ap.parse_args()
    n = args.nodes

    start = time.perf_counter()
    anyio.run(raw, n)
    raw_s = time.perf_counter() - start

    # Time without tracemalloc (it slows allocation down a lot), memory in a second run.
    start = time.perf_counter()
    plan = layered_plan(n)
    orch = Orchestrator([step], StaticPlanner(plan), max_concurrency=256)
    result = anyio.run(orch.run)
    elapsed = time.perf_counter() - start
    assert result.ok, result.error
    del plan, orch, result

    tracemalloc.start()
    plan = layered_plan(n)
    orch = Orchestrator([step], StaticPlanner(plan), max_concurrency=256)
    result = anyio.run(orch.run)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.ok, result.error
    assert len(result.subtasks) == n
    print(
        f"{n} nodes: paraloom {elapsed:.2f} s ({elapsed / n * 1e6:.0f} µs/node), "
        f"raw anyio spawn {raw_s / n * 1e6:.0f} µs/node, ratio {elapsed / raw_s:.1f}x"
    )
    print(
        f"peak traced memory {peak / 2**20:.1f} MiB = {peak / n / 1024:.2f} KB/node "
        f"(target ≤ 5 KB/node; includes the plan and all {n} results)"
    )


if __name__ == "__main__":
    main()
