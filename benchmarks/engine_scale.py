"""Scale: 1k → 10k → 100k-node DAGs; per-node time, bytes per node and GC share.

A layered DAG (100 subtasks a layer; each subtask after the first layer takes the output
of one subtask of the layer above and depends on another), run by one ``Orchestrator``,
without and with an event listener (one that counts the events: it keeps none). For
each size:

* µs/node of the run (the plan is built before the clock starts), next to the cost
  of spawning as many tasks in a raw anyio TaskGroup;
* the growth of µs/node from one size to the next (the goal: flat, ≤ 1.1× per 10×);
* bytes/node: tracemalloc's peak over plan construction + run (the plan, validation,
  tasks, results and run result; target ≤ 5 KB/node), in a separate run (tracemalloc
  slows allocation down);
* GC share: the time the cyclic collector ran during the run (``gc.callbacks``) over
  its wall time, with the number of full (generation 2) collections.

    python benchmarks/engine_scale.py            # 1k, 10k, 100k (a few minutes)
    python benchmarks/engine_scale.py --quick    # 1k and 10k
    python benchmarks/engine_scale.py --sizes 1000 5000 --no-memory
    python benchmarks/engine_scale.py --repeats 3   # the median of 3 runs per size
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

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


class GcTimer:
    """Time spent in the cyclic collector, and full collections, while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.full += info["generation"] == 2


class Counter:
    def __init__(self) -> None:
        self.events = 0

    def __call__(self, event: object) -> None:
        self.events += 1


def run_once(n: int, listener: Callable[[Any], None] | None, timer: GcTimer | None = None) -> float:
    """Build the plan, run it; the wall time of the run (with ``timer`` installed)."""
    plan = layered_plan(n)
    orch = Orchestrator([step], StaticPlanner(plan), max_concurrency=256)
    gc.collect()
    if timer is not None:
        gc.callbacks.append(timer)
    start = time.perf_counter()
    result = anyio.run(lambda: orch.run(on_event=listener))
    wall = time.perf_counter() - start
    if timer is not None:
        gc.callbacks.remove(timer)
    assert result.ok, result.error
    assert len(result.subtasks) == n
    return wall


def measure(n: int, events: bool, memory: bool, repeats: int = 1) -> dict[str, float]:
    """The run of median wall time over ``repeats`` runs (a shared machine's noise)."""
    runs = []
    for _ in range(repeats):
        counter = Counter() if events else None
        timer = GcTimer()
        wall = run_once(n, counter, timer)
        runs.append((wall, timer, counter))
    runs.sort(key=lambda run: run[0])
    wall, timer, counter = runs[len(runs) // 2]
    out = {"us": wall / n * 1e6, "gc": timer.seconds / wall, "full": timer.full}
    if counter is not None:
        out["events"] = counter.events / n
    if memory:
        gc.collect()
        tracemalloc.start()
        run_once(n, Counter() if events else None)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["bytes"] = peak / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--quick", action="store_true", help="1k and 10k only")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    ap.add_argument("--repeats", type=int, default=1, help="runs per size (the median is shown)")
    args = ap.parse_args()
    sizes = [1_000, 10_000] if args.quick else args.sizes
    run_once(min(sizes), None)  # warm-up: imports, validators, caches

    print(
        f"{'nodes':>7} {'listener':>8} | {'µs/node':>8} {'growth':>6} {'raw µs':>7} "
        f"{'/raw':>5} | {'bytes/node':>10} | {'GC share':>8} {'full GCs':>8}"
    )
    for events in (False, True):
        previous: float | None = None
        for n in sizes:
            start = time.perf_counter()
            anyio.run(raw, n)
            raw_us = (time.perf_counter() - start) / n * 1e6
            m = measure(n, events, not args.no_memory, args.repeats)
            growth = f"{m['us'] / previous:5.2f}x" if previous else "     -"
            previous = m["us"]
            memory = f"{m['bytes']:10.0f}" if "bytes" in m else f"{'-':>10}"
            print(
                f"{n:7d} {'on' if events else 'off':>8} | {m['us']:8.1f} {growth:>6} "
                f"{raw_us:7.1f} {m['us'] / raw_us:5.1f} | {memory} | "
                f"{m['gc']:8.1%} {m['full']:8.0f}",
                flush=True,
            )
    print(
        "growth: µs/node over the previous size (goal ≤ 1.1x per 10x); bytes/node: "
        "tracemalloc peak over plan + run (goal ≤ 5 KB)"
    )


if __name__ == "__main__":
    main()
