"""Per-node cost of RayExecutor vs the default in-process executor, side by side.

Four workloads, the same plans and tools on both sides (only the executor differs):

* no-op chain:    a dependency chain of no-op tools   (latency added per node)
* no-op fan-out:  independent no-op tools             (throughput per node)
* 50 ms chain:    a chain of ~50 ms pure-Python CPU-bound tools
* 50 ms fan-out:  independent ~50 ms CPU-bound tools  (where Ray's processes beat the GIL)

"~50 ms" is calibrated in-process at start (a pure-Python loop holding the GIL). Each
workload runs ``--repeats`` times per side, interleaved (machine noise hits both
sides alike); the script prints per-node medians and the ratio ray / in-process.

Then the executor's own cost against raw Ray, side by side: ``RayExecutor.invoke`` (and
the same with the former thread-per-task await, ``ThreadPerTaskRayExecutor``) vs the
tool's function as a plain Ray remote function, submitted with ``.remote()`` and awaited
with ``ray.get`` (no orchestrator on any side), for ``--raw-fanout`` independent no-op tasks (all
submitted at once) and a ``--raw-chain`` of no-op tasks (each awaited before the next).

Starts a local Ray cluster bound to 127.0.0.1 (usage stats off), shuts it down at the end.

    python benchmarks/ray_overhead.py [--cpus 2] [--repeats 5] [--noop-nodes 200]
        [--cpu-nodes 12] [--cpu-ms 50] [--raw-fanout 500] [--raw-chain 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
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


def raw_fanout(task: Any, n: int) -> float:
    """Seconds per task: ``n`` no-op tasks submitted at once, then one ``ray.get``."""
    import ray

    start = time.perf_counter()
    refs = [task.remote(k) for k in range(n)]
    ray.get(refs)
    return (time.perf_counter() - start) / n


def raw_chain(task: Any, n: int) -> float:
    """Seconds per task: ``n`` no-op tasks, each awaited with ``ray.get`` before the next."""
    import ray

    start = time.perf_counter()
    for k in range(n):
        ray.get(task.remote(k))
    return (time.perf_counter() - start) / n


class ThreadPerTaskRayExecutor(RayExecutor):
    """RayExecutor awaiting as it did before (for comparison): a blocking ``ray.wait``
    loop in a worker thread per task (at most 256 threads)."""

    _threads = anyio.CapacityLimiter(256)

    async def _outcome(self, ref: Any) -> Any:
        import ray

        abandoned = threading.Event()

        def wait() -> Any:
            while not abandoned.is_set():
                ready, _ = ray.wait([ref], timeout=0.2)
                if ready:
                    return ray.get(ref)
            return None

        try:
            return await anyio.to_thread.run_sync(
                wait, abandon_on_cancel=True, limiter=self._threads
            )
        except anyio.get_cancelled_exc_class():
            abandoned.set()
            raise


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
        task = ray.remote(noop.func).options(max_retries=0)  # what one would write by hand
        threaded = ThreadPerTaskRayExecutor()
        pairs = {
            f"{args.raw_fanout} no-op fan-out": (
                lambda: raw_fanout(task, args.raw_fanout),
                lambda executor: executor_fanout(executor, args.raw_fanout),
            ),
            f"{args.raw_chain} no-op chain": (
                lambda: raw_chain(task, args.raw_chain),
                lambda executor: executor_chain(executor, args.raw_chain),
            ),
        }
        print(
            f"\n{'workload':<20}{'raw ray.get':>14}{'RayExecutor':>14}{'thread/task':>14}"
            f"{'executor / raw':>17}{'thread/task / raw':>20}"
        )
        for name, (raw, through) in pairs.items():
            times = {"raw": [], "ours": [], "threaded": []}
            for _ in range(args.repeats):
                times["raw"].append(raw())
                times["ours"].append(await through(remote))
                times["threaded"].append(await through(threaded))
            rw, ou, th = (statistics.median(times[k]) for k in ("raw", "ours", "threaded"))
            print(
                f"{name:<20}{rw * 1e3:>11.3f} ms{ou * 1e3:>11.3f} ms{th * 1e3:>11.3f} ms"
                f"{ou / rw:>16.2f}x{th / rw:>19.2f}x   (per task)"
            )
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
        "--only-raw", action="store_true", help="Only the executor-vs-raw-Ray comparison."
    )
    anyio.run(main, parser.parse_args())
