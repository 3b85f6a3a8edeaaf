from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from paraloom import (
    ActionStatus,
    FailurePolicy,
    Orchestrator,
    Plan,
    RetryableError,
    StaticPlanner,
    Subtask,
    tool,
)
from paraloom.protocols import Event, SubtaskRetried, SubtaskSkipped, SubtaskStarted

pytestmark = pytest.mark.anyio


def orchestrate(plan: Plan, actions: list[Any], **kw: Any) -> Orchestrator:
    return Orchestrator(actions, StaticPlanner(plan), **kw)


@tool
async def const(value: int) -> int:
    return value


@tool
async def add(a: int, b: int) -> int:
    return a + b


async def test_diamond_passes_outputs() -> None:
    plan = Plan(
        subtasks=(
            Subtask(id="top", action="const", arguments={"value": {"from": "input.start"}}),
            Subtask(id="left", action="add", arguments={"a": {"from": "top.output"}, "b": 1}),
            Subtask(id="right", action="add", arguments={"a": {"from": "top.output"}, "b": 10}),
            Subtask(
                id="bottom",
                action="add",
                arguments={"a": {"from": "left.output"}, "b": {"from": "right.output"}},
            ),
        )
    )
    result = await orchestrate(plan, [const, add]).run({"start": 5})
    assert result.ok, result.error
    assert result.output == 6 + 15
    assert {k: v.output for k, v in result.subtasks.items()} == {
        "top": 5,
        "left": 6,
        "right": 15,
        "bottom": 21,
    }


async def test_subtask_starts_when_its_deps_finish_not_level_by_level() -> None:
    # `slow` (level 0) only finishes after `after_fast` (level 1) has started:
    # a level-by-level scheduler would deadlock here.
    started_after_fast = anyio.Event()

    @tool
    async def slow() -> str:
        await started_after_fast.wait()
        return "slow"

    @tool
    async def fast() -> str:
        return "fast"

    @tool
    async def after_fast(x: str) -> str:
        started_after_fast.set()
        return x + "!"

    plan = Plan(
        subtasks=(
            Subtask(id="s", action="slow"),
            Subtask(id="f", action="fast"),
            Subtask(id="g", action="after_fast", arguments={"x": {"from": "f.output"}}),
        )
    )
    with anyio.fail_after(10):
        result = await orchestrate(plan, [slow, fast, after_fast]).run()
    assert result.ok
    assert result.output == {"s": "slow", "g": "fast!"}


async def test_global_and_per_action_concurrency_limits_hold() -> None:
    in_flight = {"all": 0, "b": 0}
    peak = {"all": 0, "b": 0}

    def make(name: str) -> Any:
        async def body(i: int) -> int:
            in_flight["all"] += 1
            if name == "b":
                in_flight["b"] += 1
            peak["all"] = max(peak["all"], in_flight["all"])
            peak["b"] = max(peak["b"], in_flight["b"])
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            in_flight["all"] -= 1
            if name == "b":
                in_flight["b"] -= 1
            return i

        body.__name__ = name
        return tool(body)

    subtasks = [
        Subtask(id=f"t{i}", action="a" if i % 2 else "b", arguments={"i": i}) for i in range(40)
    ]
    result = await orchestrate(
        Plan(subtasks=tuple(subtasks)),
        [make("a"), make("b")],
        max_concurrency=4,
        action_limits={"b": 2},
    ).run()
    assert result.ok
    assert peak == {"all": 4, "b": 2}


async def test_timeouts_and_retries_use_the_configured_counts() -> None:
    attempts: list[int] = []
    never = anyio.Event()

    @tool
    async def hangs() -> None:
        attempts.append(1)
        await never.wait()

    policy = FailurePolicy(
        retries=2, timeout_s=0.02, backoff_initial_s=0.001, backoff_max_s=0.002, backoff_jitter_s=0
    )
    events: list[Event] = []
    plan = Plan(subtasks=(Subtask(id="h", action="hangs", policy=policy),))
    result = await orchestrate(plan, [hangs]).run(on_event=events.append)
    assert len(attempts) == 3
    assert result.subtasks["h"].status is ActionStatus.TIMEOUT
    assert result.subtasks["h"].attempt == 3
    retried = [e for e in events if isinstance(e, SubtaskRetried)]
    assert [e.attempt for e in retried] == [1, 2]


async def test_retryable_error_then_fallback() -> None:
    @tool
    async def primary() -> str:
        raise RetryableError("503")

    @tool
    async def backup() -> str:
        return "from backup"

    policy = FailurePolicy(
        retries=1, backoff_initial_s=0.001, backoff_jitter_s=0, fallback="backup"
    )
    plan = Plan(subtasks=(Subtask(id="p", action="primary", policy=policy),))
    result = await orchestrate(plan, [primary, backup]).run()
    assert result.ok
    assert result.output == "from backup"
    assert result.subtasks["p"].action == "backup"


@tool
async def fails() -> int:
    raise ValueError("broken branch")


async def test_failure_skips_dependents_and_keeps_other_branch() -> None:
    plan = Plan(
        subtasks=(
            Subtask(id="bad", action="fails"),
            Subtask(id="child", action="add", arguments={"a": {"from": "bad.output"}, "b": 1}),
            Subtask(
                id="grandchild", action="add", arguments={"a": {"from": "child.output"}, "b": 1}
            ),
            Subtask(id="good", action="const", arguments={"value": 7}),
        )
    )
    events: list[Event] = []
    result = await orchestrate(plan, [fails, add, const]).run(on_event=events.append)
    assert result.subtasks["good"].output == 7
    assert result.subtasks["bad"].status is ActionStatus.ERROR
    for sid in ("child", "grandchild"):
        r = result.subtasks[sid]
        assert r.status is ActionStatus.SKIPPED
        assert r.error is not None and "dependency 'bad' failed" in r.error.message
    assert {e.subtask_id for e in events if isinstance(e, SubtaskSkipped)} == {
        "child",
        "grandchild",
    }
    assert not any(isinstance(e, SubtaskStarted) and e.subtask_id == "child" for e in events)


async def test_continue_runs_dependents_with_null() -> None:
    @tool
    async def show(x: int | None) -> str:
        return f"got {x}"

    plan = Plan(
        subtasks=(
            Subtask(id="bad", action="fails", policy=FailurePolicy(on_failure="continue")),
            Subtask(id="next", action="show", arguments={"x": {"from": "bad.output"}}),
        )
    )
    result = await orchestrate(plan, [fails, show]).run()
    assert result.output == "got None"
    # an answer, but not a success: the run says which subtask failed
    assert (result.status, result.ok, result.failed) == ("partial", False, ("bad",))
    assert result.error is not None and result.error.startswith(
        "1 subtask(s) did not finish ok: 'bad' (error: ValueError: broken branch (at "
    )


async def test_a_failure_off_the_answer_s_path_makes_the_run_partial() -> None:
    plan = Plan(
        subtasks=(
            Subtask(id="bad", action="fails"),
            Subtask(id="good", action="const", arguments={"value": 3}),
        )
    )
    orch = Orchestrator([fails, const], StaticPlanner(plan, output={"from": "good.output"}))
    result = await orch.run()
    assert (result.status, result.output, result.failed) == ("partial", 3, ("bad",))


async def test_many_failed_sinks_are_summarised_root_causes_first() -> None:
    """One root failure skipping 200 sinks: the error names the root and its message,
    then counts the skipped sinks, instead of listing each (7.8 KB before)."""

    @tool
    async def kaboom(x: int) -> int:
        raise ValueError("kaboom " + "x" * 5000)

    sinks = tuple(
        Subtask(id=f"sink{i:03d}", action="const", arguments={"value": {"from": "root.output"}})
        for i in range(200)
    )
    plan = Plan(subtasks=(Subtask(id="root", action="kaboom", arguments={"x": 1}), *sinks))
    result = await orchestrate(plan, [kaboom, const]).run()
    assert result.status == "failed" and result.error is not None
    assert len(result.error) < 800, len(result.error)
    root_at = result.error.index("'root' (error: ValueError: kaboom xxx")
    skipped_at = result.error.index("200 skipped as a result: 'sink000', 'sink001'")
    assert root_at < skipped_at
    assert "(195 more)" in result.error and "(5,007 chars) (at " in result.error
    assert len(result.failed) == 201


async def test_fail_policy_stops_run_cancels_in_flight_and_keeps_finished() -> None:
    never = anyio.Event()
    cancelled: list[str] = []

    @tool
    async def waits() -> None:
        try:
            await never.wait()
        finally:
            cancelled.append("waits")

    @tool
    async def quick() -> int:
        return 1

    @tool
    async def fails_after(x: int) -> int:
        raise ValueError("fatal")

    plan = Plan(
        subtasks=(
            Subtask(id="w", action="waits"),
            Subtask(id="q", action="quick"),
            Subtask(
                id="f",
                action="fails_after",
                arguments={"x": {"from": "q.output"}},
                policy=FailurePolicy(on_failure="fail"),
            ),
            Subtask(id="later", action="quick", depends_on=("f",)),
        )
    )
    with anyio.fail_after(10):
        result = await orchestrate(plan, [waits, quick, fails_after]).run()
    assert result.status == "failed"
    assert result.error is not None and "subtask 'f' failed" in result.error
    assert result.subtasks["q"].output == 1
    assert result.subtasks["w"].status is ActionStatus.CANCELLED
    assert result.subtasks["later"].status is ActionStatus.SKIPPED
    assert cancelled == ["waits"]


async def test_reference_to_missing_field_is_a_clear_subtask_error() -> None:
    @tool
    async def obj() -> dict[str, int]:
        return {"a": 1}

    plan = Plan(
        subtasks=(
            Subtask(id="o", action="obj"),
            Subtask(id="use", action="const", arguments={"value": {"from": "o.output.b"}}),
        )
    )
    result = await orchestrate(plan, [obj, const]).run()
    err = result.subtasks["use"].error
    assert err is not None and err.type == "ReferenceError"
    assert "o.output.b: no field 'b' in object with fields [a]" in err.message


async def test_an_action_that_raises_does_not_crash_the_run() -> None:
    class Rogue:
        spec = const.spec.model_copy(update={"name": "rogue"})

        async def invoke(self, call: Any, context: Any) -> Any:
            raise RuntimeError("contract broken")

    plan = Plan(
        subtasks=(
            Subtask(id="r", action="rogue", arguments={"value": 1}),
            Subtask(id="c", action="const", arguments={"value": 2}),
        )
    )
    result = await orchestrate(plan, [Rogue(), const]).run()
    assert result.subtasks["r"].status is ActionStatus.ERROR
    assert result.subtasks["c"].output == 2


async def test_a_final_answer_built_on_a_failed_subtask_fails_the_run() -> None:
    plan = Plan(
        subtasks=(
            Subtask(id="bad", action="fails"),
            Subtask(id="good", action="const", arguments={"value": 3}),
        )
    )
    result = await orchestrate(plan, [fails, const]).run()
    assert result.status == "failed"
    assert result.error is not None
    assert "depends on failed subtasks: 'bad' (error: ValueError: broken branch (at " in (
        result.error
    )
    assert result.output == {"bad": None, "good": 3}  # what was produced is kept
