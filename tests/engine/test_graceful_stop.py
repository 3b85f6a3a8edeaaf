"""StopSignal: a graceful stop finishes what runs, starts nothing new, keeps results."""

from __future__ import annotations

import anyio
import pytest

from paraloom import (
    ActionStatus,
    FailurePolicy,
    Orchestrator,
    Plan,
    RetryableError,
    StaticPlanner,
    StopSignal,
    Subtask,
    tool,
)

pytestmark = pytest.mark.anyio


@pytest.mark.timeout(30)
async def test_running_subtasks_finish_and_nothing_new_starts() -> None:
    stop = StopSignal()
    started: list[str] = []
    both_running = anyio.Event()
    release = anyio.Event()

    @tool
    async def step(name: str) -> str:
        started.append(name)
        if len(started) == 2:
            both_running.set()
        await release.wait()
        return name.upper()

    plan = Plan(
        subtasks=(
            Subtask(id="a", action="step", arguments={"name": "a"}),
            Subtask(id="b", action="step", arguments={"name": "b"}),
            Subtask(id="c", action="step", arguments={"name": "c"}, depends_on=("a",)),
        )
    )
    orch = Orchestrator([step], StaticPlanner(plan))
    async with anyio.create_task_group() as tg:

        async def stop_when_both_run() -> None:
            await both_running.wait()
            stop.request("stopped by the test")
            release.set()

        tg.start_soon(stop_when_both_run)
        result = await orch.run(None, stop=stop)
    assert result.status == "cancelled" and result.error == "stopped by the test"
    assert started == ["a", "b"]
    assert {k: (v.status, v.output) for k, v in result.subtasks.items()} == {
        "a": (ActionStatus.OK, "A"),
        "b": (ActionStatus.OK, "B"),
        "c": (ActionStatus.CANCELLED, None),
    }
    c = result.subtasks["c"]
    assert c.error is not None and c.error.type == "Stopped"
    assert c.error.message == "stopped by the test before this subtask started"


@pytest.mark.timeout(30)
async def test_no_retry_starts_after_a_stop() -> None:
    stop = StopSignal()
    attempts: list[int] = []

    @tool
    async def flaky() -> None:
        attempts.append(1)
        stop.request()
        raise RetryableError("try again")

    plan = Plan(
        subtasks=(
            Subtask(
                id="f",
                action="flaky",
                policy=FailurePolicy(retries=3, backoff_initial_s=0, backoff_jitter_s=0),
            ),
        )
    )
    result = await Orchestrator([flaky], StaticPlanner(plan)).run(None, stop=stop)
    assert attempts == [1]
    assert result.status == "cancelled"
    assert result.subtasks["f"].status is ActionStatus.CANCELLED


async def test_a_stop_before_the_run_starts_nothing() -> None:
    stop = StopSignal()
    stop.request("no")
    stop.request("ignored: the first reason is kept")
    ran: list[int] = []

    @tool
    async def one() -> int:
        ran.append(1)
        return 1

    plan = Plan(subtasks=(Subtask(id="x", action="one"),))
    result = await Orchestrator([one], StaticPlanner(plan)).run(None, stop=stop)
    assert (result.status, result.error, result.rounds, ran) == ("cancelled", "no", 0, [])
