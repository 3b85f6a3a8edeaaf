"""paraloom with its run store vs LangGraph with its SQLite checkpointer: durable runs
side by side.

Both sides persist progress so that a crashed run can be resumed without redoing
finished work, on SQLite in WAL mode with ``synchronous=NORMAL`` (paraloom's default;
LangGraph's ``AsyncSqliteSaver`` gets the same two pragmas, so that neither side pays
an fsync the other skips):

* paraloom: the run store's listener + durable executor (an attempt starts once its
  plan and its dependencies' results are committed), each run timed until its last
  event is committed (``aflush``) — what every CLI run does;
* LangGraph: the same graphs as ``engine_overhead.py`` (a fan-out from START, a chain),
  compiled with an ``AsyncSqliteSaver`` and run with ``durability="sync"`` (each
  superstep's checkpoint is written before the next superstep starts: LangGraph's
  equivalent guarantee), a fresh ``thread_id`` per run.

Prints µs/node per side and LangGraph/paraloom (medians of interleaved runs). Needs
the ``bench`` extra (``pip install -e ".[bench]"``: langgraph and
langgraph-checkpoint-sqlite); without it the script says so and exits.

    python benchmarks/durable_peers.py [--width 1000] [--chain 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from engine_overhead import chain_plan, fanout_plan, langgraph_graphs, noop

from paraloom import Orchestrator, StaticPlanner
from paraloom.store import RunStore


async def measure(repeats: int, width: int, chain: int, tmp: Path) -> dict[str, list[float]]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncExitStack() as stack:
        saver = await stack.enter_async_context(
            AsyncSqliteSaver.from_conn_string(str(tmp / "langgraph.sqlite"))
        )
        await saver.setup()
        await saver.conn.execute("PRAGMA journal_mode=WAL")
        await saver.conn.execute("PRAGMA synchronous=NORMAL")
        store = RunStore(tmp / "paraloom.sqlite")
        stack.callback(store.close)
        listener = store.listener()
        fan_graph, chain_graph = langgraph_graphs(width, chain)
        graphs = {"fanout": fan_graph.compile(checkpointer=saver)}
        graphs["chain"] = chain_graph.compile(checkpointer=saver)
        threads = itertools.count()
        cases: dict[str, Any] = {}
        for shape, plan in (("fanout", fanout_plan(width)), ("chain", chain_plan(chain))):
            orch = Orchestrator(
                [noop], StaticPlanner(plan), max_concurrency=width, executor=store.executor()
            )

            async def paraloom(o: Orchestrator = orch) -> None:
                await o.run(on_event=listener)
                await store.aflush()

            async def langgraph(graph: Any = graphs[shape]) -> None:
                config = {
                    "recursion_limit": chain + 10,
                    "configurable": {"thread_id": f"t{next(threads)}"},
                }
                await graph.ainvoke({"x": 0}, config, durability="sync")

            cases[f"{shape}_paraloom"] = paraloom
            cases[f"{shape}_langgraph"] = langgraph
        times: dict[str, list[float]] = {k: [] for k in cases}
        for rep in range(repeats + 1):  # the first round is a warm-up
            for name, fn in cases.items():
                start = time.perf_counter()
                await fn()
                if rep:
                    times[name].append(time.perf_counter() - start)
        return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--chain", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if importlib.util.find_spec("langgraph.checkpoint.sqlite") is None:
        print("langgraph-checkpoint-sqlite not installed (pip install -e '.[bench]')")
        return
    with tempfile.TemporaryDirectory() as tmp:
        times = anyio.run(measure, args.repeats, args.width, args.chain, Path(tmp))
    print(f"[durable: paraloom store vs LangGraph SQLite checkpointer] median of {args.repeats}")
    for shape, n in (("fanout", args.width), ("chain", args.chain)):
        par = statistics.median(times[f"{shape}_paraloom"])
        lg = statistics.median(times[f"{shape}_langgraph"])
        print(
            f"  {shape:6s} n={n:5d}: paraloom+store {par / n * 1e6:7.1f} µs/node | "
            f"langgraph+checkpointer {lg / n * 1e6:7.1f} | langgraph/paraloom {lg / par:5.2f}x"
        )


if __name__ == "__main__":
    main()
