"""Scheduling overhead of paraloom vs a raw anyio TaskGroup.

* fan-out: N independent no-op actions (default 1,000).
* chain: a 200-node dependency chain of no-op actions.

Two baselines in a raw anyio TaskGroup: (1) the bare async function, (2) the same
action invocations (``tool.invoke(ActionCall, ctx)``, i.e. argument validation and a
normalized result, without any scheduling). paraloom adds plan validation, dependency
tracking, reference resolution, limits, events and the run result. Prints µs/node and
the ratios (medians of interleaved runs, so machine noise hits all sides alike).

    python benchmarks/engine_overhead.py [--width 1000] [--chain 200] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import anyio

from paraloom import ActionCall, ActionContext, Orchestrator, Plan, StaticPlanner, Subtask, tool


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


def measure(repeats: int, width: int, chain: int, *, events: bool) -> dict[str, list[float]]:
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--chain", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    for events in (False, True):
        t = {
            k: statistics.median(v)
            for k, v in measure(args.repeats, args.width, args.chain, events=events).items()
        }
        label = "with an event listener" if events else "no listener"
        print(f"[{label}] median of {args.repeats} runs")
        for shape, n in (("fanout", args.width), ("chain", args.chain)):
            raw, inv, par = t[f"{shape}_raw"], t[f"{shape}_invoke"], t[f"{shape}_paraloom"]
            print(
                f"  {shape:6s} n={n:5d}: raw fn {raw / n * 1e6:6.1f} µs/node | "
                f"raw invoke {inv / n * 1e6:6.1f} | paraloom {par / n * 1e6:6.1f} | "
                f"paraloom/raw fn {par / raw:5.2f}x | paraloom/raw invoke {par / inv:5.2f}x"
            )


if __name__ == "__main__":
    main()
