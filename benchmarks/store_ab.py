"""The run store's overhead in two checkouts of paraloom, side by side: the 1,000-wide
fan-out and the 200-node chain of no-op actions, without a store and recording into a
SQLite store with the durable executor (what every CLI run does; timed until the last
event is committed), in subprocesses that alternate between the checkouts round after
round, so that the load of a shared machine hits both alike. Prints medians over the
rounds of µs/node and of the per-round ratio store / no store.

    python benchmarks/store_ab.py --before /path/to/main [--after .] [--rounds 6] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHAPES = ("fanout", "chain")


def one(repeats: int) -> dict[str, dict[str, float]]:
    """One round in this process (the paraloom on ``PYTHONPATH``): medians in seconds."""
    import anyio
    from engine_overhead import chain_plan, fanout_plan, noop

    from paraloom import Orchestrator, StaticPlanner
    from paraloom.store import RunStore

    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, RunStore(Path(tmp) / "runs.sqlite") as store:
        listener = store.listener()
        shapes = (("fanout", fanout_plan(1000), 1000), ("chain", chain_plan(200), 200))
        for shape, plan, n in shapes:
            bare = Orchestrator([noop], StaticPlanner(plan), max_concurrency=n)
            durable = Orchestrator(
                [noop], StaticPlanner(plan), max_concurrency=n, executor=store.executor()
            )

            async def run_bare(o: Orchestrator = bare) -> float:
                start = time.perf_counter()
                await o.run()
                return time.perf_counter() - start

            async def run_store(o: Orchestrator = durable) -> float:
                start = time.perf_counter()
                await o.run(on_event=listener)
                await store.aflush()
                return time.perf_counter() - start

            anyio.run(run_bare)  # warm-up
            anyio.run(run_store)
            pairs = [(anyio.run(run_bare), anyio.run(run_store)) for _ in range(repeats)]
            out[shape] = {
                "n": n,
                "bare": statistics.median(b for b, _ in pairs),
                "store": statistics.median(s for _, s in pairs),
                "ratio": statistics.median(s / b for b, s in pairs),
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, help="the checkout to compare with")
    ap.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.repeats)))
        return
    if args.before is None:
        ap.error("--before is required")
    checkouts = {"before": args.before.resolve(), "after": args.after.resolve()}
    script = Path(__file__).resolve()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    for _ in range(args.rounds):
        for name, path in checkouts.items():  # alternating: drift hits both alike
            env = dict(os.environ, PYTHONPATH=str(path))
            done = subprocess.run(
                [sys.executable, str(script), "--one", "--repeats", str(args.repeats)],
                env=env,
                cwd=path / "benchmarks",
                capture_output=True,
                text=True,
                check=True,
            )
            results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"median of {args.rounds} alternating rounds x {args.repeats} runs; to durable")
    for shape in SHAPES:
        for name, path in checkouts.items():
            rounds = [r[shape] for r in results[name]]
            n = rounds[0]["n"]
            bare = statistics.median(r["bare"] for r in rounds) / n * 1e6
            stored = statistics.median(r["store"] for r in rounds) / n * 1e6
            ratio = statistics.median(r["ratio"] for r in rounds)
            print(
                f"  {shape:6s} n={n:4d} {name:6s} ({path}): no store {bare:6.1f} µs/node"
                f" | store {stored:7.1f} µs/node | store / no store {ratio:5.2f}x"
            )


if __name__ == "__main__":
    main()
