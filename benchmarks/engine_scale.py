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
    python benchmarks/engine_scale.py --store    # + runs recorded in a SQLite run store
    python benchmarks/engine_scale.py --repeats 3   # the median of 3 runs per size

With ``--store`` each size also runs recording into a fresh SQLite run store with the
durable executor (what every CLI run does), timed until its last event is committed,
and prints its µs/node over the no-listener run's (the goal: ≤ 2×).
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import anyio

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.store import RunStore

Mode = Literal["off", "on", "store"]


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


def run_once(n: int, mode: Mode, timer: GcTimer | None = None) -> tuple[float, int]:
    """Build the plan, run it; the wall time of the run (with ``timer`` installed) and
    the events a listener saw. ``mode``: no listener, a counting listener, or a fresh
    SQLite run store with the durable executor (timed until its last commit)."""
    plan = layered_plan(n)
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs.sqlite") if mode == "store" else None
        counter = Counter()
        listener: Callable[[Any], None] | None = counter if mode == "on" else None
        if store is not None:
            listener = store.listener()
        orch = Orchestrator(
            [step],
            StaticPlanner(plan),
            max_concurrency=256,
            executor=None if store is None else store.executor(),
        )

        async def go() -> Any:
            result = await orch.run(on_event=listener)
            if store is not None:
                await store.aflush()
            return result

        gc.collect()
        if timer is not None:
            gc.callbacks.append(timer)
        start = time.perf_counter()
        result = anyio.run(go)
        wall = time.perf_counter() - start
        if timer is not None:
            gc.callbacks.remove(timer)
        if store is not None:
            store.close()
    assert result.ok, result.error
    assert len(result.subtasks) == n
    return wall, counter.events


def measure(n: int, mode: Mode, memory: bool, repeats: int = 1) -> dict[str, float]:
    """The run of median wall time over ``repeats`` runs (a shared machine's noise)."""
    runs = []
    for _ in range(repeats):
        timer = GcTimer()
        wall, events = run_once(n, mode, timer)
        runs.append((wall, timer, events))
    runs.sort(key=lambda run: run[0])
    wall, timer, events = runs[len(runs) // 2]
    out = {"us": wall / n * 1e6, "gc": timer.seconds / wall, "full": timer.full}
    if mode == "on":
        out["events"] = events / n
    if memory:
        gc.collect()
        tracemalloc.start()
        run_once(n, mode)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["bytes"] = peak / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--quick", action="store_true", help="1k and 10k only")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    ap.add_argument("--store", action="store_true", help="also record into a SQLite run store")
    ap.add_argument("--repeats", type=int, default=1, help="runs per size (the median is shown)")
    args = ap.parse_args()
    sizes = [1_000, 10_000] if args.quick else args.sizes
    modes: list[Mode] = ["off", "on", "store"] if args.store else ["off", "on"]
    for mode in modes:  # warm-up: imports, validators, caches
        run_once(min(sizes), mode)
    off_us: dict[int, float] = {}

    print(
        f"{'nodes':>7} {'listener':>8} | {'µs/node':>8} {'growth':>6} {'raw µs':>7} "
        f"{'/raw':>5} | {'bytes/node':>10} | {'GC share':>8} {'full GCs':>8}"
    )
    for mode in modes:
        previous: float | None = None
        for n in sizes:
            start = time.perf_counter()
            anyio.run(raw, n)
            raw_us = (time.perf_counter() - start) / n * 1e6
            m = measure(n, mode, not args.no_memory, args.repeats)
            if mode == "off":
                off_us[n] = m["us"]
            growth = f"{m['us'] / previous:5.2f}x" if previous else "     -"
            previous = m["us"]
            memory = f"{m['bytes']:10.0f}" if "bytes" in m else f"{'-':>10}"
            vs_off = f" | store/off {m['us'] / off_us[n]:4.2f}x" if mode == "store" else ""
            print(
                f"{n:7d} {mode:>8} | {m['us']:8.1f} {growth:>6} "
                f"{raw_us:7.1f} {m['us'] / raw_us:5.1f} | {memory} | "
                f"{m['gc']:8.1%} {m['full']:8.0f}{vs_off}",
                flush=True,
            )
    print(
        "growth: µs/node over the previous size (goal ≤ 1.1x per 10x); bytes/node: "
        "tracemalloc peak over plan + run (goal ≤ 5 KB); store/off: the store's run over "
        "the no-listener run (goal ≤ 2x)"
    )


if __name__ == "__main__":
    main()
