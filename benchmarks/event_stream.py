"""Does a ``run.events()`` consumer keep up with a CPU-bound run?

A 10,000-node fan-out (and a 10,000-node chain) of no-op actions, one consumer
iterating the run's events. Side by side:

* ``before``: the previous stream, an unbounded anyio memory object stream fed by a
  listener (one event per receive, each receive a checkpoint; the run never yields);
* ``now``: ``run.events()`` as shipped (bounded, ``overflow="block"``, default bound).

Printed per variant: the largest backlog (events queued unread), the backlog when the
run emitted ``RunFinished`` (what a streaming client still had to receive then), the
first-event latency in nodes (how many nodes had run when the consumer got its first
``subtask_finished``), and the CPU time of the run (``time.process_time``: less
disturbed than wall time by other load on a shared machine).

    python benchmarks/event_stream.py [--nodes 10000]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.protocols.events import Event, RunFinished, SubtaskFinished

RAN: list[int] = []


@tool
async def work(i: int, prev: int | None = None) -> int:
    RAN.append(i)
    return i


def orchestrator(n: int, chain: bool) -> Orchestrator:
    subtasks = tuple(
        Subtask(
            id=f"n{i}",
            action="work",
            arguments={"i": i, "prev": {"from": f"n{i - 1}.output"}} if chain and i else {"i": i},
        )
        for i in range(n)
    )
    return Orchestrator(
        [work], StaticPlanner(Plan(subtasks=subtasks), output=None), max_concurrency=n
    )


@dataclass
class Stats:
    max_backlog: int = 0
    at_end: int = 0
    first_latency: int | None = None
    events: int = 0
    seconds: float = 0.0


async def before(orch: Orchestrator, stats: Stats) -> None:
    send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=math.inf)

    def listener(event: Event) -> None:
        send.send_nowait(event)
        backlog = receive.statistics().current_buffer_used
        stats.max_backlog = max(stats.max_backlog, backlog)
        if isinstance(event, RunFinished):
            stats.at_end = backlog
            send.close()

    async def run() -> None:
        await orch.run(on_event=listener)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await consume(receive, stats)


async def now(orch: Orchestrator, stats: Stats) -> None:
    holder: list[Callable[[], int]] = []

    def at_end(event: Event) -> None:
        if isinstance(event, RunFinished):
            stats.at_end = holder[0]() + 1

    async with orch.start(on_event=at_end) as run:
        holder.append(lambda: run.backlog)
        await consume(run.events(), stats)
        stats.max_backlog = run.max_backlog_seen


async def consume(events: AsyncIterator[Event], stats: Stats) -> None:
    async for event in events:
        stats.events += 1
        if isinstance(event, SubtaskFinished) and stats.first_latency is None:
            stats.first_latency = len(RAN)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10_000)
    args = ap.parse_args()
    for shape in ("fanout", "chain"):
        orch = orchestrator(args.nodes, shape == "chain")
        print(f"[{shape}, {args.nodes} no-op nodes, one consumer of the event stream]")
        for name, fn in (("before", before), ("now", now)):
            RAN.clear()
            stats = Stats()
            start = time.process_time()
            anyio.run(fn, orch, stats)
            stats.seconds = time.process_time() - start
            print(
                f"  {name:<7} max backlog {stats.max_backlog:6d} | queued at RunFinished "
                f"{stats.at_end:6d} of {stats.events} | first subtask_finished after "
                f"{stats.first_latency} nodes | {stats.seconds:5.2f} s CPU"
            )


if __name__ == "__main__":
    main()
