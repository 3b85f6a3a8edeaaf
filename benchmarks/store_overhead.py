"""Run store overhead and commit lag, measured side by side in one run (medians of
interleaved repeats): no store vs the store's listener vs listener + durable executor,
on SQLite and on PostgreSQL.

Backends: SQLite (a temp file, WAL, ``synchronous=NORMAL``: the default), the same as it
recorded before the store's checkpoint thread (``sqlite-before``: SQLite's auto-checkpoint
inside the writer's commits, see ``engine_overhead.before_store``), and a private
PostgreSQL server this script starts on 127.0.0.1 with **fsync on** (``fsync``,
``synchronous_commit``, ``full_page_writes`` all on, as in production), recorded with
the store's default ``NORMAL`` (session ``synchronous_commit = off``: a commit survives
the client's death, not the server's) and with ``FULL`` (each commit waits for the
server's WAL fsync). The server shares the machine's cores with the benchmark.

Workloads:
- ``wide``: 200 trivial parallel async subtasks (worst case: the loop is CPU-bound and
  the nodes do no work, so recording is all the overhead there is);
- ``chain``: 100 trivial subtasks in sequence (the durable executor waits for one commit
  per subtask here: its worst case);
- ``io``: 8 chains of 8 subtasks that each wait 5 ms (stand-in for a tool or LLM call).

Times are to *durable*: the run plus the flush that makes its last event durable.
The lag is how many events were submitted but not yet committed when a subtask
started (median / max over all subtasks), i.e. what a SIGKILL at that moment loses.

Per variant: ms per subtask; the overhead per subtask vs no store (µs); the overhead
per recorded event (µs: overhead / events recorded per run); ×: time vs no store.

    python benchmarks/store_overhead.py [--repeats N] [--no-postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask
from paraloom.protocols.events import Event
from paraloom.store import RunStore
from paraloom.tools.function import FunctionTool

from engine_overhead import before_store  # isort: skip  (this folder, on sys.path)

REPEATS = 7


async def noop(i: int) -> int:
    return i


async def io(i: int) -> int:
    await anyio.sleep(0.005)
    return i


def wide() -> Plan:
    return Plan(
        subtasks=tuple(Subtask(id=f"t{i}", action="noop", arguments={"i": i}) for i in range(200))
    )


def chain() -> Plan:
    return Plan(
        subtasks=tuple(
            Subtask(
                id=f"t{i}",
                action="noop",
                arguments={"i": {"from": f"t{i - 1}.output"} if i else 0},
            )
            for i in range(100)
        )
    )


def io_chains() -> Plan:
    subtasks = []
    for c in range(8):
        for i in range(8):
            arg = {"from": f"c{c}_{i - 1}.output"} if i else c
            subtasks.append(Subtask(id=f"c{c}_{i}", action="io", arguments={"i": arg}))
    return Plan(subtasks=tuple(subtasks))


WORKLOADS: dict[str, Callable[[], Plan]] = {"wide": wide, "chain": chain, "io": io_chains}
MODES = ("listener", "listener+executor")


async def once(
    plan: Plan, variant: str, store: RunStore | None, lags: list[int], events: list[int]
) -> float:
    actions = [FunctionTool(noop), FunctionTool(io)]
    if store is None:
        orch = Orchestrator(actions, StaticPlanner(plan, output=None))
        start = time.perf_counter()
        result = await orch.run()
        elapsed = time.perf_counter() - start
    else:
        record = store.listener()
        writer = store._writer
        assert writer is not None
        count = 0

        def listen(event: Event) -> None:
            nonlocal count
            record(event)
            count += 1
            if event.type == "subtask_started":
                lags.append(writer.submitted - writer.committed)

        orch = Orchestrator(
            actions,
            StaticPlanner(plan, output=None),
            listeners=[listen],
            executor=store.executor() if variant.endswith("listener+executor") else None,
        )
        start = time.perf_counter()
        result = await orch.run()
        await store.aflush()
        elapsed = time.perf_counter() - start
        events.append(count)
    assert result.ok, result.error
    return elapsed


@contextlib.contextmanager
def open_stores(postgres: bool) -> Iterator[dict[str, RunStore]]:
    """The stores to compare, by backend label (closed, and the server stopped, after)."""
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        stores = {
            "sqlite": stack.enter_context(RunStore(Path(tmp) / "bench.sqlite")),
            "sqlite-before": stack.enter_context(before_store(Path(tmp) / "before.sqlite")),
        }
        if postgres:
            from paraloom.testing.postgres import PostgresServer

            pg = stack.enter_context(PostgresServer(fsync=True))
            stores["pg"] = stack.enter_context(RunStore(pg.url))
            stores["pg FULL"] = stack.enter_context(RunStore(pg.url, synchronous="FULL"))
        yield stores


def _lag_text(lag: list[int]) -> str:
    if not lag:
        return ""
    return f"  lag at start: median {statistics.median(lag):.0f}, max {max(lag)} events"


async def measure(repeats: int, postgres: bool) -> None:
    with open_stores(postgres) as stores:
        variants: dict[str, RunStore | None] = {"off": None}
        for label, store in stores.items():
            for mode in MODES:
                variants[f"{label} {mode}"] = store
        print(
            "PostgreSQL: private server on 127.0.0.1, fsync on;"
            " 'pg' = synchronous NORMAL (default), 'pg FULL' = synchronous_commit on"
            if postgres
            else "SQLite only"
        )
        for name, make in WORKLOADS.items():
            plan = make()
            times: dict[str, list[float]] = {v: [] for v in variants}
            lags: dict[str, list[int]] = {v: [] for v in variants}
            events: dict[str, list[int]] = {v: [] for v in variants}
            for _ in range(repeats):
                for variant, store in variants.items():  # interleaved: drift hits all alike
                    times[variant].append(
                        await once(plan, variant, store, lags[variant], events[variant])
                    )
            base = statistics.median(times["off"])
            n = len(plan.subtasks)
            print(f"{name} ({n} subtasks), median of {repeats}:")
            sqlite_over: dict[str, float] = {}
            for variant in variants:
                med = statistics.median(times[variant])
                over = (med - base) / n * 1e6
                line = f"  {variant:32s} {med / n * 1e3:7.3f} ms/subtask  x{med / base:5.2f}"
                if events[variant]:
                    per_event = (med - base) / statistics.median(events[variant]) * 1e6
                    line += f"  +{over:6.0f} us/subtask  +{per_event:5.0f} us/event"
                    mode = variant.split(" ", 1)[1] if variant.startswith("sqlite ") else ""
                    if mode:
                        sqlite_over[mode] = over
                    else:
                        mode = variant.rsplit(" ", 1)[-1]
                        if sqlite_over.get(mode, 0) > 0:
                            line += f"  ({over / sqlite_over[mode]:4.1f}x sqlite's overhead)"
                print(line + _lag_text(lags[variant]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    anyio.run(measure, args.repeats, not args.no_postgres)


if __name__ == "__main__":
    main()
