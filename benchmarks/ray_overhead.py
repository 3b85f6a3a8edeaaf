"""Per-node cost of RayExecutor vs the default in-process executor, side by side.

Four workloads, the same plans and tools on both sides (only the executor differs):

* no-op chain:    a dependency chain of no-op tools   (latency added per node)
* no-op fan-out:  independent no-op tools             (throughput per node)
* 50 ms chain:    a chain of ~50 ms pure-Python CPU-bound tools
* 50 ms fan-out:  independent ~50 ms CPU-bound tools  (where Ray's processes beat the GIL)

"~50 ms" is calibrated in-process at start (a pure-Python loop holding the GIL). Each
workload runs ``--repeats`` times per side, interleaved (machine noise hits both
sides alike); the script prints per-node medians and the ratio ray / in-process.

Then the executor's own cost against raw Ray, side by side in one event loop: the
tool's function as a plain Ray remote function called with the same keyword arguments,
each task submitted with ``.remote()`` and awaited (``await ref``) by its own task of the
loop ("raw await", the reference), and the same with one blocking ``ray.get`` (which
batches the wait but blocks the event loop); against ``RayExecutor.invoke`` (and
``--baseline REV``: RayExecutor as of a git revision), for ``--raw-fanout`` independent
no-op tasks (all in flight at once) and a ``--raw-chain`` of no-op tasks (each awaited
before the next). Each repeat runs the sides in a new (seeded) random order. Whole
orchestrated runs of the same tasks with the Ray and with the in-process executor show
the scheduler's own cost, the same with either executor: "run, ray - scheduler" is the
Ray-specific part of a run.

Starts a local Ray cluster bound to 127.0.0.1 (usage stats off), shuts it down at the end.

    python benchmarks/ray_overhead.py [--cpus 2] [--repeats 5] [--noop-nodes 200]
        [--cpu-nodes 12] [--cpu-ms 50] [--raw-fanout 500] [--raw-chain 100]
        [--baseline REV] [--only-raw]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import anyio

from paraloom import ActionCall, ActionContext, Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.executors import RayExecutor
from paraloom.orchestrator import Executor, InProcessExecutor


@tool
def noop(i: int) -> int:
    return i


@tool
def burn(i: int, iterations: int) -> int:
    """Pure-Python CPU work (holds the GIL)."""
    acc = i
    for k in range(iterations):
        acc = (acc * 31 + k) % 1_000_003
    return acc


def calibrate(ms: float) -> int:
    """Loop iterations that take ``ms`` milliseconds in this process (median of 5)."""
    n = 200_000
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        burn.func(0, n)
        samples.append(time.perf_counter() - start)
    return max(1, int(n * (ms / 1000) / statistics.median(samples)))


def chain(action: str, n: int, extra: dict[str, int]) -> Plan:
    subtasks = [Subtask(id="n0", action=action, arguments={"i": 0, **extra})]
    for k in range(1, n):
        args = {"i": {"from": f"n{k - 1}.output"}, **extra}
        subtasks.append(Subtask(id=f"n{k}", action=action, arguments=args))
    return Plan(subtasks=tuple(subtasks))


def fanout(action: str, n: int, extra: dict[str, int]) -> Plan:
    return Plan(
        subtasks=tuple(
            Subtask(id=f"n{k}", action=action, arguments={"i": k, **extra}) for k in range(n)
        )
    )


async def per_node(plan: Plan, executor: Executor) -> float:
    orch = Orchestrator([noop, burn], StaticPlanner(plan), executor=executor)
    start = time.perf_counter()
    result = await orch.run()
    elapsed = time.perf_counter() - start
    if not result.ok:
        raise RuntimeError(f"benchmark run failed: {result.error}")
    return elapsed / len(plan.subtasks)


def _calls(n: int) -> list[ActionCall]:
    return [ActionCall(action="noop", arguments={"i": k}) for k in range(n)]


async def executor_fanout(executor: RayExecutor, n: int) -> float:
    """Seconds per task: ``n`` no-op calls through ``RayExecutor.invoke`` at once."""
    context, calls = ActionContext(run_id="bench"), _calls(n)
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(executor.invoke, noop, call, context)
    return (time.perf_counter() - start) / n


async def executor_chain(executor: RayExecutor, n: int) -> float:
    """Seconds per task: ``n`` no-op calls through ``RayExecutor.invoke``, one by one."""
    context, calls = ActionContext(run_id="bench"), _calls(n)
    start = time.perf_counter()
    for call in calls:
        result = await executor.invoke(noop, call, context)
        if not result.ok:
            raise RuntimeError(f"benchmark call failed: {result.error}")
    return (time.perf_counter() - start) / n


def raw_get_fanout(task: Any, n: int) -> float:
    """Seconds per task: ``n`` no-op tasks submitted at once, then one blocking ``ray.get``
    (what a plain script writes; it blocks the event loop)."""
    import ray

    start = time.perf_counter()
    ray.get([task.remote(i=k) for k in range(n)])
    return (time.perf_counter() - start) / n


def raw_get_chain(task: Any, n: int) -> float:
    """Seconds per task: ``n`` no-op tasks, each awaited with ``ray.get`` before the next."""
    import ray

    start = time.perf_counter()
    for k in range(n):
        ray.get(task.remote(i=k))
    return (time.perf_counter() - start) / n


async def _await_one(task: Any, k: int) -> None:
    await task.remote(i=k)  # an ObjectRef is awaitable on asyncio


async def raw_await_fanout(task: Any, n: int) -> float:
    """Seconds per task: ``n`` no-op tasks, each submitted and awaited by its own task of
    the event loop (the shape of :func:`executor_fanout`)."""
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for k in range(n):
            tg.start_soon(_await_one, task, k)
    return (time.perf_counter() - start) / n


async def raw_await_chain(task: Any, n: int) -> float:
    """Seconds per task: ``n`` no-op tasks, each awaited in the event loop before the next."""
    start = time.perf_counter()
    for k in range(n):
        await task.remote(i=k)
    return (time.perf_counter() - start) / n


def baseline_executor(revision: str) -> type[RayExecutor]:
    """``RayExecutor`` as it was at git ``revision`` (to compare before/after in one run),
    loaded as a module the workers receive by value."""
    import ray

    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{revision}:paraloom/executors/ray.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("paraloom_ray_baseline")
    sys.modules[module.__name__] = module
    exec(compile(source, f"{revision}:paraloom/executors/ray.py", "exec"), module.__dict__)
    ray.cloudpickle.register_pickle_by_value(module)
    executor: type[RayExecutor] = module.RayExecutor
    return executor


async def raw_vs_executor(
    args: argparse.Namespace, remote: RayExecutor, local: InProcessExecutor
) -> None:
    """The executor's cost against raw Ray, every side in the same event loop, interleaved:
    raw Ray awaited in the loop (the reference), raw blocking ``ray.get`` (for comparison),
    ``RayExecutor.invoke`` (and the ``--baseline`` revision's), a whole orchestrated run
    with the Ray executor and with the in-process one (the scheduler's own cost, which the
    executor does not add), and the in-process executor's ``invoke`` alone."""
    import ray

    task = ray.remote(noop.func).options(max_retries=0)  # what one would write by hand
    executors: dict[str, RayExecutor] = {"RayExecutor": remote}
    if args.baseline:
        executors[f"at {args.baseline}"] = baseline_executor(args.baseline)()
    n_fan, n_chain = args.raw_fanout, args.raw_chain
    shuffle = random.Random(0)

    def workload(n: int, raw_await: Any, raw_get: Any, invoke: Any, plan: Any) -> dict[str, Any]:
        """One workload's sides: raw Ray, each executor alone, whole runs."""
        return {
            "raw await": lambda: raw_await(task, n),
            "raw ray.get": lambda: anyio.to_thread.run_sync(raw_get, task, n),
            **{name: (lambda e=e: invoke(e, n)) for name, e in executors.items()},
            "run, ray": lambda: per_node(plan("noop", n, {}), remote),
            "run, local": lambda: per_node(plan("noop", n, {}), local),
            "local invoke": lambda: invoke(local, n),
        }

    workloads: dict[str, dict[str, Any]] = {
        f"{n_fan} no-op fan-out": workload(
            n_fan, raw_await_fanout, raw_get_fanout, executor_fanout, fanout
        ),
        f"{n_chain} no-op chain": workload(
            n_chain, raw_await_chain, raw_get_chain, executor_chain, chain
        ),
    }
    print(
        f"\nper task, medians of {args.repeats} interleaved runs: wall clock, ratio to 'raw await'"
        ", ratio to 'raw ray.get'; then this process's CPU time (all its threads, Ray's"
        " included: less sensitive to other load than the wall clock), ratio to 'raw ray.get'"
    )
    for (name, sides), n in zip(workloads.items(), (n_fan, n_chain), strict=True):
        times: dict[str, list[float]] = {side: [] for side in sides}
        cpu: dict[str, list[float]] = {side: [] for side in sides}
        for run in sides.values():  # warm-up: export the functions, start the workers
            await run()
        for _ in range(args.repeats):
            order = list(sides)
            shuffle.shuffle(order)  # no side always runs right after the same other
            for side in order:
                cpu_start = time.process_time()
                times[side].append(await sides[side]())
                cpu[side].append((time.process_time() - cpu_start) / n)
        median = {side: statistics.median(t) for side, t in times.items()}
        median_cpu = {side: statistics.median(t) for side, t in cpu.items()}
        raw, get, get_cpu = median["raw await"], median["raw ray.get"], median_cpu["raw ray.get"]
        print(f"{name}:")
        for side, value in median.items():
            used = median_cpu[side]
            print(
                f"  {side:<24}{value * 1e3:>9.3f} ms{value / raw:>7.2f}x{value / get:>7.2f}x"
                f"{used * 1e3:>11.3f} ms cpu{used / get_cpu:>7.2f}x"
            )
        # the scheduler's own cost (a run minus its executor's calls) is not the executor's
        scheduler = median["run, local"] - median["local invoke"]
        ray_part = median["run, ray"] - scheduler
        print(
            f"  {'run, ray - scheduler':<24}{ray_part * 1e3:>9.3f} ms{ray_part / raw:>7.2f}x"
            f"{ray_part / get:>7.2f}x"
        )


async def main(args: argparse.Namespace) -> None:
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    iterations = calibrate(args.cpu_ms)
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        local, remote = InProcessExecutor(), RayExecutor()
        cpu = {"iterations": iterations}
        workloads = {
            "no-op chain": chain("noop", args.noop_nodes, {}),
            "no-op fan-out": fanout("noop", args.noop_nodes, {}),
            f"{args.cpu_ms:g} ms chain": chain("burn", args.cpu_nodes, cpu),
            f"{args.cpu_ms:g} ms fan-out": fanout("burn", args.cpu_nodes, cpu),
        }
        # warm-up: start the Ray workers and import everything on both sides
        await per_node(fanout("burn", 2 * args.cpus, {"iterations": 1000}), remote)
        await per_node(fanout("burn", 2 * args.cpus, {"iterations": 1000}), local)
        print(
            f"Ray {ray.__version__}, {args.cpus} CPUs for Ray, {os.cpu_count()} cores; "
            f"medians of {args.repeats} interleaved runs per side; "
            f"load average {os.getloadavg()[0]:.1f} (other processes compete for the cores)"
        )
        if not args.only_raw:
            print(f"{'workload':<16}{'in-process':>14}{'ray':>14}{'ray / in-process':>20}")
        for name, plan in workloads.items() if not args.only_raw else ():
            times: dict[str, list[float]] = {"local": [], "ray": []}
            for _ in range(args.repeats):
                times["local"].append(await per_node(plan, local))
                times["ray"].append(await per_node(plan, remote))
            lo, ra = statistics.median(times["local"]), statistics.median(times["ray"])
            print(
                f"{name:<16}{lo * 1e3:>11.3f} ms{ra * 1e3:>11.3f} ms{ra / lo:>19.2f}x   (per node)"
            )
        await raw_vs_executor(args, remote, local)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--noop-nodes", type=int, default=200)
    parser.add_argument("--cpu-nodes", type=int, default=12)
    parser.add_argument("--cpu-ms", type=float, default=50.0)
    parser.add_argument("--raw-fanout", type=int, default=500)
    parser.add_argument("--raw-chain", type=int, default=100)
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="Also time RayExecutor as of this git revision (before/after in one run).",
    )
    parser.add_argument(
        "--only-raw", action="store_true", help="Only the executor-vs-raw-Ray comparison."
    )
    anyio.run(main, parser.parse_args())
