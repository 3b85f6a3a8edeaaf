"""Scope ledger throughput: reserve+settle pairs per second from 4 processes × 20
concurrent tasks sharing one tenant scope (and a per-process session scope), on a
throw-away PostgreSQL (fsync off) and on a SQLite file, per strategy, interleaved
repeats, medians. Every pair is checked: the tenant's spent equals the pairs settled.

    python benchmarks/ledger_throughput.py [--pairs 25] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import anyio

from paraloom.store.ledger import open_ledger
from paraloom.store.ledger_sql import Strategy
from paraloom.testing.postgres import PostgresServer

PROCESSES = 4
TASKS = 20
COST = Decimal("0.000123")


async def _worker(location: str, strategy: Strategy, pairs: int, index: int) -> None:
    async with open_ledger(location, strategy=strategy, label=f"bench{index}") as ledger:
        scopes = ("tenant:bench", f"session:bench{index}")
        await ledger.set_limit(scopes[1], Decimal(10**6))

        async def task() -> None:
            for _ in range(pairs):
                hold = await ledger.reserve(scopes, Decimal("0.01"))
                await ledger.settle(hold, COST)

        print("READY", flush=True)
        sys.stdin.readline()  # start together
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(TASKS):
                tg.start_soon(task)
        print(json.dumps({"elapsed": time.perf_counter() - start}), flush=True)


def _round(location: str, strategy: Strategy, pairs: int) -> float:
    """Pairs per second over the round (first start to last finish)."""

    async def setup() -> None:
        async with open_ledger(location, strategy="locked") as ledger:
            await ledger.set_limit("tenant:bench", Decimal(10**6))

    anyio.run(setup)
    cmd = [sys.executable, __file__, "--worker", location, strategy, str(pairs)]
    procs = [
        subprocess.Popen([*cmd, str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for i in range(PROCESSES)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    start = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.communicate(timeout=600)
        assert p.returncode == 0
    return PROCESSES * TASKS * pairs / (time.perf_counter() - start)


def _spent(location: str) -> Decimal:
    async def read() -> Decimal:
        async with open_ledger(location) as ledger:
            return (await ledger.show(["tenant:bench"]))[0].spent_usd

    return anyio.run(read)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=25, help="pairs per task per round")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with PostgresServer() as pg, tempfile.TemporaryDirectory() as tmp:
        sqlite = str(Path(tmp) / "ledger.sqlite")
        cases: list[tuple[str, str, Strategy]] = [
            ("postgres", pg.url, "conditional"),
            ("postgres", pg.url, "locked"),
            ("sqlite", sqlite, "locked"),
        ]
        rates: dict[str, list[float]] = {f"{n} {s}": [] for n, _, s in cases}
        for _ in range(args.repeats):
            for name, location, strategy in cases:
                rates[f"{name} {strategy}"].append(_round(location, strategy, args.pairs))
        per_round = PROCESSES * TASKS * args.pairs
        for name, location, _ in cases[1:]:
            runs = sum(len(v) for k, v in rates.items() if k.startswith(name))
            assert _spent(location) == COST * per_round * runs, "spend mismatch"
    print(f"{PROCESSES} processes x {TASKS} tasks x {args.pairs} reserve+settle pairs")
    for case, values in rates.items():
        print(f"  {case:22s} median {statistics.median(values):8.0f} pairs/s  {values}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _, _, loc, strat, n, idx = sys.argv
        anyio.run(_worker, loc, strat, int(n), int(idx))  # type: ignore[arg-type]
    else:
        main()
