"""Scheduling overhead of paraloom vs a raw anyio TaskGroup.

* fan-out: N independent no-op actions (default 1,000).
* chain: a 200-node dependency chain of no-op actions.

Two baselines in a raw anyio TaskGroup: (1) the bare async function, (2) the same
action invocations (``tool.invoke(ActionCall, ctx)``, i.e. argument validation and a
normalized result, without any scheduling). paraloom adds plan validation, dependency
tracking, reference resolution, limits, events and the run result. Prints µs/node and
the ratios (medians of interleaved runs, so machine noise hits all sides alike).

    python benchmarks/engine_overhead.py [--width 1000] [--chain 200] [--repeats 7]

LangGraph, when installed (``pip install -e ".[bench]"``), runs the same two shapes in
the same interleaved loop: a graph of ``width`` no-op nodes all from START to END, and a
chain of ``chain`` nodes each passing the state's value on (compiled once, like the
Orchestrator is built once); it prints µs/node and LangGraph/paraloom. Without it the
script says "langgraph not installed" and goes on.

With ``--store``, the same workloads recording into a SQLite run store with the durable
executor (what every CLI run does), each run timed until its last event is committed,
side by side with the no-listener run: ``store`` is the store as shipped (WAL,
synchronous=NORMAL, an attempt waits only for its plan and its dependencies' commits,
one thread hop per group commit, WAL checkpoints in a thread of their own);
``store-before`` is the same with the previous checkpointing (SQLite's auto-checkpoint
inside the writer's commits, 2 MiB page cache: :func:`before_store`).

    python benchmarks/engine_overhead.py --store [--repeats 5]

With ``--tracing``, the same workloads traced to memory (a :class:`TracingListener` on an
SDK tracer provider with an in-memory exporter, and an SDK meter provider) side by side
with the no-listener run, and the ratio traced/no-listener (process CPU time); also
through a BatchSpanProcessor (as ``paraloom.tracing.setup`` ships), flushed in the run.

    python benchmarks/engine_overhead.py --tracing [--repeats 7]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from paraloom import ActionCall, ActionContext, Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.store import RunStore
from paraloom.store.backend import Backend, SqliteBackend
from paraloom.store.db import Db


async def noop_fn(i: int) -> int:
    return i


noop = tool(noop_fn)


async def raw_fanout(n: int) -> None:
    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(noop_fn, i)


async def raw_invoke_fanout(n: int) -> None:
    ctx = ActionContext(run_id="bench")

    async def one(i: int) -> None:
        await noop.invoke(ActionCall(action="noop_fn", arguments={"i": i}), ctx)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)


async def raw_invoke_chain(n: int) -> None:
    ctx = ActionContext(run_id="bench")
    value: object = 0
    for _ in range(n):
        async with anyio.create_task_group() as tg:

            async def one(v: object = value) -> None:
                nonlocal value
                value = (
                    await noop.invoke(ActionCall(action="noop_fn", arguments={"i": v}), ctx)
                ).output  # type: ignore[dict-item]

            tg.start_soon(one)


async def raw_chain(n: int) -> None:
    for value in range(n):
        async with anyio.create_task_group() as tg:  # one task per node, like the scheduler
            tg.start_soon(noop_fn, value)


def fanout_plan(n: int) -> Plan:
    return Plan(
        subtasks=tuple(Subtask(id=f"n{i}", action="noop_fn", arguments={"i": i}) for i in range(n))
    )


def chain_plan(n: int) -> Plan:
    subtasks = [Subtask(id="n0", action="noop_fn", arguments={"i": 0})]
    for i in range(1, n):
        subtasks.append(
            Subtask(id=f"n{i}", action="noop_fn", arguments={"i": {"from": f"n{i - 1}.output"}})
        )
    return Plan(subtasks=tuple(subtasks))


def langgraph_graphs(width: int, chain: int) -> tuple[Any, Any]:
    """LangGraph's fan-out and chain of no-op nodes, uncompiled (ImportError without
    LangGraph)."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict, total=False):
        x: int

    async def lg_noop(state: State) -> dict[str, Any]:
        return {}

    async def lg_step(state: State) -> dict[str, Any]:
        return {"x": state.get("x", 0)}

    fan = StateGraph(State)
    for i in range(width):
        fan.add_node(f"n{i}", lg_noop)
        fan.add_edge(START, f"n{i}")
        fan.add_edge(f"n{i}", END)
    ch = StateGraph(State)
    previous = START
    for i in range(chain):
        ch.add_node(f"n{i}", lg_step)
        ch.add_edge(previous, f"n{i}")
        previous = f"n{i}"
    ch.add_edge(previous, END)
    return fan, ch


def langgraph_cases(width: int, chain: int) -> dict[str, Any]:
    """LangGraph's fan-out and chain of no-op nodes, or nothing if it is not installed."""
    try:
        fan, ch = langgraph_graphs(width, chain)
    except ImportError:
        return {}
    fan_graph, chain_graph = fan.compile(), ch.compile()
    config: Any = {"recursion_limit": chain + 10}  # one superstep per chain node
    return {
        "fanout_langgraph": lambda: fan_graph.ainvoke({"x": 0}),
        "chain_langgraph": lambda: chain_graph.ainvoke({"x": 0}, config),
    }


def measure(
    repeats: int, width: int, chain: int, *, events: bool, peers: bool = False
) -> dict[str, list[float]]:
    fan = Orchestrator([noop], StaticPlanner(fanout_plan(width)), max_concurrency=width)
    ch = Orchestrator([noop], StaticPlanner(chain_plan(chain)))
    sink: list[object] = []
    listener = sink.append if events else None
    cases = {
        "fanout_raw": lambda: raw_fanout(width),
        "fanout_invoke": lambda: raw_invoke_fanout(width),
        "fanout_paraloom": lambda: fan.run(on_event=listener),
        "chain_raw": lambda: raw_chain(chain),
        "chain_invoke": lambda: raw_invoke_chain(chain),
        "chain_paraloom": lambda: ch.run(on_event=listener),
        **(langgraph_cases(width, chain) if peers else {}),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}

    async def once(fn: object) -> float:
        start = time.perf_counter()
        await fn()  # type: ignore[operator]
        return time.perf_counter() - start

    for fn in cases.values():  # warm-up
        anyio.run(once, fn)
    for _ in range(repeats):  # interleaved
        for k, fn in cases.items():
            sink.clear()
            times[k].append(anyio.run(once, fn))
    return times


class AutoCheckpointBackend(SqliteBackend):
    """The SQLite backend as it was before the store's checkpoint thread: SQLite's own
    auto-checkpoint runs inside the writer's ``COMMIT`` (and syncs there), with the
    default 2 MiB page cache."""

    def connect_writer(self) -> Db:
        return Backend.connect_writer(self)

    def checkpointer(self) -> None:
        return None


def before_store(path: Path) -> RunStore:
    """A SQLite run store that records as the store did before (see
    :class:`AutoCheckpointBackend`): everything else is today's code."""
    store = RunStore(path)
    store._backend = AutoCheckpointBackend(path, synchronous="NORMAL", busy_timeout_s=30.0)
    return store


def measure_store(repeats: int, width: int, chain: int, tmp: Path) -> dict[str, list[float]]:
    now = RunStore(tmp / "now.sqlite")
    before = before_store(tmp / "before.sqlite")
    listener_now, listener_before = now.listener(), before.listener()

    def orch(plan: Plan, store: RunStore | None) -> Orchestrator:
        executor = None if store is None else store.executor()
        return Orchestrator(
            [noop], StaticPlanner(plan), max_concurrency=max(width, 1), executor=executor
        )

    cases: dict[str, Any] = {}
    for shape, plan in (("fanout", fanout_plan(width)), ("chain", chain_plan(chain))):
        bare = orch(plan, None)
        o_now, o_before = orch(plan, now), orch(plan, before)

        async def run_bare(o: Orchestrator = bare) -> None:
            await o.run()

        async def run_now(o: Orchestrator = o_now) -> None:
            await o.run(on_event=listener_now)
            await now.aflush()

        async def run_before(o: Orchestrator = o_before) -> None:
            await o.run(on_event=listener_before)
            await before.aflush()

        cases[f"{shape}_bare"] = run_bare
        cases[f"{shape}_store"] = run_now
        cases[f"{shape}_before"] = run_before
    times: dict[str, list[float]] = {k: [] for k in cases}

    async def once(fn: Any) -> float:
        start = time.perf_counter()
        await fn()
        return time.perf_counter() - start

    for fn in cases.values():  # warm-up
        anyio.run(once, fn)
    for _ in range(repeats):  # interleaved
        for k, fn in cases.items():
            times[k].append(anyio.run(once, fn))
    now.close()
    before.close()
    return times


def report_store(repeats: int, width: int, chain: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = {
            k: statistics.median(v)
            for k, v in measure_store(repeats, width, chain, Path(tmp)).items()
        }
    print(f"[run store + durable executor, to durable] median of {repeats} runs")
    for shape, n in (("fanout", width), ("chain", chain)):
        bare, now, before = t[f"{shape}_bare"], t[f"{shape}_store"], t[f"{shape}_before"]
        print(
            f"  {shape:6s} n={n:5d}: no store {bare / n * 1e6:7.1f} µs/node | "
            f"store before {before / n * 1e6:7.1f} ({before / bare:5.2f}x) | "
            f"store now {now / n * 1e6:7.1f} ({now / bare:5.2f}x) | before/now {before / now:5.2f}x"
        )


def traced_listener(provider: Any = None) -> Any:
    """A TracingListener on an SDK tracer provider exporting to memory (``provider``, or
    a new one with a SimpleSpanProcessor) and an SDK meter provider."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from paraloom.tracing import TracingListener

    if provider is None:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return TracingListener(provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))


def batch_provider() -> Any:
    """A tracer provider with a BatchSpanProcessor to memory (what ``paraloom.tracing.setup``
    ships); flushed inside the timed run, so its export thread's CPU time counts."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    return provider


def report_tracing(repeats: int, width: int, chain: int) -> None:
    """No listener vs traced to memory, run back to back (a fresh listener per run); the
    ratio is the median of the per-pair ratios (robust to drift on a shared machine).
    ``traced, scrub every event`` is how tracing ran before secrets were scrubbed at the
    sinks: the same listener behind a plain one, so the bus scrubs each event for it.
    ``traced, batch processor``: spans through a BatchSpanProcessor (the shipped set-up),
    flushed before the clock stops. Each variant gives (listener, tracer provider)."""
    plans = {"fanout": (fanout_plan(width), width), "chain": (chain_plan(chain), chain)}

    def scrubbed() -> Any:
        inner = traced_listener()
        return (lambda event: inner(event)), None  # a plain listener: gets scrubbed events

    def batched() -> Any:
        provider = batch_provider()
        return traced_listener(provider), provider

    variants: dict[str, Any] = {
        "no listener": lambda: (None, None),
        "traced, scrub every event": scrubbed,
        "traced": lambda: (traced_listener(), None),
        "traced, batch processor": batched,
    }

    async def once(orch: Orchestrator, make: Any) -> float:
        listener, provider = make()
        # the previous run's garbage (a traced run's spans and listener hold cycles) is
        # collected here, not inside the next run's clock
        gc.collect()
        start = time.process_time()  # CPU: what tracing costs, less disturbed by load
        await orch.run(on_event=listener)
        if provider is not None:
            provider.force_flush()
        elapsed = time.process_time() - start
        if provider is not None:
            provider.shutdown()
        return elapsed

    print(f"[traced to memory vs no listener] CPU time, {repeats} interleaved repeats")
    for shape, (plan, n) in plans.items():
        orch = Orchestrator([noop], StaticPlanner(plan), max_concurrency=max(n, 64))
        times: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(repeats + 1):  # the first round is a warm-up
            for name, make in variants.items():
                elapsed = anyio.run(once, orch, make)
                if rep:
                    times[name].append(elapsed)
        off = times["no listener"]
        print(f"  {shape} n={n}: no listener {statistics.median(off) / n * 1e6:6.1f} µs/node")
        for name in list(variants)[1:]:
            ratio = statistics.median(t / o for t, o in zip(times[name], off, strict=True))
            med = statistics.median(times[name]) / n * 1e6
            print(f"    {name:<26} {med:6.1f} µs/node | /no listener {ratio:5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--chain", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--store", action="store_true", help="the run store variants only")
    ap.add_argument("--no-langgraph", action="store_true", help="leave LangGraph out")
    ap.add_argument("--tracing", action="store_true", help="traced vs no listener only")
    args = ap.parse_args()
    if args.tracing:
        report_tracing(args.repeats, args.width, args.chain)
        return
    if args.store:
        report_store(args.repeats, args.width, args.chain)
        return
    peers = not args.no_langgraph
    if peers and importlib.util.find_spec("langgraph") is None:
        print("langgraph not installed: no LangGraph column (pip install -e '.[bench]')")
    for events in (False, True):
        t = {
            k: statistics.median(v)
            for k, v in measure(
                args.repeats, args.width, args.chain, events=events, peers=peers and not events
            ).items()
        }
        label = "with an event listener" if events else "no listener"
        print(f"[{label}] median of {args.repeats} interleaved runs")
        for shape, n in (("fanout", args.width), ("chain", args.chain)):
            raw, inv, par = t[f"{shape}_raw"], t[f"{shape}_invoke"], t[f"{shape}_paraloom"]
            print(
                f"  {shape:6s} n={n:5d}: raw fn {raw / n * 1e6:6.1f} µs/node | "
                f"raw invoke {inv / n * 1e6:6.1f} | paraloom {par / n * 1e6:6.1f} | "
                f"paraloom/raw fn {par / raw:5.2f}x | paraloom/raw invoke {par / inv:5.2f}x"
            )
            if (lg := t.get(f"{shape}_langgraph")) is not None:
                print(
                    f"  {'':6s} {'':7s}  langgraph {lg / n * 1e6:6.1f} µs/node | "
                    f"langgraph/paraloom {lg / par:5.2f}x | langgraph/raw fn {lg / raw:5.2f}x"
                )


if __name__ == "__main__":
    main()
