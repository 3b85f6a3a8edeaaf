"""``run.events()`` keeps up with a CPU-bound run: bounded backlog, a consumer that sees
events while the run runs, and the two overflow policies."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from paraloom import Orchestrator, Plan, StaticPlanner, Subtask, tool
from paraloom.protocols.events import (
    Event,
    EventsDropped,
    RunFinished,
    SubtaskFinished,
)

N = 2000
BOUND = 64
SMALL = 500

pytestmark = pytest.mark.anyio


def _orchestrator(ran: list[int], *, chain: bool, n: int = N) -> Orchestrator:
    @tool
    async def work(i: int, prev: int | None = None) -> int:
        ran.append(i)  # CPU-bound: never yields to the event loop
        return i

    subtasks = [
        Subtask(
            id=f"n{i}",
            action="work",
            arguments={"i": i, "prev": {"from": f"n{i - 1}.output"}} if chain and i else {"i": i},
        )
        for i in range(n)
    ]
    return Orchestrator(
        [work], StaticPlanner(Plan(subtasks=tuple(subtasks)), output=None), max_concurrency=n
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("chain", [False, True], ids=["fanout", "chain"])
async def test_consumer_sees_events_while_a_cpu_bound_run_runs(chain: bool) -> None:
    ran: list[int] = []
    seen: list[Event] = []
    ran_at_first_finish: int | None = None
    peak = 0
    orch = _orchestrator(ran, chain=chain)
    async with orch.start(max_backlog=BOUND) as run:
        async for event in run.events():
            seen.append(event)
            peak = max(peak, run.backlog + 1)
            if isinstance(event, SubtaskFinished) and ran_at_first_finish is None:
                ran_at_first_finish = len(ran)
        result = await run.result()
    assert result.ok
    assert len(ran) == N
    # The consumer saw a subtask finish while most subtasks had not run yet.
    assert ran_at_first_finish is not None and ran_at_first_finish < N // 2
    # Lossless: every subtask's four events, in order, ending with RunFinished.
    assert sum(isinstance(e, SubtaskFinished) for e in seen) == N
    assert not any(isinstance(e, EventsDropped) for e in seen)
    assert isinstance(seen[-1], RunFinished)
    # The backlog never exceeded the bound.
    assert run.max_backlog_seen <= BOUND
    assert peak <= BOUND


@pytest.mark.timeout(60)
async def test_a_slow_consumer_pauses_the_run_without_losing_events() -> None:
    ran: list[int] = []
    orch = _orchestrator(ran, chain=False)
    listened: list[Event] = []
    count = 0
    async with orch.start(max_backlog=BOUND, on_event=listened.append) as run:
        async for _ in run.events():
            count += 1
            for _ in range(3):  # a consumer slower than the run
                await anyio.lowlevel.checkpoint()
        await run.result()
    assert count == len(listened)
    assert run.max_backlog_seen <= BOUND


@pytest.mark.timeout(60)
async def test_drop_oldest_keeps_the_bound_and_counts_what_it_dropped() -> None:
    ran: list[int] = []
    orch = _orchestrator(ran, chain=True)
    listened: list[Event] = []
    async with orch.start(
        max_backlog=BOUND, overflow="drop_oldest", on_event=listened.append
    ) as run:
        result = await run.result()  # nobody reads while the run runs
        seen = [e async for e in run.events()]
    assert result.ok and len(ran) == N
    assert run.max_backlog_seen <= BOUND
    marker = seen[0]
    assert isinstance(marker, EventsDropped)
    kept = seen[1:]
    assert len(kept) == BOUND
    assert marker.count + len(kept) == len(listened)  # listeners lost nothing
    assert kept == listened[-BOUND:]
    assert isinstance(kept[-1], RunFinished)


@pytest.mark.timeout(60)
async def test_awaiting_the_result_without_reading_events_does_not_deadlock() -> None:
    ran: list[int] = []
    orch = _orchestrator(ran, chain=False, n=SMALL)
    async with orch.start(max_backlog=BOUND) as run:
        result = await run.result()
        seen = [e async for e in run.events()]
    assert result.ok and len(ran) == SMALL
    assert sum(isinstance(e, SubtaskFinished) for e in seen) == SMALL  # still lossless


@pytest.mark.timeout(60)
async def test_a_consumer_leaving_early_releases_the_run() -> None:
    ran: list[int] = []
    orch = _orchestrator(ran, chain=False, n=SMALL)
    async with orch.start(max_backlog=BOUND) as run:
        async for event in run.events():
            if isinstance(event, SubtaskFinished):
                break
        result = await run.result()
    assert result.ok and len(ran) == SMALL


def test_bad_stream_options_are_refused() -> None:
    from paraloom.orchestrator.stream import EventStream

    with pytest.raises(ValueError, match="max_backlog"):
        EventStream(max_backlog=2)
    with pytest.raises(ValueError, match="overflow"):
        EventStream(overflow="lossy")  # type: ignore[arg-type]


@pytest.mark.timeout(60)
async def test_a_lossy_consumer_sees_events_while_a_cpu_bound_run_runs() -> None:
    ran: list[int] = []
    orch = _orchestrator(ran, chain=False)
    listened: list[Event] = []
    seen: list[Event] = []
    ran_at_first_finish: int | None = None
    async with orch.start(
        max_backlog=BOUND, overflow="drop_oldest", on_event=listened.append
    ) as run:
        async for event in run.events():
            seen.append(event)
            if isinstance(event, SubtaskFinished) and ran_at_first_finish is None:
                ran_at_first_finish = len(ran)
    assert ran_at_first_finish is not None and ran_at_first_finish < N // 2
    assert run.max_backlog_seen <= BOUND
    dropped = sum(e.count for e in seen if isinstance(e, EventsDropped))
    kept = [e for e in seen if not isinstance(e, EventsDropped)]
    assert dropped + len(kept) == len(listened)
    assert isinstance(kept[-1], RunFinished)


@pytest.mark.timeout(60)
async def test_cancelling_a_run_paused_by_a_full_stream_ends_it() -> None:
    ran: list[int] = []
    orch = _orchestrator(ran, chain=False)
    async with orch.start(max_backlog=BOUND) as run:
        events = run.events()
        first = await events.__anext__()
        while run.backlog < BOUND - 16:  # let the run fill the buffer and pause
            await anyio.lowlevel.checkpoint()
        paused_at = len(ran)
        run.cancel()
        rest = [first, *[e async for e in events]]
        result = await run.result()
    assert paused_at < N
    assert result.status == "cancelled"
    last = rest[-1]
    assert isinstance(last, RunFinished) and last.status == "cancelled"
    assert len(ran) < N  # nothing ran after the cancel
